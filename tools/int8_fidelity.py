"""How close int8 search graphs stay to fp32, recipe against recipe, on footage they were not calibrated on.

The annotated sequences of ``--data`` are split by video into two halves (alternate names): each recipe is
calibrated on crops of one half and measured on crops of the other, against the fp32 graph with the same
kernels, on OpenVINO as the int8 path runs (the float head in bf16 where the CPU has native bf16). Prints one
row a recipe and half: the share of crops whose response peak is within 1 cell of fp32's, the mean of the
median cls error (of fp32's range on that crop), the median box error at fp32's peak (of the box's size) and
the median quality error there.

    python tools/int8_fidelity.py --weights accurate --data ../shared/data/train --recipes shipped,w8,crops384
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from tracker.backends.exported import exported_graphs
from tracker.backends.graphs import EXEMPLAR_FILE, SEARCH_FILE, GraphSpec, read_graph_meta
from tracker.backends.openvino_backend import native_bf16
from tracker.backends.trace import dataset_crops, nncf_quantize
from tracker.shipped import resolve_weights

FP32 = GraphSpec(targets=1, scales=1, input_dtype="uint8", precision="fp32")


def recipe_options(name: str) -> tuple[int, dict]:
    """The calibration crops and the options of :func:`tracker.backends.trace.nncf_quantize` for a recipe:
    ``shipped`` (the shipped recipe), ``w8`` (8-bit dense weights, no overflow fix: VNNI CPUs only), ``crops<N>``
    (N calibration crops), ``float:<regex>`` (those layers kept in float besides the head), ``mixed`` (NNCF's
    mixed preset), ``inthead`` (the head in int8 too); joined with ``+``."""
    crops, opts = 128, {"weight_bits": 7, "float_layers": (), "mixed": False, "head_float": True}
    for part in name.split("+"):
        if part == "shipped":
            continue
        elif part == "w8":
            opts["weight_bits"] = 8
        elif part.startswith("crops"):
            crops = int(part[5:])
        elif part.startswith("float:"):
            opts["float_layers"] += (part[6:],)
        elif part == "mixed":
            opts["mixed"] = True
        elif part == "inthead":
            opts["head_float"] = False
        else:
            raise SystemExit(f"unknown recipe part {part!r}")
    return crops, opts


def halves(root: Path, tmp: Path) -> tuple[Path, Path]:
    """Two dataset folders of symlinks: alternate sequences of ``root``."""
    seqs = sorted(d for d in root.iterdir() if d.is_dir() and (d / "groundtruth.txt").is_file())
    out = []
    for k in (0, 1):
        folder = tmp / f"half{k}"
        folder.mkdir()
        for s in seqs[k::2]:
            (folder / s.name).symlink_to(s.resolve())
        out.append(folder)
    return out[0], out[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default="accurate")
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--recipes", default="shipped")
    p.add_argument("--samples", type=int, default=400, help="measured crops")
    p.add_argument("--head", choices=("auto", "f32"), default="auto", help="float layers in bf16 where native, or f32")
    args = p.parse_args(argv)
    recipes = {name: recipe_options(name) for name in args.recipes.split(",")}  # a bad one fails before any work
    import openvino as ov
    from onnxruntime.quantization.shape_inference import quant_pre_process

    weights = resolve_weights(args.weights)
    folder = exported_graphs(weights, FP32)
    cfg = read_graph_meta(folder).model_config
    core = ov.Core()
    f32 = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1}
    head = dict(f32, INFERENCE_PRECISION_HINT="bf16" if native_bf16(core) and args.head == "auto" else "f32")
    exemplar = core.compile_model(str(folder / EXEMPLAR_FILE), "CPU", f32).create_infer_request()
    reference = core.compile_model(str(folder / SEARCH_FILE), "CPU", f32).create_infer_request()

    def feeds_of(pairs: list) -> list[dict]:
        out = []
        for ex, se in pairs:
            kernel = exemplar.infer({"exemplar": ex})["kernel"].copy()
            out.append({"kernel": kernel, "search": se})
        return out

    print(f"{weights.name}; float head in {head['INFERENCE_PRECISION_HINT']}; {args.data}")
    print("| recipe | calibrated on | peak within 1 cell | cls error (median) | box error at peak | quality error |")
    print("|---|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        prepared = tmp / "prepared.onnx"
        quant_pre_process(str(folder / SEARCH_FILE), str(prepared), skip_symbolic_shape=True)
        a, b = halves(args.data, tmp)
        crops = {h: dataset_crops(h, FP32, cfg, samples=512) for h in (a, b)}
        measured = {h: dataset_crops(h, FP32, cfg, samples=args.samples, seed=1) for h in (a, b)}
        calib = {h: feeds_of(c) for h, c in crops.items()}
        evals = {h: feeds_of(c) for h, c in measured.items()}
        names = ("cls", "box", "quality")
        refs = {h: [{n: r[n].copy() for n in names} for r in map(reference.infer, evals[h])] for h in (a, b)}
        for recipe, (crops_used, opts) in recipes.items():
            for cal, ev in ((a, b), (b, a)):
                out = tmp / "q.onnx"
                nncf_quantize(prepared, out, calib[cal][:crops_used], **opts)
                req = core.compile_model(str(out), "CPU", head).create_infer_request()
                peak, cls_e, box_e, q_e = [], [], [], []
                for f, ref in zip(evals[ev], refs[ev], strict=True):
                    res = req.infer(f)
                    got = {n: res[n] for n in names}
                    rc, gc = ref["cls"][0], got["cls"][0]
                    i, j = np.unravel_index(rc.argmax(), rc.shape)
                    gi, gj = np.unravel_index(gc.argmax(), gc.shape)
                    peak.append(max(abs(i - gi), abs(j - gj)) <= 1)
                    cls_e.append(np.median(np.abs(rc - gc)) / max(np.ptp(rc), 1e-6))
                    rb, gb = ref["box"][0][:, i, j], got["box"][0][:, i, j]
                    size = max(float(rb[0] + rb[2]), float(rb[1] + rb[3]), 1e-6)
                    box_e.append(float(np.abs(rb - gb).max()) / size)
                    q_e.append(float(np.abs(ref["quality"][0] - got["quality"][0])[i, j]))
                print(
                    f"| {recipe} | {cal.name} | {np.mean(peak):.1%} | {np.mean(cls_e):.2%} | {np.median(box_e):.2%} "
                    f"| {np.median(q_e):.4f} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
