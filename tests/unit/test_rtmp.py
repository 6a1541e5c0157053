"""The RTMP publishing server without I/O: handshake, commands, chunk streams, media tags,
and what a hostile or broken peer gets (BadStream, nothing else)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liveshop.errors import BadStream
from liveshop.media import amf, flv
from liveshop.media.rtmp import (
    HANDSHAKE_SIZE,
    MAX_MESSAGE,
    Media,
    PublishRequested,
    RtmpServerSession,
    Unpublished,
)

C1 = bytes(range(256)) * 6


def chunked(
    csid: int,
    kind: int,
    body: bytes,
    *,
    ts: int = 0,
    stream_id: int = 0,
    fmt: int = 0,
    chunk_size: int = 128,
) -> bytes:
    """One message as a publisher writes it: a first chunk with a ``fmt`` header, then
    type-3 continuation chunks."""
    extended = ts >= 0xFFFFFF
    field = (0xFFFFFF if extended else ts).to_bytes(3, "big")
    header = [
        field + len(body).to_bytes(3, "big") + bytes([kind]) + struct.pack("<I", stream_id),
        field + len(body).to_bytes(3, "big") + bytes([kind]),
        field,
        b"",
    ][fmt]
    ext = struct.pack(">I", ts) if extended else b""
    out = bytes([fmt << 6 | csid]) + header + ext + body[:chunk_size]
    for at in range(chunk_size, len(body), chunk_size):
        out += bytes([0xC0 | csid]) + ext + body[at : at + chunk_size]
    return out


def command(*values: object, stream_id: int = 0) -> bytes:
    return chunked(3, 20, amf.encode(*values), stream_id=stream_id)


def handshake() -> bytes:
    return b"\x03" + C1 + b"\x00" * HANDSHAKE_SIZE  # C0, C1, C2


CONNECT = command("connect", 1.0, {"app": "live", "tcUrl": "rtmp://x/live"})
PUBLISH = command("publish", 5.0, None, "lsk_secret?token=1", "live", stream_id=1)
AVC_CONFIG = bytes([0x17, 0, 0, 0, 0]) + b"\x01\x64\x00\x28"
KEYFRAME = bytes([0x17, 1, 0, 0, 0]) + b"\x00\x00\x00\x05" + b"\x65" * 300
INTER = bytes([0x27, 1, 0, 0, 0]) + b"\x00\x00\x00\x03" + b"\x41" * 40
AAC_CONFIG = bytes([0xAF, 0]) + b"\x11\x90"


def publishing(session: RtmpServerSession) -> None:
    events = session.receive(handshake() + CONNECT + PUBLISH)
    assert events == [PublishRequested("live", "lsk_secret")]
    session.accept()


def test_handshake_connect_and_publish_answer_what_obs_and_ffmpeg_wait_for() -> None:
    session = RtmpServerSession()
    assert session.receive(b"\x03" + C1[:100]) == []
    assert session.receive(C1[100:]) == []
    out = session.data_to_send()
    assert len(out) == 1 + 2 * HANDSHAKE_SIZE and out[0] == 3
    assert out[1 + HANDSHAKE_SIZE :] == C1  # S2 echoes C1
    events = session.receive(b"\x00" * HANDSHAKE_SIZE + CONNECT)
    assert events == [] and session.app == "live"
    assert b"NetConnection.Connect.Success" in session.data_to_send()
    session.receive(command("createStream", 4.0, None))
    created = session.data_to_send()
    assert b"_result" in created and struct.pack(">d", 1.0) in created  # stream id 1
    assert session.receive(PUBLISH) == [PublishRequested("live", "lsk_secret")]
    assert not session.publishing
    session.accept()
    assert b"NetStream.Publish.Start" in session.data_to_send()


def test_a_refused_publish_gets_an_error_status_and_its_media_is_ignored() -> None:
    session = RtmpServerSession()
    session.receive(handshake() + CONNECT + PUBLISH)
    session.data_to_send()
    session.reject("NetStream.Publish.BadName", "unknown or revoked stream key")
    out = session.data_to_send()
    assert b"NetStream.Publish.BadName" in out and b"error" in out
    assert session.receive(chunked(6, 9, KEYFRAME, stream_id=1)) == []


def test_media_messages_become_flv_tags_with_their_timestamps() -> None:
    session = RtmpServerSession()
    publishing(session)
    meta = chunked(4, 18, amf.encode("@setDataFrame", "onMetaData", {"width": 640.0}), stream_id=1)
    stream = (
        meta
        + chunked(6, 9, AVC_CONFIG, stream_id=1)
        + chunked(4, 8, AAC_CONFIG, stream_id=1)
        + chunked(6, 9, KEYFRAME, ts=1000, stream_id=1, fmt=1)  # 3 chunks at 128
        + chunked(6, 9, INTER, ts=33, fmt=1)  # delta and a new length
        + chunked(6, 9, INTER, fmt=3)  # same length, same delta again
        + chunked(6, 9, INTER, ts=40, fmt=2)  # same length, new delta
        + chunked(6, 9, INTER, ts=0x01000000, stream_id=1)  # extended timestamp
    )
    tags = [e.tag for e in session.receive(stream) if isinstance(e, Media)]
    assert [(t.kind, t.timestamp) for t in tags] == [
        (flv.SCRIPT, 0), (flv.VIDEO, 0), (flv.AUDIO, 0), (flv.VIDEO, 1000),
        (flv.VIDEO, 1033), (flv.VIDEO, 1066), (flv.VIDEO, 1106), (flv.VIDEO, 0x01000000),
    ]  # fmt: skip
    assert amf.decode(tags[0].body) == ["onMetaData", {"width": 640.0}]
    assert [t.is_config for t in tags[:4]] == [True, True, True, False]
    assert tags[3].is_keyframe and not tags[4].is_keyframe
    assert tags[3].body == KEYFRAME
    encoded = tags[3].encode()
    assert encoded[0] == flv.VIDEO and int.from_bytes(encoded[1:4], "big") == len(KEYFRAME)
    assert struct.unpack(">I", encoded[-4:])[0] == 11 + len(KEYFRAME)
    assert session.receive(command("FCUnpublish", 6.0, None, "lsk_secret")) == [Unpublished()]


def test_set_chunk_size_and_acknowledgements() -> None:
    session = RtmpServerSession()
    publishing(session)
    session.data_to_send()
    session.receive(chunked(2, 1, struct.pack(">I", 4096)))
    session.receive(chunked(2, 5, struct.pack(">I", 1000)))  # the peer's ack window
    events = session.receive(chunked(6, 9, KEYFRAME * 4, stream_id=1, chunk_size=4096))
    assert [e.tag.body for e in events if isinstance(e, Media)] == [KEYFRAME * 4]
    out = session.data_to_send()
    assert out[7] == 3  # an Acknowledgement (type 3) once the window was crossed


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=40))
def test_any_split_of_the_byte_stream_gives_the_same_events(sizes: list[int]) -> None:
    data = (
        handshake() + CONNECT + PUBLISH
        + chunked(6, 9, AVC_CONFIG, stream_id=1)
        + chunked(6, 9, KEYFRAME, ts=40, stream_id=1, fmt=1)
        + chunked(6, 9, INTER, ts=33, fmt=1)
    )  # fmt: skip
    session, events, at, i = RtmpServerSession(), [], 0, 0
    while at < len(data):
        size = sizes[i % len(sizes)]
        events += session.receive(data[at : at + size])
        if any(isinstance(e, PublishRequested) for e in events) and not session.publishing:
            session.accept()
            events += session.receive(b"")  # what the publisher sent behind its publish
        at, i = at + size, i + 1
    assert [type(e) for e in events] == [PublishRequested, Media, Media, Media]
    tags = [e.tag for e in events if isinstance(e, Media)]
    assert [(t.timestamp, t.body) for t in tags] == [(0, AVC_CONFIG), (40, KEYFRAME), (73, INTER)]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x06" + C1, "not RTMP"),
        (handshake() + bytes([0x46]) + b"\x00" * 7, "without a full header"),
        (handshake() + bytes([0x03]) + b"\x00" * 3 + (MAX_MESSAGE + 1).to_bytes(3, "big")
         + b"\x09" + b"\x00" * 4, "over the"),
        (handshake() + chunked(2, 1, struct.pack(">I", 0)), "chunk size"),
        (handshake() + chunked(3, 20, b"\x02\x00\x07conn"), "malformed AMF0"),
        (handshake() + chunked(3, 20, amf.encode(42.0)), "malformed RTMP command"),
        (handshake() + CONNECT + command("publish", 5.0, None), "without a stream key"),
    ],
)  # fmt: skip
def test_malformed_input_is_a_bad_stream(data: bytes, message: str) -> None:
    with pytest.raises(BadStream, match=message):
        RtmpServerSession().receive(data)


def test_amf0_round_trips_and_refuses_garbage() -> None:
    values = [1.5, True, "héllo", None, {"a": [1.0, "b"], "n": {"deep": False}}, "x" * 70000]
    assert amf.decode(amf.encode(*values)) == values
    nested: object = 1.0
    for _ in range(40):
        nested = [nested]
    with pytest.raises(BadStream, match="too deep"):
        amf.decode(amf.encode(nested))
    with pytest.raises(BadStream):
        amf.decode(b"\x0d")  # unsupported type
    with pytest.raises(TypeError):
        amf.encode(object())
