"""Q&A: viewers ask, upvote once each; the host marks questions answered; sorted by votes."""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from liveshop.errors import AlreadyDone


@dataclass
class Question:
    question_id: int
    user_id: str
    name: str
    text: str
    answered: bool = False
    voters: set[str] = field(default_factory=set)

    def upvote(self, user_id: str) -> None:
        if user_id in self.voters:
            raise AlreadyDone("you have already upvoted this question")
        self.voters.add(user_id)

    def public(self) -> dict[str, Any]:
        return {
            "question_id": self.question_id,
            "user": {"id": self.user_id, "name": self.name},
            "text": self.text,
            "votes": len(self.voters),
            "answered": self.answered,
        }

    def to_state(self) -> dict[str, Any]:
        return {**self.public(), "voters": sorted(self.voters)}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> Question:
        return cls(
            question_id=int(s["question_id"]),
            user_id=s["user"]["id"],
            name=s["user"]["name"],
            text=s["text"],
            answered=bool(s["answered"]),
            voters=set(s.get("voters", ())),
        )


def ranked(questions: Iterable[Question], limit: int) -> list[dict[str, Any]]:
    """The top ``limit``: unanswered first, then by votes (most first), then oldest first."""
    order = heapq.nsmallest(
        limit, questions, key=lambda q: (q.answered, -len(q.voters), q.question_id)
    )
    return [q.public() for q in order]
