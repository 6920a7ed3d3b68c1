"""The local avatar service (``avatarkit serve``): the whole protocol, offline.

:class:`DevServer` runs in process (tests, demos) or from the command line
(``avatarkit serve``, ``python -m avatarkit.devserver``); the pytest plugin in
:mod:`avatarkit.testing` gives each test its own. Animation payloads it sends
decode with :func:`decode_animation`.
"""

from __future__ import annotations

from ._animation import decode_animation
from ._auth import DEV_API_KEY, DEV_APP_ID, DEV_AVATAR_ID
from ._connection import ServiceSettings
from ._faults import NEXT, FaultRule, Faults
from ._server import DevServer
from ._state import EgressState, RequestState, SessionState

__all__ = [
    "DEV_API_KEY",
    "DEV_APP_ID",
    "DEV_AVATAR_ID",
    "NEXT",
    "DevServer",
    "EgressState",
    "FaultRule",
    "Faults",
    "RequestState",
    "ServiceSettings",
    "SessionState",
    "decode_animation",
]
