"""The HTTP edge refuses hostile input cleanly (issue 16, items 1, 4 and 6), without Ray or a
network: every request body model of every router, the query types, the error handlers and
the OpenAPI document.

Properties: any value in any field of any body (arbitrary Unicode with NUL, lone surrogates,
RTL overrides and zalgo, huge or non-finite numbers, strings for numbers, deep nesting) is
either refused with a ``ValidationError`` (a 422 ``invalid_request`` over HTTP) or accepted
as something PostgreSQL can store: no control character, NUL or surrogate in any string,
every integer in ``bigint``, every float finite. Over HTTP, no body or query string gets
anything but a 2xx or a 4xx with the standard error body.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from typing import Annotated, Any

import pytest
from fastapi import Body as JsonBody
from fastapi import FastAPI, Query
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from liveshop.config import Settings
from liveshop.serve import api, media_api, programming_api, web
from liveshop.serve.http_errors import install_error_handlers
from liveshop.serve.schema import (
    DECIMAL,
    DECIMAL_INT,
    MAX_BIGINT,
    MAX_EPOCH,
    MAX_JSON_DEPTH,
    Body,
    JsonObject,
    QueryEpoch,
    Route,
    json_problem,
)
from liveshop.text import Key, text_problem

pytestmark = pytest.mark.unit

MODELS: list[type[Body]] = sorted(
    {
        value
        for module in (api, programming_api, web, media_api)
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, Body) and value is not Body
    },
    key=lambda model: f"{model.__module__}.{model.__name__}",
)

# -- valid examples, made from each model's JSON schema -----------------------------------------

#: Patterns of the models, with a string each accepts.
PATTERN_EXAMPLES = {
    "^[A-Za-z0-9_.:-]+$": "ok-1",
    "^[A-Za-z0-9_.-]{1,48}$": "ok-1",
    "^[A-Za-z0-9_+/-]+$": "Europe/Paris",
    "^[A-Z]{3}$": "EUR",
    r"^([A-Z]{2}|\*)$": "FR",
    r"^[^@\s]+@[^@\s]+$": "a@example.com",
    "^[0-9][0-9 -]*[0-9]$": "4242 4242 4242 4242",
    r"^([01]\d|2[0-3]):[0-5]\d$": "20:00",
    r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$": "24:00",
}


def _example(schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    if "$ref" in schema:
        return _example(defs[schema["$ref"].split("/")[-1]], defs)
    if "anyOf" in schema:
        choices = [s for s in schema["anyOf"] if s.get("type") != "null"]
        return _example(choices[0], defs)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if kind == "string":
        if schema.get("format") == "date":
            return "2030-01-07"
        if "pattern" in schema:
            return PATTERN_EXAMPLES[schema["pattern"]]
        return "x" * max(1, schema.get("minLength", 1), 8 if schema.get("minLength") else 1)
    if kind in ("integer", "number"):
        low = schema.get("minimum", 0)
        if "exclusiveMinimum" in schema:
            low = max(low, schema["exclusiveMinimum"] + 1)
        return low if kind == "integer" else float(low)
    if kind == "boolean":
        return False
    if kind == "array":
        return [_example(schema["items"], defs) for _ in range(schema.get("minItems", 0))]
    if kind == "object":
        if "properties" not in schema:
            return {}
        return {
            name: _example(sub, defs)
            for name, sub in schema["properties"].items()
            if name in schema.get("required", [])
        }
    raise AssertionError(f"no example for {schema}")


def example(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    value = _example(schema, schema.get("$defs", {}))
    assert isinstance(value, dict)
    return value


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_each_body_model_accepts_its_example(model: type[Body]) -> None:
    model.model_validate(example(model))


# -- hostile values ------------------------------------------------------------------------------

SPECIAL_TEXT = [
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfff",
    "\u202eevil\u202c",
    "\u200b\u200bname\u200d",
    "e" + "\u0301" * 40,
    "Z\u0351\u0352\u0357\u0358\u0359\u035a",
    "\u0627\u0644\u0639\u0631\u0628\u064a\u0629",
    "\x1b[31mred",
    "tab\there",
    "line\nbreak\r\n",
    "\u2028",
    "\x7f\x85\x9f",
    "1",
    "1.5",
    "true",
    "null",
    "",
    " ",
    "A" * 70_000,
    "\ufeff",
    "e\u0301",
]
#: Any character, surrogates included.
ANY_CHAR = st.characters(exclude_categories=())
hostile_text = st.one_of(st.sampled_from(SPECIAL_TEXT), st.text(ANY_CHAR, max_size=80))
hostile_scalar = st.one_of(
    hostile_text,
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([2**63, -(2**63) - 1, 2**74, 10**12 + 1, -1, 0]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1.79e308, -1.79e308, float("inf"), float("nan"), 1e-320]),
    st.booleans(),
    st.none(),
)
hostile_json = st.recursive(
    hostile_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=12,
)


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


hostile_value = st.one_of(
    hostile_json,
    st.integers(min_value=0, max_value=60).map(nested),
)


def assert_storable(value: Any, where: str = "", *, normalised: bool = True) -> None:
    """What a model accepted can be stored and shown: clean text (NFC), bounded numbers."""
    if isinstance(value, str):
        assert text_problem(value, multiline=True) is None, (where, value)
        assert not normalised or unicodedata.is_normalized("NFC", value), (where, value)
    elif isinstance(value, bool) or value is None:
        pass
    elif isinstance(value, int):
        assert -MAX_BIGINT - 1 <= value <= MAX_BIGINT, (where, value)
    elif isinstance(value, float):
        assert math.isfinite(value), (where, value)
    elif isinstance(value, dict):
        for key, item in value.items():
            assert_storable(key, f"{where}.<key>", normalised=normalised)
            assert_storable(item, f"{where}.{key}", normalised=normalised)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            assert_storable(item, where, normalised=normalised)


def check(model: type[Body], data: Any) -> None:
    try:
        accepted = model.model_validate(data)
    except ValidationError:
        return
    assert_storable(accepted.model_dump(mode="json"), model.__name__)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=st.data())
def test_any_value_in_any_field_is_refused_or_stored_clean(data: st.DataObject) -> None:
    model = data.draw(st.sampled_from(MODELS), label="model")
    body = example(model)
    field = data.draw(st.sampled_from(sorted(model.model_fields)), label="field")
    body[field] = data.draw(hostile_value, label="value")
    check(model, body)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(model=st.sampled_from(MODELS), body=hostile_json)
def test_arbitrary_bodies_are_refused_or_stored_clean(model: type[Body], body: Any) -> None:
    check(model, body)


@settings(max_examples=200, deadline=None)
@given(text=st.text(ANY_CHAR, max_size=40))
def test_accepted_names_are_visible_and_normalised(text: str) -> None:
    """Guest names (POST /auth/guest): no controls, no invisible characters, NFC."""
    try:
        guest = web.GuestIn.model_validate({"name": text})
    except ValidationError:
        assert text_problem(text) is not None or len(text) > 40
        return
    assert_storable(guest.name)
    assert guest.name == guest.name.strip()
    assert not re.search("[\u200b\u200c\u200e\u200f\u202a-\u202e\u2060-\u206f\ufeff]", guest.name)


SHOW_AT_1E308 = {"channel_id": "c", "title": "t", "starts_at": 1.79e308, "ends_at": 1.0}
TEMPLATE_IN_9999 = {"title": "t", "weekdays": [0], "at": "20:00", "duration": 3600,
                    "first_day": "9999-12-31"}  # fmt: skip


@pytest.mark.parametrize(
    ("model", "body"),
    [
        (api.RestockIn, {"quantity": "1", "ref": "r"}),
        (api.CartItemIn, {"sku": "s", "quantity": "1"}),
        (api.CartItemIn, {"sku": "s", "quantity": 1.0}),
        (api.CartItemIn, {"sku": "s", "quantity": True}),
        (api.ProductIn, {"id": "p", "title": "T", "price_minor": 1.5, "currency": "EUR"}),
        (api.ProductIn, {"id": "p", "title": "T\x00", "price_minor": 1, "currency": "EUR"}),
        (api.ProductIn, {"id": "p", "title": "T", "price_minor": 2**74, "currency": "EUR"}),
        (api.CreditIn, {"coins": 1, "ref": "a\x00"}),
        (api.CheckoutIn, {"address": {"city": "P\x00"}, "key": "k"}),
        (api.CheckoutIn, {"address": nested(40), "key": "k"}),
        (api.CheckoutIn, {"address": {"n": float("nan")}, "key": "k"}),
        (api.CheckoutIn, {"address": {"n": 2**64}, "key": "k"}),
        (api.CheckoutIn, {"address": {}, "key": "k", "pay": "true"}),
        (api.RoomCreate, {"title": "ok", "extra": 1}),
        (api.TokenIn, {"user_id": "u", "ttl_seconds": "60"}),
        (programming_api.ShowIn, SHOW_AT_1E308),
        (programming_api.TemplateIn, TEMPLATE_IN_9999),
        (programming_api.CueIn, {"at": float("inf"), "action": "pin"}),
        (web.GuestIn, {"name": "Ann\x00"}),
        (web.GuestIn, {"name": "\ud800"}),
    ],
)
def test_refused(model: type[Body], body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(body)


def test_accepted_text_is_normalised() -> None:
    product = api.ProductIn.model_validate(
        {"id": "p", "title": "  Cafe\u0301  ", "price_minor": 1, "currency": "EUR"}
    )
    assert product.title == "Caf\u00e9"
    guest = web.GuestIn.model_validate({"name": "Gr\u200bace\u202e"})
    assert guest.name == "Grace"
    message = api.MessageIn.model_validate({"text": "two\r\nlines"})
    assert message.text == "two\nlines"


@settings(max_examples=300, deadline=None)
@given(value=hostile_json)
def test_json_problem_refuses_what_postgres_cannot_store(value: Any) -> None:
    if json_problem(value) is None:
        assert_storable(value, normalised=False)
        json.dumps(value, allow_nan=False).encode()


def test_json_depth_bound() -> None:
    assert json_problem(nested(MAX_JSON_DEPTH)) is None
    assert json_problem(nested(MAX_JSON_DEPTH + 1)) is not None


# -- over HTTP: the error handlers, JSON parsing and query types --------------------------------

probe = FastAPI()
probe.router.route_class = Route
install_error_handlers(probe)


@probe.post("/restock", status_code=201)
async def _restock(body: api.RestockIn) -> dict[str, Any]:
    return body.model_dump()


@probe.post("/fields")
async def _fields(body: Annotated[JsonObject, JsonBody()]) -> dict[str, Any]:
    return {"keys": len(body)}


@probe.get("/page")
async def _page(
    after: Annotated[Key | None, Query(min_length=1, max_length=64)] = None,
    since: QueryEpoch = None,
    at: Annotated[float | None, Query(gt=0, le=MAX_EPOCH, allow_inf_nan=False), DECIMAL] = None,
    event: Annotated[int | None, Query(ge=0, le=MAX_BIGINT), DECIMAL_INT] = None,
    limit: Annotated[int, Query(ge=1, le=500), DECIMAL_INT] = 100,
) -> dict[str, Any]:
    return {"after": after, "since": since, "at": at, "event": event, "limit": limit}


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(probe)


JSON_TYPE = {"content-type": "application/json"}


def assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_deep_nesting_is_a_400_not_a_500(client: TestClient) -> None:
    deep = "[" * 20_000 + "]" * 20_000
    assert_error(client.post("/restock", content=deep, headers=JSON_TYPE), 400, "bad_request")
    assert_error(client.post("/fields", content=deep, headers=JSON_TYPE), 400, "bad_request")
    medium = json.dumps({"a": nested(500)})
    assert_error(client.post("/fields", content=medium, headers=JSON_TYPE), 422, "invalid_request")


@pytest.mark.parametrize(
    "raw",
    [
        b'{"quantity": "1", "ref": "r"}',
        b'{"quantity": NaN, "ref": "r"}',
        b'{"quantity": 1e999, "ref": "r"}',
        b'{"quantity": 1, "ref": "a\\u0000b"}',
        b'{"quantity": 1, "ref": "a\\ud800b"}',
        b'{"quantity": 1, "ref": "r", "\\ud800": 1}',
        b'{"quantity": 1, "ref": "r", "x\\u0000": 1}',
        b'{"quantity": 18446744073709551616, "ref": "r"}',
        b"not json",
        b"\xff\xfe\x00",
        b'{"quantity": ' + b"9" * 5000 + b', "ref": "r"}',
    ],
)
def test_bad_bodies_get_a_4xx_with_the_error_body(client: TestClient, raw: bytes) -> None:
    response = client.post("/restock", content=raw, headers=JSON_TYPE)
    assert response.status_code in (400, 422), response.text
    assert response.json()["error"]["code"] in ("bad_request", "invalid_request")


@pytest.mark.parametrize(
    "query",
    [
        "after=%00",
        "after=%C2%85",
        "after=a%1Fb",
        "since=1.79e308",
        "since=inf",
        "since=nan",
        "since=-1",
        "at=0",
        "event=18889465931478580854784",  # 2^74
        "event=-1",
        "limit=1_0",
        "limit=1.0",
        "limit=%201",
        "limit=0x10",
    ],
)
def test_bad_queries_are_422(client: TestClient, query: str) -> None:
    assert_error(client.get(f"/page?{query}"), 422, "invalid_request")


def test_good_queries(client: TestClient) -> None:
    page = client.get("/page?after=room-1&since=1700000000.5&at=1e9&event=9223372036854775807")
    assert page.status_code == 200, page.text
    assert page.json() == {"after": "room-1", "since": 1700000000.5, "at": 1e9,
                           "event": MAX_BIGINT, "limit": 100}  # fmt: skip


def test_unknown_paths_and_methods_get_the_error_body(client: TestClient) -> None:
    assert_error(client.get("/nothing"), 404, "not_found")
    not_allowed = client.get("/restock")
    assert_error(not_allowed, 405, "method_not_allowed")
    assert not_allowed.headers["allow"] == "POST"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.one_of(st.binary(max_size=200), hostile_json.map(lambda v: json.dumps(v).encode())))
def test_any_body_is_answered_2xx_or_4xx(client: TestClient, body: bytes) -> None:
    for path in ("/restock", "/fields"):
        response = client.post(path, content=body, headers=JSON_TYPE)
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            assert set(response.json()["error"]) >= {"code", "message", "temporary"}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(["after", "since", "at", "event", "limit"]),
    value=st.one_of(hostile_text, st.integers().map(str), st.floats().map(repr)).filter(
        lambda v: len(v) < 1000  # a longer URL is refused by the client already
    ),
)
def test_any_query_is_answered_2xx_or_422(client: TestClient, name: str, value: str) -> None:
    response = client.get("/page", params={name: value.encode("utf-8", "surrogatepass")})
    assert response.status_code in (200, 422), response.text


# -- the guest endpoint, the real route ------------------------------------------------------------


@pytest.fixture
def guest_client(tmp_path: Any) -> TestClient:
    app = FastAPI()
    app.router.route_class = Route
    install_error_handlers(app)
    app.include_router(web.router)
    web.use(Settings(data_dir=tmp_path).with_keys())
    return TestClient(app)


def test_guest_names_follow_the_text_rules(guest_client: TestClient) -> None:
    made = guest_client.post("/auth/guest", json={"name": "\u200bGr\u202eace\u200b"})
    assert made.status_code == 201, made.text
    assert made.json()["user"]["name"] == "Grace"
    for bad in ("Ann\x00", "a\x1b[2J", "x" * 41):
        assert_error(guest_client.post("/auth/guest", json={"name": bad}), 422, "invalid_request")
    assert_error(guest_client.post("/auth/guest", json={"name": 7}), 422, "invalid_request")


# -- the OpenAPI document -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def documents() -> list[dict[str, Any]]:
    return [api.app.openapi(), media_api.app.openapi()]


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m.upper(), p, op) for p, ops in document["paths"].items() for m, op in ops.items()]


def test_every_operation_declares_typed_answers_and_its_errors(
    documents: list[dict[str, Any]],
) -> None:
    for document in documents:
        assert document["components"]["securitySchemes"]["bearer"] == {
            "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
            "description": document["components"]["securitySchemes"]["bearer"]["description"],
        }  # fmt: skip
        for method, path, op in operations(document):
            where = f"{method} {path}"
            statuses = set(op["responses"])
            success = [s for s in statuses if s.startswith("2")]
            assert len(success) == 1, where
            assert "503" in statuses, where
            if op.get("parameters") or op.get("requestBody"):
                assert "422" in statuses, where
            # A body may be too large (http_errors.BodyLimit); nothing else answers 413.
            assert ("413" in statuses) == ("requestBody" in op), where
            if "{" in path:
                assert "404" in statuses, where
            for status, answer in op["responses"].items():
                content = answer.get("content", {})
                if status.startswith("2"):
                    schemas = [c.get("schema") for c in content.values()]
                    if "application/json" in content:
                        assert schemas[0] not in ({}, None), f"{where}: untyped answer"
                elif not (path == "/healthz" and status == "503"):
                    ref = content["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorBody"), f"{where} {status}"
            takes_token = any(
                p["name"].lower() == "authorization" for p in op.get("parameters", [])
            )
            assert not takes_token, f"{where}: the token is a security scheme, not a header"
            if op.get("security"):
                assert "401" in statuses, where


def test_docs_are_served_without_a_cdn() -> None:
    for app in (api.app, media_api.app):
        assert app.docs_url is None and app.redoc_url is None
        docs = [r for r in app.routes if getattr(r, "path", None) == "/docs"]
        assert len(docs) == 1
    client = TestClient(api.app)
    page = client.get("/docs")
    assert page.status_code == 200
    assert "/app/static/vendor/swagger-ui/swagger-ui-bundle.js" in page.text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.text)


def test_the_document_survives_pickling() -> None:
    """Ray Serve ships the apps to their replicas pickled: the served document is the same
    (FastAPI's "not given" placeholder stays itself; it used to put ``"example": {}`` on
    every parameter)."""
    from ray import cloudpickle

    for app in (api.app, media_api.app):
        document = json.dumps(app.openapi(), sort_keys=True)
        shipped = cloudpickle.loads(cloudpickle.dumps(app))
        shipped.openapi_schema = None
        assert json.dumps(shipped.openapi(), sort_keys=True) == document
