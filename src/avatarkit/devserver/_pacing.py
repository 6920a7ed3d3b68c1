"""What the local service's pacer does next: a pure function of the state and the clock.

The pacer of a connection (:mod:`avatarkit.devserver._connection`) loops:
it reads the clock, describes the connection in a :class:`PacerView`, asks
:func:`next_step` what to do, does it (send a frame, close, sleep) and asks
again. Every timing rule lives here, with no I/O, so it is unit-tested
without sockets:

* the session's duration limit, then the idle timeout (no audio in and no
  frame out for that long), end the session;
* a paused request is interrupted once paused for ``pause_timeout``;
* the request at the head of the queue sends its next frame when one is
  ready (the analyzer has a frame and the newest is held back until more
  audio or the end arrives) and due: frame ``k`` at ``t0 + k * 40 ms`` in
  ``realtime`` pace, at ``t0`` (not before a fault delay) in ``fast`` pace.
  Before each frame the fault delays are consulted once;
* otherwise it sleeps until the next frame or pause deadline (``wake``) or
  the session's far deadline (``limit``), or until woken.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .._frames_codec import FRAME_MS

__all__ = ["FRAME_S", "PacerView", "Step", "StepKind", "frame_due", "next_step"]

FRAME_S = FRAME_MS / 1000.0


class StepKind(Enum):
    SESSION_EXPIRED = "session_expired"  # max_session_seconds reached
    IDLE_TIMEOUT = "idle_timeout"  # no audio in and no frame out for idle_timeout
    PAUSE_TIMEOUT = "pause_timeout"  # interrupt the paused head request
    CHECK_DELAY = "check_delay"  # consult fault delays before the head's next frame
    EMIT = "emit"  # send the head request's next frame now
    SLEEP = "sleep"  # until wake / limit, or until woken


@dataclass(frozen=True, slots=True)
class Step:
    """The pacer's next action; ``wake`` and ``limit`` only for ``SLEEP``."""

    kind: StepKind
    wake: float | None = None
    limit: float | None = None


@dataclass(frozen=True, slots=True)
class PacerView:
    """What the pacer decides on (loop times in seconds).

    ``idle_at``/``session_deadline``: ``None`` when that limit is off.
    ``head_*`` describe the request at the head of the output queue;
    ``has_head`` is false when nothing is playing. ``head_ready``: its next
    frame is computed and may be sent (the glue asks the request, which
    analyses audio lazily). ``pause_timeout_at``: ``None`` unless paused with
    a pause timeout.
    """

    now: float
    realtime: bool
    session_deadline: float | None = None
    idle_at: float | None = None
    has_head: bool = False
    head_paused: bool = False
    pause_timeout_at: float | None = None
    head_ready: bool = False
    delay_checked: bool = False
    t0: float = 0.0
    frames_sent: int = 0


def frame_due(t0: float, frames_sent: int, realtime: bool) -> float:
    """When the next frame may go: ``t0 + k * 40 ms`` in realtime pace, ``t0`` in fast."""
    return t0 + frames_sent * FRAME_S if realtime else t0


def next_step(view: PacerView) -> Step:
    """The one thing the pacer does next (see the module docstring for the rules)."""
    now = view.now
    deadline = view.session_deadline
    if deadline is not None and now >= deadline:
        return Step(StepKind.SESSION_EXPIRED)
    limit = deadline
    if view.idle_at is not None:
        if now >= view.idle_at:
            return Step(StepKind.IDLE_TIMEOUT)
        limit = view.idle_at if limit is None else min(limit, view.idle_at)
    wake: float | None = None
    if view.has_head:
        if view.head_paused:
            if view.pause_timeout_at is not None:
                if now >= view.pause_timeout_at:
                    return Step(StepKind.PAUSE_TIMEOUT)
                wake = view.pause_timeout_at
        elif view.head_ready:
            if not view.delay_checked:
                return Step(StepKind.CHECK_DELAY)
            due = frame_due(view.t0, view.frames_sent, view.realtime)
            if due <= now:
                return Step(StepKind.EMIT)
            wake = due
    return Step(StepKind.SLEEP, wake, limit)
