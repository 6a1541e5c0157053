"""The one place that reads the wall clock.

Domain code never calls this: actors and gateways read ``now()`` and pass it in, so tests can
drive time by hand.
"""

from __future__ import annotations

import time


def now() -> float:
    """Seconds since the epoch, as a float."""
    return time.time()


def now_ms() -> int:
    return int(time.time() * 1000)
