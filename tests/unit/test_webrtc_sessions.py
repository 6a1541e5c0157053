"""WebRTC sessions hold what they may and no longer than they should (media/webrtc.py): one
user's WHEP sessions of a stream are capped, and a session whose connection never starts is
closed at its deadline. (The real exchange, over aiortc and HTTP: tests/e2e/test_limits.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from liveshop.errors import RateLimited
from liveshop.media import webrtc

OFFER = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"


async def test_one_user_holds_at_most_per_user_sessions_of_a_stream() -> None:
    relay = webrtc.FrameRelay(asyncio.get_running_loop())
    first, second = relay.join("greedy", 2), relay.join("greedy", 2)
    with pytest.raises(RateLimited) as refused:
        relay.join("greedy", 2)
    assert refused.value.temporary and refused.value.details == {"limit": 2}
    other = relay.join("other", 2)  # the cap is the user's, not the stream's
    assert (relay.subscribers, dict(relay.by_user)) == (3, {"greedy": 2, "other": 1})
    first()
    first()  # a session ends once, however often its release runs
    assert (relay.subscribers, dict(relay.by_user)) == (2, {"greedy": 1, "other": 1})
    third = relay.join("greedy", 2)
    for leave in (second, third, other):
        leave()
    assert (relay.subscribers, dict(relay.by_user)) == (0, {})


class _Description:
    def __init__(self, sdp: str) -> None:
        self.sdp = sdp


class _Connection:
    """What Peer uses of an RTCPeerConnection, without sockets: the answer is given at once
    and the connection state is whatever the test sets."""

    def __init__(self) -> None:
        self.connectionState = "new"
        self.localDescription: _Description | None = None
        self.closed = 0
        self.handlers: dict[str, Callable[[], Any]] = {}

    def on(self, event: str) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
        def register(handler: Callable[[], Any]) -> Callable[[], Any]:
            self.handlers[event] = handler
            return handler

        return register

    async def setRemoteDescription(self, description: Any) -> None:
        pass

    async def createAnswer(self) -> _Description:
        return _Description("v=0\r\nanswer\r\n")

    async def setLocalDescription(self, description: _Description) -> None:
        self.localDescription = description

    async def close(self) -> None:
        self.closed += 1
        self.connectionState = "closed"


async def _session(connect_within: float) -> tuple[webrtc.Peer, _Connection, list[str]]:
    ended: list[str] = []
    relay = webrtc.FrameRelay(asyncio.get_running_loop())
    connection = _Connection()
    peer = webrtc.Peer(
        connection,  # type: ignore[arg-type]
        lambda: ended.append("closed"),
        _releases=[relay.join("u", 2)],
    )
    await peer.negotiate(OFFER, connect_within)
    assert peer.answer == "v=0\r\nanswer\r\n"
    return peer, connection, ended


async def test_a_session_that_never_connects_is_closed_at_its_deadline() -> None:
    _, connection, ended = await _session(connect_within=0.05)
    connection.connectionState = "connecting"  # offered, answered, ICE never completes
    await asyncio.sleep(0.2)
    assert ended == ["closed"] and connection.closed == 1


async def test_a_connected_session_outlives_the_deadline() -> None:
    peer, connection, ended = await _session(connect_within=0.05)
    connection.connectionState = "connected"
    await asyncio.sleep(0.2)
    assert ended == [] and connection.closed == 0
    await peer.close()
    assert ended == ["closed"]


async def test_a_session_closed_before_its_deadline_is_closed_once() -> None:
    peer, connection, ended = await _session(connect_within=0.05)
    await peer.close()
    await asyncio.sleep(0.2)
    assert ended == ["closed"] and connection.closed == 1
