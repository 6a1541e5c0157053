"""JSON error bodies for every HTTP app: ``{"error": {"code", "message", "temporary"}}``.

Every failure a client can cause is answered with this body and a 4xx status: a route's own
errors (:class:`LiveshopError`), a body or parameter that fails validation (422
``invalid_request``), a body that is not JSON at all or nests too deep to parse (400), an
unknown path (404) or method (405). Only a bug answers 500.
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

from liveshop.errors import ClientError, InternalError, InvalidRequest, LiveshopError, Unavailable
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
        error = ClientError(exc.detail if isinstance(exc.detail, str) else "bad request")
        error.code = HTTP_CODES.get(exc.status_code, "bad_request")
        error.status = exc.status_code
        if exc.status_code == 400:
            error.message = "the body could not be parsed as JSON"
        return error_response(error, headers=exc.headers)
