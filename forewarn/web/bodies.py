"""Reading untrusted request bodies (webhooks) with a size limit, before any parsing."""

from __future__ import annotations

from fastapi import HTTPException, Request


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, or 413 when the declared or actual size exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, "request too large")
    body = await request.body()
    if len(body) > limit:
        raise HTTPException(413, "request too large")
    return body
