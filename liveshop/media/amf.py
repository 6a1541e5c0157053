"""AMF0, the value encoding of RTMP commands (``connect``, ``publish``) and metadata.

Only what publishers send and what a server answers: numbers, booleans, strings, objects,
ECMA arrays, strict arrays, null and undefined. No I/O.
"""

from __future__ import annotations

import struct
from typing import Any

from liveshop.errors import BadStream

NUMBER, BOOLEAN, STRING, OBJECT, NULL, UNDEFINED = 0, 1, 2, 3, 5, 6
ECMA_ARRAY, OBJECT_END, STRICT_ARRAY, DATE, LONG_STRING = 8, 9, 10, 11, 12

#: Nesting a publisher may send; deeper is an attack, not metadata.
MAX_DEPTH = 16


def encode(*values: Any) -> bytes:
    return b"".join(_encode(v) for v in values)


def _encode(value: Any) -> bytes:
    if value is None:
        return bytes([NULL])
    if isinstance(value, bool):
        return bytes([BOOLEAN, int(value)])
    if isinstance(value, int | float):
        return bytes([NUMBER]) + struct.pack(">d", float(value))
    if isinstance(value, str):
        raw = value.encode()
        if len(raw) > 0xFFFF:
            return bytes([LONG_STRING]) + struct.pack(">I", len(raw)) + raw
        return bytes([STRING]) + struct.pack(">H", len(raw)) + raw
    if isinstance(value, dict):
        body = b"".join(_key(k) + _encode(v) for k, v in value.items())
        return bytes([OBJECT]) + body + b"\x00\x00" + bytes([OBJECT_END])
    if isinstance(value, list | tuple):
        return (
            bytes([STRICT_ARRAY])
            + struct.pack(">I", len(value))
            + b"".join(_encode(v) for v in value)
        )
    raise TypeError(f"AMF0 cannot encode {type(value).__name__}")


def _key(key: str) -> bytes:
    raw = key.encode()
    return struct.pack(">H", len(raw)) + raw


def decode(data: bytes) -> list[Any]:
    """Every value in ``data``; malformed input raises :class:`BadStream`."""
    values = []
    pos = 0
    try:
        while pos < len(data):
            value, pos = _decode(data, pos, 0)
            values.append(value)
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise BadStream(f"malformed AMF0 at byte {pos}") from exc
    return values


def _string(data: bytes, pos: int, size_format: str = ">H") -> tuple[str, int]:
    (n,) = struct.unpack_from(size_format, data, pos)
    pos += struct.calcsize(size_format)
    if pos + n > len(data):
        raise IndexError("string past the end")
    return data[pos : pos + n].decode(), pos + n


def _decode(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    if depth > MAX_DEPTH:
        raise BadStream("AMF0 nested too deep")
    marker = data[pos]
    pos += 1
    if marker == NUMBER:
        return struct.unpack_from(">d", data, pos)[0], pos + 8
    if marker == BOOLEAN:
        return data[pos] != 0, pos + 1
    if marker == STRING:
        return _string(data, pos)
    if marker == LONG_STRING:
        return _string(data, pos, ">I")
    if marker in (NULL, UNDEFINED):
        return None, pos
    if marker in (OBJECT, ECMA_ARRAY):
        if marker == ECMA_ARRAY:
            pos += 4  # a count hint; the end marker is what ends it
        obj: dict[str, Any] = {}
        while True:
            key, pos = _string(data, pos)
            if not key and data[pos] == OBJECT_END:
                return obj, pos + 1
            obj[key], pos = _decode(data, pos, depth + 1)
    if marker == STRICT_ARRAY:
        (n,) = struct.unpack_from(">I", data, pos)
        pos += 4
        items = []
        for _ in range(n):
            item, pos = _decode(data, pos, depth + 1)
            items.append(item)
        return items, pos
    if marker == DATE:
        return struct.unpack_from(">d", data, pos)[0], pos + 10
    raise BadStream(f"unsupported AMF0 type {marker}")
