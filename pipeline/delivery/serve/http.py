"""What every endpoint that takes a JSON body shares: the media type check, the bounded and
timed read of the body, and the JSON answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from fastapi import Request, Response
from starlette.requests import ClientDisconnect

from pipeline.core.config import ServeSection
from pipeline.delivery.serve.inputs import is_json

ERR_TOO_LARGE = "request body larger than {limit} bytes"
ERR_MEDIA_TYPE = "Content-Type must be application/json, not {got}"
ERR_BODY_TIMEOUT = "request body not received within {seconds:g} s"
ERR_DISCONNECTED = "the client closed the connection before its request body arrived"

logger = logging.getLogger(__name__)


def json_response(content: Any, status: int = 200, *, close: bool = False) -> Response:
    body = json.dumps(content, separators=(",", ":"), allow_nan=False).encode()
    # An answer given before the body was read in full closes the connection: otherwise the
    # server would go on receiving (and discarding) whatever the client still sends.
    headers = {"connection": "close"} if close else None
    return Response(body, status_code=status, media_type="application/json", headers=headers)


async def read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None when it exceeds the limit (checked before and while reading).
    Raises ClientDisconnect when the client goes away first.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def receive_json(request: Request, *, serve: ServeSection, refused: Callable[[str], None]) -> bytes | Response:
    """The raw body of a JSON request, or the answer refusing it (`refused` counts it by kind:
    media_type, timeout, disconnect, too_large).
    """
    content_type = request.headers.get("content-type")
    if not is_json(content_type=content_type):
        refused("media_type")
        got = "none" if content_type is None else repr(content_type[:100])
        return json_response({"detail": ERR_MEDIA_TYPE.format(got=got)}, 415, close=True)
    try:
        # Bounds a client that sends its headers and then stalls (slow-loris).
        async with asyncio.timeout(serve.read_timeout_seconds):
            body = await read_body(request, serve.max_body_bytes)
    except TimeoutError:
        refused("timeout")
        return json_response({"detail": ERR_BODY_TIMEOUT.format(seconds=serve.read_timeout_seconds)}, 408, close=True)
    except ClientDisconnect:
        refused("disconnect")
        logger.debug(ERR_DISCONNECTED)
        return json_response({"detail": ERR_DISCONNECTED}, 400, close=True)
    if body is None:
        refused("too_large")
        return json_response({"detail": ERR_TOO_LARGE.format(limit=serve.max_body_bytes)}, 413, close=True)
    return body
