"""Room events: what a room publishes, each with a strictly increasing offset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Event:
    offset: int
    kind: str
    data: dict[str, Any]
    ts_ms: int

    def withdrawn(self, reason: str) -> Event:
        """What takes this event's place when it cannot be stored: the same offset and
        time, so offsets stay gap-free (see Room.withdraw)."""
        return Event(self.offset, "withdrawn", {"reason": reason}, self.ts_ms)

    def to_wire(self) -> dict[str, Any]:
        """The event as clients see it: built once and shared, read-only. A reconnect storm
        sends the same events to thousands of subscribers; one dict each lets the batch reply
        to the gateway carry each event once (pickle keeps shared objects shared)."""
        wire: dict[str, Any] | None = self.__dict__.get("_wire")
        if wire is None:
            wire = {"offset": self.offset, "kind": self.kind, "ts": self.ts_ms, **self.data}
            object.__setattr__(self, "_wire", wire)  # a cache, not state: frozen stays true
        return wire
