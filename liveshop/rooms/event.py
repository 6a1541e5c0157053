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

    def to_wire(self) -> dict[str, Any]:
        return {"offset": self.offset, "kind": self.kind, "ts": self.ts_ms, **self.data}
