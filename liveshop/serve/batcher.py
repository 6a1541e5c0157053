"""Gather requests bound for one actor over a short window and send them in one call."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from liveshop.errors import InternalError, LiveshopError

log = logging.getLogger(__name__)

T = TypeVar("T")

SendBatch = Callable[[list[T]], Awaitable[list[Any]]]


class Batcher(Generic[T]):
    """Each ``submit`` returns a future for that item's result.

    A batch leaves when ``window`` seconds have passed since its first item or when it holds
    ``max_batch`` items. ``send`` returns one result per item: a value, or a
    :class:`LiveshopError` that fails only that item; if ``send`` raises, every item fails.
    """

    def __init__(self, send: SendBatch[T], *, window: float, max_batch: int) -> None:
        self._send = send
        self._window = window
        self._max_batch = max_batch
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
        self._items.append((item, fut))
        if len(self._items) >= self._max_batch:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self._window, self._flush)
        return fut

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        items, self._items = self._items, []
        if not items:
            return
        task = asyncio.get_running_loop().create_task(self._deliver(items))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
        self._flush()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
