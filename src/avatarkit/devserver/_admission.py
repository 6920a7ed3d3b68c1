"""What a connection lets in: request ids and decoded audio within the limits.

A mixin of :class:`~avatarkit.devserver._connection.Connection`. A hostile or
careless client cannot make the service hold unbounded memory: a request id
is at most ``MAX_REQ_ID_BYTES`` long (every request is remembered by it), the
decoded audio waiting for playback is capped per request and per connection
(``ServiceSettings``), and an Ogg Opus message is checked by the duration its
packets declare before any of it is decoded, then decoded in slices so that
one message never holds the event loop for long.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from .._server_protocol import CODE_INVALID_ARGUMENT
from ..audio.ogg import OPUS_RATE, opus_packet_duration
from ..protocol import ClientAudio
from ._core import MAX_REQ_ID_BYTES, ConnectionCore
from ._request import RequestRuntime

__all__ = ["AudioAdmission"]

# RFC 6716 3.2.5: an Opus packet holds at most 120 ms; libopus refuses longer ones.
_MAX_PACKET_48K = 5760
# Packets decoded between turns of the event loop: at most 12 s of audio, a few ms of CPU.
_DECODE_SLICE = 100


class AudioAdmission(ConnectionCore):
    """Mixin: the checks on what a client sends before the service keeps it."""

    async def _decode_ogg(
        self, req: RequestRuntime, audio: ClientAudio
    ) -> np.ndarray[Any, np.dtype[np.int16]] | None:
        """PCM of one Ogg Opus audio message; ``None`` if the request failed meanwhile.

        An Opus packet declares its duration in its TOC byte (RFC 6716 3.1),
        and a two-byte packet can stand for 120 ms: a small message could
        decode to gigabytes. So the packets' declared duration (an upper
        bound of what they decode to) is checked against the buffer limits
        before anything is decoded, and the packets are decoded in slices of
        at most ``_DECODE_SLICE`` packets with a turn of the event loop in
        between, so one message never holds the loop for long.
        """
        req_id = req.info.req_id
        rate = self.state.sample_rate
        try:
            packets = req.ogg_packets(audio.audio, self._decoder_cls, rate)
            declared = sum(min(opus_packet_duration(p), _MAX_PACKET_48K) for p in packets)
            # Declared 48 kHz samples at the session's rate, rounded up, in bytes.
            if declared and not await self._check_buffer(req, 2 * -(-declared * rate // OPUS_RATE)):
                return None
            chunks = []
            count = len(packets)
            start = 0
            while True:
                stop = start + _DECODE_SLICE
                chunks.append(req.ogg_decode(packets[start:stop], stop >= count, audio.end))
                if stop >= count:
                    break
                start = stop
                await asyncio.sleep(0)
                if self._active.get(req_id) is not req or self._close_request is not None:
                    return None  # interrupted, failed or closing meanwhile: drop the rest
        except ValueError as exc:  # OggError derives from ValueError
            await self._fail_request(req, f"invalid Ogg Opus stream for request {req_id}: {exc}")
            return None
        return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)

    async def _check_req_id(self, what: str, req_id: str) -> bool:
        """Whether ``req_id`` is short enough; refuses it (code 3) if not.

        Every request is remembered by its id (up to ``MAX_REQUESTS_KEPT``),
        so the id's length bounds that memory. The id itself is not echoed.
        """
        size = len(req_id.encode())
        if size <= MAX_REQ_ID_BYTES:
            return True
        await self._send_error(
            CODE_INVALID_ARGUMENT,
            f"{what}.req_id is {size} bytes long; at most {MAX_REQ_ID_BYTES} bytes are "
            "accepted: use a shorter id",
        )
        return False

    async def _check_buffer(self, req: RequestRuntime, incoming: int) -> bool:
        """Whether ``incoming`` bytes of decoded audio may wait for playback.

        Audio runs ahead of the output (a whole clip may arrive at once); what
        is not analysed yet is held per request and per connection up to the
        server's limits. Over one, the request fails (code 3: the client
        sent too much too early, retrying as is would fail again); the
        session and its other requests go on.
        """
        settings = self._settings
        limit = settings.max_request_audio_bytes
        if req.buffered + incoming > limit:
            where = "for one request"
        else:
            limit = settings.max_connection_audio_bytes
            total = sum(r.buffered for r in self._active.values())
            if total + incoming <= limit:
                return True
            where = "across the requests of this connection"
        await self._fail_request(
            req,
            f"request {req.info.req_id}: more than {limit} bytes of decoded audio would be "
            f"buffered ahead of playback {where} (this server's limit); send audio closer "
            "to real time or split it into shorter requests",
        )
        return False
