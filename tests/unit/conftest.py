"""Unit tier: pure logic. Any attempt to start Ray or open a socket fails the test."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest


class NetworkUsedInUnitTest(RuntimeError):
    pass


def _refuse(*_: Any, **__: Any) -> Any:
    raise NetworkUsedInUnitTest("unit tests must not start Ray or touch the network")


@pytest.fixture(autouse=True)
def _no_ray_no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(socket.socket, "connect", _refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", _refuse)
    monkeypatch.setattr(socket.socket, "bind", _refuse)
    monkeypatch.setattr(socket, "create_connection", _refuse)
    monkeypatch.setattr(socket, "getaddrinfo", _refuse)
    try:
        import ray
    except ImportError:  # pragma: no cover
        pass
    else:
        monkeypatch.setattr(ray, "init", _refuse)
    yield
