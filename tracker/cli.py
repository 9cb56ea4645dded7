"""The ``track`` command: follow one or more targets through a video file, a folder of images or a camera.

Boxes on the command line and in outputs are 0-based ``x, y, w, h`` pixels. Exit codes: 0 done, 2 bad input or
a library error (one line on stderr, no traceback), 130 interrupted (Ctrl-C) while reading a file.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from tqdm import tqdm

from .appearance import calibrated_verifier
from .backends.select import BACKENDS
from .config import PRECISIONS, TrackerConfig
from .errors import InputError, TrackerError
from .geometry import Box, as_box
from .io import (
    FrameSource,
    VideoOutput,
    check_boxes_path,
    check_not_inputs,
    check_writable,
    draw_results,
    write_boxes,
)
from .multi import MultiTracker
from .shipped import MODELS, resolve_weights
from .tracker import TrackResult

PROG = "track"
WINDOW = "track"
CALIBRATED = "calibrated"  # the value --verify takes when given without one: the weights' calibrated settings
SELECT = "select"  # the value --bbox takes when given without one: draw the box with the mouse

EPILOG = """\
examples:
  track clip.mp4 --bbox 74,67,39,87 --output clip_tracked.mp4 --boxes clip_boxes.csv
  track frames/ --bbox 10,20,40,30 --boxes boxes.json --start-frame 5
  track 0 --bbox --show          (camera 0; draw the box with the mouse; q quits)
  track clip.mp4 --bbox 74,67,39,87 --bbox 200,40,30,60 --boxes boxes.csv   (two targets, 0 and 1)

outputs: --boxes has one row per frame read and target, init frame included (score 1, found true), columns
frame, target, x, y, w, h, score, found (target: 0, 1, ... in the order of the --bbox options); an unreadable
image in a folder is skipped with a warning and has no row (the frame column keeps the source index, so the gap
shows). exit codes: 0 done, 2 bad input, 130 interrupted.
"""


class _UsageError(Exception):
    """argparse rejected the command line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse would print the whole usage block; the house rule is one line on stderr
        raise _UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """The ``track`` argument parser."""
    p = _Parser(
        prog=PROG,
        description="Track one or more objects with SiamFC. Boxes are 0-based x,y,w,h in pixels.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("video", metavar="VIDEO", help="video file, folder of images, or camera index (0, 1, ...)")
    p.add_argument(
        "--bbox", nargs="?", const=SELECT, required=True, action="append", metavar="x,y,w,h",
        help="target box on the first frame, once per target; without a value, draw one with the mouse (needs a "
        "display)",
    )  # fmt: skip
    p.add_argument("--output", metavar="VIDEO", help="write an annotated video (.mp4, .avi, .mkv, .mov, .m4v)")
    p.add_argument("--boxes", metavar="FILE", help="write the boxes per frame to .csv or .json")
    p.add_argument("--show", action="store_true", help="show the tracking live in a window (q quits)")
    p.add_argument("--backend", default="auto", choices=BACKENDS, help="inference backend (default: auto)")
    p.add_argument(
        "--weights",
        metavar="NAME|PATH",
        help=f"a shipped model ({', '.join(MODELS)}) or a weights file (default: $SIAMTRACK_WEIGHTS, or the default "
        "model)",
    )
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: the backend chooses)")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads for inference (default: the backend's)")
    p.add_argument(
        "--precision", choices=[v for v in PRECISIONS if v], help="network precision (default: the backend's own); "
        "int8 is for --backend onnx or openvino on CPU: faster on some CPUs, and less accurate"
    )  # fmt: skip
    p.add_argument("--start-frame", type=int, default=0, metavar="N", help="0-based frame to start on (default 0)")
    verify = p.add_mutually_exclusive_group()
    verify.add_argument(
        "--verify", type=_verify_value, nargs="?", const=CALIBRATED, metavar="T", help="report the target lost "
        "unless the box looks like it: the cosine similarity of its appearance with the target's at least T "
        "(default: the settings calibrated for the weights, weights/README.md)"
    )  # fmt: skip
    verify.add_argument(
        "--no-verify", action="store_true", help="no appearance verifier at all, not even the weights' check of "
        "re-detections (a little faster; a lost target may be taken back on a look-alike)"
    )  # fmt: skip
    return p


def parse_bbox(text: str) -> Box:
    """Parse ``"x,y,w,h"`` (0-based float pixels, w and h > 0) into a :class:`Box`; InputError otherwise."""
    parts = [v.strip() for v in text.split(",")]
    try:
        values = [float(v) for v in parts]
    except ValueError:
        values = []
    if len(values) != 4:
        raise InputError(f"--bbox must be x,y,w,h (four numbers, 0-based pixels), got {text!r}")
    try:
        return as_box(values)
    except InputError as e:
        raise InputError(f"--bbox {text}: {e}") from None


def display_available() -> bool:
    """Whether a GUI window can open. On Linux and other X11/Wayland systems that needs DISPLAY or
    WAYLAND_DISPLAY; checked before any cv2 GUI call, which would otherwise abort the process."""
    if sys.platform.startswith(("win", "darwin")):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _require_display(what: str) -> None:
    if not display_available():
        raise InputError(f"{what} needs a display, but none is available (DISPLAY and WAYLAND_DISPLAY are unset)")


def select_box(frame: np.ndarray) -> Box:
    """Let the user drag the target box on ``frame``; returns it as x, y, w, h (0-based pixels)."""
    try:
        x, y, w, h = cv2.selectROI(WINDOW, frame, showCrosshair=True, fromCenter=False)
        cv2.destroyWindow(WINDOW)
    except cv2.error as e:
        raise InputError(f"cannot open a window for box selection: {str(e).strip().splitlines()[-1]}") from None
    if w <= 0 or h <= 0:
        raise InputError("no box selected (selection cancelled); drag a box, then press Enter or Space")
    return Box(float(x), float(y), float(w), float(h))


def _text(box: Box) -> str:
    """``x,y,w,h`` as a user types it, without needless decimals."""
    return ",".join(f"{v:g}" for v in box)


def _show(frame: np.ndarray) -> bool:
    """Show one frame; False when the user asks to stop (q or Esc)."""
    try:
        cv2.imshow(WINDOW, frame)
        key = cv2.waitKey(1) & 0xFF
    except cv2.error as e:
        raise InputError(f"cannot show a window: {str(e).strip().splitlines()[-1]}") from None
    return key not in (ord("q"), 27)


@dataclass
class Summary:
    """What one run did, for the closing line."""

    frames: int = 0  # frames with a row: the init frame and every update
    update_seconds: float = 0.0  # time inside update() only, not decoding or drawing
    lost: list[int] = field(default_factory=lambda: [0])  # updates with found=False, per target
    skipped: int = 0  # unreadable frames left out
    interrupted: bool = False
    backend: str = ""
    camera: bool = False

    def line(self) -> str:
        """One line: frames, mean update() fps, frames lost, backend."""
        updates = self.frames - 1
        fps = f"{updates / self.update_seconds:.1f} fps" if updates > 0 and self.update_seconds > 0 else "n/a"
        if len(self.lost) == 1:
            lost = f"target lost in {self.lost[0]}"
        else:
            lost = "frames lost per target " + ", ".join(f"{i}: {n}" for i, n in enumerate(self.lost))
        text = f"{self.frames} frames, update() {fps} mean, {lost}, backend {self.backend}"
        if self.skipped:
            text += f", {self.skipped} frame(s) skipped (unreadable, or of another size than the first)"
        return text + (" (interrupted)" if self.interrupted else "")


def _track(
    tracker: MultiTracker,
    frames: Iterator[tuple[int, np.ndarray]],
    boxes: list[Box] | None,
    summary: Summary,
    warn: Callable[[str], None],
) -> Iterator[tuple[int, np.ndarray, list[TrackResult]]]:
    """``(index, frame, results)``, one result per target: the first frame with the given boxes (score 1,
    found), then the tracked results of every further frame; the time spent in update() goes to ``summary``.
    A box that reaches beyond the first frame is tracked by its part inside, and ``warn`` says so."""
    index, frame = next(frames)
    if boxes is None:
        boxes = [select_box(frame)]
    tracker.add(frame, boxes)
    height, width = frame.shape[:2]
    inside = [b.clip(width, height) for b in boxes]
    for k, (given, kept) in enumerate(zip(boxes, inside, strict=True)):
        if kept != given:  # often coordinates meant for another frame size
            warn(f"the box of target {k}, {_text(given)}, reaches beyond the {width}x{height} first frame; "
                 f"tracking the part inside it, {_text(kept)}")  # fmt: skip
    yield index, frame, [TrackResult(b, 1.0, True) for b in inside]
    for index, frame in frames:
        start = time.perf_counter()
        results = tracker.update(frame)
        summary.update_seconds += time.perf_counter() - start
        yield index, frame, list(results.values())


def run(args: argparse.Namespace) -> Summary:
    """Track as ``args`` says (see :func:`build_parser`); outputs are written only when the run finishes."""
    if SELECT in args.bbox and len(args.bbox) > 1:
        raise InputError("--bbox without a value (mouse selection) is for one target; give every box as x,y,w,h")
    first_boxes = None if args.bbox == [SELECT] else [parse_bbox(b) for b in args.bbox]
    if args.boxes:
        check_boxes_path(args.boxes)
    for path in (args.boxes, args.output):
        if path:
            check_writable(path)
    check_not_inputs({"--output": args.output, "--boxes": args.boxes}, args.video)
    if args.show:
        _require_display("--show")
    if first_boxes is None:
        _require_display("--bbox without a value (mouse selection)")
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads must be >= 1, got {args.threads}")

    def warn(message: str) -> None:
        tqdm.write(f"{PROG}: warning: {message}", file=sys.stderr)  # printed above the progress bar

    with contextlib.ExitStack() as stack:
        source = stack.enter_context(FrameSource(args.video, args.start_frame, on_warning=warn))
        verify = {"verify_threshold": args.verify, "verify": not args.no_verify}
        if args.verify == CALIBRATED:
            verify = calibrated_verifier(resolve_weights(args.weights))
        config = TrackerConfig(threads=args.threads, precision=args.precision, **verify)
        tracker = MultiTracker(args.weights, args.backend, args.device, config)
        choice = f", {tracker.backend_choice}" if tracker.backend_choice else ""
        print(f"{PROG}: backend {tracker.backend_name}{choice}", flush=True)
        summary = Summary(lost=[0] * len(args.bbox), backend=tracker.backend_name, camera=source.kind == "camera")
        video = stack.enter_context(VideoOutput(args.output, source.fps)) if args.output else None
        total = None if source.frame_count is None else source.frame_count - source.start_frame
        bar = stack.enter_context(tqdm(total=total, unit="frame", disable=None, file=sys.stderr))
        if args.show:
            stack.callback(cv2.destroyAllWindows)
        rows = []
        try:
            for index, frame, results in _track(tracker, iter(source), first_boxes, summary, warn):
                for target, r in enumerate(results):
                    rows.append((index, target, *r.box, r.score, r.found))
                    summary.lost[target] += not r.found
                summary.frames += 1
                bar.update(1)
                if video is not None or args.show:
                    drawn = draw_results(frame, results, f"frame {index}")
                    if video is not None:
                        video.write(drawn)
                    if args.show and not _show(drawn):
                        break
        except KeyboardInterrupt:
            summary.interrupted = True
        bar.close()
        summary.skipped = len(source.skipped)
        if video is not None:
            video.commit()
        if args.boxes:
            write_boxes(args.boxes, rows)
    return summary


def _allow_negative_bbox(argv: list[str]) -> list[str]:
    # argparse reads "--bbox -5,10,40,30" as an unknown option; glue a box that starts with "-" to its flag
    out, i = [], 0
    while i < len(argv):
        if argv[i] == "--bbox" and i + 1 < len(argv) and re.match(r"-[\d.]", argv[i + 1]):
            out.append(f"--bbox={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def _fail(message: str) -> int:
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
    return 2


def _verify_value(text: str) -> float | str:
    """``--verify``'s value: a number, or :data:`CALIBRATED` (the option given alone)."""
    if text == CALIBRATED:
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``track`` and ``python -m tracker``; returns the exit code."""
    argv = _allow_negative_bbox(list(sys.argv[1:] if argv is None else argv))
    # FFmpeg writes a line per damaged packet straight to fd 2; the command reports what matters itself. Read
    # when OpenCV first uses FFmpeg in the process; a value the user set is kept.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    try:
        args = build_parser().parse_args(argv)
    except _UsageError as e:
        return _fail(f"{e} (see {PROG} --help)")
    except SystemExit as e:  # --help
        return e.code if isinstance(e.code, int) else 0
    try:
        summary = run(args)
    except TrackerError as e:
        return _fail(str(e))
    except OSError as e:  # an output folder that cannot be created or written
        return _fail(f"{e.strerror or e}: {e.filename}" if e.filename else str(e))
    except KeyboardInterrupt:  # before tracking started (loading weights, opening the source)
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    written = [p for p in (args.output, args.boxes) if p]
    print(f"{PROG}: {summary.line()}" + (f"; wrote {', '.join(written)}" if written else ""))
    # Ctrl-C is how a camera run ends; on a file it cut the run short
    return 130 if summary.interrupted and not summary.camera else 0
