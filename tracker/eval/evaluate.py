"""Side-by-side one-pass evaluation (OTB protocol) of siamtrack and OpenCV trackers on a dataset folder.

    python -m tracker.evaluate DATA_DIR [--trackers siamtrack,KCF,CSRT,MIL,Nano] [--nano-dir DIR]
        [--weights W] [--backend B] [--threads N] [--format auto|plain|otb|got10k|vot] --out results/NAME

Every tracker starts on the first frame with a visible target and tracks to the end. Each sequence is decoded
once and its frames shared by all trackers; only update() is timed, with the same thread count everywhere.
Writes results.json, results.md, success.png, precision.png, frontier.png and predictions/<tracker>/<seq>.txt.

With --absence [--splices N] [--splice-frames K] [--seed S], the absence benchmark instead (tracker.absence):
annotated absences plus K frames of another sequence spliced in N times per sequence; writes absence.json and
absence.md. --canvas N: each sequence in the middle of N x N tiles playing other sequences (for cut regions).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..appearance import calibrated_verifier
from ..config import TrackerConfig
from ..datasets import FORMATS, Sequence, read_dataset
from ..errors import InputError, TrackerError
from ..machine import machine_info, set_threads
from ..shipped import resolve_weights
from ..tracker import SiamFCTracker
from . import absence
from .metrics import EARLY_SHARE, FAIL_AUC
from .peers import PEERS, peer_factory
from .run import load_frames, overall, run_sequence, temporal_runs

PROG = "python -m tracker.evaluate"
# siamtrack: the tracker's defaults (the weights' re-detection check included); siamtrack-noverify: no appearance
# verifier at all; siamtrack-nolost: lost mode off (found thresholds 0, no verifier); siamtrack-verify: with the
# appearance verifier and the settings calibrated for the weights (tracker.appearance), unless --config sets a
# threshold
OURS = ("siamtrack", "siamtrack-noverify", "siamtrack-nolost", "siamtrack-verify")
TRACKERS = (*OURS, *PEERS)
# the TrackerConfig fields each of our variants sets over --config
VARIANTS = {
    "siamtrack-noverify": {"verify": False},
    "siamtrack-nolost": {**dict.fromkeys(("found_threshold", "found_psr", "redetect_threshold"), 0.0), "verify": False},
}
DEFAULT_TRACKERS = "siamtrack,KCF,CSRT,MIL"  # Nano joins when asked for, as it needs --nano-dir
PER_FRAME = ("boxes", "scores", "found", "times")  # kept out of results.json; predictions/ holds them


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog=PROG, description=__doc__.split("\n\n")[0] + " Needs matplotlib: pip install 'siamtrack[eval]'."
    )
    p.add_argument("data_dir", type=Path, help="dataset folder (or one sequence folder)")
    p.add_argument("--trackers", default=DEFAULT_TRACKERS, help=f"comma-separated, from {','.join(TRACKERS)}")
    p.add_argument("--nano-dir", type=Path, help="folder with NanoTrack's two ONNX files (for Nano)")
    p.add_argument(
        "--weights",
        type=Path,
        nargs="+",
        help="siamtrack weights (default: the tracker's default); several: one siamtrack row each, named "
        "siamtrack:<file stem>, in the same run",
    )
    p.add_argument("--config", type=Path, help="JSON file of TrackerConfig fields for siamtrack (default: none)")
    p.add_argument("--backend", default="auto", help="siamtrack backend: auto, torch, onnx, openvino, tensorrt")
    p.add_argument("--threads", type=int, help="threads for torch and OpenCV (default: torch's current)")
    p.add_argument("--format", default="auto", choices=FORMATS, help="dataset layout")
    p.add_argument("--out", type=Path, required=True, help="output folder, e.g. results/dev")
    p.add_argument("--sequences", help="comma-separated sequence names to keep (default: all)")
    p.add_argument("--max-frames", type=int, help="track only the first N frames of each sequence (smoke runs)")
    p.add_argument(
        "--starts", type=int, default=1, help="OTB's temporal robustness evaluation: N runs of each sequence, "
        "from the first visible frame at or after 0, 1/N, 2/N ... of it, to the end (default 1: one pass)"
    )  # fmt: skip
    a = p.add_argument_group("absence benchmark")
    a.add_argument("--absence", action="store_true", help="score lost-target reports instead (tracker.absence)")
    absence.add_splice_arguments(a)
    absence.add_canvas_argument(a)
    a.add_argument(
        "--same-size", action="store_true", help="resize every frame (and its box) to the first frame's size: for "
        "datasets whose frames vary in size within a sequence, such as the training split's cut regions"
    )  # fmt: skip
    return p.parse_args(argv)


def tracker_names(spec: str) -> list[str]:
    """Canonical tracker names from a comma-separated, case-insensitive list. Raises InputError on unknown."""
    canonical = {n.lower(): n for n in TRACKERS}
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n.lower() not in canonical]
    if unknown or not names:
        raise InputError(f"unknown tracker {', '.join(unknown) or '(none)'}; choose from {', '.join(TRACKERS)}")
    return list(dict.fromkeys(canonical[n.lower()] for n in names))


def make_factories(args: argparse.Namespace, threads: int) -> tuple[dict[str, Callable[[], object]], dict]:
    """A function making fresh trackers for each available tracker asked for, and notes about them.

    Raises InputError (unknown name, missing Nano files) and the tracker's errors for bad weights or backend;
    an OpenCV tracker missing from this build is skipped with a warning.
    """
    factories, notes = {}, {"skipped": {}}
    for name in tracker_names(args.trackers):
        if name in OURS:
            settings = {**tracker_settings(args.config), "threads": threads, **VARIANTS.get(name, {})}
            for weights in args.weights or [None]:
                row = name if not args.weights or len(args.weights) == 1 else f"{name}:{Path(weights).stem}"
                given = settings
                if name == "siamtrack-verify" and settings.get("verify_threshold") is None:
                    # the weights' calibrated verifier, its settings where --config leaves them unset
                    calibrated = calibrated_verifier(resolve_weights(weights))
                    given = {**calibrated, **{k: v for k, v in settings.items() if v is not None}}
                config = TrackerConfig.from_dict(given)
                probe = SiamFCTracker(weights, backend=args.backend, config=config)  # fails early on bad weights
                notes[row] = {"weights": str(probe.weights), "backend": probe.backend_name}
                factories[row] = lambda w=probe.weights, c=config: SiamFCTracker(w, backend=args.backend, config=c)
            continue
        make = peer_factory(name, args.nano_dir)
        if make is None:
            reason = "not in this OpenCV build (KCF and CSRT need opencv-contrib-python)"
            print(f"{PROG}: warning: skipping {name}: {reason}", file=sys.stderr)
            notes["skipped"][name] = reason
        else:
            factories[name] = make
    if not factories:
        raise InputError("none of the requested trackers is available")
    return factories, notes


def tracker_settings(path: Path | None) -> dict:
    """TrackerConfig fields from a JSON file (``--config``), or none."""
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"--config {path}: {e}") from None
    if not isinstance(data, dict):
        raise InputError(f"--config {path}: expected a JSON object of TrackerConfig fields")
    return data


def select(sequences: list[Sequence], names: str | None, max_frames: int | None, starts: int = 1) -> list[Sequence]:
    """Keep the sequences named in ``names`` (comma-separated) that show the target, cut to ``max_frames``;
    ``starts`` > 1: each as its runs of the temporal robustness evaluation (:func:`~tracker.eval.run.temporal_runs`).
    Raises InputError for an unknown name, ``starts`` below 1 or nothing to evaluate."""
    if starts < 1:
        raise InputError(f"--starts must be at least 1, got {starts}")
    if names:
        wanted = [n.strip() for n in names.split(",") if n.strip()]
        missing = sorted(set(wanted) - {s.name for s in sequences})
        if missing:
            raise InputError(f"sequence(s) not in the dataset: {', '.join(missing)}")
        sequences = [s for s in sequences if s.name in wanted]
    if max_frames:
        sequences = [Sequence(s.name, s.frames[:max_frames], s.boxes[:max_frames]) for s in sequences]
    for s in [s for s in sequences if not s.visible.any()]:
        print(f"{PROG}: warning: skipping {s.name}: the target is never visible", file=sys.stderr)
    sequences = [s for s in sequences if s.visible.any()]
    if not sequences:
        raise InputError("no sequence with a visible target to evaluate")
    return [run for s in sequences for run in temporal_runs(s, starts)]


def _plain(value: object) -> object:
    """numpy values -> JSON-ready Python values (floats rounded to 6 digits)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (np.ndarray, list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return round(float(value), 6)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def write_predictions(folder: Path, per_seq: dict[str, dict]) -> None:
    """One ``x,y,w,h,score,found`` line per frame (NaN before the start frame) for each sequence."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, r in per_seq.items():
        rows = np.column_stack([r["boxes"], r["scores"], r["found"]])
        np.savetxt(folder / f"{name}.txt", rows, fmt=["%.2f"] * 4 + ["%.4f", "%d"], delimiter=",")


def _rate(rate: float | None, total: int) -> str:
    return "n/a" if rate is None else f"{rate:.2f} of {total}"


def markdown(results: dict) -> str:
    """The results table (best success AUC first) and a note on how it was measured."""
    rows = sorted(results["trackers"].items(), key=lambda kv: -kv[1]["overall"]["auc"])
    n_seq = len(results["sequences"])
    lines = [
        "| tracker | success AUC | precision@20 | norm precision | mean IoU | fps | absent-frame accuracy | failed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows:
        o = r["overall"]
        fps = f"{o['fps']:.0f}" if o["fps"] else "n/a"
        lines.append(
            f"| {name} | {o['auc']:.3f} | {o['precision']:.3f} | {o['norm_precision']:.3f} | {o['mean_iou']:.3f} "
            f"| {fps} | {_rate(o['absent_accuracy'], o['absent_frames'])} | {o['failed']} of {n_seq} |"
        )
    o = rows[0][1]["overall"]
    found = ", ".join(f"{n} {_rate(r['overall']['present_found'], o['present_frames'])}" for n, r in rows)
    siams = [(n, results[n]) for n in results if n.startswith("siamtrack") and isinstance(results[n], dict)]
    starts = results.get("starts", 1)
    unit = "sequences" if starts == 1 else f"runs of {len(results['runs'])} sequences"
    protocol = "OTB one-pass from the first visible frame"
    if starts > 1:
        protocol = f"OTB temporal robustness, up to {starts} runs a sequence, from 0, 1/{starts} ... of it to the end"
    lines += [
        "",
        f"{len(results['sequences'])} {unit}, {o['frames']} frames with the target and {o['absent_frames']} "
        f"without; {protocol}; AUC, precision and IoU are means over {unit} "
        f"and exclude frames without the target. fps: median update() over all frames, decode excluded, "
        f"{results['threads']} thread(s). Absent-frame accuracy: share of target-absent frames where the "
        f"tracker said not found. Found on frames with the target: {found}.",
    ]
    lines[-1] += (
        f" Failed: success AUC below {FAIL_AUC} or the box off the target within the first {EARLY_SHARE:.0%} of"
        " the frames tracked."
    )
    for n, siam in siams:
        lines.append(f"{n}: {Path(siam['weights']).name}, backend {siam['backend']}.")
    return "\n".join(lines) + "\n\n" + per_sequence_table(results, [name for name, _ in rows]) + "\n"


def per_sequence_table(results: dict, names: list[str]) -> str:
    """Success AUC per sequence (rows) and tracker (columns, in ``names`` order), failures marked; with several
    starts (``--starts``), the mean over a sequence's runs and how many of them failed."""
    runs = results.get("runs") or {seq: [seq] for seq in results["sequences"]}
    lines = ["| sequence | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for seq, names_of_runs in runs.items():
        cells = []
        for name in names:
            rs = [results["trackers"][name]["sequences"][run] for run in names_of_runs]
            failed = sum(bool(r["failed"]) for r in rs)
            mark = (" (failed)" if failed else "") if len(rs) == 1 else (f" ({failed} failed)" if failed else "")
            cells.append(f"{np.mean([r['auc'] for r in rs]):.3f}" + mark)
        lines.append(f"| {seq} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def prepare(args: argparse.Namespace) -> tuple[int, dict, dict, list]:
    """Thread count, tracker factories (with their notes) and the selected sequences of a run."""
    if not args.data_dir.is_dir():
        raise InputError(f"data folder not found: {args.data_dir}")
    if args.absence and args.starts != 1:
        raise InputError("--starts is for the one-pass evaluation, not --absence")
    if args.canvas is not None and not args.absence:
        raise InputError("--canvas is for --absence")
    sequences = select(read_dataset(args.data_dir, args.format), args.sequences, args.max_frames, args.starts)
    threads = args.threads or torch.get_num_threads()
    set_threads(threads)
    factories, notes = make_factories(args, threads)
    return threads, factories, notes, sequences


def runs_of(runs: list[Sequence], starts: int) -> dict[str, list[str]]:
    """The runs of each sequence (``--starts``): ``{"seq": ["seq@0", "seq@40", ...]}``; one start: its own."""
    grouped: dict[str, list[str]] = {}
    for run in runs:
        grouped.setdefault(run.name.rpartition("@")[0] if starts > 1 else run.name, []).append(run.name)
    return grouped


def evaluate_all(args: argparse.Namespace) -> dict:
    """Run every tracker on every sequence and return the results (per-frame arrays included)."""
    threads, factories, notes, sequences = prepare(args)
    per: dict[str, dict[str, dict]] = {name: {} for name in factories}
    paths: list[Path] = []  # the frames last decoded, and their images
    images: list[np.ndarray] = []
    for seq in sequences:
        n = len(seq.frames)
        if not (0 < n <= len(paths) and paths[-n:] == seq.frames):  # a later start's run: the end of the last one
            paths, images = seq.frames, load_frames(seq)
        frames = images[-n:]  # decoded once, shared by every tracker and by a sequence's runs (--starts)
        tracked = len(frames) - int(np.argmax(seq.visible))  # from the first visible frame on
        for name, make in factories.items():
            with tqdm(total=tracked, desc=f"{name} {seq.name}", unit="frame", file=sys.stderr, mininterval=0.5) as bar:
                r = run_sequence(make(), seq, frames, progress=bar.update)
                bar.set_postfix(auc=f"{r['auc']:.3f}", fps=f"{r['fps'] or 0:.0f}")
            per[name][seq.name] = r
    return {
        "protocol": "OTB one-pass; 21 IoU thresholds (IoU > t); precision at 20 px; norm precision at 0.2",
        "data_dir": str(args.data_dir),
        "format": args.format,
        "sequences": [s.name for s in sequences],
        "starts": args.starts,
        "runs": runs_of(sequences, args.starts),
        "max_frames": args.max_frames,
        "threads": threads,
        "machine": machine_info(),
        **notes,
        "trackers": {name: {"overall": overall(p), "sequences": p} for name, p in per.items()},
    }


def evaluate_absence(args: argparse.Namespace) -> dict:
    """Run the absence benchmark (:mod:`tracker.absence`) on every tracker asked for."""
    threads, factories, notes, sequences = prepare(args)

    def progress(stream: absence.Stream) -> Callable[[], None]:
        bar = tqdm(total=len(stream) - 1, desc=stream.name, unit="frame", file=sys.stderr, mininterval=0.5)

        def tick() -> None:
            bar.update()
            if bar.n >= bar.total:
                bar.close()

        return tick

    results = absence.benchmark(
        factories, sequences, args.splices, args.splice_frames, args.seed, progress, args.same_size, args.canvas
    )
    splice_args = absence.describe_arguments(args)
    return {"data_dir": str(args.data_dir), "splice_args": splice_args, "threads": threads, **notes, **results}


def check_plotting() -> None:
    """Raise InputError naming the extra to install when matplotlib, which draws the plots, is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise InputError("the plots need matplotlib: pip install 'siamtrack[eval]'") from None


def write_outputs(results: dict, out: Path) -> None:
    """results.json, results.md, the three plots and the per-frame predictions under ``out``."""
    from . import plots  # matplotlib, checked by check_plotting() before the run

    out.mkdir(parents=True, exist_ok=True)
    for name, r in results["trackers"].items():
        write_predictions(out / "predictions" / name, r["sequences"])
    summary = {
        **results,
        "trackers": {
            name: {
                "overall": r["overall"],
                "sequences": {s: {k: v for k, v in x.items() if k not in PER_FRAME} for s, x in r["sequences"].items()},
            }
            for name, r in results["trackers"].items()
        },
    }
    (out / "results.json").write_text(json.dumps(_plain(summary), indent=1) + "\n")
    (out / "results.md").write_text(markdown(results))
    overall_by_tracker = {name: r["overall"] for name, r in results["trackers"].items()}
    plots.success_plot(overall_by_tracker, out / "success.png")
    plots.precision_plot(overall_by_tracker, out / "precision.png")
    plots.frontier_plot(overall_by_tracker, out / "frontier.png", results["threads"])


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2 for bad input)."""
    args = parse_args(argv)
    if args.absence:
        return main_absence(args)
    try:
        check_plotting()  # before a long run, not after it
        results = evaluate_all(args)
        write_outputs(results, args.out)
    except TrackerError as e:
        print(f"{PROG}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except OSError as e:
        print(
            f"{PROG}: error: {e.strerror or e}: {e.filename}" if e.filename else f"{PROG}: error: {e}", file=sys.stderr
        )
        return 2
    print(markdown(results), end="")
    print(f"wrote {args.out}/results.json, results.md, success.png, precision.png, frontier.png")
    return 0


def main_absence(args: argparse.Namespace) -> int:
    """``--absence``: run the absence benchmark, write absence.json and absence.md, print the table."""
    try:
        results = evaluate_absence(args)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "absence.json").write_text(json.dumps(_plain(results), indent=1) + "\n")
        (args.out / "absence.md").write_text(absence.markdown(results))
    except TrackerError as e:
        print(f"{PROG}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    print(absence.markdown(results), end="")
    print(f"wrote {args.out}/absence.json, absence.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
