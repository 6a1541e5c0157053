"""HLS playlists as text: the master playlist of a ladder, the sliding-window media
playlist of one rendition and the recording (every segment). No I/O: the transcoder hands
in segments as they are written.

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


@dataclass
class Segment:
    sequence: int
    uri: str
    duration: float
    started_at: float  # wall clock of its first frame (EXT-X-PROGRAM-DATE-TIME)
    discontinuity: bool = False
    #: Its lines in a playlist, rendered once: a recording re-renders every segment it
    #: holds each time one is added.
    text: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        marker = "#EXT-X-DISCONTINUITY\n" if self.discontinuity else ""
        self.text = (
            f"{marker}#EXT-X-PROGRAM-DATE-TIME:{_iso(self.started_at)}\n"
            f"#EXTINF:{self.duration:.3f},\n{self.uri}\n"
        )


@dataclass
class MediaPlaylist:
    """One rendition's live playlist: the last ``window`` segments. ``window=None`` keeps
    every segment: the recording (``playlist_type`` EVENT while live, VOD once ended)."""

    target_duration: float
    window: int | None = 6
    playlist_type: str | None = None
    segments: deque[Segment] = field(default_factory=deque)
    next_sequence: int = 0
    discontinuity_sequence: int = 0
    ended: bool = False
    _discontinuity_next: bool = False

    def add_segment(self, uri: str, duration: float, started_at: float) -> Segment:
        segment = Segment(self.next_sequence, uri, duration, started_at, self._discontinuity_next)
        self._discontinuity_next = False
        self.next_sequence += 1
        self._append(segment)
        return segment

    def _append(self, segment: Segment) -> None:
        self.segments.append(segment)
        # Players reject an EXTINF that rounds above the target, and the target must not
        # change: it only grows, if a source's late keyframe cut a segment long.
        self.target_duration = max(self.target_duration, round(segment.duration))
        while self.window is not None and len(self.segments) > self.window:
            if self.segments.popleft().discontinuity:
                self.discontinuity_sequence += 1

    def restart(self) -> None:
        """The encoder started again (a new incarnation): the next segment follows a
        discontinuity."""
        self._discontinuity_next = True

    def end(self) -> None:
        self.ended = True
        if self.playlist_type == "EVENT":
            self.playlist_type = "VOD"

    def tail(self, window: int) -> MediaPlaylist:
        """The live playlist this recording's last ``window`` segments make (what a
        restarted transcoder continues from)."""
        live = MediaPlaylist(self.target_duration, window, next_sequence=self.next_sequence)
        segments = list(self.segments)
        live.discontinuity_sequence = self.discontinuity_sequence + sum(
            s.discontinuity for s in segments[:-window]
        )
        live.segments.extend(segments[-window:])
        return live

    @classmethod
    def parse(cls, text: str) -> MediaPlaylist:
        """A playlist :meth:`render` wrote (a recording, read back after a restart)."""
        playlist = cls(target_duration=1.0, window=None)
        sequence, discontinuity, started_at, duration = 0, False, 0.0, 0.0
        for line in text.splitlines():
            tag, _, value = line.partition(":")
            if tag == "#EXT-X-TARGETDURATION":
                playlist.target_duration = float(value)
            elif tag == "#EXT-X-MEDIA-SEQUENCE":
                sequence = int(value)
            elif tag == "#EXT-X-DISCONTINUITY-SEQUENCE":
                playlist.discontinuity_sequence = int(value)
            elif tag == "#EXT-X-PLAYLIST-TYPE":
                playlist.playlist_type = value
            elif tag == "#EXT-X-DISCONTINUITY":
                discontinuity = True
            elif tag == "#EXT-X-PROGRAM-DATE-TIME":
                started_at = datetime.datetime.fromisoformat(value).timestamp()
            elif tag == "#EXTINF":
                duration = float(value.rstrip(","))
            elif tag == "#EXT-X-ENDLIST":
                playlist.ended = True
            elif line and not line.startswith("#"):
                playlist._append(Segment(sequence, line, duration, started_at, discontinuity))
                sequence, discontinuity = sequence + 1, False
        playlist.next_sequence = sequence
        return playlist

    def render(self) -> str:
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:6",
            f"#EXT-X-TARGETDURATION:{math.ceil(self.target_duration)}",
            f"#EXT-X-MEDIA-SEQUENCE:{self.segments[0].sequence if self.segments else 0}",
            f"#EXT-X-DISCONTINUITY-SEQUENCE:{self.discontinuity_sequence}",
        ]
        if self.playlist_type:
            lines.append(f"#EXT-X-PLAYLIST-TYPE:{self.playlist_type}")
        end = "#EXT-X-ENDLIST\n" if self.ended else ""
        return "\n".join(lines) + "\n" + "".join(s.text for s in self.segments) + end


def _iso(ts: float) -> str:
    moment = datetime.datetime.fromtimestamp(ts, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
