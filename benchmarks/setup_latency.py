"""Session set-up latency: ``init()`` + ``start()`` + ``close()`` in-process.

Runs a :class:`~avatarkit.devserver.DevServer` and the SDK on one uvloop
event loop (loopback) and times each full set-up (token call, WebSocket
upgrade, configure/confirm, close) ``--iterations`` times after a short
warm-up; prints p50 and p99 in milliseconds. Used to compare the token
call's HTTP client before and after a change (the server's share is the same
on both sides), not as an absolute figure.

    python -m benchmarks.setup_latency --iterations 300
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


async def _measure(iterations: int, warmup: int) -> list[float]:
    import avatarkit
    from avatarkit.devserver import DevServer

    async with DevServer(host="127.0.0.1", port=0, pace="fast") as server:
        kwargs = server.session_kwargs()
        samples: list[float] = []
        for i in range(warmup + iterations):
            session = avatarkit.new_avatar_session(**kwargs)
            began = time.perf_counter()
            await session.init()
            await session.start()
            await session.close()
            elapsed = time.perf_counter() - began
            if i >= warmup:
                samples.append(elapsed * 1000.0)
        return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    import uvloop

    samples = uvloop.run(_measure(args.iterations, args.warmup))
    samples.sort()
    p50 = statistics.median(samples)
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    print(f"set-up over {len(samples)} sessions: p50 {p50:.3f} ms, p99 {p99:.3f} ms")
    print("RESULT " + json.dumps({"p50_ms": p50, "p99_ms": p99, "n": len(samples)}))


if __name__ == "__main__":
    main()
