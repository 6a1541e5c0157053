"""Group commit when PostgreSQL refuses the data of one decision: that decision alone is
refused, every other one commits, and nothing is retried for ever (actors/group_commit.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from hypothesis import given, settings
from hypothesis import strategies as st

from liveshop.actors.group_commit import CommitRefused, GroupCommit, OneByOne
from liveshop.errors import InvalidRequest, LiveshopError, Unavailable

POISON = "\x00"


class Ledger:
    """An owner shaped like the SKU actor: decisions in memory, group-committed, memory
    reloaded from what was saved after a failed commit."""

    def __init__(self, *, outages: int = 0) -> None:
        self.saved: list[str] = []
        self.pending: list[str] = []
        self.saves = 0
        self.outages = outages
        self.stale = False
        self.group: GroupCommit[list[str]] = GroupCommit(
            take=self._take,
            save=self._save,
            committed=lambda _: None,
            failed=self._failed,
            error=Unavailable("try again"),
            depth=2,
        )
        self.one_by_one: OneByOne[str] = OneByOne(self.group, "ledger")

    def _take(self) -> list[str] | None:
        batch, self.pending = self.pending, []
        return batch or None

    async def _save(self, batch: list[str]) -> None:
        self.saves += 1
        await asyncio.sleep(0.001)
        if self.outages:
            self.outages -= 1
            raise OSError("connection reset")
        if any(POISON in item for item in batch):
            raise asyncpg.CharacterNotInRepertoireError("invalid byte sequence for UTF8: 0x00")
        self.saved.extend(batch)

    def _failed(self, exc: Exception) -> None:
        self.stale = True

    def _decide(self, item: str) -> dict[str, Any]:
        self.pending.append(item)
        return {"ok": item}

    async def _prepare(self) -> None:
        if self.stale:  # "reload": what was not saved is forgotten
            self.pending, self.stale = [], False

    async def handle(self, items: list[str]) -> list[Any]:
        if self.one_by_one.active:
            return await self.one_by_one.run(items, self._decide, self._prepare)
        await self._prepare()
        results: list[Any] = [self._decide(i) for i in items]
        try:
            await self.group.wait()
        except CommitRefused:
            return await self.one_by_one.run(items, self._decide, self._prepare)
        except LiveshopError as exc:
            return [exc] * len(items)
        return results


async def _run(ledger: Ledger, calls: list[list[str]]) -> list[list[Any]]:
    runner = asyncio.get_running_loop().create_task(ledger.group.run())
    try:
        return await asyncio.wait_for(
            asyncio.gather(*(ledger.handle(c) for c in calls)), timeout=10
        )
    finally:
        runner.cancel()


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.lists(st.tuples(st.booleans(), st.integers(0, 10**6)), min_size=1, max_size=6),
        min_size=1,
        max_size=8,
    )
)
def test_only_the_refused_decision_fails(shape: list[list[tuple[bool, int]]]) -> None:
    calls = [
        [
            f"{'bad' + POISON if poisoned else 'ok'}-{c}-{i}-{n}"
            for i, (poisoned, n) in enumerate(call)
        ]
        for c, call in enumerate(shape)
    ]
    ledger = Ledger()
    answers = asyncio.run(_run(ledger, calls))
    good = [item for call in calls for item in call if POISON not in item]
    for call, answer in zip(calls, answers, strict=True):
        for item, result in zip(call, answer, strict=True):
            if POISON in item:
                assert isinstance(result, InvalidRequest), (item, result)
            else:
                assert result == {"ok": item}
    assert sorted(ledger.saved) == sorted(good)  # each committed once
    # Never retried for ever: a bisection commits at most 2n - 1 times for n decisions.
    assert ledger.saves <= len(calls) + 2 * sum(len(c) for c in calls) + 2


def test_one_bad_request_among_many_costs_a_few_commits() -> None:
    """A bisection, not one commit per request: a hot SKU stays a group-commit SKU."""
    items = [f"ok-{i}" for i in range(256)]
    items[137] = "bad" + POISON
    ledger = Ledger()
    [answer] = asyncio.run(_run(ledger, [items]))
    assert [i for i, r in enumerate(answer) if isinstance(r, InvalidRequest)] == [137]
    assert len(ledger.saved) == 255
    assert ledger.saves <= 1 + 2 * 8 + 1  # the first try, two halves per level, slack


def test_an_outage_is_temporary_for_everyone_and_not_a_refusal() -> None:
    ledger = Ledger(outages=1)

    async def twice() -> tuple[list[Any], list[Any]]:
        runner = asyncio.get_running_loop().create_task(ledger.group.run())
        try:
            first = await ledger.handle(["a", "b"])
            again = await ledger.handle(["a", "b"])  # the client retries
        finally:
            runner.cancel()
        return first, again

    first, again = asyncio.run(twice())
    assert all(isinstance(r, Unavailable) and r.temporary for r in first)
    assert not any(isinstance(r, CommitRefused) for r in first)
    assert ledger.one_by_one.refusals == 0
    assert again == [{"ok": "a"}, {"ok": "b"}] and ledger.saved == ["a", "b"]


def test_every_failed_batch_marks_the_owner_stale_and_idle_waits_for_the_chain() -> None:
    """Two commits in flight (depth 2): the first fails, the one chained after it rolls
    back too. Both must mark the owner stale (the owner may have reloaded between them, and
    memory would then run ahead of PostgreSQL with answers to replay), and an owner reloads
    only once neither is in flight."""
    failed: list[Exception] = []
    release = asyncio.Event()

    async def save(batch: list[str]) -> None:
        await release.wait()
        if batch == ["a"]:
            raise OSError("connection reset")

    async def scenario() -> tuple[list[Any], bool]:
        pending: list[list[str]] = [["a"], ["b"]]
        group: GroupCommit[list[str]] = GroupCommit(
            take=lambda: pending.pop(0) if pending else None,
            save=save,
            committed=lambda _: None,
            failed=failed.append,
            error=Unavailable("try again"),
            depth=2,
        )
        runner = asyncio.get_running_loop().create_task(group.run())
        first = asyncio.ensure_future(group.wait())
        await asyncio.sleep(0.01)
        second = asyncio.ensure_future(group.wait())
        await asyncio.sleep(0.01)
        idle = asyncio.ensure_future(group.idle())
        await asyncio.sleep(0.01)
        busy = not idle.done()
        release.set()
        answers = await asyncio.gather(first, second, return_exceptions=True)
        await asyncio.wait_for(idle, 1)
        runner.cancel()
        return answers, busy

    answers, busy = asyncio.run(scenario())
    assert busy  # idle() waited while the commits were in flight
    assert all(isinstance(a, Unavailable) for a in answers)
    assert len(failed) == 2  # the chained batch marked the owner stale as well
