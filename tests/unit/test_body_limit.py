"""The body limit every HTTP app shares (serve/http_errors.BodyLimit): a body over
``Settings.max_body_bytes`` is 413 ``too_large`` with the error body before the route reads
it, whether its ``Content-Length`` says so or it arrives in pieces; a route given more takes
more. (Through Ray Serve's proxy, with real sockets: tests/e2e/test_limits.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from liveshop.serve import api
from liveshop.serve.http_errors import BodyLimit, install_error_handlers, limit_bodies
from liveshop.serve.schema import Route

LIMIT = 1024
JSON_TYPE = {"content-type": "application/json"}

probe = FastAPI()
probe.router.route_class = Route
install_error_handlers(probe)
probe.add_middleware(BodyLimit, larger={("POST", "/big"): 4 * LIMIT})
read: list[str] = []


@probe.post("/restock")
async def _restock(body: api.RestockIn) -> dict[str, Any]:
    read.append("restock")
    return body.model_dump()


@probe.post("/big")
async def _big(request: Request) -> dict[str, Any]:
    return {"bytes": len(await request.body())}


@pytest.fixture
def client() -> Iterator[TestClient]:
    limit_bodies(LIMIT)
    read.clear()
    try:
        yield TestClient(probe)
    finally:
        limit_bodies(256 * 1024)


def _too_large(response: Any, limit: int = LIMIT) -> None:
    assert response.status_code == 413, response.text
    assert response.json() == {
        "error": {
            "code": "too_large",
            "message": f"the request body is larger than {limit} bytes",
            "temporary": False,
            "details": {"limit": limit},
        }
    }
    assert response.headers["connection"] == "close"


def test_a_declared_length_over_the_limit_is_refused_unread(client: TestClient) -> None:
    padded = b'{"quantity": 1, "ref": "r"' + b" " * LIMIT + b"}"
    _too_large(client.post("/restock", content=padded, headers=JSON_TYPE))
    assert read == []


def test_a_streamed_body_is_refused_once_it_grows_past_the_limit(client: TestClient) -> None:
    def pieces() -> Iterator[bytes]:
        yield b'{"quantity": 1, "ref": "r"'
        for _ in range(8):
            yield b" " * 256
        yield b"}"

    response = client.post("/restock", content=pieces(), headers=JSON_TYPE)
    _too_large(response)
    assert read == []


def test_bodies_within_the_limit_and_larger_routes(client: TestClient) -> None:
    just_under = b'{"quantity": 1, "ref": "r"' + b" " * (LIMIT - 27) + b"}"
    assert len(just_under) == LIMIT
    response = client.post("/restock", content=just_under, headers=JSON_TYPE)
    assert response.status_code == 200 and read == ["restock"], response.text
    assert client.post("/big", content=b"x" * (3 * LIMIT)).json() == {"bytes": 3 * LIMIT}
    _too_large(client.post("/big", content=b"x" * (4 * LIMIT + 1)), 4 * LIMIT)
    _too_large(client.put("/big", content=b"x" * (LIMIT + 1)))  # the larger limit is POST's
