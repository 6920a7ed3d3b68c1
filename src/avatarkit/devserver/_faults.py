"""Fault injection: make the local service fail the way the hosted one can.

Every method of :class:`Faults` adds a :class:`FaultRule` and returns it
(``rule.fired`` counts how often it acted; ``faults.remove(rule)`` or
``faults.clear()`` take rules away). By default a rule is **one-shot**: it
acts once, on the first connection that reaches its trigger, then retires.
``persistent=True`` keeps it acting on every matching connection (for
``delay_frames``: on every frame) until removed.

Which connections a rule applies to (``target``):

* ``None`` (default): any connection;
* ``NEXT`` (``"next"``): the next connection to open after the rule was added
  (bound when its upgrade request arrives);
* a connection id: that live connection only (per-connection faults).

When it acts:

* ``reject_upgrade(status, body)``: the next WebSocket upgrade is answered with
  that HTTP status and body (default: a JSON:API body for the status) instead
  of ``101``. ``reject_token(status, body)`` does the same to a token call.
* ``send_error(code, message, after_frames=N)``: a ``ServerError`` once the
  connection has sent ``N`` animation frames (``N=0``: right after the
  confirm); the session goes on.
* ``close(code, reason, after_frames=N)``: a close frame with that code.
* ``drop_connection(after_frames=N)``: the TCP connection is aborted, with no
  close frame (a transport failure, as when a proxy dies).
* ``delay_frames(seconds, after_frames=N)``: the output stalls for ``seconds``
  before frame ``N + 1`` (persistent: before every frame from there on), which
  shifts the rest of the request's schedule.
* ``send_raw(data, after_frames=N)``: any bytes as a binary message (or, with
  ``text=True``, a text frame): what no correct server sends, for a client's
  ``protocolError`` paths.

``phase="handshake"`` makes ``send_error``/``close``/``drop_connection``/
``send_raw`` act on the ``ClientConfigureSession`` instead of confirming it
(``send_error`` then closes, with ``code`` as close code when it is a 4xxx
code, else 1008; ``send_raw`` leaves the connection open), e.g.
``faults.send_error(4001, "credits exhausted", phase="handshake")``.

How to make a client see each SDK error code (real conditions first):

=========================  =================================================
``sessionTokenInvalid``    bad or empty token (upgrade 401 ``invalid session token``)
``sessionTokenExpired``    ``server.issue_token(expire_at=<past>)`` (401 ``session
                           token expired``); also a wrong API key on the token call
``appIDMismatch``          a token of another app (400 ``app id mismatch``)
``appIDUnrecognized``      an ``X-App-ID`` no API key maps to (404)
``avatarNotFound``         an unknown avatar id (404 ``avatar not found``)
``unsupportedSampleRate``  configure an unsupported rate (``ServerError`` 400)
``invalidEgressConfig``    an invalid LiveKit/Agora config (``ServerError`` 3)
``invalidRequest``         a broken Ogg stream, audio after ``end`` (code 3)
``idleTimeout``            ``idle_timeout`` (``no audio input for N seconds``)
``sessionDurationExceeded``  ``max_session_seconds`` (4002)
``concurrencyLimit``       ``max_sessions_per_app`` (4003); spatialreal reports
                           it so; avatarkit (like 0.1.7) reports ``serverError``
                           / ``connectionClosed`` with code 4003, not retryable
``billingRequired``        ``reject_upgrade(402, ...)`` / ``reject_token(402, ...)``
``creditsExhausted``       ``send_error(4001, "credits exhausted")`` / ``close(4001)``
``egressUnavailable``      ``send_error(14, "failed to create egress connection")``
``upstreamError``          ``send_error(13, "driven server request failed")`` /
                           ``close(4503)``
``serverError``            ``send_error(13, "internal")`` / ``reject_upgrade(500)``
``connectionClosed``       ``close(...)``, ``drop_connection()``
``connectionFailed``       ``drop_connection(phase="handshake")``, or a stopped server
``protocolError``          ``send_raw(b"\xff", phase="handshake")``, ``send_raw(...,
                           text=True)``, ``reject_token(200, "{}")`` (no token)
``unknown``                ``reject_token(302, "")`` (a token answer that is
                           neither success nor an HTTP error)
=========================  =================================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["NEXT", "FaultKind", "FaultRule", "Faults"]

NEXT = "next"
"""``target`` value: the next connection to open."""

FaultKind = Literal[
    "reject_upgrade",
    "reject_token",
    "send_error",
    "close",
    "drop_connection",
    "delay_frames",
    "send_raw",
]
Phase = Literal["handshake", "runtime"]


@dataclass(eq=False)
class FaultRule:
    """One injected fault; see :class:`Faults` for what each kind does."""

    kind: FaultKind
    persistent: bool = False
    target: str | None = None
    after_frames: int = 0
    phase: Phase = "runtime"
    status: int = 0
    body: bytes | None = None
    code: int = 0
    message: str = ""
    seconds: float = 0.0
    text: bool = False
    fired: int = 0
    _bound: int | None = field(default=None, repr=False)
    _fired_on: set[int] = field(default_factory=set, repr=False)

    def _matches(self, conn_key: int, connection_id: str) -> bool:
        if self.target is None:
            return True
        if self.target == NEXT:
            return self._bound == conn_key
        return self.target == connection_id


def _body_bytes(body: str | bytes | dict[str, Any] | list[Any] | None) -> bytes | None:
    if body is None or isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


class Faults:
    """The fault rules of one :class:`~avatarkit.devserver.DevServer` (``server.faults``)."""

    __slots__ = ("_rules",)

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []

    # -- adding rules ---------------------------------------------------------

    def _add(self, rule: FaultRule) -> FaultRule:
        if rule.after_frames < 0:
            raise ValueError("after_frames must be >= 0")
        self._rules.append(rule)
        return rule

    def reject_upgrade(
        self,
        status: int,
        body: str | bytes | dict[str, Any] | list[Any] | None = None,
        *,
        persistent: bool = False,
    ) -> FaultRule:
        """Answer the next WebSocket upgrade with ``status`` and ``body``.

        ``body`` may be text, bytes or a JSON value; ``None`` gives a JSON:API
        body naming the fault.
        """
        if not 200 <= status <= 599 or status == 101:
            raise ValueError("status must be an HTTP status in 200..599")
        return self._add(
            FaultRule("reject_upgrade", persistent, status=status, body=_body_bytes(body))
        )

    def reject_token(
        self,
        status: int,
        body: str | bytes | dict[str, Any] | list[Any] | None = None,
        *,
        persistent: bool = False,
    ) -> FaultRule:
        """Answer the next session-token call with ``status`` and ``body``."""
        if not 200 <= status <= 599:
            raise ValueError("status must be an HTTP status in 200..599")
        return self._add(
            FaultRule("reject_token", persistent, status=status, body=_body_bytes(body))
        )

    def send_error(
        self,
        code: int,
        message: str,
        *,
        after_frames: int = 0,
        phase: Phase = "runtime",
        persistent: bool = False,
        target: str | None = None,
    ) -> FaultRule:
        """Send ``ServerError(code, message)`` after ``after_frames`` frames."""
        return self._add(
            FaultRule(
                "send_error", persistent, target, after_frames, phase, code=code, message=message
            )
        )

    def close(
        self,
        code: int,
        reason: str = "",
        *,
        after_frames: int = 0,
        phase: Phase = "runtime",
        persistent: bool = False,
        target: str | None = None,
    ) -> FaultRule:
        """Close the WebSocket with ``code``/``reason`` after ``after_frames`` frames."""
        if not (code == 1000 or 3000 <= code <= 4999 or 1001 <= code <= 1014):
            raise ValueError(f"{code} is not a close code a server may send")
        return self._add(
            FaultRule("close", persistent, target, after_frames, phase, code=code, message=reason)
        )

    def drop_connection(
        self,
        *,
        after_frames: int = 0,
        phase: Phase = "runtime",
        persistent: bool = False,
        target: str | None = None,
    ) -> FaultRule:
        """Abort the TCP connection (no close frame) after ``after_frames`` frames."""
        return self._add(FaultRule("drop_connection", persistent, target, after_frames, phase))

    def send_raw(
        self,
        data: bytes | str,
        *,
        text: bool = False,
        after_frames: int = 0,
        phase: Phase = "runtime",
        persistent: bool = False,
        target: str | None = None,
    ) -> FaultRule:
        """Send ``data`` as is: a binary message, or a text frame with ``text=True``."""
        raw = data.encode() if isinstance(data, str) else data
        return self._add(
            FaultRule("send_raw", persistent, target, after_frames, phase, body=raw, text=text)
        )

    def delay_frames(
        self,
        seconds: float,
        *,
        after_frames: int = 0,
        persistent: bool = False,
        target: str | None = None,
    ) -> FaultRule:
        """Stall the output for ``seconds`` before frame ``after_frames + 1``."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        return self._add(
            FaultRule("delay_frames", persistent, target, after_frames, seconds=seconds)
        )

    # -- managing rules -------------------------------------------------------

    @property
    def rules(self) -> tuple[FaultRule, ...]:
        """The active rules, oldest first."""
        return tuple(self._rules)

    def remove(self, rule: FaultRule) -> None:
        """Retire ``rule`` (no error if it already retired)."""
        if rule in self._rules:
            self._rules.remove(rule)

    def clear(self) -> None:
        """Retire every rule."""
        self._rules.clear()

    # -- used by the service --------------------------------------------------

    def _fire(self, rule: FaultRule, conn_key: int | None) -> None:
        rule.fired += 1
        if conn_key is not None:
            rule._fired_on.add(conn_key)
        if not rule.persistent:
            self.remove(rule)

    def bind_connection(self, conn_key: int) -> None:
        """A connection is opening: ``NEXT`` rules not yet bound bind to it."""
        for rule in self._rules:
            if rule.target == NEXT and rule._bound is None and rule.kind != "reject_upgrade":
                rule._bound = conn_key

    def take_rejection(self, kind: Literal["reject_upgrade", "reject_token"]) -> FaultRule | None:
        """The rejection to answer an upgrade or token call with, if any."""
        for rule in self._rules:
            if rule.kind == kind:
                self._fire(rule, None)
                return rule
        return None

    def take_actions(
        self, conn_key: int, connection_id: str, frames_sent: int, phase: Phase
    ) -> list[FaultRule]:
        """``send_error``/``close``/``drop_connection``/``send_raw`` rules due now."""
        if not self._rules:
            return []
        due: list[FaultRule] = []
        for rule in tuple(self._rules):
            if (
                rule.kind in ("send_error", "close", "drop_connection", "send_raw")
                and rule.phase == phase
                and (phase == "handshake" or frames_sent >= rule.after_frames)
                and conn_key not in rule._fired_on
                and rule._matches(conn_key, connection_id)
            ):
                self._fire(rule, conn_key)
                due.append(rule)
        return due

    def take_delay(self, conn_key: int, connection_id: str, frames_sent: int) -> float:
        """Seconds to stall before sending the next frame on a connection."""
        if not self._rules:
            return 0.0
        delay = 0.0
        for rule in tuple(self._rules):
            if (
                rule.kind == "delay_frames"
                and frames_sent >= rule.after_frames
                and (rule.persistent or conn_key not in rule._fired_on)
                and rule._matches(conn_key, connection_id)
            ):
                self._fire(rule, conn_key)
                delay += rule.seconds
        return delay
