"""``AudioFeed``: a push-style source for :meth:`AvatarSession.stream`.

A TTS callback or a relay has audio chunks *pushed* at it; wrapping them in an
async generator over an ``asyncio.Queue`` costs a wake-up of the request's
feeder task per chunk (the queue's getter, the generator, the feeder). With an
``AudioFeed`` the producer calls :meth:`AudioFeed.push` and, when the chunk is
exactly ``chunk_ms`` of PCM at the session's rate, the pace is not
``"realtime"``, nothing is waiting before it and the socket takes writes, the
chunk is sent right there, in the producer's call: no task wakes. Anything
else (another size, resampling, the built-in encoder, realtime pacing, a
socket under backpressure) waits in the feed and the feeder sends it, in
order, as for any other async iterable.

Call it from the event loop's thread. ``push()`` never blocks: audio the
feeder has not sent yet waits in memory (the producer paces itself, as with
``pace="source"``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._request import AvatarRequest

__all__ = ["AudioFeed"]


class AudioFeed:
    """Audio pushed by the producer for one ``session.stream()`` request.

    ``feed = AudioFeed(); req = session.stream(feed); feed.push(pcm); ...;
    feed.end()`` (or ``feed.push(last_pcm, end=True)``). ``push()`` after
    the end raises ``RuntimeError``; once the
    request stopped reading (it ended, was interrupted or failed), pushed
    audio is dropped and ``push()`` returns ``False``. One feed per request.
    """

    __slots__ = (
        "_chunk_bytes",
        "_closed",
        "_ended",
        "_exact",
        "_items",
        "_request",
        "_taken",
        "_waiter",
    )

    def __init__(self) -> None:
        self._items: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None  # the feeder, parked in __anext__
        self._ended = False
        self._closed = False
        self._request: AvatarRequest | None = None  # while the request runs (see _detach)
        self._taken = False  # a request took this feed (one feed per stream())
        self._chunk_bytes = 0  # 0: no direct sends (set by stream() when they are possible)
        self._exact = True  # every chunk so far was exactly one chunk: the shaper holds nothing

    def __repr__(self) -> str:
        state = "ended" if self._ended else "closed" if self._closed else "open"
        return f"<AudioFeed {state} queued={len(self._items)}>"

    def push(self, data: bytes | bytearray | memoryview, end: bool = False) -> bool:
        """Add PCM s16le audio; ``False`` when the request no longer takes audio.

        Sent at once when it can be (see the module's text), else queued for
        the request's feeder. ``end=True``: this is the last audio, as
        ``push(data)`` then :meth:`end`, except that a chunk sent at once
        carries the request's end itself (one message where ``end()`` adds an
        empty one, as ``send_audio(chunk, end=True)`` does). Raises
        ``TypeError`` for anything but bytes-like audio and ``RuntimeError``
        after :meth:`end`.
        """
        if self._ended:
            raise RuntimeError(
                "AudioFeed.push() after end(): a feed carries one request; "
                "use a new AudioFeed for the next stream()"
            )
        if data.__class__ is not bytes:
            if not isinstance(data, (bytearray, memoryview)):
                raise TypeError(
                    f"AudioFeed.push() takes PCM s16le bytes, got {type(data).__name__} "
                    "(convert numpy arrays with .astype('<i2').tobytes())"
                )
            data = bytes(data)
        if self._closed or (self._request is not None and self._request._interrupting):
            self._closed = True  # the request is being interrupted: it takes no more
            if end:
                self.end()
            return False
        if (
            len(data) == self._chunk_bytes
            and self._chunk_bytes
            and self._exact
            and not self._items
            and self._request is not None
        ):
            # The request decides: it sends when no feeder runs yet (idle) or
            # when its feeder is parked here, waiting for audio.
            sent = self._request._send_now(data, end, self._waiter is not None)
            if sent is not None:
                if not sent:  # the send failed: the request failed, it takes no more
                    self._closed = True
                if end:
                    self.end()  # the feeder finds the feed ended, the end sent
                return sent
        if data:
            self._items.append(data)
        if end:
            self.end()
        else:
            self._kick()
        return True

    def end(self) -> None:
        """No more audio: the request sends its end once the queued audio is out."""
        self._ended = True
        self._kick()

    @property
    def queued(self) -> int:
        """Chunks pushed but not yet taken by the request's feeder."""
        return len(self._items)

    def _check_free(self) -> None:
        """Raise ``ValueError`` if a request took this feed (``stream()`` asks first)."""
        if self._taken:
            raise ValueError(
                "this AudioFeed already feeds or fed a request; use one feed per stream()"
            )

    def _attach(self, request: AvatarRequest, chunk_bytes: int) -> None:
        """``stream()`` took this feed; ``chunk_bytes`` > 0 allows direct sends.

        Links both ways: the feed asks the request to send, the request cuts
        the link when it resolves (:meth:`_detach`).
        """
        self._check_free()
        self._taken = True
        self._request = request
        request._audio_feed = self
        self._chunk_bytes = chunk_bytes

    def _detach(self) -> None:
        """The request resolved (``AvatarRequest._finish``): it takes no more audio.

        Drops the link back to the request, the one reference cycle of a
        request on a feed, and refuses later pushes (``push()`` returns
        ``False``) as after an interrupt. A feeder parked here is not woken:
        a resolved request stops its feeder itself. What is still queued
        will never be sent and is dropped.
        """
        self._request = None
        self._close(wake=False)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _kick(self) -> None:
        """Audio or the end is queued: wake the feeder, or have the request start one."""
        if self._waiter is not None:
            self._wake()
        elif self._request is not None:
            self._request._wake_feeder()

    def __aiter__(self) -> AudioFeed:
        return self

    async def __anext__(self) -> bytes:
        items = self._items
        while not items:
            if self._ended or self._closed:
                raise StopAsyncIteration
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                self._waiter = None
        data = items.popleft()
        if len(data) != self._chunk_bytes:
            self._exact = False  # the shaper may now hold part of a chunk: no direct sends
        return data

    async def aclose(self) -> None:
        """The request stopped reading: drop what is queued, refuse more."""
        self._close()

    def _close(self, wake: bool = True) -> None:
        self._closed = True
        self._items.clear()
        if wake:
            self._wake()
