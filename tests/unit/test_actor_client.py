"""The batching client (liveshop/mesh/client.py ActorClient) without Ray: hosts are fakes
whose calls are coroutines, the directory a fixed placement. What is checked is what only
end-to-end tests saw before: quick calls to one host ride one call whatever their method,
each caller gets its own item's answer or error, a moved entity makes the client read the
directory again, a dead host is forgotten, and ids are looked up once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import pytest
from ray.exceptions import ActorDiedError

from liveshop.config import Settings
from liveshop.errors import NotFound, OutOfStock, Unavailable
from liveshop.mesh.client import ActorClient
from liveshop.mesh.host import Moved
from liveshop.mesh.placement import Placement

HOSTS = ("host:0", "host:1")


@dataclass
class Remote:
    """``actor.method`` of a Ray actor handle: ``.remote(...)`` gives an awaitable."""

    answer: Any

    def remote(self, *args: Any) -> Awaitable[Any]:
        return asyncio.ensure_future(self.answer(*args))


@dataclass
class FakeHost:
    """An entity host: answers ``call_many`` item by item with ``answer(key, method,
    args)``, and records each Ray call it got."""

    name: str
    batches: list[list[Any]] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)
    dead: bool = False

    def answer(self, key: str, method: str, args: tuple[Any, ...]) -> Any:
        if key == "moved":
            return Moved("elsewhere now")
        if method == "add" and args == (0,):
            return OutOfStock("none left")
        return {"key": key, "method": method, "host": self.name}

    @property
    def call_many(self) -> Remote:
        async def many(kind: str, items: list[Any]) -> list[Any]:
            if self.dead:
                raise ActorDiedError()
            self.batches.append(items)
            await asyncio.sleep(0.001)
            return [self.answer(key, method, args) for key, method, args, _ in items]

        return Remote(many)

    @property
    def call(self) -> Remote:
        async def one(kind: str, key: str, method: str, args: Any, kwargs: Any) -> Any:
            self.calls.append((key, method))
            return self.answer(key, method, args)

        return Remote(one)


class Client(ActorClient):
    kind = "cart"
    entity = "cart"
    host_batched = frozenset({"view", "add"})


@pytest.fixture
def world() -> tuple[Client, dict[str, FakeHost], list[str], list[int]]:
    """A client over two fake hosts; the ids its ``exists`` was asked about; how often the
    directory was told to expire."""
    asked: list[str] = []
    expired: list[int] = []

    async def exists(key: str) -> bool:
        asked.append(key)
        await asyncio.sleep(0.001)
        return not key.startswith("ghost")

    client = Client(Settings(), object(), exists=exists, missing=lambda k: NotFound(k))  # type: ignore[arg-type]
    hosts = {name: FakeHost(name) for name in HOSTS}
    client.hosts._hosts = dict(hosts)  # looked up already: no GCS

    async def placement() -> Placement:
        return Placement(HOSTS)

    client.hosts.directory.placement = placement  # type: ignore[method-assign]
    client.hosts.directory.expire = lambda: expired.append(1)  # type: ignore[method-assign]
    return client, hosts, asked, expired


async def test_quick_calls_to_one_host_ride_one_call_whatever_their_method(
    world: tuple[Client, dict[str, FakeHost], list[str], list[int]],
) -> None:
    client, hosts, _, _ = world
    users = [f"u{i}" for i in range(40)]
    answers = await asyncio.gather(
        *(client.call(u, "view" if i % 2 else "add", 1) for i, u in enumerate(users))
    )
    placement = Placement(HOSTS)
    for i, (user, answer) in enumerate(zip(users, answers, strict=True)):
        assert answer == {
            "key": user, "method": "view" if i % 2 else "add",
            "host": placement.host("cart", user),
        }  # fmt: skip
    for host in hosts.values():
        assert len(host.batches) == 1 and not host.calls  # one Ray call for all its carts
        assert {m for _, m, _, _ in host.batches[0]} == {"view", "add"}


async def test_an_error_fails_its_own_item_and_a_move_rereads_the_directory(
    world: tuple[Client, dict[str, FakeHost], list[str], list[int]],
) -> None:
    client, _, _, expired = world
    results = await asyncio.gather(
        client.call("ann", "add", 0),  # refused: out of stock
        client.call("moved", "view"),  # the directory moved it
        client.call("bob", "add", 1),
        return_exceptions=True,
    )
    assert isinstance(results[0], OutOfStock)
    assert isinstance(results[1], Moved) and isinstance(results[1], Unavailable)
    assert results[2] == {
        "key": "bob",
        "method": "add",
        "host": Placement(HOSTS).host("cart", "bob"),
    }
    assert expired  # read again before the next call


async def test_a_dead_host_is_forgotten_and_its_callers_hear_unavailable(
    world: tuple[Client, dict[str, FakeHost], list[str], list[int]],
) -> None:
    client, hosts, _, _ = world
    placement = Placement(HOSTS)
    user = next(f"u{i}" for i in range(100) if placement.host("cart", f"u{i}") == "host:1")
    hosts["host:1"].dead = True
    with pytest.raises(Unavailable) as refused:
        await client.call(user, "view")
    assert not isinstance(refused.value, Moved)
    assert "host:1" not in client.hosts._hosts and "host:0" in client.hosts._hosts


async def test_other_methods_go_alone_and_ids_are_looked_up_once(
    world: tuple[Client, dict[str, FakeHost], list[str], list[int]],
) -> None:
    client, hosts, asked, _ = world
    answers = await asyncio.gather(*(client.call("cy", "checkout") for _ in range(5)))
    assert all(a["method"] == "checkout" for a in answers)
    assert sum(len(h.calls) for h in hosts.values()) == 5  # one Ray call each
    assert not any(h.batches for h in hosts.values())
    await client.call("cy", "view")
    assert asked == ["cy"]  # five concurrent first uses and a later one: one lookup
    with pytest.raises(NotFound):
        await client.call("ghost-1", "view")
    with pytest.raises(NotFound):
        await client.call("ghost-1", "view")
    assert asked == ["cy", "ghost-1", "ghost-1"]  # a refusal is not remembered as existing
    await client.close()
