"""A handle on one entity, used like a Ray actor handle: ``handle.method.remote(*args)``
sends the call to the entity's host (``host.call.remote(kind, key, method, args, kwargs)``),
so callers keep the shape they had when every entity was an actor of its own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class _Method:
    handle: EntityHandle
    method: str

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        h = self.handle
        return h.host.call.remote(h.kind, h.key, self.method, args, kwargs)


@dataclass(frozen=True)
class EntityHandle:
    host: Any  # the host's Ray actor handle
    host_name: str
    kind: str
    key: str

    def __getattr__(self, method: str) -> _Method:
        if method.startswith("_"):
            raise AttributeError(method)
        return _Method(self, method)
