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

If the interpreter's ``avatarkit`` has no ``new_avatar_session`` yet, the
runner says "SDK not available yet" and reports ``available: false``.
"""

from __future__ import annotations

import argparse
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
        self.errors = 0

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
        session = avatarkit.new_avatar_session(
            api_key=API_KEY,
            app_id=APP_ID,
            avatar_id=AVATAR_ID,
            console_endpoint_url=self.console,
            ingress_endpoint_url=self.ingress,
            expire_at=datetime.now(timezone.utc) + timedelta(hours=1),
            sample_rate=16000,
            transport_frames=on_frame,
            on_error=self._on_error,
            on_close=self._on_close,
        )
        await session.init()
        return session

    async def open_ws(self, token_state: Any) -> Any:
        await token_state.start()
        return token_state

    async def send_audio(self, handle: Any, data: bytes, end: bool) -> None:
        await handle.send_audio(data, end=end)

    async def close(self, handle: Any) -> None:
        await handle.close()

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
        }


def run(argv: list[str] | None = None) -> int:
    if not sdk_available():
        detail = _IMPORT_ERROR or f"{sdk_label()} has no new_avatar_session"
        print(f"SDK not available yet ({detail})", file=sys.stderr, flush=True)
        print("SDK not available yet")
        emit_result({"ok": True, "available": False, "detail": detail})
        return 0
    return int(main(SdkAdapter, __doc__.split("\n\n")[0], argv))


if __name__ == "__main__":
    sys.exit(run())
