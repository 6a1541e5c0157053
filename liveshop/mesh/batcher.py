"""Gather requests bound for one actor over a short window and send them in one call."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from liveshop.errors import InternalError, LiveshopError, Unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

SendBatch = Callable[[list[T]], Awaitable[list[Any]]]


class Batcher(Generic[T]):
    """Each ``submit`` returns a future for that item's result.

    A batch leaves when ``window`` seconds have passed since its first item or when it holds
    ``max_batch`` items, and only while fewer than ``max_in_flight`` calls are out: items that
    arrive meanwhile wait and leave together when a call returns. So batches grow with the
    load: an actor's cost is mostly per call (~0.5 ms of Ray overhead), and a hundred
    gateways each sending a call every 2 ms would bury one room actor, while the same
    commands in a few large calls cost it little. Past ``max_pending`` waiting items a submit
    fails at once with :class:`Unavailable`, so an overloaded actor refuses truthfully (the
    command was not applied) instead of timing out on work it may still do.

    ``send`` returns one result per item: a value, or a :class:`LiveshopError` that fails
    only that item; if ``send`` raises, every item fails.
    """

    def __init__(
        self,
        send: SendBatch[T],
        *,
        window: float,
        max_batch: int,
        max_in_flight: int = 2,
        max_pending: int | None = None,
    ) -> None:
        self._send = send
        self._window = window
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._max_pending = max_pending or 8 * max_batch
        self._items: list[tuple[T, asyncio.Future[Any]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def idle(self) -> bool:
        """Nothing waiting to leave and nothing in flight."""
        return not self._items and not self._tasks

    def submit(self, item: T) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        if len(self._items) >= self._max_pending:
            fut.set_exception(Unavailable("too busy right now, try again"))
            return fut
        self._items.append((item, fut))
        if len(self._items) >= self._max_batch:
            self._flush()
        elif self._timer is None and len(self._tasks) < self._max_in_flight:
            self._timer = loop.call_later(self._window, self._flush)
        return fut

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._items and len(self._tasks) < self._max_in_flight:
            items = self._items[: self._max_batch]
            del self._items[: self._max_batch]
            task = asyncio.get_running_loop().create_task(self._deliver(items))
            self._tasks.add(task)
            task.add_done_callback(self._returned)

    def _returned(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        # What gathered while the call was out has waited long enough: send it now.
        if self._items and len(self._tasks) < self._max_in_flight:
            self._flush()

    async def _deliver(self, items: list[tuple[T, asyncio.Future[Any]]]) -> None:
        try:
            results = await self._send([item for item, _ in items])
            if len(results) != len(items):
                raise InternalError("actor returned a result count that does not match")
        except LiveshopError as exc:
            for _, fut in items:
                if not fut.done():
                    fut.set_exception(exc)
            return
        except Exception as exc:
            log.exception("batch delivery failed")
            error = InternalError(f"batch delivery failed: {type(exc).__name__}")
            for _, fut in items:
                if not fut.done():
                    fut.set_exception(error)
            return
        for (_, fut), result in zip(items, results, strict=True):
            if fut.done():
                continue
            if isinstance(result, LiveshopError):
                fut.set_exception(result)
            else:
                fut.set_result(result)

    async def close(self) -> None:
        while self._items or self._tasks:
            self._flush()
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
