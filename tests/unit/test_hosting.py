"""Entity hosting without Ray: placement, activation, one writer, passivation, fencing."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liveshop.errors import InvalidRequest, NotFound, Unavailable
from liveshop.mesh.host import Host, Moved
from liveshop.mesh.placement import Placement, rendezvous, slot_name
from liveshop.storage.owners import Fence, Fenced

keys = st.text(min_size=1, max_size=20)


@given(st.lists(keys, min_size=1, max_size=200, unique=True), st.integers(1, 12))
def test_placement_is_stable_and_spreads(entities: list[str], n: int) -> None:
    hosts = [slot_name(i) for i in range(n)]
    first = {e: rendezvous(e, hosts) for e in entities}
    # The same answer whatever order the directory lists its hosts in.
    assert first == {e: rendezvous(e, list(reversed(hosts))) for e in entities}
    assert set(first.values()) <= set(hosts)


@settings(max_examples=50)
@given(st.lists(keys, min_size=50, max_size=300, unique=True), st.integers(1, 10))
def test_a_host_joining_or_leaving_moves_only_its_own_entities(entities: list[str], n: int) -> None:
    hosts = [slot_name(i) for i in range(n)]
    before = {e: rendezvous(e, hosts) for e in entities}
    grown = [*hosts, slot_name(n)]
    after = {e: rendezvous(e, grown) for e in entities}
    # Joining: an entity either stays or moves to the new host, never between old ones.
    assert all(after[e] in (before[e], slot_name(n)) for e in entities)
    if n > 1:
        gone = hosts[0]
        shrunk = {e: rendezvous(e, hosts[1:]) for e in entities}
        # Leaving: only the entities of the host that left move.
        assert all(shrunk[e] == before[e] for e in entities if before[e] != gone)


def test_placement_spreads_evenly_enough() -> None:
    hosts = [slot_name(i) for i in range(4)]
    counts = Counter(rendezvous(f"cart:u{i}", hosts) for i in range(20_000))
    assert min(counts.values()) > 4_500 and max(counts.values()) < 5_500


def test_a_dedicated_entity_has_its_host_whatever_the_hash() -> None:
    placement = Placement.of([("host:0", None), ("host:1", None), ("host:sku:HOT", "sku:HOT")])
    assert placement.host("sku", "HOT") == "host:sku:HOT"
    assert {placement.host("sku", f"s{i}") for i in range(100)} == {"host:0", "host:1"}
    assert placement.hosts == ("host:0", "host:1", "host:sku:HOT")
    assert Placement.of(placement.rows()) == placement


# -- the host's life cycle ----------------------------------------------------------------------


@dataclass
class Claims:
    """Owner epochs as PostgreSQL keeps them (storage/owners.py), in memory."""

    epochs: dict[tuple[str, str], int] = field(default_factory=dict)

    async def claim(self, kind: str, key: str, host: str) -> Fence:
        epoch = self.epochs[(kind, key)] = self.epochs.get((kind, key), 0) + 1
        return Fence(kind, key, epoch)


@dataclass
class Store:
    """What PostgreSQL holds per entity: its value, written only under a current fence."""

    claims: Claims
    values: dict[str, int] = field(default_factory=dict)

    def write(self, fence: Fence, value: int) -> None:
        fence.verify(self.claims.epochs.get((fence.kind, fence.key)))
        self.values[fence.key] = value


class Counter1:
    """A tiny entity: a counter saved on every change, like a cart."""

    def __init__(self, key: str, fence: Fence, store: Store, log: list[str]) -> None:
        self.key, self.fence, self.store, self.log = key, fence, store, log
        self.value = 0
        self.busy = False
        self.lock = asyncio.Lock()

    async def start(self) -> None:
        if self.key.startswith("missing"):
            raise NotFound(f"no {self.key}")
        await asyncio.sleep(0.01)  # a load takes a while: callers meanwhile share it
        self.value = self.store.values.get(self.key, 0)
        self.log.append(f"start {self.key}")

    async def stop(self) -> None:
        self.log.append(f"stop {self.key}")

    def idle(self) -> bool:
        return not self.busy

    async def add(self, n: int) -> int:
        async with self.lock:  # one writer: changes of one entity in order
            value = self.value + n
            await asyncio.sleep(0)
            self.store.write(self.fence, value)
            self.value = value
            return value

    async def get(self) -> int:
        return self.value

    async def crash(self) -> None:
        raise RuntimeError("a bug")

    async def _secret(self) -> None:
        raise AssertionError("never callable from outside")


def _host(
    name: str = "host:0",
    *,
    claims: Claims | None = None,
    store: Store | None = None,
    placement: Placement | None = None,
    after: float = 0.0,
) -> tuple[Host, Store, list[str]]:
    claims = claims or Claims()
    store = store or Store(claims)
    log: list[str] = []
    where = placement or Placement(("host:0",))

    async def directory() -> Placement:
        return where

    host = Host(
        name,
        {"counter": lambda key, fence: Counter1(key, fence, store, log)},
        claims,
        directory,
        passivate_after=after,
    )
    return host, store, log


async def _add(host: Host, key: str, n: int) -> int:
    result: int = await host.call("counter", key, "add", (n,), {})
    return result


async def test_first_calls_share_one_activation_and_writes_go_in_order() -> None:
    host, store, log = _host()
    results = await asyncio.gather(*(_add(host, "a", 1) for _ in range(50)))
    assert sorted(results) == list(range(1, 51)) and store.values["a"] == 50
    assert log == ["start a"] and host.stats.activations["counter"] == 1
    assert host.resident() == Counter({"counter": 1})


async def test_a_batch_of_calls_to_one_host_fails_only_its_bad_items() -> None:
    """A client's batch for a host mixes entities and methods; each item is its own call,
    and an error (refused, unknown, a bug) is that item's result, never the batch's."""
    host, store, _ = _host()
    results = await host.call_many(
        "counter",
        [
            ("a", "add", (2,), {}),
            ("b", "add", (5,), {}),
            ("a", "get", (), {}),
            ("missing-1", "add", (1,), {}),
            ("b", "_secret", (), {}),
            ("b", "crash", (), {}),
            ("a", "add", (1,), {}),
        ],
    )
    assert results[:2] == [2, 5] and results[2] in (0, 2) and results[6] == 3
    assert [type(r).__name__ for r in results[3:6]] == [
        "NotFound", "InvalidRequest", "InternalError"
    ]  # fmt: skip
    assert store.values == {"a": 3, "b": 5}


async def test_passivation_round_trip_keeps_the_state() -> None:
    host, _, log = _host()
    await _add(host, "a", 5)
    await _add(host, "b", 7)
    assert await host.sweep() == 2 and not host.slots
    assert log[-2:] == ["stop a", "stop b"]
    assert await _add(host, "a", 1) == 6  # loaded back from the store
    assert host.stats.passivations["counter"] == 2 and host.stats.activations["counter"] == 3


async def test_a_sweep_looks_only_at_what_was_not_used_lately() -> None:
    host, _, log = _host(after=60.0)
    for key in ("a", "b", "c", "d"):
        await _add(host, key, 1)
    await _add(host, "a", 1)  # used last: the slots are in the order of their last use
    assert [k for _, k in host.slots] == ["b", "c", "d", "a"]
    assert await host.sweep() == 0  # the first one checks every placement once
    host.slots[("counter", "b")].used -= 120  # two minutes without a call
    host.slots[("counter", "d")].used -= 120  # ... but after c, used since: not looked at
    assert await host.sweep() == 1 and log[-1] == "stop b"
    assert [k for _, k in host.slots] == ["c", "d", "a"]
    # The directory changed: every resident entity is looked at, wherever it is (d, not
    # used lately, goes too; so does whatever the new directory places elsewhere).
    moved = next(
        p
        for n in range(1, 50)
        if any((p := Placement(("host:0", f"host:{n}"))).host("counter", k) != "host:0"
               for k in "ca")
    )  # fmt: skip
    going = {"d"} | {k for _, k in host.slots if moved.host("counter", k) != "host:0"}

    async def elsewhere() -> Placement:
        return moved

    host.placement = elsewhere
    assert await host.sweep() == len(going)
    assert {k for _, k in host.slots} == {"c", "a"} - going


async def test_busy_or_recent_entities_stay_and_always_on_kinds_never_idle_out() -> None:
    host, _, _ = _host(after=3600.0)
    await _add(host, "a", 1)
    assert await host.sweep() == 0  # used within passivate_after
    host2, _, _ = _host(after=0.0)
    await _add(host2, "a", 1)
    entity = await host2.entity("counter", "a")
    entity.busy = True  # type: ignore[attr-defined]
    assert await host2.sweep() == 0  # its kind says it must stay (live holds, viewers)
    host2.never_passivate = frozenset({"counter"})
    entity.busy = False  # type: ignore[attr-defined]
    assert await host2.sweep() == 0


async def test_a_call_during_passivation_waits_and_activates_again() -> None:
    host, _, log = _host()
    await _add(host, "a", 1)
    stopping = asyncio.ensure_future(host.passivate("counter", "a"))
    await asyncio.sleep(0)
    assert await _add(host, "a", 1) == 2
    assert await stopping
    assert log == ["start a", "stop a", "start a"]


async def test_a_failed_activation_is_forgotten_and_errors_stay_typed() -> None:
    host, _, _ = _host()
    with pytest.raises(NotFound):
        await _add(host, "missing-1", 1)
    assert not host.slots and host.stats.failed_activations["counter"] == 1
    with pytest.raises(InvalidRequest):
        await host.call("counter", "a", "_secret", (), {})
    with pytest.raises(InvalidRequest):
        await host.call("nothing", "a", "add", (1,), {})


async def test_an_entity_placed_elsewhere_is_refused_and_handed_over() -> None:
    two = Placement(("host:0", "host:1"))
    key = next(f"k{i}" for i in range(100) if two.host("counter", f"k{i}") == "host:1")
    host, _, _ = _host("host:0", placement=two)
    with pytest.raises(Moved):
        await _add(host, key, 1)
    # Resident, then the directory moves it: the sweep hands it over even if busy-recent.
    one = Placement(("host:0",))
    host0, _, log = _host("host:0", placement=one, after=3600.0)
    await _add(host0, key, 1)

    async def moved() -> Placement:
        return two

    host0.placement = moved
    assert await host0.sweep() == 1 and not host0.slots and log[-1] == f"stop {key}"


async def test_a_stale_owner_cannot_write_and_drops_the_entity() -> None:
    """Two hosts believe they own one entity (a directory change not yet seen): the later
    claim wins; the earlier owner's next write is fenced and it lets the entity go."""
    claims = Claims()
    store = Store(claims)
    old, _, _ = _host("host:0", claims=claims, store=store)
    new, _, _ = _host("host:0", claims=claims, store=store)  # same name: a restarted host
    assert await _add(old, "a", 1) == 1
    assert await _add(new, "a", 10) == 11
    with pytest.raises(Fenced):
        await _add(old, "a", 100)
    assert store.values["a"] == 11  # the stale owner wrote nothing
    await asyncio.sleep(0.05)
    assert not old.slots and old.stats.fenced["counter"] == 1
    assert isinstance(Fenced("x"), Unavailable)  # callers hear "try again"
    assert await _add(new, "a", 1) == 12
