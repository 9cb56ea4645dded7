"""Track the juice box through the BoBoT demo clip with the shipped weights, through the `track` command.

Writes ``demos_out/bobot_tracked.mp4`` (annotated video) and ``demos_out/bobot_boxes.csv`` (one row per frame:
frame, target, x, y, w, h, score, found; boxes are 0-based pixels, target 0 here). Run from anywhere:
``python demos/run_demo.py``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tracker.cli import main as track

DEMOS = Path(__file__).resolve().parent
CLIP = DEMOS / "bobot.mp4"
FIRST_BOX = "74,67,39,87"  # x, y, w, h of the juice box on the clip's first frame, 0-based pixels


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns the exit code of `track` (0 done, 2 bad input such as missing weights)."""
    parser = argparse.ArgumentParser(description="Track the juice box in demos/bobot.mp4.")
    parser.add_argument("--weights", help="weights file (default: the shipped weights/mobilenetv2_box.safetensors)")
    parser.add_argument("--backend", default="auto", help="auto, torch, onnx or tensorrt (default: auto)")
    parser.add_argument("--out-dir", type=Path, default=DEMOS.parent / "demos_out", help="default: demos_out/")
    args = parser.parse_args(argv)
    command = [
        str(CLIP),
        "--bbox", FIRST_BOX,
        "--output", str(args.out_dir / "bobot_tracked.mp4"),
        "--boxes", str(args.out_dir / "bobot_boxes.csv"),
        "--backend", args.backend,
    ]  # fmt: skip
    if args.weights:
        command += ["--weights", args.weights]
    return track(command)


if __name__ == "__main__":
    sys.exit(main())
