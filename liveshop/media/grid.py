"""The output frame grid: where each source frame goes on the encoders' clock, and which
frames are keyframes. No I/O.

Output frame ``n`` is shown at ``n / fps``; a segment is ``gop`` frames and starts at a
multiple of ``gop`` with a keyframe there, on every rendition. That is what keeps every
segment exactly one segment long (and so the playlists' target duration constant), also
when the encoder falls behind and source frames are dropped: without it, a keyframe every
``gop`` *encoded* frames drifts away from the segment boundaries as frames go missing, and
segments stretch (5.9 s instead of 1 s were seen) or shrink to a sliver (0.07 s).

The rule, per source frame placed at ``index``:

- a slot already filled (``index <= last``) is skipped: the first frame for a slot wins;
- a frame that does not reach the next boundary goes where it belongs;
- a frame that crossed boundaries (frames were dropped, or the source paused) is moved
  back to the last boundary it crossed, as that segment's keyframe; every boundary skipped
  before it gets the previous picture again (a held frame, what a player shows during a
  gap anyway), so no segment is ever left without its keyframe.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Slot:
    """One frame to encode: at output frame ``index``; a keyframe (the first of a segment)
    or not; ``held``: the previous picture repeated, not the new one."""

    index: int
    keyframe: bool
    held: bool = False


@dataclass
class Grid:
    gop: int
    #: The last output frame encoded (-1: none yet).
    last: int = -1

    def __post_init__(self) -> None:
        if self.gop < 1:
            raise ValueError("a segment has at least one frame")

    def place(self, index: int) -> list[Slot]:
        """The frames to encode for a source frame that belongs at ``index`` (none when its
        slot is taken); the new picture is always the last of them."""
        if index <= self.last:
            return []
        first_boundary = (self.last // self.gop + 1) * self.gop
        if index < first_boundary:
            slots = [Slot(index, keyframe=False)]
        else:
            at = index // self.gop * self.gop  # the last boundary crossed
            held = [Slot(b, True, held=True) for b in range(first_boundary, at, self.gop)]
            slots = [*held, Slot(at, keyframe=True)]
        self.last = slots[-1].index
        return slots

    def segment_of(self, index: int) -> int:
        """The segment (counted from this encoder's start) output frame ``index`` is in."""
        return index // self.gop
