"""Which source a live stream shows: the primary ingest, the backup, or the slate. No I/O.

A source is usable while it delivers video: it has decoded a frame within ``stall_after``
seconds (a source just attached is not, until its first frame: until then the stream keeps
what it shows). The primary wins whenever it is usable, the backup otherwise, and the slate
when neither is: a channel is never left without a picture, and players never see the
stream stop.
"""

from __future__ import annotations

from dataclasses import dataclass

PRIMARY, BACKUP, SLATE = "primary", "backup", "slate"
SLOTS = (PRIMARY, BACKUP)


@dataclass(frozen=True)
class SourceState:
    last_frame_at: float | None
    #: The source cannot give video (undecodable, audio only): never chosen.
    failed: bool = False

    def usable(self, now: float, stall_after: float) -> bool:
        last = self.last_frame_at
        return not self.failed and last is not None and now - last <= stall_after


def choose(sources: dict[str, SourceState], now: float, stall_after: float) -> str:
    """The slot to show now (``PRIMARY``, ``BACKUP``) or ``SLATE``."""
    for slot in SLOTS:
        source = sources.get(slot)
        if source is not None and source.usable(now, stall_after):
            return slot
    return SLATE
