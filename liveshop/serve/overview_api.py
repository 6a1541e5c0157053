"""``GET /ops/overview``: the operations dashboard's numbers (service role).

No other API gives live GMV or top lists across the platform, so this one reads them from
PostgreSQL (:class:`~liveshop.storage.overview.OverviewStore`) and adds each channel's
audience: the viewers of its now-show's room, asked of the room actors concurrently, each
with a timeout (a room that does not answer in time shows ``null``, it does not hold up the
page). The API deployment hands the store, the settings and a way to read a room's live
snapshot to :func:`use` when it starts.
"""

# No `from __future__ import annotations`: FastAPI reads these annotations at runtime.
import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from liveshop import clock
from liveshop.config import Settings
from liveshop.errors import Unavailable
from liveshop.serve import views
from liveshop.serve.auth import Authorization, bearer_identity, require_service
from liveshop.serve.schema import DECIMAL_INT, ROLE, Route, answers
from liveshop.storage.overview import OnAir, OverviewStore
from liveshop.tokens import Identity

log = logging.getLogger(__name__)

router = APIRouter(route_class=Route)

#: A room's live snapshot by id (``RoomClient.join``: it carries ``viewers``).
Snapshot = Callable[[str], Awaitable[Mapping[str, Any]]]
#: How long one room may take to say how many watch.
VIEWERS_TIMEOUT = 1.0
#: Dashboards poll every few seconds: the sales sums (the costly part) are computed once per
#: window and process for all of them, so ten open dashboards cost what one does. What is on
#: air is read afresh each time (cheap), so a control an operator just used shows at once.
CACHE_SECONDS = 2.0


class _Context:
    store: OverviewStore | None = None
    settings: Settings | None = None
    snapshot: Snapshot | None = None
    #: hours → (when it was asked, the answer being computed or computed).
    cache: dict[int, tuple[float, asyncio.Task[dict[str, Any]]]] = {}


_context = _Context()


def use(store: OverviewStore, settings: Settings, snapshot: Snapshot) -> None:
    """Called by the API deployment when it starts."""
    _context.store, _context.settings, _context.snapshot = store, settings, snapshot
    _context.cache = {}


def _store() -> OverviewStore:
    if _context.store is None:
        raise Unavailable("the API is starting, try again")
    return _context.store


def _service(authorization: Authorization = None) -> Identity:
    if _context.settings is None:
        raise Unavailable("the API is starting, try again")
    return require_service(bearer_identity(_context.settings.secret, authorization))


Store = Annotated[OverviewStore, Depends(_store)]


@router.get(
    "/ops/overview",
    dependencies=[Depends(_service)],
    response_model=views.Overview,
    responses=answers(*ROLE),
)
async def overview(
    store: Store,
    hours: Annotated[int, Query(ge=1, le=31 * 24), DECIMAL_INT] = 24,
) -> dict[str, Any]:
    """Sales over the last ``hours`` and what is on air now (service role).

    ``gmv_minor`` per currency (integer minor units; an order's ``total_minor``), ``orders``
    and distinct ``buyers`` count orders created since ``since`` and not cancelled.
    ``top_shows`` (orders placed in the show's room while it was on), ``top_products`` (per
    SKU; ``gmv_minor`` is units times line price) and ``top_creators`` (the host of the order's
    room) hold up to 10 entries each, ordered by their largest single-currency GMV, then by
    orders (units for products): currencies are never added together. ``channels``: every
    channel with its show on now (or ``null``), any operator ``override``, and ``viewers``
    in the now-show's room (``null`` when there is none or it did not answer in time).
    """
    now = clock.now()
    cached = _context.cache.get(hours)
    if cached is None or now - cached[0] > CACHE_SECONDS or not _usable(cached[1]):
        since = now - hours * 3600.0
        cached = (now, asyncio.ensure_future(_sales(store, since, now)))
        _context.cache[hours] = cached
    # Shielded: a dashboard that goes away does not cancel the answer others wait for.
    sales, channels = await asyncio.gather(asyncio.shield(cached[1]), _channels(store, now))
    return {**sales, "channels": channels}


def _usable(task: asyncio.Task[Any]) -> bool:
    """Not failed, and of this event loop (a test client may run each request in its own)."""
    failed = task.done() and (task.cancelled() or task.exception() is not None)
    return not failed and task.get_loop() is asyncio.get_running_loop()


async def _sales(store: OverviewStore, since: float, now: float) -> dict[str, Any]:
    return {"since": since, **await store.overview(since, now)}


async def _channels(store: OverviewStore, now: float) -> list[dict[str, Any]]:
    on_air = await store.on_air(now)
    viewers = await asyncio.gather(*(_viewers(c) for c in on_air))
    return [
        {"channel": c.channel.to_wire(), "now": c.now.to_wire() if c.now else None,
         "override": c.override, "viewers": v}
        for c, v in zip(on_air, viewers, strict=True)
    ]  # fmt: skip


async def _viewers(on_air: OnAir) -> int | None:
    room_id = on_air.now.room_id if on_air.now else None
    if room_id is None or _context.snapshot is None:
        return None
    try:
        snapshot = await asyncio.wait_for(_context.snapshot(room_id), VIEWERS_TIMEOUT)
    except Exception as exc:  # not running, restarting, too slow: unknown, not an error
        log.debug("no viewer count from room %s: %r", room_id, exc)
        return None
    count = snapshot.get("viewers")
    return count if isinstance(count, int) else None
