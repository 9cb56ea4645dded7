"""Network time per target of ``Backend.score`` at several batch sizes: the most batching targets can save.

One exported graph per batch size (one search crop per target, the box head's count), random crops; the mean
over repeated calls after a warm-up. Usage (README, "Several targets"):

    python tools/batch_cost.py --weights weights/mobilenetv2_box.safetensors --targets 1,4,16 --threads 2
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from tracker.backends.select import create_backend


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", required=True, help="weights file")
    parser.add_argument("--backend", default="onnx")
    parser.add_argument("--targets", default="1,4,16", help="comma-separated batch sizes")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calls", type=int, default=160, help="crops scored per batch size (default 160)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print("| targets | ms per target |\n|---:|---:|")
    for n in (int(v) for v in args.targets.split(",")):
        backend = create_backend(args.backend, args.weights, None, args.threads, scales=1, targets=n)
        kernel = backend.embed(rng.integers(0, 256, (n, 127, 127, 3), dtype=np.uint8))
        crops = rng.integers(0, 256, (n, 255, 255, 3), dtype=np.uint8)
        for _ in range(5):
            backend.score(kernel, crops)
        reps = max(10, args.calls // n)
        start = time.perf_counter()
        for _ in range(reps):
            backend.score(kernel, crops)
        print(f"| {n} | {(time.perf_counter() - start) / reps / n * 1000:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
