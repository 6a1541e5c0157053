"""The OpenAPI documents tell the truth (issue 16, item 6), checked by schemathesis against the
running API and media apps with a service token: every operation is called with generated
requests (valid ones, and invalid ones schemathesis makes by mutating them: NUL, huge
numbers, wrong types, missing or extra fields), and every answer must be

- not a 5xx (``not_a_server_error``),
- a status the operation documents (``status_code_conformance``),
- of the documented content type and schema (``content_type_conformance``,
  ``response_schema_conformance``: the typed response models and the error body).

Excluded, and why (each would destroy the shared test stack, not test the contract):

- ``POST /channels``: every channel starts a channel actor, a process that runs 24/7; a
  fuzzer inventing channel ids would start dozens of them on a 2-core machine.
- ``GET /users/{user_id}/cart``: a service may read any user's cart, and each new user id
  starts a cart actor (one process per shopper); generated user ids would start hundreds.
  (The other cart routes need the user's own token: they answer 403 to the service.)

Nothing here streams (HLS objects are files; WebSocket is not in these documents).

The documents are built from the apps when the tests are collected (schemathesis' pytest
integration wants them then; its fixture loader does not work with pytest 9), and
``test_the_served_documents_are_these`` checks that the running apps serve exactly them.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from liveshop.serve import api as api_app
from liveshop.serve import media_api as media_app
from tests.e2e.conftest import Running

pytestmark = pytest.mark.e2e

#: Generated requests per operation in the fuzzing phase (the examples and coverage phases
#: add their own): enough to reach each field's bounds, small enough for a few minutes.
MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


# WHIP and WHEP take an SDP offer: text on the wire.
schemathesis.serializer.alias("application/sdp", "text/plain")


def _schema(app: Any) -> Any:
    """The document the app serves, loaded when the tests are collected (the stack starts
    later, in a fixture); ``test_the_served_documents_are_these`` checks that the running
    API serves exactly this document."""
    schema = schemathesis.openapi.from_dict(app.openapi())
    schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True)
    return schema


api = (
    _schema(api_app.app)
    .exclude(method="POST", path="/channels")
    .exclude(method="GET", path="/users/{user_id}/cart")
)
media = _schema(media_app.app)


@pytest.fixture(scope="module")
def bearer(running: Running) -> dict[str, str]:
    return {"Authorization": f"Bearer {running.token('svc', {'*': ['service']}, ttl=3600)}"}


@api.parametrize()
def test_api_answers_as_documented(case: Any, running: Running, bearer: dict[str, str]) -> None:
    case.call_and_validate(
        base_url=running.settings.http_url, headers=bearer, checks=CHECKS, timeout=60
    )


@media.parametrize()
def test_media_answers_as_documented(case: Any, running: Running, bearer: dict[str, str]) -> None:
    case.call_and_validate(
        base_url=f"{running.settings.http_url}/media", headers=bearer, checks=CHECKS, timeout=60
    )


async def test_the_served_documents_are_these(running: Running) -> None:
    """What the running apps serve at /openapi.json is the document tested above."""
    import httpx

    async with httpx.AsyncClient(base_url=running.settings.http_url, timeout=30) as http:
        for path, app in (("/openapi.json", api_app.app), ("/media/openapi.json", media_app.app)):
            served = (await http.get(path)).json()
            expected = app.openapi()
            for part in ("paths", "components"):
                mine = json.dumps(expected[part], sort_keys=True, indent=1).splitlines()
                theirs = json.dumps(served[part], sort_keys=True, indent=1).splitlines()
                diff = list(difflib.unified_diff(mine, theirs, "tested", "served", n=8))
                assert not diff, f"{path} {part}:\n" + "\n".join(diff[:80])


async def test_the_docs_load_without_internet(running: Running) -> None:
    """/docs and /media/docs use Swagger UI from liveshop's own static files."""
    import httpx

    async with httpx.AsyncClient(base_url=running.settings.http_url, timeout=30) as http:
        for docs, spec in (("/docs", "/openapi.json"), ("/media/docs", "/media/openapi.json")):
            page = await http.get(docs)
            assert page.status_code == 200, docs
            assert spec in page.text and "//cdn" not in page.text and "https://" not in page.text
            for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
                path = f"/app/static/vendor/swagger-ui/{asset}"
                assert path in page.text
                assert (await http.get(path)).status_code == 200, path
            assert (await http.get(spec)).json()["components"]["securitySchemes"]["bearer"]


async def test_hostile_input_is_refused_with_4xx_never_5xx(running: Running) -> None:
    """The inputs that answered 500 (issue 16, item 4), through the real API: each is a 4xx
    with the error body, and the API keeps serving."""
    import httpx

    deep = "[" * 20_000 + "]" * 20_000
    as_json = {"content-type": "application/json"}
    nested: Any = []
    for _ in range(40):
        nested = [nested]
    # A lone surrogate, escaped as JSON allows (no client can encode it as UTF-8).
    product = b'{"id": "p", "title": "\\ud800", "price_minor": 1, "currency": "EUR"}'
    async with (
        running.http() as http,
        httpx.AsyncClient(base_url=running.settings.http_url, timeout=30) as anonymous,
    ):
        cases: list[tuple[Any, int, str]] = [
            (anonymous.get("/rooms?after=%00"), 422, "invalid_request"),
            (anonymous.get("/products?after=%00"), 422, "invalid_request"),
            (anonymous.get("/skus?after=%00"), 422, "invalid_request"),
            (http.get("/orders?since=1.79e308"), 422, "invalid_request"),
            (http.get("/orders?until=inf"), 422, "invalid_request"),
            (http.get(f"/events?after={2**74}"), 422, "invalid_request"),
            (http.get(f"/channels/c/audit?after={2**74}"), 422, "invalid_request"),
            (http.get("/grid?at=1e300"), 422, "invalid_request"),
            (http.get("/rooms?limit=1_0"), 422, "invalid_request"),
            (http.post("/rooms", json={"title": "a\x00b"}), 422, "invalid_request"),
            (http.post("/products", content=product, headers=as_json), 422, "invalid_request"),
            (
                http.post("/wallets/u1/credit", json={"coins": 1, "ref": "r\x00"}),
                422,
                "invalid_request",
            ),
            (
                http.post("/skus/s/restock", json={"quantity": "1", "ref": "r"}),
                422,
                "invalid_request",
            ),
            (http.post("/skus/s/restock", content=deep, headers=as_json), 400, "bad_request"),
            (
                http.post("/rooms/r/actions/chat", content=deep, headers=as_json),
                400,
                "bad_request",
            ),
            (http.post("/rooms/r/actions/chat", json={"text": nested}), 422, "invalid_request"),
            (anonymous.post("/auth/guest", json={"name": "Eve\x00"}), 422, "invalid_request"),
            (anonymous.get("/nowhere"), 404, "not_found"),
        ]
        for request, status, code in cases:
            response = await request
            assert response.status_code == status, (response.request.url, response.text)
            assert response.json()["error"]["code"] == code, response.text
        assert (await anonymous.get("/rooms")).status_code == 200
        health = await anonymous.get("/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"
