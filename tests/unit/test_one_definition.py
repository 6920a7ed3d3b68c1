"""Each fact of the protocol is defined in one place (issue 10): a second copy fails here."""

from __future__ import annotations

import asyncio
import io
import re
import tokenize
from pathlib import Path

import pytest

import avatarkit
from avatarkit import audio, config

SRC = Path(avatarkit.__file__).parent
#: Modules other engineers own (the local service); checked by their own tests.
_NOT_SCANNED = ("devserver", "proto")


def _modules() -> list[Path]:
    return [p for p in SRC.rglob("*.py") if not any(part in _NOT_SCANNED for part in p.parts)]


def _tokens(path: Path) -> list[tokenize.TokenInfo]:
    return list(tokenize.generate_tokens(io.StringIO(path.read_text()).readline))


def test_sample_rates_defined_once() -> None:
    assert audio.PCM_RATES is config.PCM_SAMPLE_RATES
    assert audio.OPUS_RATES is config.OGG_OPUS_SAMPLE_RATES
    opus = pytest.importorskip("avatarkit.audio.opus")
    assert opus.ENCODER_RATES is config.OGG_OPUS_SAMPLE_RATES
    literal = re.compile(r"\(\s*8000\s*,\s*1[26]000")
    defined = sorted(p.name for p in _modules() if literal.search(p.read_text()))
    assert defined == ["_facts.py"]


# 1000 also counts milliseconds; it is checked through NORMAL_CLOSES's users.
_CLOSE_CODES = {"1001", "1002", "1003", "1005", "1006", "1007", "1008", "1009"}
_CLOSE_CODES |= {"1011", "1015", "4001", "4002", "4003", "4010", "4503"}


def test_close_codes_defined_once() -> None:
    where = sorted(
        {
            p.name
            for p in _modules()
            for tok in _tokens(p)
            if tok.type == tokenize.NUMBER and tok.string in _CLOSE_CODES
        }
    )
    assert where == ["_closecodes.py"]


def test_frame_duration_defined_once() -> None:
    pattern = re.compile(r"^FRAME_MS\s*(:[^=]*)?=\s*\d", re.M)
    every = [p for p in SRC.rglob("*.py") if pattern.search(p.read_text())]
    assert [p.name for p in every] == ["_frames_codec.py"]


def test_redaction_defined_once() -> None:
    where = sorted(
        {
            p.name
            for p in _modules()
            for tok in _tokens(p)
            if tok.type == tokenize.STRING and "***" in tok.string
        }
    )
    assert where == ["_redact.py"]


def test_connect_advice_defined_once() -> None:
    from avatarkit._advice import CONNECT_ADVICE

    assert CONNECT_ADVICE == (
        "; check console_endpoint_url and the network",
        "; check ingress_endpoint_url and the network",
    )
    pattern = re.compile(
        r"check (console|ingress)_endpoint_url|check \{parameter\} and the network"
    )
    where = sorted(p.name for p in _modules() if pattern.search(p.read_text()))
    assert where == ["_advice.py"]


def test_session_and_pool_share_one_frame_buffer() -> None:
    from avatarkit import _framebuffer, session
    from avatarkit._pool import lease

    assert not hasattr(session, "_FrameBuffer")
    assert lease.FrameBuffer is _framebuffer.FrameBuffer
    assert session.FrameBuffer is _framebuffer.FrameBuffer


def test_frame_buffer_order_unget_and_close() -> None:
    from avatarkit._framebuffer import FrameBuffer

    async def main() -> list[object]:
        buf: FrameBuffer[int] = FrameBuffer()
        got: list[object] = []

        async def consume() -> None:
            while (item := await buf.get()) is not None:
                got.append(item)
                if item == 2:
                    buf.unget(20)  # read again first
                    got.append(await buf.get())

        task = asyncio.get_running_loop().create_task(consume())
        await asyncio.sleep(0)  # the consumer now waits
        buf.put(1)
        buf.put(2)
        buf.put(3)
        buf.close()
        await asyncio.wait_for(task, 5)
        return got

    assert asyncio.run(main()) == [1, 2, 20, 3]


def test_envelopes_built_only_by_the_encoders() -> None:
    builders = sorted(p.name for p in _modules() if "pb.Message(" in p.read_text())
    assert builders == ["_encode.py"]
