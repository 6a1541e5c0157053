"""Where an entity lives: a stable hash of its key over the hosts (rendezvous hashing).

Every caller computes the same answer from the same directory, with no coordination: each
host scores the key, the highest score wins. When a host is added, only the keys it now
wins move (about 1/n of them); when one is removed, only its own keys move. A dedicated
host takes its one entity whatever the scores.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

#: Host names: slots are ``host:<n>``; a dedicated host is ``host:<kind>:<key>``.
HOST_PREFIX = "host:"


def entity_id(kind: str, key: str) -> str:
    return f"{kind}:{key}"


def slot_name(n: int) -> str:
    return f"{HOST_PREFIX}{n}"


def dedicated_name(entity: str) -> str:
    return HOST_PREFIX + entity


def _score(host: str, entity: str) -> int:
    digest = hashlib.blake2b(f"{host}\x00{entity}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def rendezvous(entity: str, hosts: Iterable[str]) -> str:
    """The host with the highest score for ``entity`` (ties, never seen with 64 bits, go to
    the smaller name so that every caller agrees)."""
    best: tuple[int, str] | None = None
    for host in hosts:
        candidate = (_score(host, entity), host)
        if best is None or candidate[0] > best[0] or (candidate[0] == best[0] and host < best[1]):
            best = candidate
    if best is None:
        raise LookupError("no entity hosts")
    return best[1]


@dataclass(frozen=True)
class Placement:
    """One version of the directory: the slots and the dedicated hosts."""

    slots: tuple[str, ...]
    #: entity id (``kind:key``) -> its own host
    dedicated: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, names: Sequence[tuple[str, str | None]]) -> Placement:
        """From the directory's rows: (host name, the entity it is dedicated to or None)."""
        slots = tuple(sorted(n for n, e in names if e is None))
        return cls(slots, {e: n for n, e in names if e is not None})

    @classmethod
    def default(cls, hosts: int, dedicated: Iterable[str] = ()) -> Placement:
        return cls(
            tuple(slot_name(n) for n in range(max(1, hosts))),
            {e: dedicated_name(e) for e in dedicated},
        )

    def host(self, kind: str, key: str) -> str:
        entity = entity_id(kind, key)
        own = self.dedicated.get(entity)
        if own is not None:
            return own
        return rendezvous(entity, self.slots)

    def rows(self) -> list[tuple[str, str | None]]:
        """The directory's rows (the inverse of :meth:`of`)."""
        return [*((n, None) for n in self.slots), *((n, e) for e, n in self.dedicated.items())]

    @property
    def hosts(self) -> tuple[str, ...]:
        return (*self.slots, *sorted(self.dedicated.values()))
