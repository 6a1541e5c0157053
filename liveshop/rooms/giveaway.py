"""Giveaways: eligibility, one entry per user, a draw anyone can verify from its seed.

The draw sorts the entrants, hashes the list (sha256 of the ids joined by newlines) and picks
winners with ``random.Random(seed).sample``: given the recorded seed and entrant list, anyone
reproduces the same winners with :func:`draw_winners`.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

from liveshop.errors import AlreadyDone, AudienceRestricted, Closed, InvalidRequest

#: Conditions the room itself knows; any other condition must be a badge on the token.
CHATTED = "chatted"
MAX_WINNERS = 100


def entrants_digest(entrants: list[str]) -> str:
    return hashlib.sha256("\n".join(entrants).encode()).hexdigest()


def draw_winners(entrants: list[str], count: int, seed: str) -> list[str]:
    ordered = sorted(entrants)
    return random.Random(seed).sample(ordered, min(count, len(ordered)))


@dataclass
class Giveaway:
    giveaway_id: int
    prize: str
    eligibility: tuple[str, ...] = ()
    entrants: set[str] = field(default_factory=set)
    drawn: dict[str, Any] | None = None

    def enter(self, user_id: str, badges: frozenset[str], chatted: bool) -> None:
        if self.drawn is not None:
            raise Closed("this giveaway has been drawn")
        for condition in self.eligibility:
            held = chatted if condition == CHATTED else condition in badges
            if not held:
                raise AudienceRestricted(f"this giveaway needs: {condition}")
        if user_id in self.entrants:
            raise AlreadyDone("you have already entered this giveaway")
        self.entrants.add(user_id)

    def draw(self, count: int, seed: str) -> dict[str, Any]:
        if self.drawn is not None:
            raise Closed("this giveaway has been drawn")
        if not 1 <= count <= MAX_WINNERS:
            raise InvalidRequest(f"winners must be 1-{MAX_WINNERS}")
        ordered = sorted(self.entrants)
        self.drawn = {
            "winners": draw_winners(ordered, count, seed),
            "seed": seed,
            "entrants": len(ordered),
            "entrants_sha256": entrants_digest(ordered),
        }
        return self.drawn

    def public(self) -> dict[str, Any]:
        return {
            "giveaway_id": self.giveaway_id,
            "prize": self.prize,
            "eligibility": list(self.eligibility),
            "entrants": len(self.entrants),
            "drawn": self.drawn,
        }

    def to_state(self) -> dict[str, Any]:
        return {**self.public(), "entrant_ids": sorted(self.entrants)}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> Giveaway:
        return cls(
            giveaway_id=int(s["giveaway_id"]),
            prize=s["prize"],
            eligibility=tuple(s.get("eligibility", ())),
            entrants=set(s.get("entrant_ids", ())),
            drawn=s.get("drawn"),
        )
