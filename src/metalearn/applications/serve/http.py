"""Request bodies within limits, and the JSON error every refusal of ``metalearn serve`` becomes.

Each handler raises :class:`ApiError`; the app turns it into ``{"error": message}`` with its
status code, so that bad input never becomes a traceback or a stopped server.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

__all__ = ["ApiError", "read_body", "read_json"]


class ApiError(Exception):
    """A refused request: the HTTP status and a message that says what to do instead.

    Args:
        status: HTTP status code (4xx).
        message: one sentence naming the value, the limit and the fix.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


async def read_body(request: Request, limit: int) -> bytes:
    """Return the request body, refusing one of more than ``limit`` bytes with 413.

    The declared ``Content-Length`` is checked before reading, and the bytes received are
    counted while reading, so that a chunked or lying client is cut off at the limit too.

    Raises:
        ApiError: 413 past the limit, 400 for a malformed ``Content-Length``.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, f"Content-Length {declared!r} is not a number of bytes")
        if int(declared) > limit:
            raise _too_large(int(declared), limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, limit: int) -> ApiError:
    return ApiError(413, f"the request body has {size:,} bytes or more; the limit is {limit:,}")


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    """Return the body as a JSON object.

    Raises:
        ApiError: 413 past ``limit``, 400 if the body is not a JSON object.
    """
    body = await read_body(request, limit)
    try:
        value = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the body is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ApiError(400, f"the body must be a JSON object, got {type(value).__name__}")
    return value
