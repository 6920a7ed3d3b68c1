"""Session configuration: the dataclasses and the fluent builder.

Names, defaults and field order follow the published avatarkit 0.1.7 API so
existing code keeps working. :meth:`SessionConfig.validate` checks everything
that can be known before touching the network (missing credentials, sample
rate not allowed for the format, two egress kinds) and says what to fix.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from ._config_types import (
    AgoraEgressConfig,
    AudioFormat,
    LiveKitEgressConfig,
    OggOpusEncoderConfig,
)
from ._facts import OGG_OPUS_SAMPLE_RATES, PCM_SAMPLE_RATES
from ._redact import mask as _mask

if TYPE_CHECKING:
    from ._metrics import MetricsEvent
    from .events import AnimationFrameEvent, PlaybackSignal, PlaybackStateEvent

__all__ = [
    "OGG_OPUS_SAMPLE_RATES",
    "PCM_SAMPLE_RATES",
    "AgoraEgressConfig",
    "AudioFormat",
    "LiveKitEgressConfig",
    "OggOpusEncoderConfig",
    "SessionConfig",
    "SessionConfigBuilder",
]

#: Largest sample rate / bitrate the wire can carry (``int32`` fields).
_INT32_MAX = 2**31 - 1

TransportFramesHandler = Callable[[bytes, bool], Any]
ErrorHandler = Callable[[Exception], Any]
CloseHandler = Callable[[], Any]
EncodedAudioHandler = Callable[[str, bytes], Any]


@dataclass(slots=True)
class SessionConfig:
    """Everything a session needs: credentials, endpoints, audio, callbacks.

    A slotted dataclass (no per-instance dict: a process may hold a thousand
    of these), so attributes other than the fields cannot be added.

    Fields up to ``agora_egress`` are those of avatarkit 0.1.7, in its order
    (so positional use keeps working). Callbacks may be plain functions or coroutine functions; an
    exception raised by one is logged with its traceback and does not stop
    the session.

    New here:

    * ``on_playback(signal)``: a :class:`~avatarkit.events.PlaybackSignal`
      for every animation message (the parsed view of ``transport_frames``).
    * ``on_playback_state(event)``: a
      :class:`~avatarkit.events.PlaybackStateEvent` for every
      ``ServerPlaybackState`` (pause/resume answers, start/end/interrupt).
    * ``on_animation(frame)``: an
      :class:`~avatarkit.events.AnimationFrameEvent` per animation message,
      its payload handed over without a copy.
    * ``open_timeout``: seconds to wait for the WebSocket to open and the
      session to be confirmed (0.1.7 waits 10 s).
    * ``websocket_compression``: offer permessage-deflate (0.1.7 always
      does). Off by default: on the animation stream it costs client CPU on
      every frame for little saving (measured: BENCHMARKS.md as of
      commit 5095348, "Compression"); when on, the session uses
      :class:`~avatarkit.transport.AiohttpTransport` (picows has no deflate).
    * ``ssl_context``: the TLS context of the token call and the WebSocket
      (both transports), e.g. ``ssl.create_default_context(cafile=...)`` for
      a private CA. ``None`` is the default context: the system's trust
      store, certificates and host names verified. ``repr()`` shows only its
      type.
    * ``on_metrics(event)``: typed events for metrics (session opened,
      request done, error, closed); see :mod:`avatarkit._metrics` and the
      README's "Metrics and logging".
    * ``keepalive_interval``, ``keepalive_timeout``: a service that sends
      nothing for ``keepalive_interval`` seconds is pinged, and one that does
      not answer within ``keepalive_timeout`` seconds is taken for frozen or
      unreachable: the session ends with ``connectionClosed`` (close code
      1011, reason ``keepalive ping timeout``, retryable), as 0.1.7 (on
      ``websockets``, same 20 s defaults) reports it. ``keepalive_interval=None``
      turns pings off. The timeout must not exceed the interval (picows'
      rule). Without it a silent service (frozen process, half-open TCP)
      holds the session, and a pool lease, until the OS gives up (minutes).
    """

    avatar_id: str = ""
    api_key: str = field(default="", repr=False)
    app_id: str = ""
    use_query_auth: bool = False
    expire_at: datetime | None = None
    sample_rate: int = 16000
    bitrate: int = 0
    audio_format: AudioFormat = AudioFormat.PCM_S16LE
    ogg_opus_encoder: OggOpusEncoderConfig | None = None
    on_encoded_audio: EncodedAudioHandler | None = field(default=None, repr=False)
    transport_frames: TransportFramesHandler | None = field(default=None, repr=False)
    on_error: ErrorHandler | None = field(default=None, repr=False)
    on_close: CloseHandler | None = field(default=None, repr=False)
    console_endpoint_url: str = ""
    ingress_endpoint_url: str = ""
    livekit_egress: LiveKitEgressConfig | None = None
    agora_egress: AgoraEgressConfig | None = None
    on_playback: Callable[[PlaybackSignal], Any] | None = field(default=None, repr=False)
    on_playback_state: Callable[[PlaybackStateEvent], Any] | None = field(default=None, repr=False)
    on_animation: Callable[[AnimationFrameEvent], Any] | None = field(default=None, repr=False)
    open_timeout: float = 10.0
    websocket_compression: bool = False
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)
    on_metrics: Callable[[MetricsEvent], Any] | None = field(default=None, repr=False)
    keepalive_interval: float | None = 20.0
    keepalive_timeout: float = 20.0

    def __post_init__(self) -> None:
        if isinstance(self.audio_format, str) and not isinstance(self.audio_format, AudioFormat):
            try:
                self.audio_format = AudioFormat(self.audio_format.lower())
            except ValueError:
                raise ValueError(
                    f"audio_format={self.audio_format!r} is not supported; use "
                    "AudioFormat.PCM_S16LE or AudioFormat.OGG_OPUS"
                ) from None

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.repr)
        if self.ssl_context is not None:  # its type only: no paths, no object address
            shown += f", ssl_context=<{type(self.ssl_context).__name__}>"
        return f"SessionConfig({shown}, api_key={_mask(self.api_key)})"

    @property
    def egress(self) -> LiveKitEgressConfig | AgoraEgressConfig | None:
        """The configured egress, if any."""
        return self.livekit_egress or self.agora_egress

    def validate_audio(self) -> None:
        """Check format, sample rate, bitrate and encoder settings."""
        fmt = self.audio_format
        if not isinstance(fmt, AudioFormat):
            raise ValueError(
                f"audio_format must be an AudioFormat (PCM_S16LE or OGG_OPUS), not {fmt!r}"
            )
        rate = self.sample_rate
        if isinstance(rate, bool) or not isinstance(rate, int):
            raise TypeError(f"sample_rate must be an int (Hz), not {type(rate).__name__}")
        if not 0 < rate <= _INT32_MAX:
            raise ValueError(f"sample_rate must be a positive number of Hz, got {rate}")
        bitrate = self.bitrate
        if isinstance(bitrate, bool) or not isinstance(bitrate, int):
            raise TypeError(f"bitrate must be an int (bit/s), not {type(bitrate).__name__}")
        if not 0 <= bitrate <= _INT32_MAX:
            raise ValueError("bitrate must be >= 0 (0 = encoder default)")
        if self.ogg_opus_encoder is not None:
            if fmt is not AudioFormat.OGG_OPUS:
                raise ValueError(
                    "ogg_opus_encoder is set but audio_format is PCM_S16LE; set "
                    "audio_format=AudioFormat.OGG_OPUS or drop ogg_opus_encoder"
                )
            self.ogg_opus_encoder.validate()
            if rate not in OGG_OPUS_SAMPLE_RATES:
                # Certain locally: Opus encodes only these. The same code and
                # phase as 0.1.7 reports (the service refuses the rate there).
                from .errors import UnsupportedSampleRateError

                raise UnsupportedSampleRateError(
                    f"sample_rate={rate} cannot be encoded by the built-in Ogg Opus encoder; "
                    f"use one of {OGG_OPUS_SAMPLE_RATES}, or resample the PCM"
                )
        # Any other rate goes to the service, which decides (PROTOCOL.md 3, 6).

    def validate_egress(self) -> None:
        """At most one egress kind, each complete."""
        if self.livekit_egress is not None and self.agora_egress is not None:
            raise ValueError(
                "livekit_egress and agora_egress are both set; a session publishes to one "
                "egress at most: keep one of them"
            )
        if self.livekit_egress is not None:
            self.livekit_egress.validate()
        if self.agora_egress is not None:
            self.agora_egress.validate()

    def validate_for_token(self) -> None:
        """What ``init()`` needs."""
        if not self.api_key:
            raise ValueError("api_key is required: pass api_key=...")
        if not self.api_key.isascii() or not self.api_key.isprintable():
            # It goes into an HTTP header; never echo the key itself.
            raise ValueError(
                "api_key holds characters an HTTP header cannot carry (line breaks, control "
                "or non-ASCII characters); copy the key again"
            )
        if not self.console_endpoint_url:
            raise ValueError("console_endpoint_url is required (it ends in /v1/console)")
        if self.expire_at is None:
            raise ValueError("expire_at is required: a timezone-aware datetime in the future")
        self._validate_url("console_endpoint_url", self.console_endpoint_url, ("http", "https"))

    def validate_for_connect(self) -> None:
        """What ``start()`` needs."""
        if not self.avatar_id:
            raise ValueError("avatar_id is required: pass avatar_id=...")
        if not self.app_id:
            raise ValueError("app_id is required: pass app_id=...")
        if not self.ingress_endpoint_url:
            raise ValueError("ingress_endpoint_url is required (it ends in /v2/driveningress)")
        self._validate_url(
            "ingress_endpoint_url", self.ingress_endpoint_url, ("ws", "wss", "http", "https")
        )
        self.validate_tls()
        self.validate_audio()
        self.validate_egress()
        if self.open_timeout <= 0:
            raise ValueError("open_timeout must be > 0 seconds")
        self.validate_keepalive()

    def validate_keepalive(self) -> None:
        """``keepalive_interval`` (or ``None``) and ``keepalive_timeout`` are usable."""
        interval, timeout = self.keepalive_interval, self.keepalive_timeout
        for name, value in (("keepalive_interval", interval), ("keepalive_timeout", timeout)):
            if value is None and name == "keepalive_interval":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
            if not 0 < value < float("inf"):
                raise ValueError(
                    f"{name} must be > 0 seconds"
                    + (" (None turns keepalive pings off)" if name == "keepalive_interval" else "")
                )
        if interval is not None and timeout > interval:
            raise ValueError(
                f"keepalive_timeout ({timeout:g} s) must not exceed keepalive_interval "
                f"({interval:g} s): raise the interval or lower the timeout"
            )

    def validate_tls(self) -> None:
        """``ssl_context`` is ``None`` or an :class:`ssl.SSLContext`."""
        if self.ssl_context is not None and not isinstance(self.ssl_context, ssl.SSLContext):
            raise TypeError(
                "ssl_context must be an ssl.SSLContext (e.g. "
                "ssl.create_default_context(cafile='ca.pem')) or None, not "
                f"{type(self.ssl_context).__name__}"
            )

    def validate(self) -> None:
        """Everything that can be checked before the network is touched."""
        self.validate_tls()
        self.validate_for_token()
        self.validate_for_connect()

    @staticmethod
    def _validate_url(name: str, url: str, schemes: tuple[str, ...]) -> None:
        reason = url_problem(url, schemes)
        if reason is not None:
            raise ValueError(f"{name}={url!r} is not a valid URL; {reason}")


def url_problem(url: str, schemes: tuple[str, ...], *, check_port: bool = False) -> str | None:
    """Why ``url`` cannot serve as an endpoint (unparseable, wrong scheme, no
    host; with ``check_port`` a port out of range too), or ``None``. Shared by
    the configuration checks and the CLI, which words the same reason with its
    option's name. The session leaves the port to the connect step, which
    reports it as ``connectionFailed`` naming the setting."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        return f"it cannot be parsed ({exc})"
    if check_port:
        try:
            parts.port  # noqa: B018  (parses the port: out of range raises)
        except ValueError as exc:
            return f"invalid port ({exc})"
    if parts.scheme.lower() not in schemes:
        return "it must start with " + " or ".join(f"{s}://" for s in schemes)
    if not parts.hostname:
        return "it has no host"
    return None


_B = TypeVar("_B", bound="SessionConfigBuilder")


class SessionConfigBuilder:
    """Fluent builder for :class:`SessionConfig`; every ``with_*`` returns ``self``."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}

    def _set(self: _B, name: str, value: Any) -> _B:
        self._values[name] = value
        return self

    def with_avatar_id(self: _B, avatar_id: str) -> _B:
        """Avatar to drive."""
        return self._set("avatar_id", avatar_id)

    def with_api_key(self: _B, api_key: str) -> _B:
        """API key for the session-token call."""
        return self._set("api_key", api_key)

    def with_app_id(self: _B, app_id: str) -> _B:
        """Application id sent with the WebSocket auth."""
        return self._set("app_id", app_id)

    def with_use_query_auth(self: _B, use_query_auth: bool) -> _B:
        """Send auth as URL query parameters (web style) instead of headers."""
        return self._set("use_query_auth", use_query_auth)

    def with_expire_at(self: _B, expire_at: datetime) -> _B:
        """When the session token expires."""
        return self._set("expire_at", expire_at)

    def with_sample_rate(self: _B, sample_rate: int) -> _B:
        """Input sample rate in Hz."""
        return self._set("sample_rate", sample_rate)

    def with_bitrate(self: _B, bitrate: int) -> _B:
        """Opus target bitrate in bit/s (0 = encoder default)."""
        return self._set("bitrate", bitrate)

    def with_audio_format(self: _B, audio_format: AudioFormat) -> _B:
        """Input encoding: PCM_S16LE or OGG_OPUS."""
        return self._set("audio_format", audio_format)

    def with_ogg_opus_encoder(self: _B, config: OggOpusEncoderConfig | None = None) -> _B:
        """Encode PCM to Ogg Opus inside the SDK (default settings when no config)."""
        return self._set("ogg_opus_encoder", config or OggOpusEncoderConfig())

    def with_on_encoded_audio(self: _B, handler: EncodedAudioHandler) -> _B:
        """Receive ``(req_id, ogg_stream)`` when the built-in encoder ends a request."""
        return self._set("on_encoded_audio", handler)

    def with_transport_frames(self: _B, handler: TransportFramesHandler) -> _B:
        """Receive ``(message_bytes, is_last)`` for every animation message."""
        return self._set("transport_frames", handler)

    def with_on_error(self: _B, handler: ErrorHandler) -> _B:
        """Receive errors that happen outside a call (read loop, server errors)."""
        return self._set("on_error", handler)

    def with_on_close(self: _B, handler: CloseHandler) -> _B:
        """Called exactly once when the session ends."""
        return self._set("on_close", handler)

    def with_console_endpoint_url(self: _B, url: str) -> _B:
        """Console base URL (ends in ``/v1/console``)."""
        return self._set("console_endpoint_url", url)

    def with_ingress_endpoint_url(self: _B, url: str) -> _B:
        """Ingress base URL (ends in ``/v2/driveningress``)."""
        return self._set("ingress_endpoint_url", url)

    def with_livekit_egress(self: _B, config: LiveKitEgressConfig) -> _B:
        """Publish into a LiveKit room instead of returning frames."""
        return self._set("livekit_egress", config)

    def with_agora_egress(self: _B, config: AgoraEgressConfig) -> _B:
        """Publish into an Agora channel instead of returning frames."""
        return self._set("agora_egress", config)

    def with_open_timeout(self: _B, seconds: float) -> _B:
        """Seconds to wait for the WebSocket to open and the session to be confirmed."""
        return self._set("open_timeout", seconds)

    def with_websocket_compression(self: _B, enabled: bool = True) -> _B:
        """Offer permessage-deflate (see ``SessionConfig.websocket_compression``)."""
        return self._set("websocket_compression", enabled)

    def with_keepalive_interval(self: _B, seconds: float | None) -> _B:
        """Ping a service silent for ``seconds`` (``None``: no pings); see ``SessionConfig``."""
        return self._set("keepalive_interval", seconds)

    def with_keepalive_timeout(self: _B, seconds: float) -> _B:
        """Seconds to wait for the pong before the session fails (``connectionClosed``, 1011)."""
        return self._set("keepalive_timeout", seconds)

    def with_ssl_context(self: _B, context: ssl.SSLContext | None) -> _B:
        """TLS context for the token call and the WebSocket (``None``: verified default)."""
        return self._set("ssl_context", context)

    def with_on_metrics(self: _B, handler: Callable[[MetricsEvent], Any]) -> _B:
        """Receive typed metrics events (``SessionOpened``, ``RequestDone``, ...)."""
        return self._set("on_metrics", handler)

    def with_on_playback(self: _B, handler: Callable[[PlaybackSignal], Any]) -> _B:
        """Receive a parsed :class:`PlaybackSignal` per animation message."""
        return self._set("on_playback", handler)

    def with_on_playback_state(self: _B, handler: Callable[[PlaybackStateEvent], Any]) -> _B:
        """Receive :class:`PlaybackStateEvent` updates."""
        return self._set("on_playback_state", handler)

    def with_on_animation(self: _B, handler: Callable[[AnimationFrameEvent], Any]) -> _B:
        """Receive :class:`AnimationFrameEvent` per animation message."""
        return self._set("on_animation", handler)

    def build(self) -> SessionConfig:
        """Create the :class:`SessionConfig`."""
        return SessionConfig(**self._values)
