"""The unit tier's guard itself: Ray and sockets are refused here."""

from __future__ import annotations

import socket

import pytest

from tests.unit.conftest import NetworkUsedInUnitTest


def test_opening_a_connection_fails() -> None:
    with pytest.raises(NetworkUsedInUnitTest):
        socket.create_connection(("127.0.0.1", 5432))
    with socket.socket() as sock, pytest.raises(NetworkUsedInUnitTest):
        sock.connect(("127.0.0.1", 6379))


def test_binding_a_port_fails() -> None:
    with socket.socket() as sock, pytest.raises(NetworkUsedInUnitTest):
        sock.bind(("127.0.0.1", 0))


def test_starting_ray_fails() -> None:
    import ray

    with pytest.raises(NetworkUsedInUnitTest):
        ray.init()
