"""``AnimationFrameEvent``: built by hand, or from a received message with its
fields parsed only when read (what ``frames()`` and a request's iterator yield)."""

from __future__ import annotations

import asyncio
import gc

import pytest

from avatarkit import AnimationFrameEvent
from avatarkit._framebuffer import FrameBuffer, Received, frame_event, received
from avatarkit.proto import avatarkit_wire_pb2 as pb


def envelope(req_id: str, end: bool, payload: bytes, connection_id: str, avatar_id: str) -> bytes:
    msg = pb.Message(type=pb.MESSAGE_SERVER_RESPONSE_ANIMATION)
    anim = msg.server_response_animation
    anim.req_id = req_id
    anim.end = end
    anim.animation = payload
    anim.connection_id = connection_id
    anim.avatar_id = avatar_id
    data: bytes = msg.SerializeToString()
    return data


def received_frame_event(message: bytes, end: bool) -> AnimationFrameEvent:
    return frame_event(received(message, end))


MESSAGE = envelope("req-1", False, b"\x01\x02anim", "conn-1", "avatar-1")
EAGER = AnimationFrameEvent("req-1", False, b"\x01\x02anim", MESSAGE, "conn-1", "avatar-1")


def test_received_event_reads_its_fields_from_the_message() -> None:
    event = received_frame_event(MESSAGE, False)
    assert event.message is MESSAGE
    assert event.end is False
    assert event.req_id == "req-1"
    assert event.payload == b"\x01\x02anim"
    assert event.connection_id == "conn-1"
    assert event.avatar_id == "avatar-1"
    assert isinstance(event, AnimationFrameEvent)


@pytest.mark.parametrize("first", ["req_id", "payload", "connection_id", "avatar_id"])
def test_any_field_read_first_parses_all_four(first: str) -> None:
    event = received_frame_event(MESSAGE, False)
    getattr(event, first)
    assert event == EAGER
    assert repr(event) == repr(EAGER)


def test_equality_repr_and_match_as_the_dataclass_had() -> None:
    assert received_frame_event(MESSAGE, False) == EAGER
    assert received_frame_event(MESSAGE, True) != EAGER  # end differs
    assert AnimationFrameEvent("req-2", False, b"\x01\x02anim", MESSAGE, "conn-1") != EAGER
    assert repr(EAGER) == (
        "AnimationFrameEvent(req_id='req-1', end=False, payload=b'\\x01\\x02anim', "
        f"message={MESSAGE!r}, connection_id='conn-1', avatar_id='avatar-1')"
    )
    with pytest.raises(TypeError):
        hash(EAGER)  # mutable, compared by value: unhashable, as before
    match received_frame_event(MESSAGE, False):
        case AnimationFrameEvent(req_id, end, payload):
            assert (req_id, end, payload) == ("req-1", False, b"\x01\x02anim")
        case _:
            pytest.fail("positional match failed")
    keyword = AnimationFrameEvent(req_id="r", end=True, payload=b"p", message=b"m")
    assert (keyword.connection_id, keyword.avatar_id) == ("", "")


def test_a_field_set_on_an_unparsed_event_is_kept() -> None:
    event = received_frame_event(MESSAGE, False)
    event.payload = b"replaced"
    assert event.payload == b"replaced"
    assert event.req_id == "req-1"  # the others still come from the message
    event = received_frame_event(MESSAGE, False)
    event.req_id = "mine"
    assert (event.req_id, event.connection_id) == ("mine", "conn-1")


def test_buffered_item_keeps_end_without_a_parse() -> None:
    last = envelope("req-1", True, b"x", "conn-1", "")
    assert received(MESSAGE, False) is MESSAGE  # bytes: not tracked by the collector
    assert not gc.is_tracked(received(MESSAGE, False))
    item = received(last, True)
    assert item == (last,)
    event = frame_event(item)
    assert (event.message, event.end, event.req_id) == (last, True, "req-1")
    assert frame_event(received(MESSAGE, False)).end is False


async def test_cancelled_sleepers_do_not_pile_up() -> None:
    """A consumer polled with a timeout while nothing comes leaves no waiters behind."""
    loop = asyncio.get_running_loop()
    buffer: FrameBuffer[Received] = FrameBuffer()
    for _ in range(50):
        sleeper = buffer.sleeper(loop)
        sleeper.cancel()
    assert len(buffer.waiters) == 1  # only the latest, dropped by the next sleeper
    live = buffer.sleeper(loop)
    assert buffer.waiters == [live]
    buffer.put(MESSAGE)
    assert live.done() and buffer.waiters == []
    assert list(buffer.items) == [MESSAGE]
