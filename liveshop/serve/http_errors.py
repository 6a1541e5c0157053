"""JSON error bodies for every HTTP app: ``{"error": {"code", "message", "temporary"}}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from liveshop.errors import InternalError, InvalidRequest, LiveshopError, Unavailable
from liveshop.storage.pool import TRANSIENT_DB_ERRORS

log = logging.getLogger(__name__)

TRANSIENT_ERRORS = (*TRANSIENT_DB_ERRORS, RedisError)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LiveshopError)
    async def _liveshop_error(_: Request, exc: LiveshopError) -> JSONResponse:
        return JSONResponse(status_code=exc.status, content={"error": exc.to_dict()})

    @app.exception_handler(Exception)
    async def _unexpected_error(_: Request, exc: Exception) -> JSONResponse:
        """A dependency that did not answer is temporary (503); anything else is a bug (500)."""
        error: LiveshopError
        if isinstance(exc, TRANSIENT_ERRORS):
            error = Unavailable("a backing service did not answer, try again")
        else:
            log.error("unexpected error in the API", exc_info=exc)
            error = InternalError("internal error")
        return JSONResponse(status_code=error.status, content={"error": error.to_dict()})

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
        ]
        error = InvalidRequest("request failed validation", details=details)
        return JSONResponse(status_code=422, content={"error": error.to_dict()})
