"""Shedding rungs when the encoder cannot keep up, and bringing them back. No I/O, no clock:
every reading comes in with its time.

An encoder that falls behind has two bad ways out: drop source frames until segments
stretch (players stall, the target duration breaks), or fall further behind live. Shedding
is the third: stop encoding the top rung (the most expensive), announce it (the master
playlist drops it, health says so), and keep every remaining rung on time. When there is
room again for long enough, the rung comes back, one at a time.

The signal is the encoder's *load*: the share of real time the encoder thread needs to
encode every frame of the current ladder (mean time per frame times the frame rate; 1.0 is
just keeping up). A :class:`LoadMeter` measures it; a :class:`Shedder` decides.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class LoadMeter:
    """The encoder's load over the last ``window`` seconds of encoded frames."""

    window: float = 2.0
    #: Fewer frames than this say nothing yet (the first frames after a start or a change
    #: of ladder are slow: encoders warm up).
    min_frames: int = 10
    _busy: deque[tuple[float, float]] = field(default_factory=deque)

    def add(self, now: float, busy: float) -> None:
        """The encoder spent ``busy`` seconds on one source frame."""
        self._busy.append((now, busy))
        edge = now - self.window
        while self._busy and self._busy[0][0] < edge:
            self._busy.popleft()

    def load(self, fps: float) -> float | None:
        busy = tuple(self._busy)  # a snapshot: the view is read from another thread
        if len(busy) < self.min_frames:
            return None
        return sum(b for _, b in busy) / len(busy) * fps

    def reset(self) -> None:
        """The ladder changed: what was measured no longer applies."""
        self._busy.clear()


@dataclass
class Shedder:
    """How many of the top rungs are shed, from the load of what is encoded now.

    - Load at or above ``high`` for ``shed_after`` seconds: shed the top rung still encoded
      (never the lowest).
    - Load low enough that the next rung back would stay under ``low`` (predicted from the
      rungs' ``costs``) for ``restore_after`` seconds: restore it.
    - A shed soon after a restore means the restore was premature: the wait before the next
      restore doubles (up to ``max_restore_after``), so a machine on the edge does not flap.
    """

    #: Each rung's relative cost, top rung first (pixels, or cores from an EncodeCost).
    costs: Sequence[float]
    shed_after: float = 3.0
    restore_after: float = 30.0
    max_restore_after: float = 480.0
    high: float = 1.0
    low: float = 0.8
    #: Top rungs not encoded now.
    shed: int = 0
    #: When set, used instead of the measured load: an operator's drill, or a test that
    #: needs the encoder "behind" (or idle) on cue.
    forced_load: float | None = None
    _high_since: float | None = None
    _low_since: float | None = None
    _restored_at: float | None = None
    _wait: float = 0.0

    def __post_init__(self) -> None:
        if not self.costs or any(c <= 0 for c in self.costs):
            raise ValueError("every rung costs something")
        self._wait = self.restore_after

    @property
    def sheddable(self) -> bool:
        return self.shed < len(self.costs) - 1

    def predicted(self, load: float) -> float:
        """The load with the next shed rung back (``load`` itself when none is shed)."""
        if self.shed == 0:
            return load
        active = sum(self.costs[self.shed :])
        return load * (active + self.costs[self.shed - 1]) / active

    def step(self, now: float, load: float | None) -> int | None:
        """The new number of shed rungs if it changes now, else None. ``load`` is None while
        there is no measurement (nothing encoded yet, or the ladder just changed)."""
        if self.forced_load is not None:
            load = self.forced_load
        if load is None:
            self._high_since = self._low_since = None
            return None
        if load >= self.high:
            self._low_since = None
            if not self.sheddable:
                return None
            if self._high_since is None:
                self._high_since = now
            if now - self._high_since < self.shed_after:
                return None
            recent = self._restored_at is not None and now - self._restored_at < self._wait
            self._wait = (
                min(self._wait * 2, self.max_restore_after) if recent else self.restore_after
            )
            self.shed += 1
            self._high_since = None
            return self.shed
        self._high_since = None
        if self.shed == 0 or self.predicted(load) >= self.low:
            self._low_since = None
            return None
        if self._low_since is None:
            self._low_since = now
        if now - self._low_since < self._wait:
            return None
        self.shed -= 1
        self._low_since = None
        self._restored_at = now
        return self.shed
