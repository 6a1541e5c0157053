"""HLS playlists as text: the master playlist of a ladder, the sliding-window media
playlist of one rendition and the recording (every segment). No I/O: the transcoder hands
in segments as they are written.

The rules of RFC 8216 kept here, so no playlist can break them whatever the encoder does:
the target duration is fixed when a playlist is made and never changes (4.3.3.1; players
reject a change), no segment's duration rounds above it (refused, not listed), and a live
window never shrinks below three target durations (6.2.2).

A restart of the transcoder continues the media sequence with a discontinuity, so players
carry on instead of failing (``EXT-X-DISCONTINUITY`` plus ``EXT-X-DISCONTINUITY-SEQUENCE``
counting those that left the window).
"""

from __future__ import annotations

import datetime
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from liveshop.media.ladder import Rendition

#: AAC-LC, the ladder's audio (RFC 6381 codec string).
AAC_LC = "mp4a.40.2"


def avc1_codec(annexb: bytes) -> str | None:
    """``avc1.PPCCLL`` (profile, constraint flags, level; RFC 6381) from the first sequence
    parameter set in H.264 Annex B bytes (an encoded keyframe), or None without one. The
    master playlist declares what the encoder wrote, not what it was hoped to write."""
    start = 0
    while (start := annexb.find(b"\x00\x00\x01", start)) >= 0:
        header = start + 3
        if header + 3 < len(annexb) and annexb[header] & 0x1F == 7:  # nal_unit_type 7: SPS
            profile, flags, level = annexb[header + 1 : header + 4]
            return f"avc1.{profile:02x}{flags:02x}{level:02x}"
        start = header
    return None


def master_playlist(
    renditions: Sequence[Rendition],
    *,
    codecs: Mapping[str, str],
    uri: str = "{name}/index.m3u8",
) -> str:
    """The ladder's master playlist: each rendition with its bandwidth, size, frame rate and
    ``codecs[name]``, the codecs actually encoded (RFC 8216 4.3.4.2 wants every one)."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:6", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for r in renditions:
        average = (r.video_kbps + r.audio_kbps) * 1000
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={r.bandwidth},AVERAGE-BANDWIDTH={average},"
            f'RESOLUTION={r.width}x{r.height},FRAME-RATE={r.fps:.3f},CODECS="{codecs[r.name]}"'
        )
        lines.append(uri.format(name=r.name))
    return "\n".join(lines) + "\n"


def rounded(duration: float) -> int:
    """A duration rounded to the nearest integer, halves up: how RFC 8216 compares an
    EXTINF with the target duration."""
    return math.floor(duration + 0.5)


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
    """One rendition's live playlist: the last ``window`` segments (more when those are
    shorter than three target durations). ``window=None`` keeps every segment: the recording
    (``playlist_type`` EVENT while live, VOD once ended)."""

    #: Whole seconds; fixed for the playlist's life.
    target_duration: int
    window: int | None = 6
    playlist_type: str | None = None
    segments: deque[Segment] = field(default_factory=deque)
    next_sequence: int = 0
    discontinuity_sequence: int = 0
    ended: bool = False
    _discontinuity_next: bool = False

    def add_segment(self, uri: str, duration: float, started_at: float) -> Segment:
        """List a segment; ValueError (and nothing listed) if it is not positive or rounds
        above the target duration: the encoder's grid makes that impossible, and a
        playlist that broke the rule would be rejected by players."""
        if duration <= 0 or rounded(duration) > self.target_duration:
            raise ValueError(
                f"a {duration:.3f} s segment does not fit target duration {self.target_duration}"
            )
        segment = Segment(self.next_sequence, uri, duration, started_at, self._discontinuity_next)
        self._discontinuity_next = False
        self.next_sequence += 1
        self._append(segment)
        return segment

    def _append(self, segment: Segment) -> None:
        self.segments.append(segment)
        while self.window is not None and len(self.segments) > self.window:
            left = sum(s.duration for s in self.segments) - self.segments[0].duration
            if left < 3 * self.target_duration:
                break  # RFC 8216 6.2.2: a live playlist keeps three target durations
            if self.segments.popleft().discontinuity:
                self.discontinuity_sequence += 1

    @property
    def duration(self) -> float:
        return sum(s.duration for s in self.segments)

    @property
    def next_discontinuity(self) -> int:
        """The Discontinuity Sequence Number the next segment will carry (RFC 8216 3): a
        playlist started beside this one gives its first segment the same, so matching
        content of two renditions has matching numbers (6.2.4)."""
        tags = sum(s.discontinuity for s in self.segments) + self._discontinuity_next
        return self.discontinuity_sequence + tags

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
        keep = min(window, len(segments))
        while (
            keep < len(segments)
            and sum(s.duration for s in segments[-keep:]) < 3 * self.target_duration
        ):
            keep += 1  # three target durations at least, as _append keeps
        live.discontinuity_sequence = self.discontinuity_sequence + sum(
            s.discontinuity for s in segments[: len(segments) - keep]
        )
        live.segments.extend(segments[len(segments) - keep :])
        return live

    @classmethod
    def parse(cls, text: str) -> MediaPlaylist:
        """A playlist :meth:`render` wrote (a recording, read back after a restart)."""
        playlist = cls(target_duration=1, window=None)
        sequence, discontinuity, started_at, duration = 0, False, 0.0, 0.0
        for line in text.splitlines():
            tag, _, value = line.partition(":")
            if tag == "#EXT-X-TARGETDURATION":
                playlist.target_duration = int(value)
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
            f"#EXT-X-TARGETDURATION:{self.target_duration}",
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
