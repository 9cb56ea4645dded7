"""The network side of an export: the two graphs as torch modules, their ONNX tracing, and the int8
quantization of the search graph (see :mod:`tracker.backends.exported` for the files and their layout).
Imports torch."""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from ..config import ModelConfig, TrackerConfig
from ..datasets import read_dataset
from ..errors import InputError, TrackerError
from ..geometry import context_size, crop_and_resize
from ..model import SiamFC
from ..scene import synthetic_frames
from ..weights import load_weights
from .graphs import (
    EXEMPLAR_FILE,
    SEARCH_FILE,
    GraphMeta,
    GraphSpec,
    shipped_int8,
    shipped_int8_path,
    weights_sha256,
)

CALIBRATION_SAMPLES = 128  # crops an int8 export calibrates on from footage (dataset_crops)
OPSET = 17  # the legacy exporter's well-trodden opset; TensorRT 8.6 and 10.x parse it


class ExemplarGraph(nn.Module):
    """Exemplar branch: NHWC crops (uint8 or float, BGR, 0-255) -> float32 kernels (B, C, k, k)."""

    def __init__(self, model: SiamFC, dtype: torch.dtype) -> None:
        super().__init__()
        self.model, self.dtype = model, dtype

    def forward(self, exemplar: torch.Tensor) -> torch.Tensor:
        # NHWC -> NCHW inside the graph, so callers pass crops exactly as cropped (no host-side transpose)
        return self.model.embed(exemplar.permute(0, 3, 1, 2).to(self.dtype)).float()


class SearchGraph(nn.Module):
    """Search branch + head: kernels (B, C, k, k) and NHWC crops (B * S, ...) -> the head's outputs, one graph
    output each, in ``ModelConfig.outputs`` order (``SiamFC.maps``' shapes)."""

    def __init__(self, model: SiamFC, dtype: torch.dtype, kernel_shape: tuple[int, ...], scales: int) -> None:
        super().__init__()
        self.model, self.dtype, self.kernel_shape, self.scales = model, dtype, kernel_shape, scales

    def forward(self, kernel: torch.Tensor, search: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features = self.model.backbone(search.permute(0, 3, 1, 2).to(self.dtype))
        # each target's kernel repeated for its S crops here, with plain-int sizes: a Concat in the graph instead
        # of the shape arithmetic that the traced repeat inside the head exports to
        b, c, k, _ = self.kernel_shape
        kernel = torch.cat([kernel.unsqueeze(1)] * self.scales, 1).reshape(b * self.scales, c, k, k)
        # the head stays fp32 even in an fp16 export: euclidean sums of squares overflow fp16's 65504
        return tuple(self.model.maps(kernel, features.float()).values())


def graph_model(model: SiamFC, precision: str = "fp32") -> SiamFC:
    """``model`` made ready for export: eval mode, MatMul head, backbone in ``precision`` (fp16: half weights)."""
    model = model.eval()
    model.use_matmul_head()
    if precision == "fp16":
        model.backbone.half()
    return model


def _onnx_export(
    module: nn.Module, args: tuple[torch.Tensor, ...], path: Path, inputs: list[str], outputs: list[str]
) -> None:
    with warnings.catch_warnings():
        # the exporter's notes that the box head's strided Slice ops are not folded: nothing a user can act on
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1", category=UserWarning)
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=False,  # the dynamo exporter needs onnxscript; the legacy one does not
            opset_version=OPSET,
            input_names=inputs,
            output_names=outputs,
            do_constant_folding=True,
        )


def trace_graphs(
    weights: str | os.PathLike,
    out_dir: Path,
    spec: GraphSpec,
    calibration: str | os.PathLike | None = None,
    weight_bits: int = 7,
) -> GraphMeta:
    """Write ``exemplar.onnx`` and ``search.onnx`` for ``weights`` into the existing folder ``out_dir``; returns
    their metadata (not written). An int8 export is calibrated on ``calibration`` (a dataset folder), its dense
    weights in ``weight_bits`` bits (:func:`quantize_search_graph`); without one it takes the int8 search graph
    shipped for these weights, this spec and ``weight_bits`` (:func:`~.graphs.shipped_int8`), else calibrates on
    synthetic scenes (7 bits). Raises WeightsError for a missing or invalid weights file, InputError for a
    calibration folder without readable sequences."""
    model = graph_model(load_weights(weights, device="cpu"), spec.precision)
    cfg = model.config
    dtype = torch.float16 if spec.precision == "fp16" else torch.float32
    in_dtype = torch.uint8 if spec.input_dtype == "uint8" else torch.float32
    b, n = spec.targets, spec.targets * spec.scales
    # random crops (not zeros) so that tracing and constant folding see ordinary values
    gen = torch.Generator().manual_seed(0)
    exemplar = torch.randint(0, 256, (b, cfg.exemplar_size, cfg.exemplar_size, 3), generator=gen).to(in_dtype)
    search = torch.randint(0, 256, (n, cfg.search_size, cfg.search_size, 3), generator=gen).to(in_dtype)
    with torch.no_grad(), warnings.catch_warnings():
        # the tracer warns that shape-dependent Python values become constants: intended, the shapes are static
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter, chosen on purpose (above)
        exemplar_graph = ExemplarGraph(model, dtype)
        kernel = exemplar_graph(exemplar)
        search_graph = SearchGraph(model, dtype, tuple(kernel.shape), spec.scales)
        _onnx_export(exemplar_graph, (exemplar,), out_dir / EXEMPLAR_FILE, ["exemplar"], ["kernel"])
        quantized = None
        int8_shipped = spec.precision == "int8" and calibration is None
        shipped = shipped_int8(weights, spec, weight_bits) if int8_shipped else None
        if shipped is not None:  # calibrated on footage when the weights were made: used as shipped
            shutil.copyfile(shipped_int8_path(weights, weight_bits), out_dir / SEARCH_FILE)
            quantized = shipped | {"shipped": shipped_int8_path(weights, weight_bits).name}
        else:
            outputs = list(cfg.outputs)
            _onnx_export(search_graph, (kernel, search), out_dir / SEARCH_FILE, ["kernel", "search"], outputs)
            if spec.precision == "int8":
                quantized = quantize_search_graph(
                    out_dir / SEARCH_FILE, exemplar_graph, spec, cfg, calibration, weight_bits
                )
    return GraphMeta(cfg, weights_sha256(weights), spec, OPSET, tuple(kernel.shape), quantized)


def _crop_pair(
    exemplar_frame: np.ndarray,
    exemplar_boxes: np.ndarray,
    frame: np.ndarray,
    boxes: np.ndarray,
    spec: GraphSpec,
    cfg: ModelConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """One calibration batch cut the way the tracker cuts its crops: each target's exemplar from
    ``exemplar_frame`` at its box in ``exemplar_boxes`` (targets, 4), and its ``spec.scales`` search crops from
    ``frame`` around its box in ``boxes``."""
    tracking = TrackerConfig()
    factors = tracking.scale_step ** (np.arange(spec.scales) - spec.scales // 2)
    pad_e, pad = (tuple(float(v) for v in f.reshape(-1, 3).mean(0)) for f in (exemplar_frame, frame))
    exemplars, searches = [], []
    for (ex, ey, ew, eh), (x, y, w, h) in zip(exemplar_boxes, boxes, strict=True):
        z_e = context_size(ew, eh, tracking.context)
        exemplars.append(crop_and_resize(exemplar_frame, (ex + ew / 2, ey + eh / 2), z_e, cfg.exemplar_size, pad_e))
        x_sz = context_size(w, h, tracking.context) * cfg.search_size / cfg.exemplar_size
        center = (x + w / 2, y + h / 2)
        searches += [crop_and_resize(frame, center, x_sz * f, cfg.search_size, pad) for f in factors]
    return np.stack(exemplars), np.stack(searches)


def calibration_crops(spec: GraphSpec, cfg: ModelConfig, batches: int = 24) -> list[tuple[np.ndarray, np.ndarray]]:
    """Exemplar and search crops the way the tracker cuts them, from the synthetic scene of :mod:`tracker.scene`
    (textured objects drifting over a textured background): ``batches`` pairs of (exemplars, search crops)."""
    frames, boxes = synthetic_frames(batches + 1, (640, 480), spec.targets, seed=1)
    # each exemplar is cut from the first frame where the target sits in the later one (as this recipe was measured)
    return [_crop_pair(frames[0], boxes[i], frames[i], boxes[i], spec, cfg) for i in range(1, batches + 1)]


def dataset_crops(
    root: str | os.PathLike, spec: GraphSpec, cfg: ModelConfig, samples: int = CALIBRATION_SAMPLES, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Calibration pairs from real footage: an annotated dataset folder or sequence folder (the formats of
    :mod:`tracker.datasets`). Each sequence's exemplar is cut at its first visible box; its search crops at
    about ``samples / sequences`` visible frames spread over the sequence, each around the annotated box moved
    by up to a quarter of its size (the offsets a tracked target shows between frames; seeded). A batch of
    several targets repeats the sequence's target. Raises InputError for a folder without sequences or an
    unreadable frame."""
    sequences = read_dataset(root)
    per_sequence = max(1, -(-samples // len(sequences)))
    rng = np.random.default_rng(seed)
    pairs = []
    for seq in sequences:
        visible = np.flatnonzero(seq.visible)
        if len(visible) < 2:
            continue
        first = _read_image(seq.frames[visible[0]])
        exemplar_boxes = np.repeat(seq.boxes[visible[0]][None], spec.targets, 0)
        for i in np.unique(np.linspace(1, len(visible) - 1, per_sequence).round().astype(int)):
            x, y, w, h = seq.boxes[visible[i]]
            dx, dy = rng.uniform(-0.25, 0.25, 2) * (w, h)
            boxes = np.repeat(np.array([[x + dx, y + dy, w, h]]), spec.targets, 0)
            pairs.append(_crop_pair(first, exemplar_boxes, _read_image(seq.frames[visible[i]]), boxes, spec, cfg))
    if not pairs:
        raise InputError(f"{root}: no sequence with two visible frames to calibrate int8 on")
    return pairs[:: max(1, len(pairs) // samples)][:samples]


def _read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"cannot read image {path}")
    return image


def quantize_search_graph(
    path: Path,
    exemplar_graph: nn.Module,
    spec: GraphSpec,
    cfg: ModelConfig,
    calibration: str | os.PathLike | None,
    weight_bits: int = 7,
) -> dict:
    """Rewrite ``search.onnx`` with int8 convolutions in QDQ form (ONNX Runtime and OpenVINO run it); returns
    how it was calibrated, for the graphs' metadata.

    - ``calibration`` None: ONNX Runtime's static quantizer calibrated (min-max) on the synthetic scene's crops
      (:func:`calibration_crops`), per-channel int8 weights and uint8 activations; only Conv nodes are
      quantized: the correlation (MatMul against the runtime kernel) stays fp32.
    - ``calibration`` a dataset folder: NNCF's post-training quantization (with its full bias correction) calibrated
      on crops of that footage (:func:`dataset_crops`), the head's layers (correlation, tower and the three
      outputs) kept in float. On crops of videos it was not calibrated on, this halves the int8 graph's error
      against fp32 (docs/DEPLOY.md, "int8"); on synthetic crops NNCF measured no better than the quantizer above.

    Dense weights are quantized to 7 bits by default (``reduce_range``, NNCF's overflow fix): x86 CPUs without
    VNNI multiply uint8 by int8 with instructions that add pairs of products in saturating int16 (ONNX Runtime's
    documented caveat), and 8-bit weights overflow there (2 x 255 x 127 > 32767), which made the answers
    CPU-dependent (4.3% of the response range on an AVX2-only AMD EPYC against 0.7% on an AVX-512 VNNI Xeon);
    7-bit weights cannot overflow. ``weight_bits=8`` (NNCF's calibration only) keeps all 8 bits, for CPUs with
    VNNI, whose dot products add in 32 bits: on footage it was not calibrated on, about 0.6x the 7-bit graph's
    cls error against fp32 (docs/DEPLOY.md, "int8"). NNCF leaves depthwise convolutions at 8 bits either way:
    their kernels widen both operands to int16 before multiplying (ONNX Runtime's ``qdwconv_avx2``), so nothing
    saturates, and 7 bits there doubled the graph's error against fp32 (measured on held-apart crops)."""
    try:
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        raise TrackerError("an int8 export needs onnxruntime: pip install 'siamtrack[onnx]'") from None
    dtype = np.uint8 if spec.input_dtype == "uint8" else np.float32
    pairs = calibration_crops(spec, cfg) if calibration is None else dataset_crops(calibration, spec, cfg)
    feeds = []
    for exemplars, searches in pairs:
        kernel = exemplar_graph(torch.from_numpy(exemplars.astype(dtype))).numpy()
        feeds.append({"kernel": kernel, "search": searches.astype(dtype)})

    prepared = path.with_suffix(".pre.tmp")  # ``path`` sits in a folder that appears only when complete
    try:
        # shape inference and graph optimisation first, as the quantizers recommend (static shapes: no symbolic)
        quant_pre_process(str(path), str(prepared), skip_symbolic_shape=True)
        if calibration is not None:
            nncf_quantize(prepared, path, feeds, weight_bits)
            return {"quantizer": "nncf", "data": str(calibration), "crops": len(feeds), "weight_bits": weight_bits}

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self.feeds = iter(feeds)

            def get_next(self) -> dict | None:
                return next(self.feeds, None)

        quantize_static(
            str(prepared), str(path), Reader(), quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv"],
            per_channel=True, reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        )  # fmt: skip
        return {"quantizer": "onnxruntime", "data": "synthetic scenes", "crops": len(feeds)}
    finally:
        prepared.unlink(missing_ok=True)


def nncf_quantize(
    source: Path,
    path: Path,
    feeds: list[dict[str, np.ndarray]],
    weight_bits: int = 7,
    float_layers: tuple[str, ...] = (),
    mixed: bool = False,
    head_float: bool = True,
) -> None:
    """NNCF post-training quantization of the graph in ``source`` on ``feeds``, written to ``path``: the recipe
    of :func:`quantize_search_graph` (dense weights in 7 bits, its overflow fix, or 8; the head's layers in
    float), with the variants ``tools/int8_fidelity.py`` measures: more layers kept in float (``float_layers``,
    node-name patterns), NNCF's mixed preset instead of its performance one, and the head in int8 too
    (``head_float`` False)."""
    try:
        import nncf
        import onnx
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix
    except ImportError:
        raise TrackerError("int8 calibrated on footage needs NNCF: pip install 'siamtrack[int8]'") from None
    model = onnx.load(str(source))
    outputs = {o.name for o in model.graph.output}
    for node in model.graph.node:
        # the graph's outputs leave through no-op Casts (the head's .float()), which NNCF's clean-up pass removes
        # together with the outputs' names; an Identity keeps them
        if node.op_type == "Cast" and node.output[0] in outputs:
            node.op_type = "Identity"
            del node.attribute[:]
    nncf.set_log_level(logging.ERROR)
    float_scope = ["/head/.*", *float_layers] if head_float else list(float_layers)
    quantized = nncf.quantize(
        model, nncf.Dataset(feeds), subset_size=len(feeds), fast_bias_correction=False,
        preset=nncf.QuantizationPreset.MIXED if mixed else nncf.QuantizationPreset.PERFORMANCE,
        ignored_scope=nncf.IgnoredScope(patterns=float_scope, validate=False),
        advanced_parameters=AdvancedQuantizationParameters(
            overflow_fix=OverflowFix.ENABLE if weight_bits == 7 else OverflowFix.DISABLE
        ),
    )  # fmt: skip
    onnx.save(quantized, str(path))
