"""When to send each audio chunk of ``session.stream()``: the ``pace`` option.

- ``"realtime"``: each chunk is sent at its playback time minus
  :data:`REALTIME_LEAD_S` (80 ms, so the service never starves for audio while
  a chunk is in flight). The schedule is computed from the stream's start time
  plus the cumulative duration of the audio sent before the chunk, never from
  "last send + chunk duration": the time a send takes, a late wake-up or a
  slow source do not add up, so a 10-minute stream stays within a few
  milliseconds of 10 minutes. A chunk that is already late (a source that
  stalled) is sent at once, and the chunks after it catch up with the
  schedule, also at once: audio is never held back to "re-time" a stall.
- ``"source"``: no waiting; chunks go out as the source yields them (a TTS
  stream paces itself).
- ``"fast"``: no waiting; chunks go out as fast as the connection takes them.

The pacer is pure: it only reads and sleeps through its :class:`Clock`, so a
test can drive hours of audio with a fake clock in milliseconds.
"""

from __future__ import annotations

import asyncio
import math
from typing import Literal, Protocol, get_args

__all__ = ["DEFAULT_CHUNK_MS", "PACES", "REALTIME_LEAD_S", "Clock", "LoopClock", "Pace", "Pacer"]

Pace = Literal["realtime", "source", "fast"]
PACES: tuple[str, ...] = get_args(Pace)
DEFAULT_CHUNK_MS = 40
"""Length of one PCM chunk sent on the wire, in milliseconds (``stream(chunk_ms=)``)."""
REALTIME_LEAD_S = 0.08
"""How far ahead of its playback time ``pace="realtime"`` sends a chunk (seconds)."""


class Clock(Protocol):
    """A monotonic clock the pacer reads and sleeps on (injectable for tests)."""

    def now(self) -> float:
        """Current time in seconds (monotonic; only differences matter)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` (> 0)."""
        ...


class LoopClock:
    """The running event loop's monotonic clock (the one ``asyncio.sleep`` uses)."""

    def now(self) -> float:
        """``loop.time()`` of the running loop."""
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep``."""
        await asyncio.sleep(seconds)


class Pacer:
    """Decides how long to wait before sending each chunk.

    Call :meth:`wait` with the chunk's playback duration right before sending
    it. With ``"realtime"`` the first call fixes the stream's start time
    ``t0``; chunk *i* is due at ``t0 + (audio before chunk i) - lead_s``
    (the first ``lead_s`` of audio therefore goes out at once). Every wait is
    bounded: never longer than the time until the chunk is due.
    """

    def __init__(
        self,
        pace: Pace = "fast",
        *,
        clock: Clock | None = None,
        lead_s: float = REALTIME_LEAD_S,
    ) -> None:
        if pace not in PACES:
            raise ValueError(f"pace must be one of {', '.join(map(repr, PACES))}, got {pace!r}")
        if isinstance(lead_s, bool) or not isinstance(lead_s, (int, float)):
            raise TypeError(f"lead_s must be a number of seconds, got {type(lead_s).__name__}")
        if not (math.isfinite(lead_s) and lead_s >= 0):
            raise ValueError(f"lead_s must be a finite number of seconds >= 0, got {lead_s}")
        self.pace: Pace = pace
        self.lead_s = float(lead_s)
        self._clock: Clock = clock if clock is not None else LoopClock()
        self._t0: float | None = None
        self._audio_s = 0.0

    @property
    def started_at(self) -> float | None:
        """Clock time of the first :meth:`wait` call (the stream's start), or None."""
        return self._t0

    @property
    def audio_s(self) -> float:
        """Playback duration of the audio passed to :meth:`wait` so far."""
        return self._audio_s

    @property
    def playback_end(self) -> float | None:
        """Clock time at which the audio so far has played out (``t0 + audio_s``)."""
        return None if self._t0 is None else self._t0 + self._audio_s

    def due(self) -> float | None:
        """Clock time the next chunk is due (realtime only; None for the other paces)."""
        if self.pace != "realtime" or self._t0 is None:
            return None
        return self._t0 + self._audio_s - self.lead_s

    async def wait(self, duration_s: float) -> None:
        """Wait until the next chunk (``duration_s`` of audio) is due, then account for it."""
        if self.pace != "realtime":
            self.advance(duration_s)
            return
        _check_duration(duration_s)
        if self._t0 is None:
            self._t0 = self._clock.now()
        delay = self._t0 + self._audio_s - self.lead_s - self._clock.now()
        if delay > 0:
            await self._clock.sleep(delay)
        self._audio_s += duration_s

    def advance(self, duration_s: float) -> None:
        """Account for a chunk sent without waiting.

        For ``"fast"`` and ``"source"`` this is all :meth:`wait` does; the
        feeder calls it directly, saving a coroutine per chunk.
        """
        _check_duration(duration_s)
        if self._t0 is None:
            self._t0 = self._clock.now()
        self._audio_s += duration_s


def _check_duration(duration_s: float) -> None:
    if not (math.isfinite(duration_s) and duration_s >= 0):
        raise ValueError(f"chunk duration must be a finite number >= 0, got {duration_s}")
