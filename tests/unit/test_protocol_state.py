"""The client core's state machine: explicit states, every illegal step a clear error."""

from __future__ import annotations

import pytest

from avatarkit import AvatarSDKError
from avatarkit.config import SessionConfig
from avatarkit.proto import avatarkit_wire_pb2 as pb
from avatarkit.protocol import (
    ClientProtocol,
    ClientState,
    MessageType,
    ProtocolStateError,
    encode_animation,
    encode_confirm,
)
from avatarkit.session import AvatarSession


def test_happy_path_states() -> None:
    client = ClientProtocol()
    assert client.state is ClientState.IDLE
    client.connecting()
    assert client.state is ClientState.CONNECTING
    client.configure(SessionConfig())
    assert client.state is ClientState.AWAITING_CONFIRM
    assert not client.streaming
    client.receive(encode_confirm("c", ()))
    assert client.state is ClientState.OPEN
    assert client.streaming
    client.start_closing()
    assert client.state is ClientState.CLOSING
    assert client.streaming  # frames still in flight are delivered while closing
    client.closed()
    assert client.state is ClientState.CLOSED
    assert not client.streaming


def test_connect_failure_returns_to_idle() -> None:
    client = ClientProtocol()
    client.connecting()
    client.connect_failed()
    assert client.state is ClientState.IDLE
    client.connecting()  # a retry is legal


@pytest.mark.parametrize(
    ("setup", "step", "match"),
    [
        (["connecting"], "connecting", "already started"),
        (["connecting", "configure"], "connecting", "already started"),
        (["closed"], "connecting", "closed; create a new session"),
        (["start_closing"], "connecting", "closed; create a new session"),
        (["connecting", "configure"], "configure", "configure\\(\\) in state awaiting_confirm"),
        (["closed"], "configure", "configure\\(\\) in state closed"),
        (["connecting", "configure"], "connect_failed", "connect_failed\\(\\) in state"),
        ([], "begin_request", "not open yet"),
        (["connecting", "configure"], "begin_request", "not open yet"),
    ],
)
def test_illegal_transitions_raise(setup: list[str], step: str, match: str) -> None:
    client = ClientProtocol()
    for name in setup:
        _do(client, name)
    before = client.state
    with pytest.raises(ProtocolStateError, match=match):
        _do(client, step)
    assert client.state is before  # a refused step changes nothing
    assert isinstance(ProtocolStateError("x"), ValueError)  # what the session raised before


def _do(client: ClientProtocol, name: str) -> None:
    if name == "configure":
        client.configure(SessionConfig())
    else:
        getattr(client, name)()


def test_animation_before_confirm_is_protocol_error() -> None:
    client = ClientProtocol()
    client.connecting()
    client.configure(SessionConfig())
    with pytest.raises(AvatarSDKError, match="before confirming"):
        client.receive(encode_animation("c", "r", False, b"x", "a"))


def test_session_keeps_no_protocol_state_of_its_own() -> None:
    flags = {"_starting", "_open", "_closing", "_closed", "_close_notified"}
    assert not flags & set(AvatarSession.__slots__)


def test_message_types_are_the_generated_enum() -> None:
    names = {name.removeprefix("MESSAGE_"): num for name, num in pb.MessageType.items()}
    ours = {k: v for k, v in vars(MessageType).items() if k.isupper()}
    assert ours == names
