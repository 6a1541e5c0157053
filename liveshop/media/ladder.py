"""The ABR ladder: which renditions a source gets, how they are encoded, and which of them a
machine can afford. No I/O.

Every rendition is encoded with the same frame rate and the same keyframe interval (one
keyframe per segment, scene-cut keyframes off), so segment boundaries line up across
renditions and a player can switch at any boundary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from liveshop.errors import InvalidRequest


@dataclass(frozen=True)
class Rung:
    name: str
    height: int
    video_kbps: int
    audio_kbps: int = 128


#: The default ladder, top first (the issue's 1080p/720p/480p/360p).
DEFAULT_LADDER: tuple[Rung, ...] = (
    Rung("1080p", 1080, 5000),
    Rung("720p", 720, 2800),
    Rung("480p", 480, 1200, 96),
    Rung("360p", 360, 700, 64),
)


#: The default ladder as a setting (``media_ladder``): ``height:video_kbps[:audio_kbps]``.
DEFAULT_LADDER_SPEC = "1080:5000,720:2800,480:1200:96,360:700:64"


def parse_ladder(spec: str) -> tuple[Rung, ...]:
    """A ladder from ``height:video_kbps[:audio_kbps]`` items, e.g. ``"720:2800,360:700"``
    (top first after sorting; heights are the short side, 144..4320)."""
    rungs = []
    for item in spec.split(","):
        parts = item.strip().split(":")
        try:
            if len(parts) not in (2, 3):
                raise ValueError
            height, video = int(parts[0]), int(parts[1])
            audio = int(parts[2]) if len(parts) == 3 else 128
        except ValueError:
            message = f"ladder rung {item!r} is not height:video_kbps[:audio_kbps]"
            raise InvalidRequest(message) from None
        if not 144 <= height <= 4320 or not 100 <= video <= 100_000 or not 16 <= audio <= 512:
            raise InvalidRequest(f"ladder rung {item!r} is out of range")
        rungs.append(Rung(f"{height}p", height, video, audio))
    if not rungs or len({r.height for r in rungs}) != len(rungs):
        raise InvalidRequest("a ladder needs at least one rung and distinct heights")
    return tuple(sorted(rungs, key=lambda r: -r.height))


@dataclass(frozen=True)
class Rendition:
    name: str
    width: int
    height: int
    video_kbps: int
    audio_kbps: int
    fps: float
    #: Frames between keyframes: one per segment, the same on every rendition.
    gop: int

    @property
    def period(self) -> float:
        """Seconds of one segment: ``gop`` frames (never more than ``segment_seconds``)."""
        return self.gop / self.fps

    @property
    def bandwidth(self) -> int:
        """Bits per second as HLS's BANDWIDTH wants it (peak: 10% over the target)."""
        return int((self.video_kbps + self.audio_kbps) * 1000 * 1.1)

    def x264_options(self, preset: str = "veryfast") -> dict[str, str]:
        """libx264 settings: aligned keyframes, no B-frames (low latency), capped rate."""
        return {
            "preset": preset,
            "tune": "zerolatency",
            "g": str(self.gop),
            "keyint_min": str(self.gop),
            "sc_threshold": "0",
            "bf": "0",
            "b": f"{self.video_kbps}k",
            "maxrate": f"{self.video_kbps}k",
            "bufsize": f"{self.video_kbps * 2}k",
        }


def even(x: float) -> int:
    """H.264 with 4:2:0 chroma needs even dimensions."""
    return max(2, round(x / 2) * 2)


def ladder_for(
    width: int,
    height: int,
    fps: float,
    *,
    segment_seconds: float = 2.0,
    rungs: Sequence[Rung] = DEFAULT_LADDER,
) -> list[Rendition]:
    """The renditions for a ``width`` x ``height`` source at ``fps``: every rung at or below
    the source (never upscaled), keeping its aspect ratio; a source smaller than every rung
    gets one rendition at its own size. A rung's height is the short side, so a vertical
    phone stream's "1080p" is 1080 wide."""
    if width < 16 or height < 16 or width > 8192 or height > 8192:
        raise InvalidRequest(f"unsupported source size {width}x{height}")
    if not 1 <= fps <= 120:
        raise InvalidRequest(f"unsupported frame rate {fps}")
    if not 0.5 <= segment_seconds <= 10:
        raise InvalidRequest("segments must be 0.5..10 seconds")
    # Rounded down: a segment is never longer than asked, so the playlists' target duration
    # (segment_seconds rounded up) holds for every segment at any frame rate (29.97 fps
    # gets 29 frames, 0.968 s).
    gop = max(1, math.floor(fps * segment_seconds + 1e-6))
    short = min(width, height)
    chosen = [r for r in rungs if r.height <= short] or [
        Rung(f"{even(short)}p", short, rungs[-1].video_kbps, rungs[-1].audio_kbps)
    ]
    out = []
    for rung in chosen:
        scale = rung.height / short
        w, h = even(width * scale), even(height * scale)
        out.append(Rendition(rung.name, w, h, rung.video_kbps, rung.audio_kbps, fps, gop))
    return out


def target_duration(segment_seconds: float) -> int:
    """EXT-X-TARGETDURATION of every playlist of a stream: whole seconds, at least every
    segment's length (RFC 8216 4.3.3.1). Fixed for the stream's life."""
    return max(1, math.ceil(segment_seconds - 1e-9))


@dataclass(frozen=True)
class EncodeCost:
    """What a stream costs on one machine, in CPU seconds per frame: encoding a ``w`` x ``h``
    frame costs ``per_frame + per_megapixel * w * h / 1e6`` (libx264 at one preset),
    scaling the source to a rung ``scale_per_megapixel`` per megapixel read and written,
    decoding the source ``decode_per_megapixel`` per megapixel. The rest (sound, muxing,
    Python) is ``overhead`` times that. ``loadtest/bench_ladder.py`` compares the model with
    the ladder's measured CPU."""

    per_frame: float
    per_megapixel: float
    decode_per_megapixel: float = 0.0
    scale_per_megapixel: float = 0.0
    overhead: float = 1.1

    def rung(self, r: Rendition, source: tuple[int, int] | None = None) -> float:
        """Cores one rung keeps busy (CPU seconds per second of video), scaled from a
        ``source`` of another size."""
        pixels = r.width * r.height / 1e6
        frame = self.per_frame + self.per_megapixel * pixels
        if source is not None and source != (r.width, r.height):
            frame += self.scale_per_megapixel * (source[0] * source[1] / 1e6 + pixels)
        return frame * self.overhead * r.fps

    def source(self, width: int, height: int, fps: float) -> float:
        """Cores decoding the source keeps busy."""
        return self.decode_per_megapixel * width * height / 1e6 * fps


@dataclass(frozen=True)
class Budget:
    """What a stream's ladder may use: ``share`` of the node's ``cores`` in all, and
    ``share`` of one core for the encoding itself, which runs on one thread (the rungs are
    encoded one after the other; libx264's own threads gain little at these sizes: the
    1080p ladder measured 1.03 cores and 1.03x real time on 2 cores)."""

    cost: EncodeCost
    cores: float
    share: float = 0.75


def fit_ladder(
    renditions: Sequence[Rendition], budget: Budget, *, source: tuple[int, int] | None = None
) -> list[Rendition]:
    """The renditions a machine sustains: the top rungs are dropped until the encoding fits
    one thread's share and decoding ``source`` plus the encoding fits the node's (the lowest
    rung always stays: a stream with no rendition is no stream). Sizing at the start keeps
    a small machine from starting a ladder it could only shed."""
    kept = list(renditions)
    fps = kept[0].fps if kept else 30.0
    decode = budget.cost.source(*source, fps) if source else 0.0

    def fits() -> bool:
        encode = sum(budget.cost.rung(r, source) for r in kept)
        return encode <= budget.share and decode + encode <= budget.share * budget.cores

    while len(kept) > 1 and not fits():
        kept.pop(0)
    return kept
