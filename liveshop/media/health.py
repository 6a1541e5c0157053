"""Stream health: what the host studio and the metrics show about a live stream, and the
alerts raised from it. No I/O: every reading comes in with its time.

Readings are kept for the last ``window`` seconds: input bitrate (FLV bytes for RTMP,
every UDP byte of the peer connection for WHIP), source frame rate, the keyframe interval,
frames dropped because the encoder fell behind, and the encoder's speed (seconds of video
encoded per second spent encoding: below 1.0 it cannot keep up). Readings come from the
ingest's thread and the report is made on the encoder's: it reads snapshots.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

#: Alert codes (stable: dashboards and the host studio key on them).
ENCODER_BEHIND = "encoder_behind"
NO_INPUT = "no_input"
NO_VIDEO = "no_video"
UNDECODABLE = "undecodable"
FRAMES_DROPPED = "frames_dropped"
LONG_KEYFRAME_INTERVAL = "long_keyframe_interval"
RUNGS_SHED = "rungs_shed"

#: A keyframe interval above this makes players wait long to start and to switch renditions.
MAX_KEYFRAME_INTERVAL = 4.0


@dataclass
class HealthMeter:
    window: float = 5.0
    _bytes: deque[tuple[float, int]] = field(default_factory=deque)
    _frames: deque[float] = field(default_factory=deque)
    _encoded: deque[tuple[float, float, float]] = field(default_factory=deque)
    _dropped: deque[float] = field(default_factory=deque)
    dropped_total: int = 0
    last_keyframe_at: float | None = None
    keyframe_interval: float | None = None
    #: Set by the transcoder: a source error a human must see (UNDECODABLE, NO_VIDEO).
    source_error: str | None = None
    source_error_detail: str = ""

    def input_bytes(self, n: int, now: float) -> None:
        self._bytes.append((now, n))

    def source_frame(self, now: float, *, keyframe: bool, media_time: float | None) -> None:
        self._frames.append(now)
        if keyframe:
            at = media_time if media_time is not None else now
            if self.last_keyframe_at is not None and at > self.last_keyframe_at:
                self.keyframe_interval = at - self.last_keyframe_at
            self.last_keyframe_at = at

    def dropped(self, now: float, n: int = 1) -> None:
        self.dropped_total += n
        self._dropped.extend([now] * n)

    def encoded(self, now: float, media_seconds: float, busy_seconds: float) -> None:
        self._encoded.append((now, media_seconds, busy_seconds))

    def source_reset(self) -> None:
        """A new source: its keyframes are not measured against the old one's."""
        self.last_keyframe_at = None
        self.keyframe_interval = None

    def _trim(self, now: float) -> None:
        edge = now - self.window
        for q in (self._bytes, self._encoded):
            while q and q[0][0] < edge:
                q.popleft()
        for t in (self._frames, self._dropped):
            while t and t[0] < edge:
                t.popleft()

    def _speed(self) -> float | None:
        encoded = tuple(self._encoded)
        media = sum(m for _, m, _ in encoded)
        busy = sum(b for _, _, b in encoded)
        return media / busy if busy > 0 else None

    def report(self, now: float, *, source: str) -> dict[str, Any]:
        self._trim(now)
        speed = self._speed()
        fps = len(self._frames) / self.window
        alerts = []
        if self.source_error:
            alerts.append(self.source_error)
        if speed is not None and speed < 1.0 and len(self._encoded) >= 2:
            alerts.append(ENCODER_BEHIND)
        if self._dropped:
            alerts.append(FRAMES_DROPPED)
        long_gop = (
            self.keyframe_interval is not None and self.keyframe_interval > MAX_KEYFRAME_INTERVAL
        )
        if self._frames and long_gop:
            alerts.append(LONG_KEYFRAME_INTERVAL)
        received = sum(n for _, n in tuple(self._bytes))  # a snapshot: the ingest appends
        return {
            "source": source,
            "input_kbps": round(received * 8 / self.window / 1000, 1),
            "fps": round(fps, 2),
            "dropped_frames": self.dropped_total,
            "keyframe_interval": (
                round(self.keyframe_interval, 3) if self.keyframe_interval is not None else None
            ),
            "encoder_speed": round(speed, 3) if speed is not None else None,
            "alerts": alerts,
            "error": self.source_error_detail or None,
        }


def slate_report(attached: list[HealthMeter]) -> dict[str, Any]:
    """Health while the slate is on air: no input, and why the attached sources (if any)
    are not usable."""
    errors = [m for m in attached if m.source_error]
    return {
        "source": "slate",
        "alerts": [NO_INPUT, *(m.source_error for m in errors if m.source_error)],
        "error": errors[0].source_error_detail if errors else None,
    }


def with_ladder(report: dict[str, Any], *, shed: list[str], load: float | None) -> dict[str, Any]:
    """``report`` with the ladder's state: the rungs shed because the encoder could not keep
    up (``rungs_shed``), and the encoder's load (the share of real time it needs to encode
    every frame; from 1.0 on it is behind: ``encoder_behind``)."""
    alerts = list(report.get("alerts") or ())
    if load is not None and load >= 1.0 and ENCODER_BEHIND not in alerts:
        alerts.append(ENCODER_BEHIND)
    if shed:
        alerts.append(RUNGS_SHED)
    return {
        **report,
        "encoder_load": round(load, 3) if load is not None else None,
        "shed": shed,
        "alerts": alerts,
    }
