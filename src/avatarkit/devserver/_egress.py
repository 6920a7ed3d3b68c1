"""Egress of the local service: the configuration check, recorded as session state.

There is no LiveKit or Agora server behind the local service. The checks
themselves (pure, shared with the protocol core) are in
:mod:`avatarkit._egress_check`; this module turns their result into the
:class:`~avatarkit.devserver._state.EgressState` where what would have been
published is recorded.
"""

from __future__ import annotations

from .._egress_check import (
    MAX_EGRESS_FIELD_BYTES,
    EgressConfigError,
    EgressSettings,
    check_egress,
)
from ..proto import avatarkit_wire_pb2 as pb
from ._state import EgressState

__all__ = [
    "MAX_EGRESS_FIELD_BYTES",
    "EgressConfigError",
    "egress_state",
    "validate_egress",
]


def egress_state(settings: EgressSettings) -> EgressState:
    """A fresh recording state for a session publishing to ``settings``."""
    return EgressState(
        kind=settings.kind,
        url=settings.url,
        room_name=settings.room_name,
        channel_name=settings.channel_name,
        publisher_id=settings.publisher_id,
        uid=settings.uid,
        extra_attributes=dict(settings.extra_attributes),
        idle_timeout=settings.idle_timeout,
        token_claims=settings.token_claims,
        api_token=settings.api_token,
    )


def validate_egress(
    configure: pb.ClientConfigureSession, *, now: float | None = None
) -> EgressState | None:
    """The egress the session asks for (``None``: frames over the WebSocket).

    Raises :class:`EgressConfigError` when it is invalid (see
    :func:`avatarkit._egress_check.check_egress`).
    """
    settings = check_egress(configure, now=now)
    return egress_state(settings) if settings is not None else None
