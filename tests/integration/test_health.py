"""`liveshop status`'s RTMP check against the real ingest server, and against things that are
not one: it passes only when an RTMP handshake completes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from liveshop.health import rtmp_handshake
from liveshop.media.ingest import RtmpIngest
from liveshop.storage.embedded import free_port
from liveshop.storage.stream_keys import StreamKeyStore

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _no_transcoder(room_id: str) -> None:
    raise AssertionError("a handshake alone must not reach a transcoder")


@pytest.fixture
async def server() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    """Start a TCP server with a given handler; returns its rtmp:// URL."""
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> str:
        port = free_port()
        servers.append(await asyncio.start_server(handler, "127.0.0.1", port))
        return f"rtmp://127.0.0.1:{port}/live"

    yield start
    for s in servers:
        s.close()


async def test_the_real_ingest_passes_and_keeps_serving() -> None:
    port = free_port()
    keys = StreamKeyStore.__new__(StreamKeyStore)  # never used: nobody publishes
    ingest = RtmpIngest(keys, _no_transcoder, host="0.0.0.0", port=port)
    await ingest.start()
    try:
        for _ in range(2):  # the ingest takes a check as an ordinary short connection
            name, ok, detail = await rtmp_handshake(f"rtmp://0.0.0.0:{port}/live")
            assert (name, ok) == ("RTMP ingest", True), detail
            assert "handshake ok" in detail
        assert ingest.stats() == {"publishers": 0, "refused": 0}
    finally:
        await ingest.stop()


async def test_nothing_listening_fails() -> None:
    name, ok, detail = await rtmp_handshake(f"rtmp://127.0.0.1:{free_port()}/live")
    assert (name, ok) == ("RTMP ingest", False)
    assert "ConnectionRefusedError" in detail


async def test_a_server_that_is_not_rtmp_fails(
    server: Callable[[Handler], Awaitable[str]],
) -> None:
    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()
        writer.close()

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)
        writer.close()

    async def no_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(1537)
        writer.write(b"\x03" + bytes(1536) + bytes(1536))  # S2 does not echo C1
        await writer.drain()
        await reader.read(2000)
        writer.close()

    _, ok, detail = await rtmp_handshake(await server(http))
    assert not ok and "not RTMP" in detail
    _, ok, detail = await rtmp_handshake(await server(hang_up))
    assert not ok and "closed during the RTMP handshake" in detail
    _, ok, detail = await rtmp_handshake(await server(silent), timeout=0.5)
    assert not ok and "no RTMP handshake within 0.5 s" in detail
    _, ok, detail = await rtmp_handshake(await server(no_echo))
    assert not ok and "does not echo C1" in detail
