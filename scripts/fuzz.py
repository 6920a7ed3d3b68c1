"""A longer fuzz campaign of the decoders, outside CI (docs/fuzzing.md).

Usage: python scripts/fuzz.py [--minutes M] [--seed N] [--targets a,b] [--out DIR]

Runs the targets of ``tests/_fuzz_targets.py`` (the same ones the unit tests
fuzz for a few hundred examples) in turn, a second each (equal time, so a
slow target does not hold back the fast ones), for ``--minutes`` in all:
arbitrary bytes, byte mutations of the seed corpus (stacked up to 16
edits) and the structure-aware mutations (Ogg pages with fixed CRCs, JSON
values of any type). Warnings are errors, as under pytest. Each input that
raises anything but the target's documented errors is a finding: the first
of each kind (exception type and raising line) is written to ``--out`` and
listed at the end. Prints inputs tried per target. Exits 1 on findings.
Run it niced: ``nice -n 19 python scripts/fuzz.py --minutes 10``.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests._fuzz_targets import TARGETS, Target, mutate  # noqa: E402


def one_input(rng: random.Random, target: Target, seeds: list[bytes]) -> bytes:
    """Random bytes (10%), a structure-aware mutation (45% where there is one),
    else a stack of byte mutations of a seed."""
    roll = rng.random()
    if roll < 0.1:
        return rng.randbytes(rng.randrange(1024))
    seed = rng.choice(seeds)
    if target.structured is not None and roll < 0.55:
        data = target.structured(rng, seed)
        return mutate(rng, data) if rng.random() < 0.2 else data
    return mutate(rng, seed, rng.randrange(1, 17))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=1.0, help="total run time (default 1)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument("--targets", default=",".join(TARGETS), help="comma-separated names")
    parser.add_argument("--out", type=Path, default=ROOT / "fuzz-findings", help="findings dir")
    args = parser.parse_args(argv)
    names = [n for n in args.targets.split(",") if n]
    unknown = sorted(set(names) - set(TARGETS))
    if unknown:
        parser.error(f"unknown targets {unknown}; known: {', '.join(TARGETS)}")
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    print(f"fuzz: seed {seed}, {args.minutes} min over {len(names)} targets")
    warnings.simplefilter("error")
    tried = dict.fromkeys(names, 0)
    findings: dict[tuple[str, str, str, int], bytes] = {}
    deadline = time.monotonic() + args.minutes * 60
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        while time.monotonic() < deadline:
            for name in names:  # one second each in turn: equal time, not equal counts
                target = TARGETS[name]
                seeds = target.seeds()
                turn_end = min(time.monotonic() + 1.0, deadline)
                while time.monotonic() < turn_end:
                    data = one_input(rng, target, seeds)
                    tried[name] += 1
                    try:
                        target.run(data, workdir)
                    except target.allowed:
                        pass
                    except Exception as exc:
                        frame = traceback.extract_tb(exc.__traceback__)[-1]
                        key = (name, type(exc).__name__, frame.filename, frame.lineno or 0)
                        if key not in findings:
                            findings[key] = data
                            print(f"FINDING {name}: {exc!r} at {frame.filename}:{frame.lineno}")
    for name, count in tried.items():
        print(f"{name:20s} {count:10d} inputs")
    print(f"total                {sum(tried.values()):10d} inputs, {len(findings)} findings")
    if findings:
        args.out.mkdir(parents=True, exist_ok=True)
        for i, ((name, kind, _, _), data) in enumerate(sorted(findings.items())):
            (args.out / f"{name}-{kind}-{i}.bin").write_bytes(data)
        print(f"inputs written to {args.out}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
