"""SDK client: drives ``import avatarkit`` through its public 0.1.7 API.

The same module measures two SDKs, chosen by the interpreter that runs it
(from the repository root, so that ``benchmarks`` is importable):

- the published avatarkit 0.1.7: ``<0.1.7 venv>/bin/python -m
  benchmarks.clients.sdk ...`` (the package has our import name, so it only
  runs from its own virtualenv; ``python -m benchmarks`` finds or makes one);
- this repository's SDK: ``PYTHONPATH=src python -m benchmarks.clients.sdk ...``.

Only the API both publish is used: ``avatarkit.new_avatar_session(api_key=,
app_id=, avatar_id=, console_endpoint_url=, ingress_endpoint_url=, expire_at=,
sample_rate=, transport_frames=, on_error=, on_close=)``, then ``init()``
(token call), ``start()`` (WebSocket + configure/confirm),
``send_audio(bytes, end=)`` and ``close()``. ``transport_frames(frame, is_last)``
receives the serialized envelope, as in 0.1.7.

``--api`` (ours only): ``on_animation`` (the callback gets ``event.message``
and ``event.end``), ``frames`` (a task per session doing ``async for event
in session.frames()``) or ``request`` (the audio goes through
``session.stream()``, fed by an ``AudioFeed`` the measuring loop pushes its
chunks into, and a task per request does ``async for event in req``)
instead of ``transport_frames``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import avatarkit
from benchmarks.clients.measure import OnFrame, main
from benchmarks.common import API_KEY, APP_ID, AVATAR_ID, log, protobuf_backend


def sdk_label() -> str:
    return f"avatarkit {getattr(avatarkit, '__version__', '?')}"


class SdkAdapter:
    """``open_token`` creates the session (its ``transport_frames`` is the
    scenario's callback, passed as is) and calls ``init()``, the token call;
    ``open_ws`` calls ``start()``."""

    name = "sdk"

    def __init__(self, args: argparse.Namespace) -> None:
        self.console = args.console
        self.ingress = args.ingress
        self.api = args.api
        self.errors = 0
        self.name = "sdk" if self.api == "transport_frames" else f"sdk ({self.api})"
        self._consumers: dict[int, tuple[asyncio.Task[None], OnFrame]] = {}
        self._pending: dict[int, OnFrame] = {}
        self._requests: dict[int, _StreamedRequest] = {}

    def _on_error(self, error: Any) -> None:
        self.errors += 1
        if self.errors <= 3:
            log(f"{sdk_label()}: on_error: {error!r}")

    def _on_close(self, *args: Any) -> None:
        pass

    async def setup(self) -> None:
        if self.api == "request":
            # What the first stream() of a process loads (numpy, soxr: about
            # 0.1 s, once): loaded here so that it is not counted per frame.
            import avatarkit._audio_source  # noqa: F401

    async def open_token(self, on_frame: OnFrame) -> Any:
        frames: dict[str, Any] = {}
        if self.api == "transport_frames":
            frames["transport_frames"] = on_frame
        elif self.api == "on_animation":
            frames["on_animation"] = lambda event: on_frame(event.message, event.end)
        session = avatarkit.new_avatar_session(
            api_key=API_KEY,
            app_id=APP_ID,
            avatar_id=AVATAR_ID,
            console_endpoint_url=self.console,
            ingress_endpoint_url=self.ingress,
            expire_at=datetime.now(timezone.utc) + timedelta(hours=1),
            sample_rate=16000,
            on_error=self._on_error,
            on_close=self._on_close,
            **frames,
        )
        if self.api in ("frames", "request"):
            self._pending[id(session)] = on_frame
        await session.init()
        return session

    async def open_ws(self, token_state: Any) -> Any:
        await token_state.start()
        on_frame = self._pending.pop(id(token_state), None)
        if on_frame is not None and self.api == "request":
            self._requests[id(token_state)] = _StreamedRequest(token_state, on_frame)
        elif on_frame is not None:
            task = asyncio.get_running_loop().create_task(_consume(token_state, on_frame))
            self._consumers[id(token_state)] = (task, on_frame)
            await asyncio.sleep(0)  # the iterator registers before any audio is sent
        return token_state

    async def send_audio(self, handle: Any, data: bytes, end: bool) -> None:
        request = self._requests.get(id(handle))
        if request is not None:
            request.push(data, end)
        else:
            await handle.send_audio(data, end=end)

    async def close(self, handle: Any) -> None:
        request = self._requests.pop(id(handle), None)
        if request is not None:
            await request.finish()
        await handle.close()
        consumer = self._consumers.pop(id(handle), None)
        if consumer is not None:
            with contextlib.suppress(asyncio.CancelledError):
                # The iterator ends when the session closes.
                await asyncio.wait_for(consumer[0], 10)

    async def teardown(self) -> None:
        pass

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "library": sdk_label(),
            "module": getattr(avatarkit, "__file__", None),
            "protobuf": protobuf_backend(),
            "errors": self.errors,
            "api": self.api,
        }


class _StreamedRequest:
    """One session's audio through ``session.stream()``: the measuring loop
    pushes its chunks into an ``avatarkit.AudioFeed`` (``pace="source"``: sent
    as they come, as a TTS callback would push them; the last one with
    ``end=True``, one message as with ``send_audio(chunk, end=True)``); a task
    iterates the request. A new request starts with the first chunk after an
    ``end``."""

    def __init__(self, session: Any, on_frame: OnFrame) -> None:
        self.session = session
        self.on_frame = on_frame
        self.chunks: Any = None  # the open request's AudioFeed
        self.consumers: list[asyncio.Task[None]] = []

    def push(self, data: bytes, end: bool) -> None:
        if self.chunks is None:
            self.chunks = avatarkit.AudioFeed()
            req = self.session.stream(self.chunks, pace="source")
            self.consumers.append(asyncio.get_running_loop().create_task(self.consume(req)))
        self.chunks.push(data, end)  # the last chunk carries the end, as with send_audio()
        if end:
            self.chunks = None

    async def consume(self, req: Any) -> None:
        on_frame = self.on_frame
        async for event in req:
            on_frame(event.message, event.end)
        await req.done()

    async def finish(self) -> None:
        if self.chunks is not None:
            self.chunks.end()
        if self.consumers:
            await asyncio.wait(self.consumers, timeout=10)
            for task in self.consumers:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    log(f"{sdk_label()}: request failed: {task.exception()!r}")


async def _consume(session: Any, on_frame: OnFrame) -> None:
    async for event in session.frames():
        on_frame(event.message, event.end)


if __name__ == "__main__":
    sys.exit(main(SdkAdapter, __doc__.split("\n\n")[0]))
