"""The HTTP contract every router shares: strict request bodies, bounded numbers, free-form
JSON held to the text rules, the error body, the statuses an operation declares, and the
OpenAPI docs served without a CDN.

Hostile input is normal input (docs/protocol.md, "Text" and "HTTP API"): every body model
derives from :class:`Body` (strict types: ``"quantity": "1"`` is refused, not coerced;
unknown fields are refused; floats are finite), every number has bounds that fit where it
goes (PostgreSQL ``bigint``/``int``, Python's datetime), every text field uses a type of
:mod:`liveshop.text`, and query integers and floats are plain decimal literals. A request
that breaks a rule is answered 422 ``invalid_request`` with the standard error body, never
a 500.
"""

# No `from __future__ import annotations`: FastAPI and pydantic read these at runtime.
import copyreg
import math
import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import FastAPI, Query
from fastapi.datastructures import DefaultPlaceholder, _Unset
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from liveshop.text import check_line, check_text, text_problem

#: Epoch seconds are before the year 3000: PostgreSQL's timestamps and Python's datetime hold
#: that with room to add days and months (a larger "since" used to answer 500).
MAX_EPOCH = 32_503_680_000.0
#: Ids PostgreSQL hands out (bigserial) and counters kept in ``bigint`` columns.
MAX_BIGINT = 2**63 - 1
#: Free-form JSON (an address, a cue's params, an operation's fields) nests at most this deep
#: and holds at most this many values; its strings obey the text rules.
MAX_JSON_DEPTH = 16
MAX_JSON_VALUES = 2000
MAX_JSON_KEY_CHARS = 200
MAX_JSON_STRING_CHARS = 10_000


class Body(BaseModel):
    """The base of every request body: strict types, no unknown fields, finite floats."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)


class Out(BaseModel):
    """The base of every response model: the fields named are always there with these
    types; an answer may carry more (``additionalProperties``), which clients ignore."""

    model_config = ConfigDict(extra="allow")


Epoch = Annotated[float, Field(ge=0, le=MAX_EPOCH, allow_inf_nan=False)]


# -- query parameters --------------------------------------------------------------------------

_DECIMAL_INT = re.compile(r"-?[0-9]{1,19}")
_DECIMAL_FLOAT = re.compile(r"-?[0-9]{1,20}(\.[0-9]{1,20})?([eE][-+]?[0-9]{1,3})?")


def _decimal_int(value: Any) -> Any:
    """A query integer is digits (no ``1_000``, ``1.0``, blanks or signs beyond ``-``)."""
    if isinstance(value, str):
        if not _DECIMAL_INT.fullmatch(value):
            raise ValueError("must be an integer written in decimal digits")
        return int(value)
    return value


def _decimal_float(value: Any) -> Any:
    """A query number is a decimal literal (no ``inf``, ``nan``, ``1_0`` or blanks)."""
    if isinstance(value, str):
        if not _DECIMAL_FLOAT.fullmatch(value):
            raise ValueError("must be a decimal number")
        number = float(value)
        if not math.isfinite(number):
            raise ValueError("must be a finite number")
        return number
    return value


#: Put after ``Query(ge=..., le=...)`` in an ``Annotated`` integer or float query parameter:
#: ``Annotated[int, Query(ge=1, le=500), DECIMAL_INT]``.
DECIMAL_INT = BeforeValidator(_decimal_int)
DECIMAL = BeforeValidator(_decimal_float)
#: Epoch seconds in a query (``since``, ``until``).
QueryEpoch = Annotated[
    float | None,
    Query(ge=0, le=MAX_EPOCH, allow_inf_nan=False, description="epoch seconds"),
    DECIMAL,
]


# -- free-form JSON ------------------------------------------------------------------------------


def json_problem(value: Any, *, depth: int = 0, budget: list[int] | None = None) -> str | None:
    """Why a free-form JSON value cannot be accepted, or None: too deep or too big, a string
    or key with NUL, a lone surrogate or a control character (tabs and newlines are allowed
    in strings), a non-finite float, or an integer outside PostgreSQL's ``bigint``."""
    budget = budget if budget is not None else [MAX_JSON_VALUES]
    budget[0] -= 1
    if budget[0] < 0:
        return f"more than {MAX_JSON_VALUES} values"
    if depth > MAX_JSON_DEPTH:
        return f"nested deeper than {MAX_JSON_DEPTH} levels"
    if isinstance(value, str):
        if len(value) > MAX_JSON_STRING_CHARS:
            return f"a string longer than {MAX_JSON_STRING_CHARS} characters"
        return text_problem(value, multiline=True)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return None if -MAX_BIGINT - 1 <= value <= MAX_BIGINT else "an integer out of range"
    if isinstance(value, float):
        return None if math.isfinite(value) else "a number that is not finite"
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return "a key that is not a string"
            if len(key) > MAX_JSON_KEY_CHARS:
                return f"a key longer than {MAX_JSON_KEY_CHARS} characters"
            problem = text_problem(key) or json_problem(item, depth=depth + 1, budget=budget)
            if problem is not None:
                return problem
        return None
    if isinstance(value, list):
        for item in value:
            problem = json_problem(item, depth=depth + 1, budget=budget)
            if problem is not None:
                return problem
        return None
    return f"a value of type {type(value).__name__}"


def _normalised(value: Any) -> Any:
    """Accepted JSON with its text normalised as the text rules do (NFC, marks cut, outer
    blanks stripped): keys as lines, strings as multi-line text."""
    if isinstance(value, str):
        return check_text(value)
    if isinstance(value, dict):
        return {check_line(k): _normalised(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalised(v) for v in value]
    return value


def _check_json(value: dict[str, Any]) -> dict[str, Any]:
    problem = json_problem(value)
    if problem is not None:
        raise ValueError(f"JSON with {problem}")
    normalised: dict[str, Any] = _normalised(value)
    return normalised


#: A JSON object whose shape another rule checks (an address, an operation's fields): held to
#: the text rules, normalised and bounded in depth and size here.
JsonObject = Annotated[dict[str, Any], AfterValidator(_check_json)]


# -- errors and statuses -----------------------------------------------------------------------


class ErrorDetail(BaseModel):
    code: str = Field(description="stable error code (docs/protocol.md, Errors)")
    message: str
    temporary: bool = Field(description="true: the same request may succeed later")
    details: Any = Field(default=None, description="more about the error; `invalid_request` "
                         "lists each field that failed: [{field, message}]")  # fmt: skip


class ErrorBody(BaseModel):
    """Every error of every HTTP endpoint."""

    error: ErrorDetail


#: What each status means in this API (the codes are docs/protocol.md's).
STATUS_TEXT: dict[int, str] = {
    400: "bad request: the body is not JSON, an unknown op (`unknown_op`), or a request the "
    "operation refuses (`bad_request` and its kinds)",
    401: "`unauthenticated`, `token_invalid` or `token_expired`: send a valid "
    "`Authorization: Bearer <token>`",
    402: "`insufficient_coins` or `payment_declined`",
    403: "`forbidden` (and its kinds): the token's roles do not allow this",
    404: "not found (`not_found` or a precise kind: `room_not_found`, `sku_not_found`, ...)",
    409: "conflict (`conflict` or a precise kind: `out_of_stock`, `invalid_transition`, ...)",
    413: "`too_large`: the body is larger than the operation takes (`details.limit` bytes)",
    422: "`invalid_request`: a field failed validation (`details` lists each)",
    429: "`rate_limited` or `slow_mode`: try again later (temporary)",
    503: "`unavailable`: a room actor, PostgreSQL or Redis did not answer; try again (temporary)",
}


def answers(*statuses: int, params: bool = True) -> dict[int | str, dict[str, Any]]:
    """The error statuses an operation may answer besides its success, each with the error
    body. 503 is added to all (a backing service may be away), 422 to all that take
    parameters or a body (``params``). 500 is a bug, never declared."""
    always = {422, 503} if params else {503}
    return {
        status: {"model": ErrorBody, "description": STATUS_TEXT[status]}
        for status in sorted({*statuses, *always})
    }


#: Shorthands for ``answers``: an operation with a bearer token (401); one that needs a role
#: (401, 403); one with a JSON body (400 for a body that is not JSON, 413 for one larger than
#: ``Settings.max_body_bytes``: http_errors.BodyLimit); one with another body (413).
TOKEN = (401,)
ROLE = (401, 403)
JSON = (400, 413)
BODY = (413,)


class Route(APIRoute):
    """Every route answers with exactly the fields its handler returned, validated against
    its response model (optional fields left out stay out, not ``null``)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **options: Any) -> None:
        options["response_model_exclude_unset"] = True
        super().__init__(path, endpoint, **options)


def _unset() -> Any:
    return _Unset


def _reduce_placeholder(value: DefaultPlaceholder) -> tuple[Any, ...]:
    if value is _Unset:
        return _unset, ()
    return DefaultPlaceholder, (value.value,)


# Ray Serve ships each app to its replicas pickled. FastAPI tells "not given" (an example, an
# alias, ...) by the identity of its ``_Unset`` placeholder, which pickling would copy: every
# parameter of the served document then showed ``"example": {}``. Unpickled, it is the
# replica's own ``_Unset`` again.
copyreg.pickle(DefaultPlaceholder, _reduce_placeholder)


# -- the docs ----------------------------------------------------------------------------------

#: Swagger UI's files, from the pinned npm package (scripts/build-web copies them here).
SWAGGER_DIR = "/app/static/vendor/swagger-ui"


def serve_docs(app: FastAPI, *, prefix: str = "") -> None:
    """``/docs``: Swagger UI on the app's ``openapi.json``, its script and style served by
    liveshop (the app must be made with ``docs_url=None, redoc_url=None``: FastAPI's own
    pages load them from a CDN, and show nothing without internet)."""

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=f"{prefix}{app.openapi_url}",
            title=f"{app.title} - API docs",
            swagger_js_url=f"{SWAGGER_DIR}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_DIR}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER_DIR}/favicon-32x32.png",
        )
