"""Fuzz campaign: the property-based checks of tests/test_fuzz.py on many more cases than the test suite runs.

The tracker API property (random frames, boxes and call orders through init/update) gets 40% of the cases, the
geometry and post-processing properties share the rest. Prints the cases run per property and in total, and
the seed to reproduce the run; exit status 1 if any property failed (hypothesis prints the shrunk example).

    python scripts/fuzz_campaign.py                   # 10,000 cases, random seed
    python scripts/fuzz_campaign.py --cases 200       # smoke run
    python scripts/fuzz_campaign.py --seed 1234 --weights runs/w025/best.safetensors
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import ModuleType

from hypothesis import HealthCheck, settings

from tracker.config import ModelConfig
from tracker.model import SiamFC
from tracker.weights import save_weights

TESTS = Path(__file__).resolve().parent.parent / "tests" / "test_fuzz.py"
TRACKER_SHARE = 0.4  # the API property is the one that matters most (and the slowest)


def load_properties() -> ModuleType:
    """tests/test_fuzz.py as a module, loaded from its path (tests/ is not a package)."""
    spec = importlib.util.spec_from_file_location("test_fuzz", TESTS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shares(names: list[str], cases: int) -> dict[str, int]:
    """Cases per property: TRACKER_SHARE for the tracker, the rest split evenly; at least one each."""
    others = [n for n in names if n != "tracker"]
    plan = {n: max(1, round(cases * (1 - TRACKER_SHARE) / len(others))) for n in others}
    plan["tracker"] = max(1, cases - sum(plan.values()))
    return plan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000, help="total cases over all properties")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: random, printed)")
    parser.add_argument("--weights", default=None, help="weights for the tracker property (default: hand-set)")
    args = parser.parse_args(argv)
    seed = random.randrange(2**32) if args.seed is None else args.seed
    fuzz = load_properties()

    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights
        if weights is None:
            weights = Path(tmp) / "handset.safetensors"
            save_weights(SiamFC(ModelConfig(backbone="handset", metric="cosine", out_scale=1.5)), weights)
        print(f"fuzz campaign: {args.cases} cases, seed {seed}, weights {args.weights or 'hand-set'}", flush=True)
        counts: dict[str, int] = {}
        failed = []
        t0 = time.perf_counter()
        for name, n in shares(list(fuzz.PROPERTIES), args.cases).items():
            counts[name] = 0

            def count(name: str = name) -> None:
                counts[name] += 1

            config = settings(
                max_examples=n, deadline=None, database=None, derandomize=False, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            )  # fmt: skip
            try:
                fuzz.run_property(name, config, weights, count, seed)
                status = "ok"
            except Exception:  # a failed property: report it and go on with the others
                traceback.print_exc()
                failed.append(name)
                status = "FAILED"
            print(f"{name:>10}: {counts[name]:>6} cases  {status}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    total = sum(counts.values())
    print(f"cases run: {total} (seed {seed}); failed properties: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
