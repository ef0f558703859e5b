"""The ops console and HTTP API: FastAPI, server-rendered pages, ``/metrics``, ``/healthz``.

Entry point: :func:`forewarn.web.app.create_app`.
"""
