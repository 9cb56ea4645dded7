"""Exported graphs: a weights file -> two static-shape ONNX graphs for ONNX Runtime and TensorRT, and the cache
of exports that the onnx and tensorrt backends run from.

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

With ``--int8`` the search graph's convolutions are quantized to int8 for ONNX Runtime and OpenVINO on CPU,
calibrated on synthetic scenes or, with ``--calibrate DATA``, on crops of annotated footage
(:func:`~tracker.backends.trace.quantize_search_graph`).

The graphs are traced in :mod:`tracker.backends.trace`; this module imports torch only when it exports, so
``track-export`` (:mod:`tracker.export`, the command over it) answers ``--help`` and bad arguments at once.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from ..appearance import embedding_path
from ..atomic import atomic_folder
from ..errors import BackendError, InputError, TrackerError
from ..tuned import settings_path
from .graphs import (
    META_FILE,
    GraphMeta,
    GraphSpec,
    cache_root,
    shipped_int8,
    shipped_int8_path,
    shipped_weight_bits,
    weights_sha256,
)


def missing_packages(spec: GraphSpec, calibration: str | os.PathLike | None = None) -> list[str]:
    """The Python packages an export of ``spec`` needs that are not installed: onnx always (torch's exporter
    writes through it), onnxruntime for int8 (its quantizer and graph preparation), and nncf for int8
    calibrated on footage."""
    needed = ["onnx"]
    if spec.precision == "int8":
        needed += ["onnxruntime"] + (["nncf"] if calibration is not None else [])
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


def export_graphs(
    weights: str | os.PathLike,
    out_dir: str | os.PathLike,
    spec: GraphSpec | None = None,
    calibration: str | os.PathLike | None = None,
    weight_bits: int = 7,
) -> GraphMeta:
    """Export ``weights`` to ``exemplar.onnx``, ``search.onnx`` and ``siamtrack_graphs.json`` in ``out_dir``
    (created if missing, with its parents), with the weights' appearance embedding (:mod:`tracker.appearance`)
    and settings file (:mod:`tracker.tuned`) when they have them. On any error nothing is written and no folder
    is created.

    An int8 export is calibrated on ``calibration``, an annotated dataset or sequence folder of footage like
    the footage it will track (:func:`~tracker.backends.trace.dataset_crops`; needs nncf), or by default on
    synthetic scenes; ``weight_bits`` 8 keeps its dense weights in 8 bits, for CPUs with VNNI only
    (:func:`~tracker.backends.trace.quantize_search_graph`), and picks the shipped 8-bit graph where there is one.

    Raises:
        WeightsError: the weights file is missing or invalid.
        InputError: ``out_dir`` is a file or cannot be written; ``calibration`` or 8-bit weights without int8,
            8-bit weights with neither calibration nor a shipped 8-bit graph; ``calibration`` not a folder
            of readable annotated sequences.
        TrackerError: a package the export needs is not installed.
    """
    spec = spec or GraphSpec()
    if calibration is not None and spec.precision != "int8":
        raise InputError("calibration footage is for an int8 export only")
    if calibration is not None and not Path(calibration).is_dir():
        raise InputError(f"calibration folder not found: {calibration}")
    if weight_bits not in (7, 8):
        raise InputError(f"int8 weight bits must be 7 or 8, got {weight_bits!r}")
    if weight_bits == 8 and (spec.precision != "int8" or (calibration is None and not shipped_int8(weights, spec, 8))):
        raise InputError("8-bit int8 weights are for an int8 export calibrated on footage (or shipped for the weights)")
    missing = missing_packages(spec, calibration)
    if missing:
        extra = "int8" if "nncf" in missing else "onnx"
        raise TrackerError(f"exporting needs {' and '.join(missing)}: pip install 'siamtrack[{extra}]'")
    out_dir = check_out_folder(out_dir)
    from .trace import trace_graphs  # torch: imported only to export

    with atomic_folder(out_dir, last=META_FILE) as tmp:
        meta = trace_graphs(weights, tmp, spec, calibration, weight_bits)
        for kept_beside in (embedding_path, settings_path):  # what the weights carry besides their tensors
            if kept_beside(weights).is_file():
                shutil.copyfile(kept_beside(weights), kept_beside(tmp))
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
    bits = shipped_weight_bits(weights, spec) if spec.precision == "int8" else None
    shipped = {None: "", 7: "-shipped", 8: "-shipped-w8"}[bits]
    if bits is not None:  # and which shipped graph: a package with a new one for the same weights exports anew
        shipped += f"-{weights_sha256(shipped_int8_path(weights, bits))[:8]}"
    folder = cache_root() / "onnx" / f"{weights_sha256(weights)[:16]}-{spec.tag}{shipped}"
    if (folder / META_FILE).is_file():
        return folder
    export_graphs(weights, folder, spec, weight_bits=bits or 7)  # atomic: a reader sees a complete folder or none
    return folder
