"""Drive the published avatarkit 0.1.7 client (run in its own virtualenv).

Usage: python avatarkit017_client.py CONSOLE_URL INGRESS_URL API_KEY APP_ID AVATAR_ID PCM_PATH
Prints one JSON line: what the peer saw.
"""

import asyncio
import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from avatarkit import new_avatar_session

AUDIO = Path(sys.argv[6]).read_bytes()


async def main() -> None:
    console, ingress, api_key, app_id, avatar_id = sys.argv[1:6]
    frames = []
    errors = []
    closes = []
    done = asyncio.Event()

    def on_frame(data, last):
        frames.append((len(data), bool(last)))
        if last:
            done.set()

    session = new_avatar_session(
        api_key=api_key,
        app_id=app_id,
        avatar_id=avatar_id,
        console_endpoint_url=console,
        ingress_endpoint_url=ingress,
        expire_at=datetime.now(timezone.utc) + timedelta(minutes=5),
        transport_frames=on_frame,
        on_error=lambda e: errors.append(repr(e)),
        on_close=lambda: closes.append(1),
    )
    await session.init()
    connection_id = await session.start()
    req_id = await session.send_audio(AUDIO, end=True)
    await asyncio.wait_for(done.wait(), 30)
    interrupted = await session.interrupt()
    await session.close()
    print(
        json.dumps(
            {
                "connection_id": connection_id,
                "req_id": req_id,
                "interrupted": interrupted,
                "frames": len(frames),
                "ends": sum(1 for _, last in frames if last),
                "errors": errors,
            }
        )
    )


asyncio.run(main())
