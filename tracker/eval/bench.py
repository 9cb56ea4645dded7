"""Speed benchmark of SiamFCTracker.update() on a quiet and on a busy CPU: fps, ms per stage, CPU time.

    python -m tracker.bench [--weights W [W ...]] [--backends auto,torch:bf16@2,onnx:int8] [--threads default,1,2]
                            [--busy 0,1,3] [--frames N] [--size 640x480] [--targets 1,4] [--nano DIR]

Frames are synthetic (textured objects drifting over a textured background), so no dataset is needed. Each
configuration is a real ``SiamFCTracker`` (or, with ``--nano``, OpenCV's NanoTrack) and the real ``update()`` is
timed; its stages (crop, network, post-processing) come from the tracker's own stage clock
(:mod:`tracker.timing`), not from a copy of the code. For each ``--busy N``, N busy processes (pure Python
loops, one core each) run for the duration of that timing, and are stopped afterwards, also on Ctrl-C (and
they stop by themselves if the benchmark dies). Configurations are timed in turn, blocks of 10 frames each, so
a change in the machine's other load reaches all of them alike: compare within one run.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from ..appearance import calibrated_verifier
from ..backends.select import BACKENDS, create_backend
from ..config import ModelConfig, TrackerConfig
from ..errors import InputError, TrackerError, WeightsError
from ..geometry import context_size, crop_and_resize
from ..heads import search_for
from ..machine import machine_info
from ..model import SiamFC
from ..scene import synthetic_frames
from ..shipped import resolve_weights
from ..timing import STAGES, StageClock
from ..tracker import SiamFCTracker
from ..weights import save_weights
from .bench_targets import all_targets, print_targets_table
from .peers import peer_factory

BLOCK = 10  # frames per turn of one configuration


def describe(mc: ModelConfig) -> str:
    """``alexnet x0.25``, plus the stem kernel and groups where they differ from SiamFC's (11, 1)."""
    if mc.backbone != "alexnet":
        return mc.backbone
    text = f"alexnet x{mc.width:g}"
    text += f" stem {mc.stem_kernel}" if mc.stem_kernel != 11 else ""
    return text + (f" groups {mc.groups}" if mc.groups != 1 else "")


# a busy process: one core of pure Python work; it exits by itself once its parent is gone
BUSY_CODE = "import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n    for _ in range(10**5): pass\n"


@contextlib.contextmanager
def busy_processes(n: int) -> Iterator[list[subprocess.Popen]]:
    """``n`` busy processes for the duration of the block; stopped on the way out, also on Ctrl-C."""
    procs: list[subprocess.Popen] = []
    try:
        for _ in range(n):
            procs.append(subprocess.Popen([sys.executable, "-c", BUSY_CODE], stdin=subprocess.DEVNULL))
        time.sleep(0.2 if n else 0)  # let them start spinning
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


@dataclass
class Entry:
    """One timed configuration: the trackers updated in turn each frame (K targets: K trackers)."""

    label: str
    backend: str
    threads: str
    trackers: list  # SiamFCTracker or peers.OpenCVTracker
    cv_threads: int | None = None  # OpenCV's thread count while this entry runs (NanoTrack's threads)
    multi_of: Entry | None = None  # for one MultiTracker: the entry of the same targets, one tracker each
    times: dict[int, list[float]] = field(default_factory=dict)  # busy -> seconds per frame
    cpu: dict[int, float] = field(default_factory=dict)  # busy -> process CPU seconds per frame
    stages: dict[int, dict[str, float]] = field(default_factory=dict)  # busy -> median ms per stage


def time_entries(entries: list[Entry], frames: list[np.ndarray], boxes: np.ndarray, busy: int) -> None:
    """Time every entry's ``update()`` over ``frames`` with ``busy`` busy processes, in turns of BLOCK frames."""
    default_cv = cv2.getNumThreads()
    clocks = []
    for e in entries:
        for k, t in enumerate(e.trackers):  # a warm-up update, then a fresh start
            t.init(frames[0], boxes[0, k])
            t.update(frames[1])
            t.init(frames[0], boxes[0, k])
        clock = StageClock() if isinstance(e.trackers[0], SiamFCTracker) else None
        if clock is not None:  # the stages of the first target's tracker
            e.trackers[0].stage_clock = clock
        clocks.append(clock)
        e.times[busy], e.cpu[busy] = [], 0.0
    with busy_processes(busy):
        for start in range(1, len(frames), BLOCK):
            for e in entries:
                cv2.setNumThreads(default_cv if e.cv_threads is None else e.cv_threads)
                cpu0 = time.process_time()
                for frame in frames[start : start + BLOCK]:
                    t0 = time.perf_counter()
                    for t in e.trackers:
                        t.update(frame)
                    e.times[busy].append(time.perf_counter() - t0)
                e.cpu[busy] += time.process_time() - cpu0
    cv2.setNumThreads(default_cv)
    for e, clock in zip(entries, clocks, strict=True):
        e.cpu[busy] /= len(e.times[busy])
        if clock is not None:
            e.trackers[0].stage_clock = None
            e.stages[busy] = {s: 1000.0 * float(np.median(clock.laps[s])) for s in STAGES if clock.laps[s]}


def time_batched_network(backend: object, config: TrackerConfig, frames: list[np.ndarray], boxes: np.ndarray) -> float:
    """Median ms of one ``score()`` call for all K targets of ``boxes`` (n, K, 4) at once (K x scales crops)."""
    mcfg = backend.model_config
    sides = [context_size(w, h, config.context) for w, h in boxes[0, :, 2:]]
    centres = [(x + (w - 1) / 2, y + (h - 1) / 2) for x, y, w, h in boxes[0]]
    kernel = backend.embed(
        np.stack([crop_and_resize(frames[0], c, s, mcfg.exemplar_size) for c, s in zip(centres, sides, strict=True)])
    )
    ratio = mcfg.search_size / mcfg.exemplar_size
    per_target = search_for(config, mcfg).crops_per_target  # as the tracker searches: 3 scales, or 1 crop
    times = []
    for i, frame in enumerate(frames[1:]):
        # crops are grouped by target, scales innermost, as the Backend protocol expects
        search = np.stack(
            [crop_and_resize(frame, c, s * ratio, mcfg.search_size) for c, s in zip(centres, sides, strict=True)
             for _ in range(per_target)]
        )  # fmt: skip
        t0 = time.perf_counter()
        backend.score(kernel, search)
        if i > 0 or len(frames) == 2:  # the first call pays one-off set-up
            times.append(time.perf_counter() - t0)
    return 1000.0 * float(np.median(times))


def _csv(kind: Callable[[str], object]) -> Callable[[str], list]:
    return lambda s: [kind(v.strip()) for v in s.split(",") if v.strip()]


def _threads(value: str) -> int | None:
    """A thread count, or None for ``default`` (the backend's own default)."""
    if value == "default":
        return None
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"thread counts must be >= 1 or 'default', got {value!r}")
    return int(value)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tracker.bench", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--weights", nargs="+", help="shipped model name(s), weights file(s) or export folders (default: the default)"
    )
    p.add_argument(
        "--backends", type=_csv(str), default=["auto"],
        help="comma-separated BACKEND[:PRECISION][@THREADS] (@ overrides --threads), e.g. auto,torch:bf16@2,onnx:int8",
    )  # fmt: skip
    p.add_argument("--threads", type=_csv(_threads), default=[None], help="e.g. default,1,2 (default: default)")
    p.add_argument(
        "--verify", action="store_true",
        help="also time each configuration with no appearance verifier at all, and with the verifier on, with the "
        "weights' calibrated settings",
    )  # fmt: skip
    p.add_argument("--busy", type=_csv(int), default=[0], help="busy processes beside the tracker, e.g. 0,1,3")
    p.add_argument("--frames", type=int, default=100, help="timed frames per configuration and busy level (>= 2)")
    p.add_argument("--size", default="640x480", help="frame size WIDTHxHEIGHT")
    p.add_argument("--targets", type=_csv(int), default=[1], help="comma-separated target counts, e.g. 1,4")
    p.add_argument("--nano", type=Path, metavar="DIR", help="also time OpenCV's NanoTrack (its two ONNX files in DIR)")
    args = p.parse_args(argv)
    try:
        args.size = tuple(int(v) for v in args.size.lower().split("x"))
        assert len(args.size) == 2 and min(args.size) >= 64
    except (ValueError, AssertionError):
        p.error(f"--size must be WIDTHxHEIGHT, at least 64x64; got {args.size!r}")
    if args.frames < 2:
        p.error("--frames must be >= 2")
    if not args.busy or min(args.busy) < 0 or not args.targets or min(args.targets) < 1:
        p.error("--busy needs counts >= 0 and --targets counts >= 1")
    for b in args.backends:
        b, _, threads = b.partition("@")
        if threads and (not threads.isdigit() or int(threads) < 1):
            p.error(f"thread counts must be >= 1, got @{threads}")
        if b.partition(":")[0] not in BACKENDS:
            p.error(f"unknown backend {b!r}: use {', '.join(BACKENDS)}, optionally with :PRECISION")
    return args


def default_weights(folder: Path) -> tuple[Path, str | None]:
    """The tracker's default weights, or a randomly initialised half-width AlexNet saved in ``folder`` (the
    timing does not depend on the values of the weights), with a note saying so."""
    try:
        return SiamFCTracker(backend="torch").weights, None
    except WeightsError:
        torch.manual_seed(0)
        path = folder / "random-alexnet-w0.5.safetensors"
        save_weights(SiamFC(ModelConfig()), path)
        return path, "no default weights found: timing a randomly initialised half-width AlexNet"


def make_entries(args: argparse.Namespace, weights: list[Path], frames: list, boxes: np.ndarray) -> tuple[list, list]:
    """The configurations to time, and the rows of the batched-network table (timed here, on a quiet start)."""
    entries, batched = [], []
    for w in weights:
        verifies: list[dict[str, float | int | bool]] = [{}]
        if args.verify:
            verifies.append({"verify": False})  # the default's check of re-detections off too
            try:
                verifies.append(calibrated_verifier(resolve_weights(w)))
            except TrackerError as e:
                print(f"warning: timing {w} without the verifier: {e}", file=sys.stderr)
        for spec in args.backends:
            spec, _, at = spec.partition("@")
            name, _, precision = spec.partition(":")
            for threads, verify in itertools.product([int(at)] if at else args.threads, verifies):
                config = TrackerConfig(threads=threads, precision=precision or None, **verify)
                try:
                    trackers = [SiamFCTracker(w, backend=name, config=config) for _ in range(max(args.targets))]
                except TrackerError as e:
                    sys.stdout.flush()  # keep the warning where it happened when both streams go to a terminal
                    print(f"warning: skipping {spec} with {threads or 'default'} threads: {e}", file=sys.stderr)
                    continue
                label = f"{w} ({describe(trackers[0].model_config)})"
                tag = f"{trackers[0].backend_name}" + (" (auto)" if name == "auto" else "")
                tag += " +verify" if "verify_threshold" in verify else " no verifier" if verify else ""
                for k in args.targets:
                    entries.append(Entry(f"{label}, {k} target(s)", tag, str(threads or "default"), trackers[:k]))
                    multi = all_targets(w, name, config, boxes[0, :k])
                    if multi:  # the same K targets, all in one MultiTracker
                        one = entries[-1]
                        entries.append(
                            Entry(f"{one.label}, MultiTracker", multi[0], one.threads, [multi[1]], multi_of=one)
                        )
                    if k > 1:  # exported graphs have a fixed batch, so K targets need a backend made for K
                        kind = trackers[0].backend_name.split("-")[0].replace("onnxruntime", "onnx")
                        try:
                            many = create_backend(kind, w, threads=threads, targets=k, precision=precision or None)
                            ms = time_batched_network(many, config, frames, boxes[:, :k])
                            batched.append((label, tag, threads or "default", k, ms))
                        except TrackerError as e:
                            print(f"warning: no batched score() for {k} targets: {e}", file=sys.stderr)
    if args.nano is not None:
        make = peer_factory("Nano", args.nano)
        if make is None:
            print("warning: this OpenCV has no TrackerNano: NanoTrack skipped", file=sys.stderr)
        else:
            for threads in args.threads:
                entries.append(Entry("OpenCV NanoTrack", "opencv", str(threads or "default"), [make()], threads))
    return entries, batched


def print_tables(entries: list[Entry], batched: list, busy_levels: list[int]) -> None:
    """Markdown: fps by busy level (and its share of the first level's), then stages and CPU time."""
    base = busy_levels[0]
    head = " | ".join(f"{b} busy: fps" + ("" if b == base else f" (% of {base} busy)") for b in busy_levels)
    print(f"\n| tracker | backend | threads | {head} |\n|---|---|---|" + "---|" * len(busy_levels))
    for e in entries:
        fps = {b: 1.0 / float(np.median(e.times[b])) for b in busy_levels}
        cells = [f"{fps[b]:.1f}" + ("" if b == base else f" ({100 * fps[b] / fps[base]:.0f}%)") for b in busy_levels]
        print(f"| {e.label} | {e.backend} | {e.threads} | {' | '.join(cells)} |")
    print("\nMedian ms per update of the first target's tracker, by stage (the tracker's stage clock), its mean")
    print("(frames the appearance verifier runs on cost more), and the process's CPU time per frame (more than")
    print("threads x update() means threads spin while they wait).\n")
    stage_cells = " | ".join(f"{stage} ms" for stage in STAGES)
    print(f"| tracker | backend | threads | busy | {stage_cells} | update() ms | mean ms | CPU ms / frame |")
    print("|---" * (7 + len(STAGES)) + "|")
    for e in entries:
        for b in busy_levels:
            st = e.stages.get(b, {})
            cells = " | ".join(f"{st[s]:.2f}" if s in st else "n/a" for s in STAGES)
            ms, mean = (1000.0 * float(f(e.times[b])) for f in (np.median, np.mean))
            row = f"| {e.label} | {e.backend} | {e.threads} | {b} | {cells} | {ms:.1f} | {mean:.1f} "
            print(f"{row}| {1000 * e.cpu[b]:.1f} |")
    if batched:
        print("\nSeveral targets: the rows above update one SiamFCTracker per target in turn; here one batched")
        print("score() for all K targets (which the Backend protocol allows), timed without busy processes.\n")
        print("| tracker | backend | threads | targets | network, targets batched in one score(), ms |")
        print("|---|---|---|---|---|")
        for label, tag, threads, k, ms in batched:
            print(f"| {label} | {tag} | {threads} | {k} | {ms:.1f} |")
    print_targets_table(entries, busy_levels)
    print_peer_ratios(entries, busy_levels)


def turn_ratios(entry: Entry, peer: Entry, busy: int) -> np.ndarray:
    """Per turn of BLOCK frames, ``peer``'s time over ``entry``'s (above 1: ``entry`` is faster): turns are
    timed one after the other, so each ratio compares the two under the same load of the machine."""
    a, b = (np.asarray(e.times[busy]) for e in (entry, peer))
    turns = range(0, min(len(a), len(b)), BLOCK)
    return np.array([b[i : i + BLOCK].sum() / a[i : i + BLOCK].sum() for i in turns])


def print_peer_ratios(entries: list[Entry], busy_levels: list[int]) -> None:
    """Markdown: each one-target configuration's rate against NanoTrack's at the same threads, turn by turn."""
    peers = {e.threads: e for e in entries if e.label == "OpenCV NanoTrack"}
    # one target's tracker (a MultiTracker entry has one tracker too, but its own table)
    one = [e for e in entries if len(e.trackers) == 1 and e.multi_of is None]
    rows = [e for e in one if e.threads in peers and e.label != "OpenCV NanoTrack"]
    if not rows:
        return
    print(f"\nAgainst NanoTrack at the same threads, turn by turn ({BLOCK} frames each, the two timed one after the")
    print("other): NanoTrack's time over this one's (above 1: faster than NanoTrack), the median and the middle")
    print("80% of the turns, and the share of turns it was faster in.\n")
    print("| tracker | backend | threads | busy | rate against NanoTrack | middle 80% of turns | turns faster |")
    print("|---|---|---|---|---|---|---|")
    for e in rows:
        for b in busy_levels:
            r = turn_ratios(e, peers[e.threads], b)
            low, high = np.percentile(r, [10, 90])
            print(f"| {e.label} | {e.backend} | {e.threads} | {b} | {np.median(r):.2f}x | {low:.2f}-{high:.2f}x "
                  f"| {100 * np.mean(r > 1):.0f}% |")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print Markdown tables; returns the exit status."""
    args = parse_args(argv)
    m = machine_info()
    with tempfile.TemporaryDirectory() as tmp:
        note = None
        try:
            weights = [resolve_weights(w) for w in args.weights or []]
        except WeightsError as e:
            print(f"python -m tracker.bench: error: {e}", file=sys.stderr)
            return 2
        if not weights:
            default, note = default_weights(Path(tmp))
            weights = [default]
        missing = [str(w) for w in weights if not Path(w).exists()]  # a file, or a folder of exported graphs
        if missing:
            print(f"python -m tracker.bench: error: weights not found: {', '.join(missing)}", file=sys.stderr)
            return 2
        frames, boxes = synthetic_frames(args.frames + 1, args.size, max(args.targets), seed=0)
        print(f"{m['cpu']}, {m['logical_cpus']} logical CPUs, torch {m['torch']}, OpenCV {m['opencv']}, {m['date']}")
        load = " / ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
        print(f"{args.size[0]}x{args.size[1]} synthetic frames, median of {args.frames} updates; load average {load}")
        if note:
            print(f"note: {note}")
        try:
            entries, batched = make_entries(args, weights, frames, boxes)
        except InputError as e:
            print(f"python -m tracker.bench: error: {e}", file=sys.stderr)
            return 2
        if not entries:
            print("python -m tracker.bench: error: no configuration could be started", file=sys.stderr)
            return 2
        for busy in args.busy:
            time_entries(entries, frames, boxes, busy)
    print_tables(entries, batched, args.busy)
    return 0


if __name__ == "__main__":
    sys.exit(main())
