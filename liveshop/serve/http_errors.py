"""JSON error bodies for every HTTP app: ``{"error": {"code", "message", "temporary"}}``,
and the limit on request bodies.

Every failure a client can cause is answered with this body and a 4xx status: a route's own
errors (:class:`LiveshopError`), a body or parameter that fails validation (422
``invalid_request``), a body that is not JSON at all or nests too deep to parse (400), a
body larger than the app reads (413 ``too_large``, :class:`BodyLimit`), an unknown path
(404) or method (405). Only a bug answers 500.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from liveshop.errors import (
    ClientError,
    InternalError,
    InvalidRequest,
    LiveshopError,
    TooLarge,
    Unavailable,
)
from liveshop.storage.pool import TRANSIENT_DB_ERRORS

log = logging.getLogger(__name__)

TRANSIENT_ERRORS = (*TRANSIENT_DB_ERRORS, RedisError)
#: Statuses Starlette raises itself (routing, body parsing), as error codes.
HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}


class ErrorResponse(JSONResponse):
    """An error body, ASCII-escaped: an echoed field name may hold any character a client
    sent (even a lone surrogate, which UTF-8 cannot encode)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode()


def error_response(error: LiveshopError, headers: Mapping[str, str] | None = None) -> ErrorResponse:
    return ErrorResponse(status_code=error.status, content={"error": error.to_dict()},
                         headers=headers)  # fmt: skip


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)[:200]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LiveshopError)
    async def _liveshop_error(_: Request, exc: LiveshopError) -> ErrorResponse:
        return error_response(exc)

    @app.exception_handler(Exception)
    async def _unexpected_error(_: Request, exc: Exception) -> ErrorResponse:
        """A dependency that did not answer is temporary (503); anything else is a bug (500)."""
        error: LiveshopError
        if isinstance(exc, TRANSIENT_ERRORS):
            error = Unavailable("a backing service did not answer, try again")
        else:
            log.error("unexpected error in the API", exc_info=exc)
            error = InternalError("internal error")
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> ErrorResponse:
        details = [{"field": _field(e["loc"]), "message": e["msg"]} for e in exc.errors()]
        return error_response(InvalidRequest("request failed validation", details=details))

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, exc: HTTPException) -> ErrorResponse:
        """Routing and body parsing: no such path or method, a body that cannot be parsed
        (not JSON, or nested too deep: a RecursionError in the parser)."""
        if isinstance(exc, BodyTooLarge):  # from inside the route's read of the body
            return error_response(exc.error, headers=exc.headers)
        error = ClientError(exc.detail if isinstance(exc.detail, str) else "bad request")
        error.code = HTTP_CODES.get(exc.status_code, "bad_request")
        error.status = exc.status_code
        if exc.status_code == 400:
            error.message = "the body could not be parsed as JSON"
        return error_response(error, headers=exc.headers)


# -- the body limit ------------------------------------------------------------------------------


class _Limits:
    #: ``Settings.max_body_bytes`` of this process (:func:`limit_bodies`); its default until
    #: the deployment starts.
    max_body_bytes = 256 * 1024


_limits = _Limits()


def limit_bodies(max_body_bytes: int) -> None:
    """Called by each HTTP deployment when it starts, with ``Settings.max_body_bytes``. (The
    apps are copied into the replicas with their middleware; this module is not, so the
    limit lives here.)"""
    _limits.max_body_bytes = max_body_bytes


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def _route_path(scope: Scope) -> str:
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


class BodyLimit:
    """Refuses a request body larger than ``Settings.max_body_bytes`` with 413 ``too_large``
    before anything reads or parses it (an HTTP deployment reads a body whole before the
    route authenticates): at once for a ``Content-Length`` above the limit, and as soon as a
    streamed (chunked) body grows past it. ``larger`` lets a few routes take more:
    ``{(method, path): bytes}``. The 413 closes the connection (the rest of the body is not
    read)."""

    def __init__(self, app: ASGIApp, larger: Mapping[tuple[str, str], int] | None = None) -> None:
        self.app = app
        self.larger = dict(larger or {})

    def limit(self, scope: Scope) -> int:
        route = (scope.get("method", ""), _route_path(scope))
        return max(_limits.max_body_bytes, self.larger.get(route, 0))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope)
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            response = error_response(_too_large(limit), headers={"Connection": "close"})
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(_too_large(limit))
            return message

        await self.app(scope, limited, send)


def _too_large(limit: int) -> TooLarge:
    return TooLarge(f"the request body is larger than {limit} bytes", details={"limit": limit})


class BodyTooLarge(HTTPException):
    """A streamed body grew past the limit while the route read it. An HTTPException:
    FastAPI passes those on from its read of the body (any other error there becomes a
    400), and the app's handler answers it with ``error``."""

    def __init__(self, error: TooLarge) -> None:
        super().__init__(error.status, error.message, {"Connection": "close"})
        self.error = error
