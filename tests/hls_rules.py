"""The rules of RFC 8216 (HLS), checked on every playlist the media tests read.

Each text is parsed by the ``m3u8`` package in strict mode (an unknown line, or a tag the
declared EXT-X-VERSION does not allow, fails), then checked against the RFC. An
:class:`HlsChecker` remembers what it saw of each playlist URI, so the rules that span
reloads are checked too:

- one EXT-X-TARGETDURATION, an integer, the same on every reload of a playlist and on every
  rendition of a ladder (4.3.3.1, 6.2.4); every EXTINF rounds to it or less (4.3.3.1);
- the media sequence and the discontinuity sequence never go back; a segment keeps its URI,
  its duration and its Discontinuity Sequence Number for as long as it is listed (6.2.1,
  6.2.2); an EVENT playlist only appends; a playlist with EXT-X-ENDLIST never changes again;
- a live playlist that dropped segments still holds three target durations (6.2.2);
- matching content of two renditions (liveshop numbers segments alike on every rung) has the
  same Discontinuity Sequence Number, start time and duration (6.2.4);
- a master playlist gives every variant BANDWIDTH, RESOLUTION and CODECS (4.3.4.2), and the
  CODECS name what the segments hold (``check_codecs``).
"""

from __future__ import annotations

import datetime
import io
import math
import re
from dataclasses import dataclass, field

import av
import m3u8

from liveshop.media.hls import avc1_codec

_CODECS = re.compile(r"^avc1\.[0-9a-f]{6}(,mp4a\.40\.2)?$")


class PlaylistError(AssertionError):
    pass


def _fail(uri: str, rule: str, text: str) -> None:
    raise PlaylistError(f"{uri}: {rule}\n{text}")


def rounded(duration: float) -> int:
    return math.floor(duration + 0.5)


def parse(uri: str, text: str) -> m3u8.M3U8:
    if not text.startswith("#EXTM3U\n"):
        _fail(uri, "does not start with #EXTM3U (4.3.1.1)", text)
    try:
        return m3u8.M3U8(text, strict=True)
    except Exception as exc:  # m3u8 raises plain Exception for version mismatches
        raise PlaylistError(f"{uri}: m3u8 (strict) refused it: {exc}\n{text}") from exc


@dataclass
class _Segment:
    uri: str
    duration: float
    discontinuity: int
    at: datetime.datetime | None


@dataclass
class _History:
    target: int
    media_sequence: int
    discontinuity_sequence: int
    playlist_type: str | None
    ended_text: str | None = None
    segments: dict[int, _Segment] = field(default_factory=dict)


@dataclass
class HlsChecker:
    """Checks playlists as a player would see them over time; raises PlaylistError."""

    media: dict[str, _History] = field(default_factory=dict)
    checked: int = 0

    def media_playlist(self, uri: str, text: str) -> dict[int, _Segment]:
        """Check one fetch of a media playlist; its segments by media sequence number."""
        playlist = parse(uri, text)
        if playlist.is_variant:
            _fail(uri, "a master playlist where a media playlist was expected", text)
        tags = [line for line in text.splitlines() if line.startswith("#EXT-X-TARGETDURATION:")]
        if len(tags) != 1 or not tags[0].split(":", 1)[1].isdigit():
            _fail(uri, "needs exactly one integer EXT-X-TARGETDURATION (4.3.3.1)", text)
        target = int(tags[0].split(":", 1)[1])
        sequence = playlist.media_sequence or 0
        discontinuity = playlist.discontinuity_sequence or 0
        if sequence < 0 or discontinuity < 0:
            _fail(uri, "negative sequence numbers", text)
        segments: dict[int, _Segment] = {}
        uris: set[str] = set()
        last_at: datetime.datetime | None = None
        for n, segment in enumerate(playlist.segments):
            duration = float(segment.duration)
            if not duration > 0:
                _fail(uri, f"segment {segment.uri} has no duration", text)
            if rounded(duration) > target:
                _fail(uri, f"EXTINF {duration} rounds above the target {target} (4.3.3.1)", text)
            if segment.uri in uris:
                _fail(uri, f"{segment.uri} listed twice", text)
            uris.add(segment.uri)
            if segment.discontinuity:
                discontinuity += 1
            at = segment.program_date_time
            if at is not None and last_at is not None and at < last_at:
                _fail(uri, "EXT-X-PROGRAM-DATE-TIME goes back", text)
            last_at = at or last_at
            segments[sequence + n] = _Segment(segment.uri, duration, discontinuity, at)
        total = sum(s.duration for s in segments.values())
        live = not playlist.is_endlist and playlist.playlist_type is None
        if live and sequence > 0 and total < 3 * target - 1e-6:
            _fail(uri, f"a live window of {total:.3f} s < three target durations (6.2.2)", text)
        if (playlist.playlist_type or "").upper() == "VOD" and not playlist.is_endlist:
            _fail(uri, "a VOD playlist without EXT-X-ENDLIST", text)
        self._against_history(uri, text, playlist, target, segments)
        self.checked += 1
        return segments

    def _against_history(
        self,
        uri: str,
        text: str,
        playlist: m3u8.M3U8,
        target: int,
        segments: dict[int, _Segment],
    ) -> None:
        kind = (playlist.playlist_type or "").upper() or None
        sequence = playlist.media_sequence or 0
        discontinuity = playlist.discontinuity_sequence or 0
        seen = self.media.get(uri)
        if seen is None:
            self.media[uri] = _History(target, sequence, discontinuity, kind)
            seen = self.media[uri]
        else:
            if seen.ended_text is not None and text != seen.ended_text:
                _fail(uri, "changed after EXT-X-ENDLIST (6.2.1)", text)
            if target != seen.target:
                _fail(uri, f"target duration changed {seen.target} -> {target} (6.2.1)", text)
            if sequence < seen.media_sequence:
                _fail(uri, "EXT-X-MEDIA-SEQUENCE went back (6.2.1)", text)
            if discontinuity < seen.discontinuity_sequence:
                _fail(uri, "EXT-X-DISCONTINUITY-SEQUENCE went back (6.2.1)", text)
            if seen.playlist_type != kind and (seen.playlist_type, kind) != ("EVENT", "VOD"):
                _fail(uri, f"playlist type changed {seen.playlist_type} -> {kind}", text)
            removed = sequence != seen.media_sequence or not set(seen.segments) <= set(segments)
            if seen.playlist_type == "EVENT" and removed:
                _fail(uri, "an EVENT playlist removed segments (4.3.3.5)", text)
            for number, segment in segments.items():
                before = seen.segments.get(number)
                if before is None:
                    continue
                if (before.uri, before.discontinuity) != (segment.uri, segment.discontinuity):
                    _fail(uri, f"segment {number} changed ({before} -> {segment})", text)
                if abs(before.duration - segment.duration) > 1e-3:
                    _fail(uri, f"segment {number} changed its duration", text)
            seen.media_sequence, seen.discontinuity_sequence = sequence, discontinuity
            seen.playlist_type = kind
        seen.segments.update(segments)
        if playlist.is_endlist:
            seen.ended_text = text

    def master_playlist(self, uri: str, text: str) -> list[tuple[str, str]]:
        """Check a master playlist; its variants as ``(uri, codecs)``."""
        playlist = parse(uri, text)
        if not playlist.is_variant:
            _fail(uri, "a media playlist where a master playlist was expected", text)
        variants = []
        for variant in playlist.playlists:
            info = variant.stream_info
            if not info.bandwidth or not info.resolution or not info.codecs:
                _fail(uri, "a variant needs BANDWIDTH, RESOLUTION and CODECS (4.3.4.2)", text)
            if not _CODECS.match(info.codecs):
                _fail(uri, f"CODECS {info.codecs!r} is not avc1.PPCCLL[,mp4a.40.2]", text)
            variants.append((variant.uri, info.codecs))
        if len({v for v, _ in variants}) != len(variants):
            _fail(uri, "a variant listed twice", text)
        self.checked += 1
        return variants

    def ladder(self, playlists: dict[str, str]) -> None:
        """Check the media playlists of one ladder read at about the same moment (each is
        also checked on its own): one target duration, and matching content matching."""
        parsed = {uri: self.media_playlist(uri, text) for uri, text in playlists.items()}
        targets = {self.media[uri].target for uri in playlists}
        if len(targets) > 1:
            raise PlaylistError(f"renditions disagree on the target duration: {targets}")
        numbers: dict[int, tuple[str, _Segment]] = {}
        for uri, segments in parsed.items():
            for number, segment in segments.items():
                if number not in numbers:
                    numbers[number] = (uri, segment)
                    continue
                other_uri, other = numbers[number]
                same_time = (
                    other.at is None
                    or segment.at is None
                    or abs((other.at - segment.at).total_seconds()) < 0.1
                )
                if (
                    other.discontinuity != segment.discontinuity
                    or abs(other.duration - segment.duration) > 1e-3
                    or not same_time
                ):
                    raise PlaylistError(
                        f"segment {number} differs between {other_uri} ({other}) and "
                        f"{uri} ({segment}) (6.2.4)"
                    )


def check_codecs(codecs: str, segment: bytes) -> None:
    """The CODECS a master playlist declares for a variant are those of its segment: the
    H.264 profile and level of the segment's sequence parameter set, and AAC-LC if (and
    only if) it has sound."""
    declared = codecs.split(",")
    found = avc1_codec(segment)
    if found != declared[0]:
        raise PlaylistError(f"CODECS say {declared[0]}, the segment's SPS says {found}")
    with av.open(io.BytesIO(segment), format="mpegts") as container:
        sound = bool(container.streams.audio)
    if sound != ("mp4a.40.2" in declared):
        raise PlaylistError(f"CODECS {codecs!r} but the segment has sound: {sound}")
