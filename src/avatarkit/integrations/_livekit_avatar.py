"""The LiveKit Agents ``AvatarSession`` (public home: :mod:`avatarkit.integrations.livekit`).

Imports livekit-agents and livekit-api at module level: only
:mod:`avatarkit.integrations.livekit` imports this, after checking that they
are installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal

from livekit import api, rtc
from livekit.agents.voice.avatar import AvatarSession as _AgentsAvatarSession
from livekit.agents.voice.io import AudioOutput, _AudioSinkProxy

from .._newsession import new_avatar_session, open_session
from .._request_types import check_end_timeout
from ..config import LiveKitEgressConfig, SessionConfig, url_problem
from ..errors import AvatarSDKError
from ..events import PlaybackStateEvent
from ..session import AvatarSession as _SDKSession
from ._livekit_sink import AvatarAudioSink

if TYPE_CHECKING:
    from livekit.agents import AgentSession

__all__ = ["AvatarSession"]

logger = logging.getLogger("avatarkit.livekit")

#: SessionConfig fields that fall back to an environment variable (the CLI's names).
ENV_FALLBACKS = {
    "api_key": "AVATARKIT_API_KEY",
    "app_id": "AVATARKIT_APP_ID",
    "avatar_id": "AVATARKIT_AVATAR_ID",
    "console_endpoint_url": "AVATARKIT_CONSOLE_ENDPOINT",
    "ingress_endpoint_url": "AVATARKIT_INGRESS_ENDPOINT",
}

_LIVEKIT_ENV = {
    "livekit_url": "LIVEKIT_URL",
    "livekit_api_key": "LIVEKIT_API_KEY",
    "livekit_api_secret": "LIVEKIT_API_SECRET",
}

MAX_TOKEN_TTL = timedelta(hours=24)
_SESSION_TTL = timedelta(hours=1)  # expire_at of each session when none is given
_CLOSE_BOUND = 5.0  # close() itself waits at most 2 s
_BACKOFF_FIRST = 0.25  # seconds before the first reconnect; doubles, at most _BACKOFF_MAX
_BACKOFF_MAX = 2.0


def _closed_while_starting() -> RuntimeError:
    return RuntimeError(
        "AvatarSession.aclose() was called while the avatar session was opening; "
        "it was closed again. Make a new AvatarSession to start over"
    )


class AvatarSession(_AgentsAvatarSession[Literal["metrics_collected"]]):  # type: ignore[misc, unused-ignore]
    """An avatarkit avatar for a LiveKit Agents voice agent.

    ``AvatarSession(**kwargs)`` takes the keywords of
    :func:`avatarkit.new_avatar_session` (``api_key``, ``app_id``,
    ``avatar_id``, ``console_endpoint_url``, ``ingress_endpoint_url``,
    ``sample_rate`` (the session's input rate, default 16000), ``expire_at``
    ...; the first five fall back to ``AVATARKIT_API_KEY``,
    ``AVATARKIT_APP_ID``, ``AVATARKIT_AVATAR_ID``,
    ``AVATARKIT_CONSOLE_ENDPOINT``, ``AVATARKIT_INGRESS_ENDPOINT``), except
    ``livekit_egress``/``agora_egress`` (``start()`` builds the egress), plus:

    * ``avatar_participant_identity``: the avatar's identity in the room;
    * ``end_timeout``: per request, see ``session.stream()`` (default 10 s);
    * ``playback_timeout``: how long after a request's end to wait for the
      service's ``ENDED`` before reporting the segment finished anyway
      (default 3 s);
    * ``token_ttl``: lifetime of the egress token minted for each session
      (default 10 minutes, at most 24 h; LiveKit checks it at join only);
    * ``max_reconnects``: attempts to open a session again after a retryable
      failure (default 3, backoff 0.25 s doubling up to 2 s);
    * ``egress_idle_timeout``: ``LiveKitEgressConfig.idle_timeout``, seconds
      without audio before the service ends the session and the avatar leaves
      the room (0: the service's default). A session ended so is opened again
      for the next segment.

    Without ``expire_at`` each session's token asks for one hour. Unknown
    keywords raise ``TypeError`` now; missing settings raise ``ValueError``
    from :meth:`start`, before the room is touched. Secrets are never in
    ``repr()``.
    """

    def __init__(
        self,
        *,
        avatar_participant_identity: str = "avatarkit-avatar",
        end_timeout: float = 10.0,
        playback_timeout: float = 3.0,
        token_ttl: timedelta = timedelta(minutes=10),
        max_reconnects: int = 3,
        egress_idle_timeout: int = 0,
        **session_kwargs: Any,
    ) -> None:
        super().__init__()
        for name in ("livekit_egress", "agora_egress", "transport_factory"):
            if name in session_kwargs:
                raise TypeError(
                    f"AvatarSession() does not take {name}=: start() configures the LiveKit "
                    "egress from the room and the LiveKit credentials"
                )
        for name, env in ENV_FALLBACKS.items():
            if not session_kwargs.get(name):
                value = os.environ.get(env, "")
                if value:
                    session_kwargs[name] = value
        # Checks every keyword's name now (TypeError here, not in start()).
        self._config: SessionConfig = new_avatar_session(**session_kwargs).config
        self._session_kwargs = session_kwargs
        if not isinstance(avatar_participant_identity, str) or not avatar_participant_identity:
            raise ValueError("avatar_participant_identity must be a non-empty string")
        self._avatar_identity = avatar_participant_identity
        self._end_timeout = check_end_timeout(end_timeout)
        if not playback_timeout > 0:
            raise ValueError("playback_timeout must be > 0 seconds")
        self._playback_timeout = float(playback_timeout)
        if not timedelta(0) < token_ttl <= MAX_TOKEN_TTL:
            raise ValueError("token_ttl must be a timedelta above 0 and at most 24 hours")
        self._token_ttl = token_ttl
        if isinstance(max_reconnects, bool) or not isinstance(max_reconnects, int):
            raise TypeError("max_reconnects must be an int")
        if not 0 <= max_reconnects <= 10:
            raise ValueError("max_reconnects must be between 0 and 10")
        self._max_reconnects = max_reconnects
        if isinstance(egress_idle_timeout, bool) or not isinstance(egress_idle_timeout, int):
            raise TypeError("egress_idle_timeout must be an int (seconds)")
        if egress_idle_timeout < 0:
            raise ValueError("egress_idle_timeout must be >= 0 seconds (0: the service's default)")
        self._egress_idle_timeout = egress_idle_timeout
        user_state = self._config.on_playback_state
        self._user_on_state = user_state
        self._livekit: tuple[str, str, str] | None = None  # url, key, secret
        self._room_name = ""
        self._agent_identity = ""
        self._session: _SDKSession | None = None
        self._open_lock: asyncio.Lock | None = None
        self._sink: AvatarAudioSink | None = None
        self._output: Any = None  # the AgentSession's output (AgentOutput)
        self._original_tail: AudioOutput | None = None
        self._proxy: _AudioSinkProxy | None = None
        self._started = False
        self._closed = False

    def __repr__(self) -> str:  # no keyword values: they hold the API key
        return (
            f"<avatarkit.integrations.livekit.AvatarSession avatar_id={self._config.avatar_id!r} "
            f"identity={self._avatar_identity!r} room={self._room_name!r} "
            f"sample_rate={self._config.sample_rate}>"
        )

    @property
    def avatar_identity(self) -> str:
        """The avatar's participant identity in the room."""
        return self._avatar_identity

    @property
    def provider(self) -> str:
        return "avatarkit"

    @property
    def session(self) -> _SDKSession | None:
        """The avatarkit session in use (``None`` before :meth:`start` and after :meth:`aclose`)."""
        return self._session

    @property
    def audio_sink(self) -> AvatarAudioSink | None:
        """The sink that replaced the agent's audio tail (``None`` before :meth:`start`)."""
        return self._sink

    # -- start ----------------------------------------------------------------------

    async def start(
        self,
        agent_session: AgentSession[Any],
        room: rtc.Room,
        *,
        livekit_url: str | None = None,
        livekit_api_key: str | None = None,
        livekit_api_secret: str | None = None,
    ) -> None:
        """Open the avatar session with LiveKit egress and take over the agent's audio tail.

        The LiveKit URL, API key and secret fall back to ``LIVEKIT_URL``,
        ``LIVEKIT_API_KEY`` and ``LIVEKIT_API_SECRET``. Everything is checked
        first (``ValueError`` naming what to set); then an egress token is
        minted (kind ``agent``, attribute ``lk.publish_on_behalf`` = the
        agent's identity, join and publish in this room only, ``token_ttl``),
        the session opened (``AvatarSDKError`` if that fails), and the tail of
        ``agent_session.output.audio`` replaced with the avatar's sink
        (``replace_audio_tail``: the transcript synchronizer stays in the chain).
        If :meth:`aclose` is called while the session opens, the session is
        closed again, nothing else is touched and this raises ``RuntimeError``.
        """
        if self._started:
            raise RuntimeError("AvatarSession.start() was already called; make a new one")
        given = {
            "livekit_url": livekit_url,
            "livekit_api_key": livekit_api_key,
            "livekit_api_secret": livekit_api_secret,
        }
        values = {k: v or os.environ.get(_LIVEKIT_ENV[k], "") for k, v in given.items()}
        missing = [f"{k}= (or {_LIVEKIT_ENV[k]})" for k, v in values.items() if not v]
        if missing:
            raise ValueError("LiveKit settings missing: " + ", ".join(missing))
        reason = url_problem(values["livekit_url"], ("ws", "wss", "http", "https"))
        if reason is not None:
            raise ValueError(f"livekit_url (or LIVEKIT_URL) is not a valid URL: {reason}")
        output = getattr(agent_session, "output", None)
        if output is None or not hasattr(output, "replace_audio_tail"):
            raise TypeError("agent_session must be a livekit.agents.AgentSession")
        room_name = getattr(room, "name", "")
        if not isinstance(room_name, str) or not room_name:
            raise ValueError("the room has no name: connect it (ctx.connect()) before start()")
        local = getattr(room, "local_participant", None)
        agent_identity = getattr(local, "identity", "")
        if not isinstance(agent_identity, str) or not agent_identity:
            raise ValueError("the room has no local participant identity: connect it first")
        if agent_identity == self._avatar_identity:
            raise ValueError(
                f"avatar_participant_identity {self._avatar_identity!r} is the agent's own "
                "identity; give the avatar another one"
            )
        self._livekit = (
            values["livekit_url"],
            values["livekit_api_key"],
            values["livekit_api_secret"],
        )
        self._room_name = room_name
        self._agent_identity = agent_identity
        self._check_config()
        self._started = True
        self._open_lock = asyncio.Lock()
        session = await self._open_with_retries()  # raises: nothing touched yet
        if self._closed:  # aclose() came while opening: undo, touch nothing
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(session.close(), _CLOSE_BOUND)
            raise _closed_while_starting()
        self._session = session
        await super().start(agent_session, room)
        self._sink = AvatarAudioSink(
            self._ready_session,
            lambda: self._session,
            end_timeout=self._end_timeout,
            playback_timeout=self._playback_timeout,
        )
        self._output = output
        self._take_tail(output, self._sink)

    def _check_config(self) -> None:
        """The avatar-service settings, with the environment variable to set for each."""
        for name, env in ENV_FALLBACKS.items():
            if not getattr(self._config, name):
                raise ValueError(f"{name} is required: pass {name}= or set {env}")
        probe = self._session_config(api_token="x.y.z")
        probe.validate()

    def _take_tail(self, output: Any, sink: AvatarAudioSink) -> None:
        """Replace the bottom of the audio chain, remembering what to put back."""
        cur = output.audio
        while cur is not None and not isinstance(cur, _AudioSinkProxy):
            cur = cur.next_in_chain
        if isinstance(cur, _AudioSinkProxy):
            self._proxy = cur
            self._original_tail = cur.next_in_chain
        else:
            self._original_tail = output.audio
        output.replace_audio_tail(sink)

    def _restore_tail(self) -> None:
        """Put back the tail :meth:`start` replaced.

        Started before ``AgentSession.start()``, there was no audio output to
        put back; if the session has since wrapped our sink (transcript
        synchronizer), the closed sink stays in the chain as a null sink.
        """
        output, sink = self._output, self._sink
        if output is None or sink is None:
            return
        if self._proxy is not None:
            if self._proxy.next_in_chain is sink and self._original_tail is not None:
                self._proxy.set_next_in_chain(self._original_tail)
        elif output.audio is sink:
            output.audio = self._original_tail

    # -- sessions -------------------------------------------------------------------

    def _mint_token(self) -> str:
        assert self._livekit is not None
        _url, key, secret = self._livekit
        grants = api.VideoGrants(
            room_join=True,
            room=self._room_name,
            can_publish=True,
            can_subscribe=False,
            can_publish_data=False,
        )
        token = (
            api.AccessToken(key, secret)
            .with_identity(self._avatar_identity)
            .with_kind("agent")
            .with_attributes({"lk.publish_on_behalf": self._agent_identity})
            .with_grants(grants)
            .with_ttl(self._token_ttl)
        )
        jwt: str = token.to_jwt()
        return jwt

    def _session_config(self, api_token: str) -> SessionConfig:
        url = self._livekit[0] if self._livekit is not None else ""
        kwargs = dict(self._session_kwargs)
        kwargs["livekit_egress"] = LiveKitEgressConfig(
            url=url,
            api_token=api_token,
            room_name=self._room_name,
            publisher_id=self._avatar_identity,
            idle_timeout=self._egress_idle_timeout,
        )
        if kwargs.get("expire_at") is None:
            kwargs["expire_at"] = datetime.now(timezone.utc) + _SESSION_TTL
        kwargs["on_playback_state"] = self._state_handler()
        return new_avatar_session(**kwargs).config

    def _state_handler(self) -> Any:
        """The session's ``on_playback_state``: the sink first, then the user's callback."""
        user = self._user_on_state

        def to_sink(event: PlaybackStateEvent) -> None:
            if self._sink is not None:
                self._sink.on_state(event)

        if user is None:
            return to_sink
        if inspect.iscoroutinefunction(user):

            async def both_async(event: PlaybackStateEvent) -> None:
                to_sink(event)
                await user(event)

            return both_async

        def both(event: PlaybackStateEvent) -> Any:
            to_sink(event)
            return user(event)

        return both

    async def _open(self) -> _SDKSession:
        return await open_session(_SDKSession(self._session_config(self._mint_token())))

    async def _open_with_retries(self) -> _SDKSession:
        """Open a session; retry a retryable failure up to ``max_reconnects`` times."""
        delay = _BACKOFF_FIRST
        for attempt in range(self._max_reconnects + 1):
            if self._closed:  # aclose() during the retries: stop retrying
                raise _closed_while_starting()
            try:
                return await self._open()
            except AvatarSDKError as exc:
                if not exc.retryable or attempt == self._max_reconnects:
                    raise
                logger.warning(
                    "avatarkit: opening the avatar session failed (%s); retry %d of %d in %.2f s",
                    exc.code.value,
                    attempt + 1,
                    self._max_reconnects,
                    delay,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, _BACKOFF_MAX)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _ready_session(self) -> _SDKSession:
        """The open session; a new one (bounded retries) when the last was lost."""
        if self._closed:
            raise RuntimeError("the avatar session is closed")
        if self._session is not None and self._session.is_open:
            return self._session
        assert self._open_lock is not None
        async with self._open_lock:
            if self._session is not None and self._session.is_open:
                return self._session
            old, self._session = self._session, None
            if old is not None:
                logger.info("avatarkit: the avatar session was lost; opening a new one")
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(old.close(), _CLOSE_BOUND)
            self._session = await self._open_with_retries()
            return self._session

    # -- close ----------------------------------------------------------------------

    async def aclose(self) -> None:
        """Finish every segment, restore the original audio tail, close the session.

        Idempotent. Also registered as a job shutdown callback by ``start()``.
        """
        if self._closed:
            return
        self._closed = True
        self._restore_tail()
        if self._sink is not None:
            await self._sink.aclose()
        session, self._session = self._session, None
        if session is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(session.close(), _CLOSE_BOUND)
        await super().aclose()
