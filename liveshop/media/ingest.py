"""The RTMP listener: OBS and hardware encoders publish here with a room's stream key.

Per connection: RTMP handshake and commands (:mod:`liveshop.media.rtmp`), the key checked
against PostgreSQL (unknown or revoked: refused with ``NetStream.Publish.BadName``), the
slot claimed on the room's transcoder actor (a second live publisher on the same key:
refused), then the media forwarded as FLV in batches, one actor call per ~50 ms.

The connection outlives the transcoder: if the actor restarts, the publisher keeps going and
the ingest re-attaches and resends the codec configuration and the frames since the last
keyframe, so the new decoder starts at once. The key is checked again every
``KEY_RECHECK`` seconds: revoking (rotating) it cuts a live publisher off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ray.exceptions import RayActorError

from liveshop.errors import BadStream, InvalidStreamKey, LiveshopError, StreamInUse
from liveshop.media import flv
from liveshop.media.rtmp import Media, PublishRequested, RtmpServerSession, Unpublished
from liveshop.storage.pool import TRANSIENT_DB_ERRORS
from liveshop.storage.stream_keys import StreamKey, StreamKeyStore

log = logging.getLogger(__name__)

BATCH_SECONDS = 0.05
BATCH_BYTES = 256 * 1024
#: Frames since the last keyframe kept to restart a decoder; a longer GOP is cut.
MAX_GOP_BYTES = 8 * 1024 * 1024
KEY_RECHECK = 10.0
#: Handshake to ``publish`` must take no longer; then silence this long ends the connection.
PUBLISH_TIMEOUT = 10.0
READ_TIMEOUT = 30.0

TranscoderFor = Callable[[str], Awaitable[Any]]

#: A publish that fails for these is refused as "try again" (not a bad key).
PUBLISH_FAILURES: tuple[type[BaseException], ...] = (
    LiveshopError, RayActorError, TimeoutError, *TRANSIENT_DB_ERRORS,
)  # fmt: skip


class Publisher:
    """One accepted publisher: batches its tags to the transcoder, in order."""

    def __init__(self, key: StreamKey, transcoder_for: TranscoderFor, timeout: float) -> None:
        self.key = key
        self.ingest_id = secrets.token_hex(8)
        self.transcoder_for = transcoder_for
        self.timeout = timeout
        self.config: dict[int, flv.Tag] = {}
        self.gop: list[bytes] = []
        self.gop_bytes = 0
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.handle: Any = None
        self.resync = True
        self._wake = asyncio.Event()
        self.closed = False
        self.error: LiveshopError | None = None

    async def attach(self) -> None:
        self.handle = await self.transcoder_for(self.key.room_id)
        await asyncio.wait_for(
            self.handle.attach.remote(self.key.slot, self.ingest_id), self.timeout
        )

    def add(self, tag: flv.Tag) -> None:
        if tag.is_config:
            self.config[tag.kind] = tag  # the newest of each kind: metadata, video, audio
            return
        data = tag.encode()
        if tag.is_keyframe:
            self.gop, self.gop_bytes = [], 0
        if self.gop_bytes + len(data) <= MAX_GOP_BYTES:
            self.gop.append(data)
            self.gop_bytes += len(data)
        self.pending.append(data)
        self.pending_bytes += len(data)
        if self.pending_bytes >= BATCH_BYTES:
            self._wake.set()

    def _start_chunk(self) -> bytes:
        """What a fresh decoder needs: the FLV header, metadata and codec configuration,
        and every frame since the last keyframe."""
        head = [flv.HEADER, *(t.encode() for t in self.config.values())]
        return b"".join(head + self.gop)

    async def run(self) -> None:
        """Send batches until closed; raises the error that ends the connection."""
        while not self.closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), BATCH_SECONDS)
            self._wake.clear()
            if self.resync:
                data, self.resync = self._start_chunk(), False
            else:
                data = b"".join(self.pending)
            self.pending, self.pending_bytes = [], 0
            if not data:
                continue
            try:
                ok = await asyncio.wait_for(
                    self.handle.feed.remote(self.ingest_id, data), self.timeout
                )
            except (RayActorError, TimeoutError) as exc:
                log.info("transcoder of %s unreachable (%r); re-attaching", self.key.room_id, exc)
                ok = False
            if not ok:
                await self._reattach()

    async def _reattach(self) -> None:
        """The transcoder restarted (or dropped us): claim the slot again, then start a
        new decoder from the configuration and the current GOP."""
        deadline = time.monotonic() + 30
        while not self.closed:
            try:
                await self.attach()
                self.resync = True
                return
            except StreamInUse:
                raise
            except (RayActorError, TimeoutError, LiveshopError) as exc:
                if time.monotonic() > deadline:
                    raise BadStream("the transcoder did not come back") from exc
                await asyncio.sleep(0.5)

    async def detach(self) -> None:
        self.closed = True
        self._wake.set()
        if self.handle is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.handle.detach.remote(self.ingest_id), self.timeout)


class RtmpIngest:
    def __init__(
        self,
        keys: StreamKeyStore,
        transcoder_for: TranscoderFor,
        *,
        host: str,
        port: int,
        call_timeout: float = 10.0,
    ) -> None:
        self.keys = keys
        self.transcoder_for = transcoder_for
        self.host, self.port = host, port
        self.call_timeout = call_timeout
        self.server: asyncio.Server | None = None
        self.publishers: dict[str, Publisher] = {}
        self.refused = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(
            self._connection, self.host, self.port, reuse_port=True, limit=1 << 20
        )

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for publisher in list(self.publishers.values()):
                await publisher.detach()

    def stats(self) -> dict[str, Any]:
        return {"publishers": len(self.publishers), "refused": self.refused}

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        session = RtmpServerSession()
        publisher: Publisher | None = None
        sender: asyncio.Task[None] | None = None
        peer = writer.get_extra_info("peername")
        try:
            deadline = time.monotonic() + PUBLISH_TIMEOUT
            while True:
                timeout = READ_TIMEOUT if publisher else deadline - time.monotonic()
                if timeout <= 0:
                    raise BadStream("no publish within the time limit")
                data = await asyncio.wait_for(reader.read(1 << 16), timeout)
                if not data:
                    return
                events = session.receive(data)
                while events:
                    event = events.pop(0)
                    if isinstance(event, PublishRequested):
                        publisher = await self._publish(session, event)
                        if publisher is None:
                            writer.write(session.data_to_send())
                            await writer.drain()
                            return
                        sender = asyncio.create_task(self._send(publisher, writer))
                        events += session.receive(b"")  # whatever came right behind it
                    elif isinstance(event, Media) and publisher is not None:
                        publisher.add(event.tag)
                    elif isinstance(event, Unpublished):
                        return
                out = session.data_to_send()
                if out:
                    writer.write(out)
                    await writer.drain()
                if sender is not None and sender.done():
                    return  # the sender ended the stream (error logged there)
        except (BadStream, TimeoutError, ConnectionError) as exc:
            log.info("RTMP connection from %s ended: %r", peer, exc)
        finally:
            if publisher is not None:
                self.publishers.pop(publisher.ingest_id, None)
                await publisher.detach()
            if sender is not None:
                sender.cancel()
                with contextlib.suppress(BaseException):
                    await sender
            writer.close()

    async def _publish(
        self, session: RtmpServerSession, event: PublishRequested
    ) -> Publisher | None:
        try:
            key = await self.keys.lookup(event.key)
            publisher = Publisher(key, self.transcoder_for, self.call_timeout)
            await publisher.attach()
        except (InvalidStreamKey, StreamInUse) as exc:
            self.refused += 1
            session.reject("NetStream.Publish.BadName", exc.message)
            return None
        except PUBLISH_FAILURES as exc:
            self.refused += 1
            log.warning("publish to %s failed: %r", event.key[:8], exc)
            session.reject("NetStream.Publish.Failed", "the stream cannot start now, try again")
            return None
        session.accept()
        self.publishers[publisher.ingest_id] = publisher
        log.info("publisher %s live on %s/%s", publisher.ingest_id, key.room_id, key.slot)
        return publisher

    async def _send(self, publisher: Publisher, writer: asyncio.StreamWriter) -> None:
        """Forward batches; every KEY_RECHECK seconds make sure the key still stands."""
        forward = asyncio.create_task(publisher.run())
        try:
            while not forward.done():
                done, _ = await asyncio.wait({forward}, timeout=KEY_RECHECK)
                if done:
                    break
                try:
                    valid = await self.keys.still_valid(publisher.key)
                except TRANSIENT_DB_ERRORS:
                    continue  # the database is away: the key stood when last seen
                if not valid:
                    log.info("stream key of %s revoked: cutting the publisher off", publisher.key)
                    break
            if forward.done() and forward.exception() is not None:
                log.info("publisher %s ended: %r", publisher.ingest_id, forward.exception())
        finally:
            forward.cancel()
            with contextlib.suppress(BaseException):
                await forward
            writer.close()  # ends the read loop of the connection
