"""SDK runner: drives ``import avatarkit`` through its public 0.1.7 API.

The same file measures two SDKs, chosen by the interpreter that runs it:

- the published avatarkit 0.1.7: ``benchmarks/.venv-avatarkit017/bin/python
  benchmarks/sdk_runner.py ...`` (that virtualenv is made by
  ``python -m benchmarks``; the package has our import name, so it can only
  run there);
- this repository's SDK: ``PYTHONPATH=src python benchmarks/sdk_runner.py ...``.

Only the API both publish is used: ``avatarkit.new_avatar_session(api_key=,
app_id=, avatar_id=, console_endpoint_url=, ingress_endpoint_url=, expire_at=,
sample_rate=, transport_frames=, on_error=, on_close=)``, then ``init()``
(token call), ``start()`` (WebSocket + configure/confirm),
``send_audio(bytes, end=)`` and ``close()``. ``transport_frames(frame, is_last)``
receives the serialized envelope, as in 0.1.7.

``--api`` (this repository's SDK only) picks how frames reach the scenario's
callback: ``transport_frames`` (the default, as above), ``on_animation``
(parsed ``AnimationFrameEvent`` objects, the callback gets ``event.message``
and ``event.end``) or ``frames`` (one task per session iterating
``async for event in session.frames()``).

If the interpreter's ``avatarkit`` has no ``new_avatar_session`` yet, the
runner says "SDK not available yet" and reports ``available: false``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import emit_result, log, protobuf_backend

try:
    import avatarkit
except ImportError as exc:  # pragma: no cover - depends on the interpreter
    avatarkit = None  # type: ignore[assignment]
    _IMPORT_ERROR: str | None = repr(exc)
else:
    _IMPORT_ERROR = None

from _scenarios import OnFrame, main

APP_ID = "bench-app"
AVATAR_ID = "bench-avatar"
API_KEY = "bench-key"


def sdk_available() -> bool:
    return avatarkit is not None and hasattr(avatarkit, "new_avatar_session")


def sdk_label() -> str:
    if avatarkit is None:
        return "avatarkit (not importable)"
    version = getattr(avatarkit, "__version__", "?")
    return f"avatarkit {version}"


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

    def _on_error(self, error: Any) -> None:
        self.errors += 1
        if self.errors <= 3:
            log(f"{sdk_label()}: on_error: {error!r}")

    def _on_close(self, *args: Any) -> None:
        pass

    async def setup(self) -> None:
        pass

    async def open_token(self, on_frame: OnFrame) -> Any:
        assert avatarkit is not None
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
            **EXTRA_SESSION_KWARGS,
        )
        if self.api == "frames":
            self._pending[id(session)] = on_frame
        await session.init()
        return session

    async def open_ws(self, token_state: Any) -> Any:
        await token_state.start()
        on_frame = self._pending.pop(id(token_state), None)
        if on_frame is not None:
            task = asyncio.get_running_loop().create_task(_consume(token_state, on_frame))
            self._consumers[id(token_state)] = (task, on_frame)
            await asyncio.sleep(0)  # the iterator registers before any audio is sent
        return token_state

    async def send_audio(self, handle: Any, data: bytes, end: bool) -> None:
        await handle.send_audio(data, end=end)

    async def close(self, handle: Any) -> None:
        await handle.close()
        consumer = self._consumers.pop(id(handle), None)
        if consumer is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await consumer[0]  # the iterator ends when the session closes

    async def teardown(self) -> None:
        pass

    def info(self) -> dict[str, Any]:
        assert avatarkit is not None
        return {
            "name": self.name,
            "library": sdk_label(),
            "module": getattr(avatarkit, "__file__", None),
            "protobuf": protobuf_backend(),
            "errors": self.errors,
            "api": self.api,
        }


async def _consume(session: Any, on_frame: OnFrame) -> None:
    async for event in session.frames():
        on_frame(event.message, event.end)


# Extra new_avatar_session() keywords (this repository's SDK only).
EXTRA_SESSION_KWARGS: dict[str, Any] = {}


def _choose_transport(argv: list[str] | None) -> list[str]:
    """Take ``--aiofastnet on|off`` and ``--transport`` off the arguments and apply them.

    ``--aiofastnet``: by default our SDK decides (aiofastnet on asyncio's
    loop, the loop's own transport on uvloop); the benchmark's "transport"
    section forces each choice to show why. ``--transport``: ``picows`` (the
    default), ``aiohttp`` (AiohttpTransport without compression) or
    ``deflate`` (``websocket_compression=True``), for the "compression"
    section. Only for this repository's SDK.
    """
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--aiofastnet", choices=("auto", "on", "off"), default="auto")
    pre.add_argument("--transport", choices=("picows", "aiohttp", "deflate"), default="picows")
    known, rest = pre.parse_known_args(sys.argv[1:] if argv is None else argv)
    if known.aiofastnet != "auto":
        from avatarkit import transport

        choice = known.aiofastnet == "on"
        transport._use_aiofastnet = lambda loop: choice  # type: ignore[attr-defined]
    if known.transport == "aiohttp":
        from avatarkit.transport import AiohttpTransport

        EXTRA_SESSION_KWARGS["transport_factory"] = lambda: AiohttpTransport(compress=False)
    elif known.transport == "deflate":
        EXTRA_SESSION_KWARGS["websocket_compression"] = True
    return rest


def run(argv: list[str] | None = None) -> int:
    argv = _choose_transport(argv)
    if not sdk_available():
        detail = _IMPORT_ERROR or f"{sdk_label()} has no new_avatar_session"
        print(f"SDK not available yet ({detail})", file=sys.stderr, flush=True)
        print("SDK not available yet")
        emit_result({"ok": True, "available": False, "detail": detail})
        return 0
    return int(main(SdkAdapter, __doc__.split("\n\n")[0], argv))


if __name__ == "__main__":
    sys.exit(run())
