"""Speed benchmark of SiamFCTracker.update(): ms per stage and fps per backend, thread count and weights.

    python -m tracker.bench [--weights W [W ...]] [--backends torch,onnx] [--threads 1,2] [--frames N]
                            [--size 640x480] [--targets 1,4]

Frames are synthetic (a textured background with textured objects moving across it), so no dataset is needed.
Stages are timed by running the pieces of ``update()`` directly on a backend made the same way the tracker
makes its own: the three search crops (``geometry.crop_and_resize``), the network (``Backend.score``) and the
post-processing (``tracker.postprocess``); the full ``update()`` is timed separately, and its excess over the
stages is Python overhead. Several targets are tracked by one SiamFCTracker each, updated one after another
(SiamFCTracker follows one target); the Backend protocol can batch targets, so one batched ``score()`` for all
of them is timed too, as the network cost a multi-target tracker could reach.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from . import postprocess as pp
from .backends.select import create_backend
from .config import ModelConfig, TrackerConfig
from .errors import TrackerError, WeightsError
from .geometry import context_size, crop_and_resize
from .machine import machine_info, set_threads
from .model import SiamFC
from .scene import synthetic_frames
from .tracker import SiamFCTracker
from .weights import save_weights


def describe(mc: ModelConfig) -> str:
    """``alexnet x0.25``, plus the stem kernel and groups where they differ from SiamFC's (11, 1)."""
    if mc.backbone != "alexnet":
        return mc.backbone
    text = f"alexnet x{mc.width:g}"
    text += f" stem {mc.stem_kernel}" if mc.stem_kernel != 11 else ""
    return text + (f" groups {mc.groups}" if mc.groups != 1 else "")


def _median_ms(times: list[float]) -> float:
    return 1000.0 * float(np.median(times))


def time_stages(backend: object, config: TrackerConfig, frames: list[np.ndarray], boxes: np.ndarray) -> dict:
    """Median ms of the crop, network and post-processing stages of one update, for one target
    (``boxes`` (n, 4)); the search region follows the true box, as a tracker on target would."""
    mcfg = backend.model_config
    scales = config.scale_step ** (np.arange(config.scale_num) - config.scale_num // 2)
    window = pp.hann_window(mcfg.response_size * config.response_up)
    x, y, w, h = boxes[0]
    z_side = context_size(w, h, config.context)
    pad = tuple(float(v) for v in frames[0].reshape(-1, 3).mean(0))
    kernel = backend.embed(
        crop_and_resize(frames[0], (x + (w - 1) / 2, y + (h - 1) / 2), z_side, mcfg.exemplar_size, pad)[None]
    )
    x_side = z_side * mcfg.search_size / mcfg.exemplar_size
    stages: dict[str, list[float]] = {"crop": [], "network": [], "post": []}
    for i, frame in enumerate(frames[1:], 1):
        centre = (boxes[i, 0] + (boxes[i, 2] - 1) / 2, boxes[i, 1] + (boxes[i, 3] - 1) / 2)
        t0 = time.perf_counter()
        crops = np.stack([crop_and_resize(frame, centre, x_side * s, mcfg.search_size, pad) for s in scales])
        t1 = time.perf_counter()
        responses = backend.score(kernel, crops)
        t2 = time.perf_counter()
        scores = pp.sigmoid(responses)
        sid = pp.select_scale(scores, config.scale_penalty)
        response = pp.upsample(scores[sid : sid + 1], config.response_up)[0]
        pp.locate_peak(response, window, config.window_influence)
        t3 = time.perf_counter()
        if i > 1 or len(frames) == 2:  # the first call pays one-off set-up (allocations, kernel selection)
            stages["crop"].append(t1 - t0)
            stages["network"].append(t2 - t1)
            stages["post"].append(t3 - t2)
    return {k: _median_ms(v) for k, v in stages.items()}


def time_batched_network(backend: object, config: TrackerConfig, frames: list[np.ndarray], boxes: np.ndarray) -> float:
    """Median ms of one ``score()`` call for all K targets of ``boxes`` (n, K, 4) at once (K x scales crops)."""
    mcfg = backend.model_config
    sides = [context_size(w, h, config.context) for w, h in boxes[0, :, 2:]]
    centres = [(x + (w - 1) / 2, y + (h - 1) / 2) for x, y, w, h in boxes[0]]
    kernel = backend.embed(
        np.stack([crop_and_resize(frames[0], c, s, mcfg.exemplar_size) for c, s in zip(centres, sides, strict=True)])
    )
    ratio = mcfg.search_size / mcfg.exemplar_size
    times = []
    for i, frame in enumerate(frames[1:]):
        # crops are grouped by target, scales innermost, as the Backend protocol expects
        search = np.stack(
            [crop_and_resize(frame, c, s * ratio, mcfg.search_size) for c, s in zip(centres, sides, strict=True)
             for _ in range(config.scale_num)]
        )  # fmt: skip
        t0 = time.perf_counter()
        backend.score(kernel, search)
        if i > 0 or len(frames) == 2:  # the first call pays one-off set-up
            times.append(time.perf_counter() - t0)
    return _median_ms(times)


def time_updates(trackers: list[SiamFCTracker], frames: list[np.ndarray], boxes: np.ndarray) -> float:
    """Median ms per frame to update every tracker once (tracker k follows ``boxes[:, k]``)."""
    for k, t in enumerate(trackers):  # a warm-up update, then a fresh start
        t.init(frames[0], boxes[0, k])
        t.update(frames[1])
        t.init(frames[0], boxes[0, k])
    times = []
    for frame in frames[1:]:
        t0 = time.perf_counter()
        for t in trackers:
            t.update(frame)
        times.append(time.perf_counter() - t0)
    return _median_ms(times)


def _csv(kind: type):
    return lambda s: [kind(v) for v in s.split(",") if v.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tracker.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", nargs="+", type=Path, help="weights file(s); one table row each (default: shipped)")
    p.add_argument("--backends", type=_csv(str), default=["torch"], help="comma-separated, e.g. torch,onnx")
    p.add_argument("--threads", type=_csv(int), default=[1, 2], help="comma-separated thread counts")
    p.add_argument("--frames", type=int, default=50, help="timed frames per configuration (>= 2)")
    p.add_argument("--size", default="640x480", help="frame size WIDTHxHEIGHT")
    p.add_argument("--targets", type=_csv(int), default=[1, 4], help="comma-separated target counts")
    args = p.parse_args(argv)
    try:
        args.size = tuple(int(v) for v in args.size.lower().split("x"))
        assert len(args.size) == 2 and min(args.size) >= 64
    except (ValueError, AssertionError):
        p.error(f"--size must be WIDTHxHEIGHT, at least 64x64; got {args.size!r}")
    if args.frames < 2:
        p.error("--frames must be >= 2")
    return args


def default_weights(folder: Path) -> tuple[Path, str | None]:
    """The tracker's default weights, or a randomly initialised half-width AlexNet saved in ``folder`` (the
    timing does not depend on the values of the weights), with a note saying so."""
    try:
        return SiamFCTracker().weights, None
    except WeightsError:
        torch.manual_seed(0)
        path = folder / "random-alexnet-w0.5.safetensors"
        save_weights(SiamFC(ModelConfig()), path)
        return path, "no default weights found: timing a randomly initialised half-width AlexNet"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print Markdown tables; returns the exit status."""
    args = parse_args(argv)
    m = machine_info()
    with tempfile.TemporaryDirectory() as tmp:
        weights, note = args.weights, None
        if not weights:
            default, note = default_weights(Path(tmp))
            weights = [default]
        missing = [str(w) for w in weights if not Path(w).exists()]  # a file, or a folder of exported graphs
        if missing:
            print(f"error: weights not found: {', '.join(missing)}", file=sys.stderr)
            return 2
        frames, boxes = synthetic_frames(args.frames + 1, args.size, max(args.targets), seed=0)
        print(f"{m['cpu']}, {m['logical_cpus']} logical CPUs, torch {m['torch']}, OpenCV {m['opencv']}, {m['date']}")
        print(f"{args.size[0]}x{args.size[1]} synthetic frames, median of {args.frames} updates")
        if note:
            print(f"note: {note}")
        stage_rows, target_rows = [], []
        for w in weights:
            for name in args.backends:
                for threads in args.threads:
                    set_threads(threads)
                    config = TrackerConfig(threads=threads)
                    try:
                        backend = create_backend(name, Path(w), threads=threads)
                        trackers = [SiamFCTracker(w, backend=name, config=config) for _ in range(max(args.targets))]
                    except TrackerError as e:
                        sys.stdout.flush()  # keep the warning where it happened when both streams go to a terminal
                        print(f"warning: skipping backend {name}: {e}", file=sys.stderr)
                        break
                    mc = backend.model_config
                    label = f"{w} ({describe(mc)})"
                    s = time_stages(backend, config, frames, boxes[:, 0])
                    full = time_updates(trackers[:1], frames, boxes)
                    stage_rows.append((label, backend.name, threads, s["crop"], s["network"], s["post"], full))
                    for k in args.targets:
                        ms = full if k == 1 else time_updates(trackers[:k], frames, boxes)
                        batched = None
                        try:  # exported graphs have a fixed batch, so K targets need a backend made for K
                            many = backend if k == 1 else create_backend(name, Path(w), threads=threads, targets=k)
                            batched = time_batched_network(many, config, frames, boxes[:, :k])
                        except TrackerError as e:
                            print(f"warning: {name}: no batched score() for {k} targets: {e}", file=sys.stderr)
                        target_rows.append((label, backend.name, threads, k, ms, batched))
    print()
    print("| weights (backbone) | backend | threads | crop ms | network ms | post ms | update() ms | fps |")
    print("|---|---|---|---|---|---|---|---|")
    for label, b, t, c, n, p, full in stage_rows:
        print(f"| {label} | {b} | {t} | {c:.2f} | {n:.1f} | {p:.2f} | {full:.1f} | {1000 / full:.1f} |")
    print()
    print("Several targets: one SiamFCTracker per target, update() called for each in turn every frame.")
    print()
    print("| weights (backbone) | backend | threads | targets | ms / frame | frames / s | target updates / s "
          "| network, targets batched in one score(), ms |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for label, b, t, k, ms, batched in target_rows:
        net = "n/a" if batched is None else f"{batched:.1f}"
        print(f"| {label} | {b} | {t} | {k} | {ms:.1f} | {1000 / ms:.1f} | {k * 1000 / ms:.1f} | {net} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
