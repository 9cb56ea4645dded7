"""Fuzz campaign: the property-based tests of tests/test_fuzz.py on many more cases than the test suite runs.

Runs those tests through pytest with a case budget, a seed and optionally other weights, passed in the
environment (``SIAMTRACK_FUZZ_CASES``, ``SIAMTRACK_FUZZ_SEED``, ``SIAMTRACK_FUZZ_WEIGHTS``). The tracker API
property (random frames, boxes and call orders through init/update) gets 40% of the cases, the geometry and
post-processing properties share the rest. Prints pytest's report, a line per property, and the seed to
reproduce the run; exit status 1 if a property failed (hypothesis prints the shrunk example).

    python tools/fuzz_campaign.py                   # 10,000 cases, random seed
    python tools/fuzz_campaign.py --cases 200       # smoke run
    python tools/fuzz_campaign.py --seed 1234 --weights runs/w025/best.safetensors
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests" / "test_fuzz.py"


def main(argv: list[str] | None = None) -> int:
    """Run the campaign; returns pytest's exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000, help="total cases over all properties")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: random, printed)")
    parser.add_argument("--weights", default=None, help="weights for the tracker property (default: hand-set)")
    args = parser.parse_args(argv)
    seed = random.randrange(2**32) if args.seed is None else args.seed
    print(f"fuzz campaign: {args.cases} cases, seed {seed}, weights {args.weights or 'hand-set'}", flush=True)
    env = {**os.environ, "SIAMTRACK_FUZZ_CASES": str(args.cases), "SIAMTRACK_FUZZ_SEED": str(seed)}
    if args.weights:
        env["SIAMTRACK_FUZZ_WEIGHTS"] = str(Path(args.weights).resolve())
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(TESTS),
        "-v",
        "-p",
        "no:cacheprovider",
        "--hypothesis-show-statistics",
    ]
    status = subprocess.call(command, env=env, cwd=TESTS.parent.parent)
    print(f"seed {seed}: {'all properties held' if status == 0 else 'a property FAILED (see above)'}")
    return 1 if status else 0


if __name__ == "__main__":
    sys.exit(main())
