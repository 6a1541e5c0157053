"""Which source a live stream shows: the primary ingest, the backup, or the slate. No I/O.

A source is usable while it delivers video: it has decoded a frame within ``stall_after``
seconds (a source just attached is not, until its first frame: until then the stream keeps
what it shows). The primary wins whenever it is usable, the backup otherwise, and the slate
when neither is: a channel is never left without a picture, and players never see the
stream stop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

PRIMARY, BACKUP, SLATE = "primary", "backup", "slate"
SLOTS = (PRIMARY, BACKUP)


class Candidate(Protocol):
    """What the choice reads of a source (a live ``Source`` is one)."""

    @property
    def last_frame_at(self) -> float | None: ...

    #: The source cannot give video (undecodable, audio only): never chosen.
    @property
    def failed(self) -> bool: ...


@dataclass(frozen=True)
class SourceState:
    last_frame_at: float | None
    failed: bool = False


def usable(source: Candidate, now: float, stall_after: float) -> bool:
    last = source.last_frame_at
    return not source.failed and last is not None and now - last <= stall_after


def choose(sources: Mapping[str, Candidate], now: float, stall_after: float) -> str:
    """The slot to show now (``PRIMARY``, ``BACKUP``) or ``SLATE``."""
    for slot in SLOTS:
        source = sources.get(slot)
        if source is not None and usable(source, now, stall_after):
            return slot
    return SLATE
