"""Export avatarkit's metrics events to Prometheus with ``prometheus_client``.

    pip install prometheus_client
    python examples/prometheus_metrics/main.py [--requests N] [--port P] [--linger S] [--fast]

Opens one session with ``on_metrics`` wired to a :class:`PrometheusExporter`,
sends N requests (slices of the bundled speech clip), and serves the metrics
at ``http://127.0.0.1:P/metrics`` (an aiohttp route rendering the registry;
``P=0`` picks a free port). It prints the ``avatarkit_*`` samples, then keeps
serving for ``--linger`` seconds so Prometheus (or curl) can scrape them.

The SDK itself depends on no metrics library: the hook receives typed events
(``SessionOpened``, ``RequestDone``, ``SessionError``, ``SessionClosed``) and
this file maps them to Prometheus metrics. Runs against the hosted service
when the five AVATARKIT_* variables are set, else against a local service
started in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from importlib.resources import files

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from avatarkit import (
    RequestDone,
    SessionClosed,
    SessionError,
    SessionOpened,
    new_avatar_session,
)

ENV = {
    "api_key": "AVATARKIT_API_KEY",
    "app_id": "AVATARKIT_APP_ID",
    "avatar_id": "AVATARKIT_AVATAR_ID",
    "console_endpoint_url": "AVATARKIT_CONSOLE_ENDPOINT",
    "ingress_endpoint_url": "AVATARKIT_INGRESS_ENDPOINT",
}
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class PrometheusExporter:
    """An ``on_metrics`` hook: each event updates Prometheus metrics in ``registry``.

    Labels stay low-cardinality (no connection or request ids): error code,
    phase and retryable; close code; the set-up stage.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.setup = Histogram(
            "avatarkit_session_setup_seconds",
            "Session set-up time by stage (token call, WebSocket upgrade, handshake)",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.requests = Counter(
            "avatarkit_requests",
            "Requests ended, by whether they were interrupted (or cut off)",
            ["interrupted"],
            registry=registry,
        )
        self.frames = Counter("avatarkit_frames", "Animation frames received", registry=registry)
        self.audio = Counter(
            "avatarkit_audio_seconds", "Seconds of PCM audio sent", registry=registry
        )
        self.first_frame = Histogram(
            "avatarkit_time_to_first_frame_seconds",
            "From a request's first audio to its first animation frame",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.end_latency = Histogram(
            "avatarkit_end_latency_seconds",
            "From a request's last audio to its end frame",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.errors = Counter(
            "avatarkit_session_errors",
            "Session errors by SDK error code, phase and retryable",
            ["code", "phase", "retryable"],
            registry=registry,
        )
        self.closed = Counter(
            "avatarkit_sessions_closed",
            "Sessions ended, by WebSocket close code ('none': dropped)",
            ["close_code"],
            registry=registry,
        )
        self.duration = Histogram(
            "avatarkit_session_duration_seconds",
            "How long sessions stayed open",
            buckets=(1, 10, 60, 300, 1800, 3600),
            registry=registry,
        )

    def __call__(self, event: object) -> None:
        if isinstance(event, SessionOpened):
            if event.token_seconds is not None:
                self.setup.labels("token").observe(event.token_seconds)
            self.setup.labels("websocket").observe(event.websocket_seconds)
            self.setup.labels("handshake").observe(event.handshake_seconds)
        elif isinstance(event, RequestDone):
            self.requests.labels(str(event.interrupted).lower()).inc()
            self.frames.inc(event.frames)
            if event.audio_seconds is not None:
                self.audio.inc(event.audio_seconds)
            if event.time_to_first_frame is not None:
                self.first_frame.observe(event.time_to_first_frame)
            if event.end_latency is not None:
                self.end_latency.observe(event.end_latency)
        elif isinstance(event, SessionError):
            self.errors.labels(
                event.code.value, str(event.phase or "none"), str(event.retryable).lower()
            ).inc()
        elif isinstance(event, SessionClosed):
            self.closed.labels(str(event.close_code or "none")).inc()
            self.duration.observe(event.duration)


@contextlib.asynccontextmanager
async def metrics_endpoint(registry: CollectorRegistry, port: int) -> AsyncIterator[str]:
    """Serve ``registry`` at ``/metrics`` on 127.0.0.1; yield the URL."""

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        bound = runner.addresses[0][1]
        yield f"http://127.0.0.1:{bound}/metrics"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def avatar_service(pace: str) -> AsyncIterator[dict[str, str]]:
    """Credentials of the hosted service from the environment, else of a local one."""
    if all(os.environ.get(name) for name in ENV.values()):
        yield {key: os.environ[name] for key, name in ENV.items()}
        return
    from avatarkit.devserver import DevServer

    async with DevServer(host="127.0.0.1", port=0, pace=pace) as server:
        print(f"(no AVATARKIT_* credentials: using a local avatar service, {pace} pace)")
        yield server.session_kwargs()


async def main(requests: int = 3, port: int = 0, linger: float = 0.0, fast: bool = False) -> str:
    """Run ``requests`` requests with the exporter; return the metrics text it served."""
    registry = CollectorRegistry()
    exporter = PrometheusExporter(registry)
    clip = files("avatarkit").joinpath("data/speech_16000.pcm").read_bytes()
    piece = len(clip) // max(1, requests) // 2 * 2
    async with (
        metrics_endpoint(registry, port) as url,
        avatar_service("fast" if fast else "realtime") as credentials,
    ):
        credentials = dict(credentials)
        credentials["expire_at"] = datetime.now(timezone.utc) + timedelta(minutes=10)  # type: ignore[assignment]
        ended = asyncio.Event()
        async with new_avatar_session(
            **credentials,
            on_metrics=exporter,
            transport_frames=lambda data, last: ended.set() if last else None,
        ) as session:
            for index in range(requests):
                ended.clear()
                await session.send_audio(clip[index * piece : (index + 1) * piece], end=True)
                await asyncio.wait_for(ended.wait(), 60)  # its end frame
        text = generate_latest(registry).decode()
        for line in text.splitlines():  # the totals; Prometheus scrapes the rest
            if line.startswith("avatarkit_") and "_bucket" not in line and "_created" not in line:
                print(line)
        print(f"metrics served at {url}", flush=True)
        if linger > 0:
            await asyncio.sleep(linger)
    return text


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3, help="requests to send (default 3)")
    parser.add_argument("--port", type=int, default=9464, help="metrics port (0: any free one)")
    parser.add_argument("--linger", type=float, default=0.0, help="seconds to keep serving")
    parser.add_argument("--fast", action="store_true", help="no real-time pacing")
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.port, args.linger, args.fast))
