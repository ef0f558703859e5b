"""``HEAD`` for every ``GET`` route: load balancers and uptime checkers probe with it.

FastAPI's routes answer only the methods they declare, so ``HEAD /`` was 405. This
middleware runs a HEAD request as the GET it stands for and drops the body, keeping the
status and headers (``Content-Length`` included, as RFC 9110 allows).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    """ASGI middleware answering HEAD like GET without the body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, without_body)
