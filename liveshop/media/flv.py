"""FLV tags: what RTMP audio/video/data messages are, written as a stream a decoder reads.

The RTMP ingest turns each media message into a tag without touching the codec data, so
the transcoder's demuxer (FFmpeg's FLV reader) sees exactly what the publisher sent. No I/O.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

AUDIO, VIDEO, SCRIPT = 8, 9, 18

#: FLV file header (audio and video present) followed by PreviousTagSize0.
HEADER = b"FLV\x01\x05\x00\x00\x00\x09" + b"\x00\x00\x00\x00"

AVC, HEVC_ENHANCED_FLAG = 7, 0x80
AAC = 10


@dataclass(frozen=True, slots=True)
class Tag:
    kind: int  # AUDIO, VIDEO or SCRIPT
    timestamp: int  # milliseconds
    body: bytes

    def encode(self) -> bytes:
        ts = self.timestamp & 0xFFFFFFFF
        size = len(self.body)
        head = struct.pack(">B", self.kind) + size.to_bytes(3, "big")
        head += (ts & 0xFFFFFF).to_bytes(3, "big") + bytes([ts >> 24]) + b"\x00\x00\x00"
        return head + self.body + struct.pack(">I", 11 + size)

    @property
    def is_keyframe(self) -> bool:
        """A video tag a decoder can start from (frame type 1)."""
        return self.kind == VIDEO and bool(self.body) and (self.body[0] >> 4) & 0x7 == 1

    @property
    def is_config(self) -> bool:
        """Codec configuration a decoder needs before any frame: AVC/HEVC decoder
        configuration record, AAC AudioSpecificConfig, or the stream's metadata."""
        if self.kind == SCRIPT:
            return True
        if len(self.body) < 2:
            return False
        if self.kind == VIDEO:
            if self.body[0] & HEVC_ENHANCED_FLAG:  # enhanced RTMP: packet type in low bits
                return self.body[0] & 0x0F == 0
            return self.body[0] & 0x0F == AVC and self.body[1] == 0
        return self.body[0] >> 4 == AAC and self.body[1] == 0
