"""GPU check in one run: build the TensorRT engines, check their responses against torch fp32 on the GPU, and
time torch CUDA fp32/fp16 and TensorRT fp16/fp32 for one target and for a batch of targets.

    python tools/gpu_check.py [--weights W] [--width 0.5] [--targets 8] [--frames 200] [--warmup 20]

Runs whatever is available and says what it skipped and why (torch CUDA alone where TensorRT or cuda-python is
missing; nothing GPU at all on a CPU-only machine, which it reports, exiting 0). Exits 1 if a parity check fails.

- 1 target: ``SiamFCTracker.update()`` ms per frame (640x480, 3 scales: crops, network, post-processing), with
  ``found_threshold=0`` so every frame takes the tracking path whatever the weights.
- N targets: the crops of N targets x 3 scales and one batched ``Backend.score`` per frame (no post-processing):
  the network cost a multi-target tracker would pay. TensorRT runs graphs exported for N targets.
- Parity: |response - torch fp32| / (torch fp32 response range) on random crops; torch's reference runs with
  TF32 off so that "fp32" means fp32 on both sides.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tracker import SiamFCTracker, TrackerConfig
from tracker.backends import Backend
from tracker.backends.select import create_backend
from tracker.backends.tensorrt_backend import tensorrt_unavailable
from tracker.config import ModelConfig
from tracker.errors import TrackerError
from tracker.geometry import crop_and_resize
from tracker.heads import crops_per_target
from tracker.model import SiamFC
from tracker.scene import synthetic_frames
from tracker.weights import save_weights

# (label, backend, precision, max |diff| / range against torch fp32)
VARIANTS = (
    ("torch CUDA fp32", "torch", "fp32", 5e-3),  # timed as users run it: cuDNN's default TF32 convolutions
    ("torch CUDA fp16", "torch", "fp16", 0.02),
    ("TensorRT fp16", "tensorrt", "fp16", 0.02),
    ("TensorRT fp32", "tensorrt", "fp32", 1e-3),  # TF32 is cleared, but kernels sum in other orders
)
SCALES = (1 / 1.0375, 1.0, 1.0375)


def unavailable(backend: str) -> str | None:
    """Why ``backend`` cannot run on this machine's GPU, or None."""
    reasons = [] if torch.cuda.is_available() else [f"no CUDA GPU visible to torch {torch.__version__}"]
    if backend == "tensorrt" and tensorrt_unavailable():
        reasons.append(tensorrt_unavailable())
    return "; ".join(reasons) or None


def make_backend(weights: Path, backend: str, precision: str, targets: int = 1) -> Backend:
    """A GPU backend at ``precision`` (TensorRT: graphs for ``targets`` targets, engines built or loaded)."""
    scales = crops_per_target(weights, TrackerConfig())
    return create_backend(backend, weights, "cuda", precision=precision, targets=targets, scales=scales)


def parity(weights: Path, backend: Backend) -> float:
    """max |output - torch fp32| / range of torch fp32 over the network's outputs, for 1 target x its search
    crops (random)."""
    rng = np.random.default_rng(1)
    exemplar = rng.integers(0, 256, (1, 127, 127, 3), dtype=np.uint8)
    search = rng.integers(0, 256, (crops_per_target(weights, TrackerConfig()), 255, 255, 3), dtype=np.uint8)
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # cuDNN convolutions default to TF32, a 10-bit mantissa
    try:
        ref = make_backend(weights, "torch", "fp32")
        expected = ref.score(ref.embed(exemplar), search)
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
    actual = backend.score(backend.embed(exemplar), search)
    return max(float(np.abs(actual[k] - v).max() / (v.max() - v.min())) for k, v in expected.items())


def time_update(weights: Path, backend: str, precision: str, frames: list[np.ndarray], warmup: int) -> float:
    """Median ms of SiamFCTracker.update() with this backend and precision (one target)."""
    config = TrackerConfig(found_threshold=0.0, precision=precision)
    t = SiamFCTracker(weights, backend=backend, device="cuda", config=config)
    t.init(frames[0], (272.0, 204.0, 96.0, 72.0))
    times = []
    for i, frame in enumerate(frames[1:]):
        start = time.perf_counter()
        t.update(frame)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def time_batch(backend: Backend, frames: list[np.ndarray], targets: int, warmup: int) -> float:
    """Median ms per frame of cropping ``targets`` x the head's crops (3 scales, or 1 for a box head) and one
    batched score() call."""
    rng = np.random.default_rng(2)
    centres = rng.uniform((64, 64), (576, 416), (targets, 2))
    exemplars = np.stack([crop_and_resize(frames[0], c, 160.0, 127, (0.0, 0.0, 0.0)) for c in centres])
    kernel = backend.embed(exemplars)
    scales = SCALES if "response" in backend.model_config.outputs else (1.0,)  # the fc head searches 3 scales
    times = []
    for i, frame in enumerate(frames[1:]):
        start = time.perf_counter()
        crops = np.stack([crop_and_resize(frame, c, 320.0 * s, 255, (0.0, 0.0, 0.0)) for c in centres for s in scales])
        backend.score(kernel, crops)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main(argv: list[str] | None = None) -> int:
    """Run every check the machine allows; print what was skipped and why."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, help="weights file (default: random AlexNet of --width)")
    p.add_argument("--width", type=float, default=0.5, help="AlexNet width of the random weights (default 0.5)")
    p.add_argument("--targets", type=int, default=8, help="targets in the batched timing (default 8)")
    p.add_argument("--frames", type=int, default=200, help="timed frames per row (default 200)")
    p.add_argument("--warmup", type=int, default=20, help="untimed frames first (default 20)")
    args = p.parse_args(argv)
    frames, _ = synthetic_frames(min(args.frames + args.warmup + 1, 64), (640, 480))
    frames = [frames[i % len(frames)] for i in range(args.frames + args.warmup + 1)]  # 64 distinct are plenty
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    print(f"GPU: {gpu}; torch {torch.__version__} (CUDA {torch.version.cuda})")
    skipped = {label: unavailable(b) for label, b, _, _ in VARIANTS}
    run = [v for v in VARIANTS if skipped[v[0]] is None]
    for label, reason in skipped.items():
        if reason:
            print(f"skipped {label}: {reason}")
    if not run:
        print("no GPU check ran: every GPU variant was skipped (CPU-only machine)")
        return 0
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights
        if weights is None:
            torch.manual_seed(0)
            weights = Path(tmp) / "random.safetensors"
            save_weights(SiamFC(ModelConfig(width=args.width)), weights)
            os.environ["SIAMTRACK_CACHE"] = tmp  # graphs and engines of a random model are not worth keeping
        print(f"weights: {args.weights or f'random AlexNet width {args.width}'}\n")
        rows = []
        for label, backend, precision, tol in run:
            try:
                start = time.perf_counter()
                one = make_backend(weights, backend, precision)
                ready = time.perf_counter() - start  # TensorRT: export + engine build on a cold cache
                err = parity(weights, one)
                ok = err <= tol
                failed |= not ok
                print(f"{label}: ready in {ready:.1f} s; parity {err:.1e} of the range "
                      f"({'ok' if ok else 'FAIL'}, tolerance {tol:.0e})")  # fmt: skip
                ms1 = time_update(weights, backend, precision, frames, args.warmup)
                batch = make_backend(weights, backend, precision, targets=args.targets)
                msn = time_batch(batch, frames, args.targets, args.warmup)
                rows.append((label, one.name, ms1, msn))
            except TrackerError as e:
                failed = True
                print(f"{label}: FAILED: {e}")
    n = args.targets
    print(f"\n| variant | backend | 1 target: update() ms | fps | {n} targets: ms / frame | ms / target |")
    print("|---|---|---|---|---|---|")
    for label, name, ms1, msn in rows:
        print(f"| {label} | {name} | {ms1:.2f} | {1e3 / ms1:.0f} | {msn:.2f} | {msn / n:.2f} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
