"""A token bucket: sustained ``rate`` per second with bursts up to ``burst``. Time is passed in."""

from __future__ import annotations


class TokenBucket:
    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.updated = now

    def take(self, now: float, cost: float = 1.0) -> bool:
        elapsed = max(0.0, now - self.updated)
        self.updated = max(self.updated, now)  # a clock stepping back must not refill twice
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False


class PerUser:
    """Each user's share of one gateway: at most ``max_connections`` sockets, and one bucket
    for all of them, so that opening more sockets buys a user no more requests (the
    per-connection bucket still applies to each). Time is passed in."""

    def __init__(self, *, max_connections: int, rate: float, burst: int) -> None:
        self.max_connections = max_connections
        self.rate = rate
        self.burst = burst
        #: user id -> (open connections, their shared bucket)
        self._users: dict[str, tuple[int, TokenBucket]] = {}

    def open(self, user_id: str, now: float) -> bool:
        """Count a new connection; False (and nothing counted) when the user has too many."""
        count, bucket = self._users.get(user_id) or (0, TokenBucket(self.rate, self.burst, now))
        if count >= self.max_connections:
            return False
        self._users[user_id] = (count + 1, bucket)
        return True

    def close(self, user_id: str) -> None:
        count, bucket = self._users.get(user_id, (0, None))
        if count <= 1 or bucket is None:
            self._users.pop(user_id, None)
        else:
            self._users[user_id] = (count - 1, bucket)

    def take(self, user_id: str, now: float) -> bool:
        held = self._users.get(user_id)
        return held is None or held[1].take(now)

    def connections(self, user_id: str) -> int:
        return self._users.get(user_id, (0, None))[0]
