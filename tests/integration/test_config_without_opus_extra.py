"""Without PyAV (the ``[opus]`` extra) the built-in Ogg Opus encoder's error names
the install command; run in a subprocess where ``av`` cannot be imported.

Split from tests/unit/test_config.py, which runs no subprocess.
"""

from __future__ import annotations


def test_builtin_encoder_without_the_extra_names_it() -> None:
    """Without PyAV, start() fails before connecting with the install command."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import asyncio, sys
        sys.modules["av"] = None  # as if the [opus] extra were not installed
        from datetime import datetime, timedelta, timezone
        from avatarkit import AudioFormat, OggOpusEncoderConfig, OptionalDependencyError
        from avatarkit import new_avatar_session

        async def main():
            s = new_avatar_session(
                api_key="k", app_id="a", avatar_id="v",
                console_endpoint_url="http://127.0.0.1:9/v1/console",
                ingress_endpoint_url="ws://127.0.0.1:9/v2/driveningress",
                expire_at=datetime.now(timezone.utc) + timedelta(minutes=5),
                sample_rate=24000, audio_format=AudioFormat.OGG_OPUS,
                ogg_opus_encoder=OggOpusEncoderConfig())
            s.use_session_token("t")
            try:
                await s.start()
            except OptionalDependencyError as exc:
                print(exc)
            await s.close()

        asyncio.run(main())
        """
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert 'pip install "avatarkit[opus]"' in result.stdout
