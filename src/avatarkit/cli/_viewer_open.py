"""``demo``'s live viewer: print its URL, and with ``--open`` show it in a browser.

With the embedded local service, ``demo`` prints the URL of its session's
viewer page (``/sessions/<connection_id>``) on stderr. ``--open`` also opens
it in the default browser (:mod:`webbrowser`, which honours ``$BROWSER``)
and keeps the embedded service alive until the page has played the clip:

* before streaming, it waits up to :data:`CONNECT_TIMEOUT` seconds for the
  page to connect (so it sees the clip from its start), then streams anyway;
* after the last frame, it waits up to the clip's duration plus
  :data:`PLAY_MARGIN` seconds for the page to report it showed the last frame
  (``--fast`` sends frames faster than real time; the page still plays them
  at 25 frames per second).

With a configured (hosted) service there is no local viewer: ``--open`` says
so and does nothing.
"""

from __future__ import annotations

import threading
import webbrowser
from typing import Any

from ._common import _note
from ._target import Target

__all__ = ["CONNECT_TIMEOUT", "PLAY_MARGIN", "DemoViewer"]

CONNECT_TIMEOUT = 20.0
"""Seconds ``demo --open`` waits for the browser's page to connect before streaming."""
PLAY_MARGIN = 10.0
"""Seconds beyond the clip's duration ``demo --open`` waits for the page to play it."""


def _open_in_browser(url: str) -> None:
    # In a daemon thread: some browsers' launchers block until the browser exits.
    try:
        opened = webbrowser.open(url, new=2)
    except Exception as exc:  # webbrowser.Error or a broken $BROWSER command
        _note(f"could not open a browser ({exc}); open {url} yourself")
        return
    if not opened:
        _note(f"no browser found to open; open {url} yourself")


class DemoViewer:
    """Hooks ``demo`` calls around streaming (see the module docstring)."""

    def __init__(self, target: Target, *, open_browser: bool, clip_seconds: float) -> None:
        self.target = target
        self.open_browser = open_browser
        self.clip_seconds = clip_seconds
        self.url: str | None = None
        self.connection_id = ""
        self.watched = False

    @property
    def _server(self) -> Any:
        return self.target.server

    async def on_started(self, connection_id: str) -> None:
        """The session is open: print the viewer URL; with ``--open``, open it and wait."""
        server = self._server
        if server is None:
            if self.open_browser:
                _note(
                    "--open: the live viewer is part of the embedded local service; "
                    "with a configured service there is none to open"
                )
            return
        self.connection_id = connection_id
        self.url = f"{server.api_root}/sessions/{connection_id}"
        _note(f"live viewer of this session: {self.url}")
        if not self.open_browser:
            return
        threading.Thread(
            target=_open_in_browser, args=(self.url,), name="avatarkit-open", daemon=True
        ).start()
        hub = server.viewers
        self.watched = await hub.wait_for(lambda: hub.watchers(connection_id) > 0, CONNECT_TIMEOUT)
        if not self.watched:
            _note(f"no viewer page connected within {CONNECT_TIMEOUT:g} s; streaming anyway")

    async def after(self, req_id: str) -> None:
        """The clip was streamed: with ``--open``, wait for the page to play it (bounded)."""
        server = self._server
        if server is None or not self.open_browser or not self.watched:
            return
        hub = server.viewers
        bound = self.clip_seconds + PLAY_MARGIN
        cid = self.connection_id
        if await hub.wait_for(lambda: hub.played(cid, req_id), bound):
            _note("the viewer played the clip")
        else:
            _note(f"the viewer did not report the end of the clip within {bound:g} s")
