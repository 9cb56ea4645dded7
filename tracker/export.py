"""``track-export``: a weights file -> two static-shape ONNX graphs for ONNX Runtime and TensorRT
(:mod:`tracker.backends.exported` writes them and describes the files).

Usage: ``track-export [--weights W] --out DIR [--fp16 | --int8 [--calibrate DATA]] [--targets N] [--scales S]
[--float-input]``

This module only parses the command's arguments; torch is imported only when it exports, so the command
answers ``--help`` and bad arguments at once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .backends.exported import export_graphs
from .backends.graphs import EXEMPLAR_FILE, META_FILE, SEARCH_FILE, GraphSpec
from .config import TrackerConfig
from .errors import InputError, TrackerError
from .heads import crops_per_target
from .shipped import MODELS, resolve_weights

PROG = "track-export"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # one line, like every other error of the command (argparse would add the usage block)
        self.exit(2, f"{PROG}: error: {message} (see {PROG} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``track-export`` argument parser."""
    p = _Parser(
        prog=PROG,
        description="Export siamtrack weights to ONNX graphs for the onnx, openvino and tensorrt backends (needs: "
        "pip install 'siamtrack[onnx]').",
    )
    p.add_argument(
        "--weights", help=f"a shipped model ({', '.join(MODELS)}) or a .safetensors file (default: the default model)"
    )
    p.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    precision = p.add_mutually_exclusive_group()
    precision.add_argument("--fp16", action="store_true", help="half-precision backbone (head and outputs stay fp32)")
    precision.add_argument(
        "--int8",
        action="store_true",
        help="int8 convolutions in the search graph (ONNX Runtime or OpenVINO on CPU; calibrated)",
    )
    p.add_argument(
        "--calibrate",
        type=Path,
        metavar="DATA",
        help="with --int8: calibrate on crops of this annotated footage (a dataset or sequence folder, e.g. "
        "<seq>/img/*.jpg + groundtruth.txt) instead of synthetic scenes; much closer to fp32 on real video "
        "(needs: pip install 'siamtrack[int8]')",
    )
    p.add_argument("--targets", type=int, default=1, help="targets per run (static batch; default 1)")
    p.add_argument(
        "--scales",
        type=int,
        help="search crops per target (default: the tracker's, 3 for SiamFC's head, 1 for a box head)",
    )
    p.add_argument("--float-input", action="store_true", help="float32 crop inputs instead of uint8")
    return p


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``track-export``); returns the exit status: 0 done, 2 bad input or failure."""
    args = build_parser().parse_args(argv)
    try:
        weights = resolve_weights(args.weights)
        input_dtype = "float32" if args.float_input else "uint8"
        precision = "fp16" if args.fp16 else "int8" if args.int8 else "fp32"
        per_target = crops_per_target(weights, TrackerConfig())
        if args.scales is not None and per_target == 1 and args.scales != 1:
            raise InputError(
                f"--scales {args.scales}: this model's box head searches one crop per target; leave --scales out"
            )
        scales = args.scales if args.scales is not None else per_target
        spec = GraphSpec(args.targets, scales, input_dtype, precision)
        if args.calibrate is not None and not args.int8:
            raise InputError("--calibrate is for --int8 exports")
        meta = export_graphs(weights, args.out, spec, args.calibrate)
    except TrackerError as e:  # bad weights, a bad --out, a missing package, a bad --targets or --scales
        print(f"{PROG}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"{PROG}: error: cannot write {args.out}: {e.strerror or e}", file=sys.stderr)
        return 2
    files = ", ".join(str(args.out / f) for f in (EXEMPLAR_FILE, SEARCH_FILE, META_FILE))
    print(f"wrote {files} ({spec.tag}, kernel {meta.kernel_shape}, weights sha256 {meta.weights_sha256[:12]})")
    if meta.calibration:
        c = meta.calibration
        print(f"int8 calibrated on {c['crops']} crops of {c['data']} ({c['quantizer']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
