"""A room's chat rules and moderation state: who may speak, how often, and what.

Staff (host, co-host, moderator, service) are exempt from every rule here.
"""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from liveshop.errors import (
    AudienceRestricted,
    Banned,
    ChatFrozen,
    Forbidden,
    InvalidRequest,
    MessageBlocked,
    Muted,
    RateLimited,
    SlowMode,
)
from liveshop.rooms.automod import Verdict
from liveshop.text import check_line, require
from liveshop.tokens import SPEAKING_ROLES, STAFF_ROLES, Role

AUDIENCES = ("everyone", "followers", "subscribers")
FALLBACKS = ("allow", "block")
MAX_BLOCKED_WORDS = 500
MAX_MUTE_SECONDS = 7 * 24 * 3600
#: Remember this many users' recent message times (oldest forgotten first).
MAX_TRACKED_SPEAKERS = 100_000
#: The reactions a room takes unless its host configures others (the pages show these).
DEFAULT_REACTIONS = ("heart", "fire", "laugh", "clap", "wow", "cart")
#: A room's reaction set is configured by staff, never grown by viewers: a viewer sending
#: made-up kinds must not fill a shared table and lock everyone else out of ``heart``.
MAX_REACTION_KINDS = 16
REACTION_KIND = re.compile(r"^[a-z0-9_]{1,32}$")


@dataclass
class ChatRules:
    slow_mode: int = 0  # seconds between two messages of one user; 0 = off
    audience: str = "everyone"
    rate_limit: int = 20  # messages per user per window
    rate_window: int = 30  # seconds
    blocked_words: tuple[str, ...] = ()
    automod_fallback: str = "allow"
    #: An operator's emergency control: only staff speak until it is lifted.
    frozen: bool = False
    reactions: tuple[str, ...] = DEFAULT_REACTIONS
    mutes: dict[str, float] = field(default_factory=dict)  # user -> until (epoch seconds)
    bans: dict[str, str] = field(default_factory=dict)  # user -> reason
    _recent: dict[str, deque[float]] = field(default_factory=dict, repr=False)
    _pattern: re.Pattern[str] | None = field(default=None, repr=False)

    # -- the checks ------------------------------------------------------------------------

    def check_speaker(self, user_id: str, roles: frozenset[Role], badges: frozenset[str],
                      now: float) -> None:  # fmt: skip
        """Raise the first rule this user breaks by speaking now (chat, ask)."""
        if roles & STAFF_ROLES:
            return
        if not roles & SPEAKING_ROLES:
            raise Forbidden("your token does not let you speak in this room")
        if self.frozen:
            raise ChatFrozen("chat is paused by the channel's operators")
        if user_id in self.bans:
            raise Banned("you are banned from this room")
        until = self.mutes.get(user_id)
        if until is not None:
            if until > now:
                raise Muted(
                    f"you are muted for {math.ceil(until - now)} more seconds",
                    details={"until": until},
                )
            del self.mutes[user_id]
        if self.audience == "followers" and not badges & {"follower", "subscriber"}:
            raise AudienceRestricted("chat is for followers only right now")
        if self.audience == "subscribers" and "subscriber" not in badges:
            raise AudienceRestricted("chat is for subscribers only right now")

    def check_pace(self, user_id: str, roles: frozenset[Role], now: float) -> None:
        """Slow mode and the per-user rate limit; records the message when it passes."""
        if roles & STAFF_ROLES:
            return
        # Least recently active speakers are forgotten first (re-inserted on every message).
        times = self._recent.pop(user_id, None)
        if times is None:
            if len(self._recent) >= MAX_TRACKED_SPEAKERS:
                self._recent.pop(next(iter(self._recent)))
            times = deque()
        self._recent[user_id] = times
        while times and times[0] <= now - max(self.rate_window, self.slow_mode):
            times.popleft()
        if self.slow_mode and times and now - times[-1] < self.slow_mode:
            wait = self.slow_mode - (now - times[-1])
            raise SlowMode(f"slow mode: wait {wait:.0f} s", details={"retry_after": wait})
        # Kept times may be older than the rate window when slow mode is longer: skip them.
        cutoff = now - self.rate_window
        older = 0
        for t in times:
            if t > cutoff:
                break
            older += 1
        if len(times) - older >= self.rate_limit:
            wait = times[older] + self.rate_window - now
            raise RateLimited(
                f"at most {self.rate_limit} messages per {self.rate_window} s",
                details={"retry_after": wait},
            )
        times.append(now)

    def check_text(self, text: str, roles: frozenset[Role], verdict: Verdict | None) -> None:
        if roles & STAFF_ROLES:
            return
        if self._pattern is None and self.blocked_words:
            words = "|".join(re.escape(w) for w in self.blocked_words)
            self._pattern = re.compile(rf"\b(?:{words})\b", re.IGNORECASE)
        if self._pattern is not None and self._pattern.search(text):
            raise MessageBlocked("your message contains a blocked word")
        if verdict is not None:
            blocked = verdict.decision == "block"
            if verdict.fallback:
                blocked = self.automod_fallback == "block"
            if blocked:
                reason = verdict.reason or "automatic moderation is unavailable"
                raise MessageBlocked(f"message held back: {reason}")

    # -- changes ---------------------------------------------------------------------------

    def update(
        self,
        *,
        slow_mode: int | None,
        audience: str | None,
        rate_limit: int | None,
        rate_window: int | None,
        blocked_words: tuple[str, ...] | None,
        automod_fallback: str | None,
        reactions: tuple[str, ...] | None = None,
        frozen: bool | None = None,
    ) -> None:
        if slow_mode is not None and not 0 <= slow_mode <= 3600:
            raise InvalidRequest("slow_mode must be 0-3600 seconds")
        if audience is not None and audience not in AUDIENCES:
            raise InvalidRequest(f"audience must be one of {', '.join(AUDIENCES)}")
        if rate_limit is not None and not 1 <= rate_limit <= 1000:
            raise InvalidRequest("rate_limit must be 1-1000 messages")
        if rate_window is not None and not 1 <= rate_window <= 3600:
            raise InvalidRequest("rate_window must be 1-3600 seconds")
        if automod_fallback is not None and automod_fallback not in FALLBACKS:
            raise InvalidRequest("automod_fallback must be 'allow' or 'block'")
        if reactions is not None:
            kinds = tuple(dict.fromkeys(reactions))
            if not 1 <= len(kinds) <= MAX_REACTION_KINDS or not all(
                REACTION_KIND.match(k) for k in kinds
            ):
                raise InvalidRequest(
                    f"reactions: 1-{MAX_REACTION_KINDS} kinds of 1-32 characters a-z, 0-9, _"
                )
            self.reactions = kinds
        if blocked_words is not None:
            words = (require(check_line, w, "blocked word").lower() for w in blocked_words)
            cleaned = tuple(sorted({w for w in words if w}))
            if len(cleaned) > MAX_BLOCKED_WORDS or any(len(w) > 64 for w in cleaned):
                raise InvalidRequest(f"at most {MAX_BLOCKED_WORDS} words of 1-64 characters")
            self.blocked_words = cleaned
            self._pattern = None
        if slow_mode is not None:
            self.slow_mode = slow_mode
        if audience is not None:
            self.audience = audience
        if rate_limit is not None:
            self.rate_limit = rate_limit
        if rate_window is not None:
            self.rate_window = rate_window
        if automod_fallback is not None:
            self.automod_fallback = automod_fallback
        if frozen is not None:
            self.frozen = frozen

    def settings(self) -> dict[str, Any]:
        return {
            "slow_mode": self.slow_mode,
            "audience": self.audience,
            "rate_limit": self.rate_limit,
            "rate_window": self.rate_window,
            "blocked_words": len(self.blocked_words),
            "automod_fallback": self.automod_fallback,
            "frozen": self.frozen,
            "reactions": list(self.reactions),
        }

    def to_state(self) -> dict[str, Any]:
        return {
            "slow_mode": self.slow_mode,
            "audience": self.audience,
            "rate_limit": self.rate_limit,
            "rate_window": self.rate_window,
            "blocked_words": list(self.blocked_words),
            "automod_fallback": self.automod_fallback,
            "frozen": self.frozen,
            "reactions": list(self.reactions),
            "mutes": self.mutes,
            "bans": self.bans,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ChatRules:
        return cls(
            slow_mode=int(state.get("slow_mode", 0)),
            audience=state.get("audience", "everyone"),
            rate_limit=int(state.get("rate_limit", 20)),
            rate_window=int(state.get("rate_window", 30)),
            blocked_words=tuple(state.get("blocked_words", ())),
            automod_fallback=state.get("automod_fallback", "allow"),
            frozen=bool(state.get("frozen", False)),
            reactions=tuple(state.get("reactions") or DEFAULT_REACTIONS),
            mutes={u: float(t) for u, t in (state.get("mutes") or {}).items()},
            bans=dict(state.get("bans") or {}),
        )
