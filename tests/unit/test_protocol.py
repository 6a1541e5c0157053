from __future__ import annotations

import contextlib
import json

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from liveshop.errors import BadFrame, InvalidRequest, UnknownOp
from liveshop.protocol import (
    SUBPROTOCOL_MSGPACK,
    ChatParams,
    Codec,
    decode_frame,
    encode_frame,
    error_reply,
    parse_request,
    request_id_of,
    room_push,
)
from liveshop.serve.hub import server_frame


def test_codec_follows_the_negotiated_subprotocol() -> None:
    assert Codec.for_subprotocol(SUBPROTOCOL_MSGPACK) is Codec.MSGPACK
    assert Codec.for_subprotocol(None) is Codec.JSON
    assert Codec.for_subprotocol("liveshop.v1.json") is Codec.JSON


@pytest.mark.parametrize("codec", list(Codec))
def test_encode_decode_round_trip(codec: Codec) -> None:
    message = {"id": 7, "op": "chat", "room": "r", "text": "héllo 🛍️"}
    assert decode_frame(encode_frame(message, codec), codec) == message


def test_json_frames_are_text_and_msgpack_frames_binary() -> None:
    assert isinstance(encode_frame({"a": 1}, Codec.JSON), str)
    assert isinstance(encode_frame({"a": 1}, Codec.MSGPACK), bytes)
    with pytest.raises(BadFrame):
        decode_frame(b"{}", Codec.JSON)
    with pytest.raises(BadFrame):
        decode_frame("{}", Codec.MSGPACK)


@pytest.mark.parametrize("frame", ["{", "nope", "{'single': 1}", '{"a": NaN'])
def test_malformed_json_is_a_bad_frame(frame: str) -> None:
    with pytest.raises(BadFrame):
        decode_frame(frame, Codec.JSON)


def test_malformed_msgpack_is_a_bad_frame() -> None:
    with pytest.raises(BadFrame):
        decode_frame(b"\xc1\xff\x00", Codec.MSGPACK)
    with pytest.raises(BadFrame):
        decode_frame(msgpack.packb({1: 2}), Codec.MSGPACK)  # non-string keys


@given(st.binary(max_size=200))
def test_any_bytes_decode_or_fail_cleanly(data: bytes) -> None:
    with contextlib.suppress(BadFrame):
        decode_frame(data, Codec.MSGPACK)


@given(st.text(max_size=200))
def test_any_text_decodes_or_fails_cleanly(text: str) -> None:
    try:
        message = decode_frame(text, Codec.JSON)
        parse_request(message)
    except (BadFrame, InvalidRequest, UnknownOp):
        pass


def test_parse_valid_request() -> None:
    request = parse_request({"id": "a1", "op": "chat", "room": "demo", "text": "hi"})
    assert request.id == "a1"
    assert request.op == "chat"
    assert isinstance(request.params, ChatParams)
    assert request.params.text == "hi"


def test_missing_id_is_invalid() -> None:
    with pytest.raises(InvalidRequest, match="id"):
        parse_request({"op": "ping"})


@pytest.mark.parametrize("rid", [None, True, "", "x" * 65, 2**60, 1.5, [1]])
def test_unusable_ids_are_invalid(rid: object) -> None:
    with pytest.raises(InvalidRequest):
        parse_request({"id": rid, "op": "ping"})
    assert request_id_of({"id": rid}) is None


def test_unknown_op() -> None:
    with pytest.raises(UnknownOp) as info:
        parse_request({"id": 1, "op": "teleport"})
    assert info.value.code == "unknown_op"


def test_missing_op_and_non_object() -> None:
    with pytest.raises(InvalidRequest):
        parse_request({"id": 1})
    with pytest.raises(BadFrame):
        parse_request([1, 2])


def test_invalid_params_carry_field_details() -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_request({"id": 1, "op": "react", "room": "r", "kind": "x", "count": 0})
    assert info.value.details[0]["field"] == "count"
    with pytest.raises(InvalidRequest):
        parse_request({"id": 1, "op": "subscribe", "room": "bad room!"})
    with pytest.raises(InvalidRequest):
        parse_request({"id": 1, "op": "ping", "unexpected": True})


def test_reply_shapes() -> None:
    error = error_reply(3, UnknownOp("x"))
    assert error == {
        "id": 3,
        "error": {"code": "unknown_op", "message": "x", "temporary": False},
    }
    push = room_push("r", "e1", [{"offset": 1}], {})
    assert push == {"push": "room", "room": "r", "epoch": "e1", "events": [{"offset": 1}]}
    assert json.loads(encode_frame(push, Codec.JSON)) == push


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 200_000])
@pytest.mark.parametrize("binary", [False, True])
def test_server_frame_is_what_a_client_parses(size: int, binary: bool) -> None:
    """The hub frames each push once by hand; a standard parser must read it back."""
    payload: str | bytes = b"\x01" * size if binary else "é" * (size // 2) + "x" * (size % 2)
    reader = StreamReader()
    reader.feed_data(server_frame(payload))
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    with pytest.raises(StopIteration) as stop:
        next(parser)
    frame: Frame = stop.value.value
    assert frame.fin
    assert frame.opcode is (Opcode.BINARY if binary else Opcode.TEXT)
    assert frame.data == (payload if isinstance(payload, bytes) else payload.encode())
