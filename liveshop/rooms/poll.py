"""Polls: 2-6 options, a duration, one vote per user (changeable or not, per poll)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from liveshop.errors import AlreadyDone, Closed, InvalidRequest
from liveshop.text import check_line, require

MIN_OPTIONS, MAX_OPTIONS = 2, 6
MAX_POLL_SECONDS = 24 * 3600


@dataclass
class Poll:
    poll_id: int
    question: str
    options: tuple[str, ...]
    closes_at: float
    allow_change: bool = False
    closed: bool = False
    votes: dict[str, int] = field(default_factory=dict)  # user -> option index

    @classmethod
    def create(cls, poll_id: int, question: str, options: tuple[str, ...], duration: float,
               allow_change: bool, now: float) -> Poll:  # fmt: skip
        question = require(check_line, question, "poll question")
        cleaned = tuple(require(check_line, o, "poll option") for o in options)
        if not question or len(question) > 200:
            raise InvalidRequest("poll question must be 1-200 characters")
        if not MIN_OPTIONS <= len(cleaned) <= MAX_OPTIONS:
            raise InvalidRequest(f"a poll has {MIN_OPTIONS}-{MAX_OPTIONS} options")
        if any(not o or len(o) > 80 for o in cleaned) or len(set(cleaned)) != len(cleaned):
            raise InvalidRequest("options must be distinct and 1-80 characters")
        if not 5 <= duration <= MAX_POLL_SECONDS:
            raise InvalidRequest(f"poll duration must be 5-{MAX_POLL_SECONDS} seconds")
        return cls(poll_id, question, cleaned, now + duration, allow_change)

    def is_open(self, now: float) -> bool:
        return not self.closed and now < self.closes_at

    def vote(self, user_id: str, option: int, now: float) -> bool:
        """Record the vote; return whether the tallies changed."""
        if not self.is_open(now):
            raise Closed("this poll is closed")
        if not 0 <= option < len(self.options):
            raise InvalidRequest(f"option must be 0-{len(self.options) - 1}")
        previous = self.votes.get(user_id)
        if previous is not None and not self.allow_change:
            raise AlreadyDone("you have already voted in this poll")
        self.votes[user_id] = option
        return previous != option

    def tallies(self) -> list[int]:
        counts = [0] * len(self.options)
        for option in self.votes.values():
            counts[option] += 1
        return counts

    def public(self) -> dict[str, Any]:
        return {
            "poll_id": self.poll_id,
            "question": self.question,
            "options": list(self.options),
            "closes_at": self.closes_at,
            "allow_change": self.allow_change,
            "closed": self.closed,
            "tallies": self.tallies(),
        }

    def to_state(self) -> dict[str, Any]:
        return {**self.public(), "votes": self.votes}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> Poll:
        return cls(
            poll_id=int(s["poll_id"]),
            question=s["question"],
            options=tuple(s["options"]),
            closes_at=float(s["closes_at"]),
            allow_change=bool(s["allow_change"]),
            closed=bool(s["closed"]),
            votes={u: int(o) for u, o in s.get("votes", {}).items()},
        )
