"""A number drawn into a picture, machine-readable after encoding and scaling: how the
glass-to-glass probes and tests know which frame (or which capture instant) they see.

32 square blocks across the top of the frame, white for a 1 bit, black for a 0; a block is
1/32 of the width, so any rendition of the same aspect ratio reads back the same number.
"""

from __future__ import annotations

import av
import numpy as np

BITS = 32


def stamp(image: np.ndarray, value: int) -> np.ndarray:
    """Draw ``value`` (mod 2**32) into an RGB ``image`` in place; returns it."""
    width = image.shape[1]
    height = max(1, round(width / BITS))
    for bit in range(BITS):
        left, right = round(bit * width / BITS), round((bit + 1) * width / BITS)
        image[:height, left:right] = 255 if value >> bit & 1 else 0
    return image


def read_stamp(frame: av.VideoFrame) -> int:
    image = frame.to_ndarray(format="rgb24")
    block = image.shape[1] / BITS
    row = int(block / 2)
    value = 0
    for bit in range(BITS):
        if image[row, int(bit * block + block / 2)].mean() > 128:
            value |= 1 << bit
    return value


def picture(width: int, height: int, value: int) -> av.VideoFrame:
    """A moving test picture (so encoders have something to code) stamped with ``value``."""
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:, :, 0] = (np.arange(width) + value * 4) % 256
    image[:, :, 1] = ((np.arange(height) + value * 2) % 256)[:, None]
    image[:, :, 2] = 96
    return av.VideoFrame.from_ndarray(stamp(image, value), format="rgb24")
