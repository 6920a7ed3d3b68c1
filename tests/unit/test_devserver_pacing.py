"""The pacer's decisions as a pure function of the state and the clock (no sockets)."""

from __future__ import annotations

import pytest

from avatarkit.devserver._pacing import FRAME_S, PacerView, Step, StepKind, frame_due, next_step


def head(now: float, **kw: object) -> PacerView:
    fields: dict[str, object] = {
        "has_head": True,
        "head_ready": True,
        "delay_checked": True,
        "t0": 100.0,
    }
    fields.update(kw)
    return PacerView(now, True, **fields)  # type: ignore[arg-type]


def test_nothing_to_do_sleeps_until_the_nearest_far_deadline() -> None:
    assert next_step(PacerView(5.0, True)) == Step(StepKind.SLEEP, None, None)
    view = PacerView(5.0, True, session_deadline=50.0, idle_at=20.0)
    assert next_step(view) == Step(StepKind.SLEEP, None, 20.0)


def test_session_deadline_wins_over_idle_and_frames() -> None:
    view = head(60.0, session_deadline=60.0, idle_at=10.0)
    assert next_step(view).kind is StepKind.SESSION_EXPIRED
    assert next_step(head(60.0, idle_at=60.0)).kind is StepKind.IDLE_TIMEOUT


def test_realtime_frame_k_is_due_at_t0_plus_k_frames() -> None:
    assert frame_due(100.0, 3, realtime=True) == pytest.approx(100.0 + 3 * FRAME_S)
    assert frame_due(100.0, 3, realtime=False) == 100.0
    before = head(100.0 + 3 * FRAME_S - 0.001, frames_sent=3)
    step = next_step(before)
    assert step.kind is StepKind.SLEEP and step.wake == pytest.approx(100.0 + 3 * FRAME_S)
    assert next_step(head(100.0 + 3 * FRAME_S, frames_sent=3)).kind is StepKind.EMIT


def test_fast_pace_sends_at_once_after_t0() -> None:
    view = PacerView(100.0, False, has_head=True, head_ready=True, delay_checked=True, t0=0.0)
    assert next_step(view).kind is StepKind.EMIT
    delayed = PacerView(100.0, False, has_head=True, head_ready=True, delay_checked=True, t0=101)
    assert next_step(delayed) == Step(StepKind.SLEEP, 101, None)


def test_fault_delays_are_consulted_once_before_each_frame() -> None:
    assert next_step(head(200.0, delay_checked=False)).kind is StepKind.CHECK_DELAY
    assert next_step(head(200.0, delay_checked=True)).kind is StepKind.EMIT


def test_a_frame_that_is_not_ready_is_not_sent() -> None:
    step = next_step(head(200.0, head_ready=False, idle_at=230.0))
    assert step == Step(StepKind.SLEEP, None, 230.0)


def test_paused_request_sleeps_then_times_out() -> None:
    paused = head(10.0, head_paused=True, head_ready=False, pause_timeout_at=12.0)
    assert next_step(paused) == Step(StepKind.SLEEP, 12.0, None)
    assert next_step(head(12.0, head_paused=True, pause_timeout_at=12.0)).kind is (
        StepKind.PAUSE_TIMEOUT
    )
    no_limit = head(10_000.0, head_paused=True, head_ready=False)
    assert next_step(no_limit) == Step(StepKind.SLEEP, None, None)
