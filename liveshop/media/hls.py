"""HLS playlists as text: the master playlist of a ladder and the sliding-window media
playlist of one rendition, with low-latency parts (LL-HLS) when the packager makes them.
No I/O: the transcoder hands in segments and parts as they are written.

A restart of the transcoder continues the media sequence with a discontinuity, so players
carry on instead of failing (``EXT-X-DISCONTINUITY`` plus ``EXT-X-DISCONTINUITY-SEQUENCE``
counting those that left the window).
"""

from __future__ import annotations

import datetime
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from liveshop.media.ladder import Rendition

#: H.264 High profile level 4.0 (fits 1080p30) and AAC-LC: what the ladder produces.
CODECS = "avc1.640028,mp4a.40.2"


def master_playlist(renditions: Sequence[Rendition], *, uri: str = "{name}/index.m3u8") -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:6", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for r in renditions:
        average = (r.video_kbps + r.audio_kbps) * 1000
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={r.bandwidth},AVERAGE-BANDWIDTH={average},"
            f'RESOLUTION={r.width}x{r.height},FRAME-RATE={r.fps:.3f},CODECS="{CODECS}"'
        )
        lines.append(uri.format(name=r.name))
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Part:
    uri: str
    duration: float
    independent: bool  # starts with a keyframe


@dataclass
class Segment:
    sequence: int
    uri: str
    duration: float
    started_at: float  # wall clock of its first frame (EXT-X-PROGRAM-DATE-TIME)
    discontinuity: bool = False
    parts: list[Part] = field(default_factory=list)


@dataclass
class MediaPlaylist:
    """One rendition's live playlist: the last ``window`` segments, the parts of the last
    few, and the parts of the segment being written. ``window=None`` keeps every segment:
    the recording (``playlist_type`` EVENT while live, VOD once ended)."""

    target_duration: float
    window: int | None = 6
    playlist_type: str | None = None
    part_target: float | None = None  # None: no LL-HLS parts
    #: Parts are listed for this many of the newest segments (older ones only as segments).
    parts_kept: int = 3
    segments: deque[Segment] = field(default_factory=deque)
    pending_parts: list[Part] = field(default_factory=list)
    next_sequence: int = 0
    discontinuity_sequence: int = 0
    ended: bool = False
    _discontinuity_next: bool = False

    def add_part(self, part: Part) -> None:
        self.pending_parts.append(part)

    def add_segment(self, uri: str, duration: float, started_at: float) -> Segment:
        """A finished segment: it takes the parts written for it."""
        segment = Segment(
            self.next_sequence, uri, duration, started_at, self._discontinuity_next,
            self.pending_parts,
        )  # fmt: skip
        self.pending_parts = []
        self._discontinuity_next = False
        self.next_sequence += 1
        self.segments.append(segment)
        while self.window is not None and len(self.segments) > self.window:
            if self.segments.popleft().discontinuity:
                self.discontinuity_sequence += 1
        return segment

    def restart(self) -> None:
        """The encoder started again (a new incarnation, an ingest failover): the next
        segment follows a discontinuity; parts of the unfinished segment are dropped."""
        self.pending_parts = []
        self._discontinuity_next = True

    def end(self) -> None:
        self.ended = True
        if self.playlist_type == "EVENT":
            self.playlist_type = "VOD"

    def to_dict(self) -> dict[str, Any]:
        """What a restarted transcoder needs to continue this playlist (parts are not kept:
        the segment they belonged to is cut off by the restart anyway)."""
        return {
            "target_duration": self.target_duration,
            "window": self.window,
            "playlist_type": self.playlist_type,
            "part_target": self.part_target,
            "next_sequence": self.next_sequence,
            "discontinuity_sequence": self.discontinuity_sequence,
            "ended": self.ended,
            "segments": [
                [s.sequence, s.uri, s.duration, s.started_at, s.discontinuity]
                for s in self.segments
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MediaPlaylist:
        playlist = cls(
            target_duration=float(data["target_duration"]),
            window=data.get("window"),
            playlist_type=data.get("playlist_type"),
            part_target=data.get("part_target"),
            next_sequence=int(data["next_sequence"]),
            discontinuity_sequence=int(data["discontinuity_sequence"]),
            ended=bool(data.get("ended")),
        )
        for seq, uri, duration, started_at, disc in data.get("segments", []):
            playlist.segments.append(Segment(int(seq), uri, float(duration), started_at, disc))
        return playlist

    def _target(self) -> int:
        """A segment cut long (a late keyframe from the source) must still fit: players
        reject an EXTINF that rounds above the target."""
        longest = max((round(s.duration) for s in self.segments), default=0)
        return max(math.ceil(self.target_duration), longest)

    def render(self) -> str:
        ll = self.part_target is not None
        lines = [
            "#EXTM3U",
            f"#EXT-X-VERSION:{9 if ll else 6}",
            f"#EXT-X-TARGETDURATION:{self._target()}",
            f"#EXT-X-MEDIA-SEQUENCE:{self.segments[0].sequence if self.segments else 0}",
            f"#EXT-X-DISCONTINUITY-SEQUENCE:{self.discontinuity_sequence}",
        ]
        if self.playlist_type:
            lines.append(f"#EXT-X-PLAYLIST-TYPE:{self.playlist_type}")
        if ll:
            assert self.part_target is not None
            lines.append(
                "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=NO,"
                f"PART-HOLD-BACK={3 * self.part_target:.3f}"
            )
            lines.append(f"#EXT-X-PART-INF:PART-TARGET={self.part_target:.3f}")
        with_parts = {s.sequence for s in list(self.segments)[-self.parts_kept :]}
        for segment in self.segments:
            if segment.discontinuity:
                lines.append("#EXT-X-DISCONTINUITY")
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{_iso(segment.started_at)}")
            if ll and segment.sequence in with_parts:
                lines += [_part(p) for p in segment.parts]
            lines.append(f"#EXTINF:{segment.duration:.3f},")
            lines.append(segment.uri)
        if ll and not self.ended:
            if self._discontinuity_next and self.pending_parts:
                lines.append("#EXT-X-DISCONTINUITY")
            lines += [_part(p) for p in self.pending_parts]
        if self.ended:
            lines.append("#EXT-X-ENDLIST")
        return "\n".join(lines) + "\n"


def _part(part: Part) -> str:
    independent = ",INDEPENDENT=YES" if part.independent else ""
    return f'#EXT-X-PART:DURATION={part.duration:.3f},URI="{part.uri}"{independent}'


def _iso(ts: float) -> str:
    moment = datetime.datetime.fromtimestamp(ts, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
