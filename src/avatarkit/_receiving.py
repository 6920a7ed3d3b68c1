"""The receiving half of a session: what the server sends, as the transport hands it over.

A mixin of :class:`~avatarkit.AvatarSession` (its state lives in the
session's slots, declared here for the type checker). The transport calls
:meth:`SessionReceiving.on_message` for every binary message and
:meth:`SessionReceiving.on_text` for a text frame, on the event loop, from
its own receive callback: this is the per-frame path, so it parses once and
calls the user's plain callbacks directly. The end of the connection
(``on_closed``) stays with the session's lifecycle in :mod:`avatarkit.session`.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from google.protobuf.message import DecodeError

from ._callbacks import _await_result, logger
from ._framebuffer import FrameBuffer, Received
from ._streaming import SessionStreaming
from .errors import AvatarSDKError, AvatarSDKErrorCode
from .events import AnimationFrameEvent, PlaybackSignal
from .protocol import (
    ANIMATION_TYPE,
    AnimationReceived,
    PlaybackStateReceived,
    ServerErrorReceived,
    SessionConfirmed,
    parse_message,
)

__all__ = ["SessionReceiving"]


class SessionReceiving(SessionStreaming):
    """Mixin: the session's receive path (``TransportListener.on_message``/``on_text``)."""

    _cb_frames: Callable[[bytes, bool], Any] | None
    _cb_playback: Callable[[PlaybackSignal], Any] | None
    _cb_state: Callable[..., Any] | None
    _cb_animation: Callable[[AnimationFrameEvent], Any] | None
    _cb_error: Callable[[AvatarSDKError], Any] | None
    _confirm: asyncio.Future[SessionConfirmed] | None
    _frame_queues: list[FrameBuffer[Received]] | None
    _wants_events: bool

    def on_message(self, data: bytes) -> None:
        """Transport callback: one binary message from the server.

        This is the per-frame path: one parse, then the user's
        ``transport_frames`` called directly (no wrapper, no allocation) when
        it is a plain function and no async callback is pending.
        """
        protocol = self._protocol
        try:
            msg = parse_message(data)
        except DecodeError as exc:
            self._on_protocol_error(protocol.decode_error(exc))
            return
        if msg.type == ANIMATION_TYPE and protocol.streaming:
            anim = msg.server_response_animation
            frames = self._cb_frames
            if frames is not None:
                # _call() inlined: this runs for every frame.
                if self._dispatch_queue:
                    self._enqueue(frames, (data, anim.end))
                else:
                    try:
                        result = frames(data, anim.end)
                    except Exception:
                        logger.exception(
                            "avatarkit: transport_frames callback raised; the session goes on"
                        )
                    else:
                        if result is not None and inspect.isawaitable(result):
                            self._enqueue(_await_result, (result, "transport_frames"))
            if self._active_request is not None:  # stream(): its frames to its handle
                self._active_request._on_animation(anim, data)
            queues = self._frame_queues
            if queues:  # frames(): kept as bytes, the event is made when read (_framebuffer)
                item = (data,) if anim.end else data
                for buffer in queues:
                    buffer.items.append(item)
                    if buffer.waiters:  # wake only a sleeping iterator
                        buffer.wake()
            if self._wants_events:
                self._on_animation(anim, data)
            return
        try:
            event = protocol.handle(msg)
        except AvatarSDKError as err:
            self._on_protocol_error(err)
            return
        if type(event) is SessionConfirmed:
            if self._confirm is not None and not self._confirm.done():
                self._confirm.set_result(event)
        elif type(event) is ServerErrorReceived:
            self._route_server_error(event.error, event.fatal)  # to stream()'s request
            if event.fatal:
                if self._confirm is not None and not self._confirm.done():
                    self._confirm.set_exception(event.error)
            elif self._cb_error is not None:
                self._call(self._cb_error, "on_error", event.error)
            else:
                logger.warning("avatarkit: server error: %s", event.error)
        elif type(event) is PlaybackStateReceived and self._cb_state is not None:
            self._call(self._cb_state, "on_playback_state", event.event)

    def _on_animation(self, event: AnimationReceived, data: bytes) -> None:
        if self._metrics is not None:
            self._metrics.frame(event.req_id, event.end)
        if self._cb_playback is not None:
            self._call(
                self._cb_playback,
                "on_playback",
                PlaybackSignal(
                    event.req_id,
                    event.end,
                    event.connection_id,
                    event.avatar_id,
                    bool(event.animation),
                ),
            )
        if self._cb_animation is not None:
            frame = AnimationFrameEvent(
                event.req_id,
                event.end,
                event.animation,
                data,
                event.connection_id,
                event.avatar_id,
            )
            self._call(self._cb_animation, "on_animation", frame)

    def _on_protocol_error(self, err: AvatarSDKError) -> None:
        if self._confirm is not None and not self._confirm.done():
            self._confirm.set_exception(err)
        elif self._cb_error is not None:
            self._call(self._cb_error, "on_error", err)
        else:
            logger.warning("avatarkit: %s", err)

    def on_text(self) -> None:
        """Transport callback: a text frame, which the protocol does not allow."""
        err = AvatarSDKError(
            AvatarSDKErrorCode.protocolError,
            "failed during websocket handshake: expected binary protobuf message"
            if not self._protocol.streaming
            else "server sent a text frame; the protocol is binary protobuf only",
            phase=self._protocol.phase,
            connection_id=self.connection_id,
        )
        self._on_protocol_error(err)
