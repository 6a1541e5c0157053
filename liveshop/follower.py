"""Following a room's event stream from the client's side, without I/O.

The protocol promises every event of a room exactly once, in offset order, to a client that
keeps its side of the bargain (docs/protocol.md, "Recovery"): remember the last ``(offset,
epoch)`` held, and after a drop or a jump in offsets subscribe again with it as ``since``. A
``RoomFollower`` is that bookkeeping for one room; the caller does the I/O. The load tests,
the failure drills and the Locust viewers use it, so they all judge "nothing was missed" the
same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

Event = dict[str, Any]


class Verdict(Enum):
    """What a push means for the follower."""

    OK = "ok"
    #: Offsets jumped (the broker dropped a message): subscribe again with ``since()``.
    GAP = "gap"
    #: The room's history was reset: drop what you hold and subscribe again without since.
    NEW_EPOCH = "new_epoch"
    #: Not following yet (subscribing, or resyncing): the subscribe reply will cover it.
    IGNORED = "ignored"


@dataclass
class RoomFollower:
    room: str
    #: Keep every event taken (tests compare them); off for long-running load tests.
    keep: bool = False
    epoch: str | None = None
    offset: int | None = None
    events: list[Event] = field(default_factory=list)
    #: Pushes are ignored until a subscribe reply says where the stream stands.
    following: bool = False
    duplicates: int = 0
    gaps: int = 0
    new_epochs: int = 0
    recovered: int = 0
    snapshots: int = 0

    def since(self) -> dict[str, Any] | None:
        """The ``since`` of the next subscribe: the last event held, if any."""
        if self.offset is None or self.epoch is None:
            return None
        return {"offset": self.offset, "epoch": self.epoch}

    def subscribing(self) -> None:
        """A (re)subscribe is on its way: ignore pushes until its reply."""
        self.following = False

    def on_subscribed(self, result: dict[str, Any]) -> list[Event]:
        """Apply a subscribe reply; returns the events it delivered (recovered ones)."""
        self.following = True
        taken: list[Event] = []
        if result.get("recovered"):
            self.recovered += 1
            taken = self._take(result.get("events") or ())
        else:
            # A snapshot: the stream starts after its offset. Events held before stay held
            # (a test can still see what it got), but offsets continue from the snapshot.
            self.snapshots += 1
        self.epoch = result["epoch"]
        self.offset = result["offset"]
        return taken

    def on_push(self, push: dict[str, Any]) -> tuple[Verdict, list[Event]]:
        """Apply a ``room`` push: the verdict, and the events it delivered in order."""
        if not self.following:
            return Verdict.IGNORED, []
        if push.get("epoch") != self.epoch:
            self.new_epochs += 1
            self.following = False
            self.offset = None
            self.epoch = None
            return Verdict.NEW_EPOCH, []
        taken = self._take(push.get("events") or (), strict=True)
        if not self.following:
            self.gaps += 1
            return Verdict.GAP, taken
        return Verdict.OK, taken

    def _take(self, events: Any, *, strict: bool = False) -> list[Event]:
        """Take the events after the offset held, in order; with ``strict`` stop at a jump
        (and stop following: the caller resubscribes from the last event taken)."""
        taken = []
        for event in events:
            offset = event["offset"]
            if self.offset is not None and offset <= self.offset:
                self.duplicates += 1
                continue
            if strict and self.offset is not None and offset != self.offset + 1:
                self.following = False
                break
            taken.append(event)
            self.offset = offset
        if self.keep:
            self.events.extend(taken)
        return taken
