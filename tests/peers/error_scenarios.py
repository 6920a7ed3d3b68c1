"""Run one error scenario with whichever ``avatarkit`` this interpreter imports.

Used by tests/integration/test_dropin_errors.py to run the same small program
under the published avatarkit 0.1.7 (its own virtualenv) and under ours,
against the same local avatar service, and compare what each raises.

Usage: python error_scenarios.py CONSOLE_URL INGRESS_URL API_KEY APP_ID AVATAR_ID SCENARIO
Prints one JSON line: {"raised": null} or {"raised": {"mro": [...], "code": ..., "phase": ...}}.
Only APIs both versions have are used.
"""

import asyncio
import json
import sys
from datetime import datetime, timedelta, timezone

from avatarkit import AudioFormat, OggOpusEncoderConfig, new_avatar_session

PCM = b"\x00\x00" * 1600  # 100 ms of silence at 16 kHz


def describe(exc: BaseException) -> dict:
    code = getattr(exc, "code", None)
    return {
        "mro": [f"{c.__module__}.{c.__qualname__}" for c in type(exc).__mro__],
        "code": getattr(code, "value", code),
        "phase": getattr(exc, "phase", None),
        "text": str(exc)[:300],
    }


async def main() -> None:
    console, ingress, api_key, app_id, avatar_id, scenario = sys.argv[1:7]
    closed = asyncio.Event()
    kwargs = dict(
        api_key=api_key,
        app_id=app_id,
        avatar_id=avatar_id,
        console_endpoint_url=console,
        ingress_endpoint_url=ingress,
        expire_at=datetime.now(timezone.utc) + timedelta(minutes=5),
        on_close=closed.set,
        on_error=lambda e: None,
    )
    if scenario == "bad_api_key":
        kwargs["api_key"] = "not-the-key"
    if scenario == "bad_ingress_scheme":
        kwargs["ingress_endpoint_url"] = "ftp://127.0.0.1:9/v2/driveningress"
    if scenario == "unknown_avatar":
        kwargs["avatar_id"] = "no-such-avatar"
    if scenario.startswith(("pcm_rate_", "opus_rate_", "encoder_rate_")):
        kwargs["sample_rate"] = int(scenario.rsplit("_", 1)[1])
    if scenario.startswith(("opus_rate_", "encoder_rate_")):
        kwargs["audio_format"] = AudioFormat.OGG_OPUS
    if scenario.startswith("encoder_rate_"):
        kwargs["ogg_opus_encoder"] = OggOpusEncoderConfig()
    session = new_avatar_session(**kwargs)
    raised = None
    try:
        if scenario == "send_before_init":
            await session.send_audio(PCM)
        elif scenario == "interrupt_before_init":
            await session.interrupt()
        elif scenario == "start_before_init":
            await session.start()
        else:
            await session.init()
            if scenario == "send_before_start":
                await session.send_audio(PCM)
            await session.start()
            if scenario == "start_twice":
                await session.start()
            elif scenario.startswith(("pcm_rate_", "opus_rate_", "encoder_rate_")):
                await session.send_audio(PCM, end=True)
            elif scenario == "send_text_audio":
                await session.send_audio("not bytes")
            elif scenario == "interrupt_before_request":
                await session.interrupt()
            elif scenario in ("send_after_server_close", "interrupt_after_server_close"):
                # The test made the service close this connection after the confirm.
                await asyncio.wait_for(closed.wait(), 10)
                await asyncio.sleep(0.05)
                if scenario == "send_after_server_close":
                    await session.send_audio(PCM, end=True)
                else:
                    await session.interrupt()
            elif scenario in ("send_after_close", "interrupt_after_close"):
                await session.send_audio(PCM, end=True)
                await session.close()
                if scenario == "send_after_close":
                    await session.send_audio(PCM)
                else:
                    await session.interrupt()
    except Exception as exc:  # what the scenario is about
        raised = describe(exc)
    finally:
        await session.close()
    print(json.dumps({"raised": raised}))


asyncio.run(main())
