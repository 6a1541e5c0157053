"""A room's recent events, bounded by count and age: what a reconnecting client can recover."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Iterator

from liveshop.rooms.event import Event

#: Default window: how many events, and how old (s), a reconnecting client can recover.
HISTORY_SIZE = 5000
HISTORY_AGE = 600.0


class History:
    def __init__(self, max_events: int, max_age: float, events: Iterable[Event] = ()) -> None:
        self.max_events = max_events
        self.max_age = max_age
        self._events: deque[Event] = deque(events, maxlen=max_events)

    def __iter__(self) -> Iterator[Event]:
        return iter(self._events)

    def __reversed__(self) -> Iterator[Event]:
        return reversed(self._events)

    def __len__(self) -> int:
        return len(self._events)

    def append(self, event: Event) -> None:
        self._events.append(event)

    def replace(self, event: Event) -> bool:
        """Put ``event`` in place of the held event with its offset (newest scanned first)."""
        for i in range(len(self._events) - 1, -1, -1):
            held = self._events[i].offset
            if held == event.offset:
                self._events[i] = event
                return True
            if held < event.offset:
                break
        return False

    def trim(self, now: float) -> None:
        horizon_ms = (now - self.max_age) * 1000
        while self._events and self._events[0].ts_ms < horizon_ms:
            self._events.popleft()

    def since(self, offset: int, last_offset: int, now: float) -> list[Event] | None:
        """Exactly the events after ``offset`` up to ``last_offset``, or None if some of them
        are no longer held (too old, or beyond the count)."""
        if offset > last_offset or offset < 0:
            return None  # a position this room never published
        if offset == last_offset:
            return []
        self.trim(now)
        if not self._events or self._events[0].offset > offset + 1:
            return None
        # Newest first: a reconnect misses a few events, the history holds thousands.
        missed = list(itertools.takewhile(lambda e: e.offset > offset, reversed(self._events)))
        missed.reverse()
        if not missed or missed[-1].offset != last_offset:
            return None  # not all published events are held (cannot happen; be safe)
        return missed
