"""Where HLS output lives, behind a small interface, and how it is served to a CDN.

Guarantees of a :class:`SegmentStore`: ``put`` is atomic (a reader sees the whole new
object or the old one, never part of one); a segment, once written, is never rewritten under
the same name (so it may be cached forever); playlists are rewritten in place. Names are
relative paths of ``[A-Za-z0-9._-]`` parts: nothing can escape the store.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

from liveshop.errors import InvalidRequest

_PART = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")

CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".jpg": "image/jpeg",
}


def check_name(name: str) -> str:
    parts = name.split("/")
    if not parts or any(not _PART.match(p) or p in (".", "..") for p in parts):
        raise InvalidRequest(f"not a media object name: {name!r}")
    return name


def cache_control(name: str) -> str:
    """Segments, parts and thumbnails are immutable; playlists change every part or
    segment, so a CDN may hold them for a moment only."""
    if name.endswith(".m3u8"):
        return "public, max-age=1, stale-while-revalidate=1"
    return "public, max-age=31536000, immutable"


def content_type(name: str) -> str:
    return CONTENT_TYPES.get(Path(name).suffix, "application/octet-stream")


class SegmentStore(Protocol):
    def put(self, name: str, data: bytes) -> None: ...

    def get(self, name: str) -> bytes | None: ...

    def delete(self, name: str) -> None: ...


class LocalDiskStore:
    """The default store: files under one directory (serve it, or put a CDN in front)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, name: str) -> Path:
        return self.root / check_name(name)

    def put(self, name: str, data: bytes) -> None:
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)  # atomic on POSIX: readers see old or new
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, name: str) -> bytes | None:
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)
