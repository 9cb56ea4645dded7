"""``track-export``: a weights file -> two static-shape ONNX graphs for ONNX Runtime and TensorRT.

- ``exemplar.onnx``: exemplar crops (targets, 127, 127, 3) BGR -> kernel (targets, C, 6, 6) float32; runs once
  per target.
- ``search.onnx``: kernel (targets, C, 6, 6) float32 + search crops (targets * scales, 255, 255, 3) BGR -> the
  head's outputs, one graph output each (``ModelConfig.outputs``): SiamFC's ``response`` (targets * scales, 17,
  17) raw logits, or the box head's ``cls``, ``box`` and ``quality`` maps. The kernel is a runtime input, so a
  new target never needs a new graph or engine.

The similarity head is exported as MatMul and static slices (``SimilarityHead(impl="matmul")``) rather than a
convolution whose weights are the kernel: that convolution breaks TensorRT's ONNX parser for Siamese trackers
(NVIDIA/TensorRT#137, #1104). ``siamtrack_graphs.json`` beside them records the model config, the weights'
SHA-256 and the static shapes.

With ``--int8`` the search graph's convolutions are quantized to int8 for ONNX Runtime on CPU
(:func:`quantize_search_graph`).

Usage: ``track-export [--weights W] --out DIR [--fp16 | --int8] [--targets N] [--scales S] [--float-input]``

The graphs are traced in :mod:`tracker.graph_export`; this module imports torch only when it exports, so the
command answers ``--help`` and bad arguments at once.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

from .atomic import atomic_folder
from .backends.graphs import EXEMPLAR_FILE, META_FILE, SEARCH_FILE, GraphMeta, GraphSpec, cache_root, weights_sha256
from .boxsearch import crops_per_target
from .config import TrackerConfig
from .errors import BackendError, InputError, TrackerError
from .shipped import default_weights

PROG = "track-export"


def missing_packages(spec: GraphSpec) -> list[str]:
    """The Python packages an export of ``spec`` needs that are not installed: onnx always (torch's exporter
    writes through it), onnxruntime for int8 (its quantizer)."""
    needed = ["onnx", "onnxruntime"] if spec.precision == "int8" else ["onnx"]
    return [name for name in needed if importlib.util.find_spec(name) is None]


def check_out_folder(out_dir: str | os.PathLike) -> Path:
    """``out_dir`` if graphs can be written there: an existing folder or a path whose nearest existing folder
    is writable; InputError otherwise. Creates nothing."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} is a file, not a folder")
    folder = out_dir.absolute()
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"cannot write to {out_dir}: {folder} is not a writable folder")
    return out_dir


def export_graphs(weights: str | os.PathLike, out_dir: str | os.PathLike, spec: GraphSpec | None = None) -> GraphMeta:
    """Export ``weights`` to ``exemplar.onnx``, ``search.onnx`` and ``siamtrack_graphs.json`` in ``out_dir``
    (created if missing, with its parents). On any error nothing is written and no folder is created.

    Raises:
        WeightsError: the weights file is missing or invalid.
        InputError: ``out_dir`` is a file or cannot be written.
        TrackerError: a package the export needs is not installed.
    """
    spec = spec or GraphSpec()
    missing = missing_packages(spec)
    if missing:
        raise TrackerError(f"exporting needs {' and '.join(missing)}: pip install 'siamtrack[onnx]'")
    out_dir = check_out_folder(out_dir)
    from .graph_export import trace_graphs  # torch: imported only to export

    with atomic_folder(out_dir, last=META_FILE) as tmp:
        meta = trace_graphs(weights, tmp, spec)
        (tmp / META_FILE).write_text(meta.to_json())
    return meta


def exported_graphs(weights: str | os.PathLike, spec: GraphSpec) -> Path:
    """The export folder for ``weights``: the folder itself if ``weights`` is one, else a cache folder keyed by
    the weights' hash and ``spec``, exported on the first call (which imports torch)."""
    weights = Path(weights)
    if weights.is_dir():
        return weights
    if not weights.is_file():
        raise BackendError(f"weights not found: {weights}")
    folder = cache_root() / "onnx" / f"{weights_sha256(weights)[:16]}-{spec.tag}"
    if (folder / META_FILE).is_file():
        return folder
    export_graphs(weights, folder, spec)  # atomic: a reader sees a complete folder (metadata last) or none
    return folder


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # one line, like every other error of the command (argparse would add the usage block)
        self.exit(2, f"{PROG}: error: {message} (see {PROG} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``track-export`` argument parser."""
    p = _Parser(
        prog=PROG, description="Export siamtrack weights to ONNX graphs (needs: pip install 'siamtrack[onnx]')."
    )
    p.add_argument("--weights", type=Path, help="weights file (.safetensors; default: the shipped weights)")
    p.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    precision = p.add_mutually_exclusive_group()
    precision.add_argument("--fp16", action="store_true", help="half-precision backbone (head and outputs stay fp32)")
    precision.add_argument(
        "--int8", action="store_true", help="int8 convolutions in the search graph (ONNX Runtime CPU; calibrated)"
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
    weights = args.weights or default_weights()
    try:
        input_dtype = "float32" if args.float_input else "uint8"
        precision = "fp16" if args.fp16 else "int8" if args.int8 else "fp32"
        per_target = crops_per_target(weights, TrackerConfig())
        if args.scales is not None and per_target == 1 and args.scales != 1:
            raise InputError(
                f"--scales {args.scales}: this model's box head searches one crop per target; leave --scales out"
            )
        scales = args.scales if args.scales is not None else per_target
        spec = GraphSpec(args.targets, scales, input_dtype, precision)
        meta = export_graphs(weights, args.out, spec)
    except TrackerError as e:  # bad weights, a bad --out, a missing package, a bad --targets or --scales
        print(f"{PROG}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"{PROG}: error: cannot write {args.out}: {e.strerror or e}", file=sys.stderr)
        return 2
    files = ", ".join(str(args.out / f) for f in (EXEMPLAR_FILE, SEARCH_FILE, META_FILE))
    print(f"wrote {files} ({spec.tag}, kernel {meta.kernel_shape}, weights sha256 {meta.weights_sha256[:12]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
