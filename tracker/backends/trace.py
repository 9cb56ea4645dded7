"""The network side of an export: the two graphs as torch modules, their ONNX tracing, and the int8
quantization of the search graph (see :mod:`tracker.backends.exported` for the files and their layout).
Imports torch."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..config import ModelConfig, TrackerConfig
from ..errors import TrackerError
from ..geometry import context_size, crop_and_resize
from ..model import SiamFC
from ..scene import synthetic_frames
from ..weights import load_weights
from .graphs import EXEMPLAR_FILE, SEARCH_FILE, GraphMeta, GraphSpec, weights_sha256

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


def trace_graphs(weights: str | os.PathLike, out_dir: Path, spec: GraphSpec) -> GraphMeta:
    """Write ``exemplar.onnx`` and ``search.onnx`` for ``weights`` into the existing folder ``out_dir``; returns
    their metadata (not written). Raises WeightsError for a missing or invalid weights file."""
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
        _onnx_export(search_graph, (kernel, search), out_dir / SEARCH_FILE, ["kernel", "search"], list(cfg.outputs))
        if spec.precision == "int8":
            quantize_search_graph(out_dir / SEARCH_FILE, exemplar_graph, spec, cfg)
    return GraphMeta(cfg, weights_sha256(weights), spec, OPSET, tuple(kernel.shape))


def calibration_crops(spec: GraphSpec, cfg: ModelConfig, batches: int = 24) -> list[tuple[np.ndarray, np.ndarray]]:
    """Exemplar and search crops the way the tracker cuts them, from the synthetic scene of :mod:`tracker.scene`
    (textured objects drifting over a textured background): ``batches`` pairs of (exemplars, search crops)."""
    tracking = TrackerConfig()
    frames, boxes = synthetic_frames(batches + 1, (640, 480), spec.targets, seed=1)
    factors = tracking.scale_step ** (np.arange(spec.scales) - spec.scales // 2)
    pads = [tuple(float(v) for v in frame.reshape(-1, 3).mean(0)) for frame in frames]
    pairs = []
    for i in range(1, batches + 1):
        exemplars, searches = [], []
        for t in range(spec.targets):
            x, y, w, h = boxes[i, t]
            center, z_sz = (x + w / 2, y + h / 2), context_size(w, h, tracking.context)
            exemplars.append(crop_and_resize(frames[0], center, z_sz, cfg.exemplar_size, pads[0]))
            x_sz = z_sz * cfg.search_size / cfg.exemplar_size
            searches += [crop_and_resize(frames[i], center, x_sz * f, cfg.search_size, pads[i]) for f in factors]
        pairs.append((np.stack(exemplars), np.stack(searches)))
    return pairs


def quantize_search_graph(path: Path, exemplar_graph: nn.Module, spec: GraphSpec, cfg: ModelConfig) -> None:
    """Rewrite ``search.onnx`` with int8 convolutions: ONNX Runtime static quantization in QDQ form, per-channel
    int8 weights and uint8 activations calibrated (min-max) on :func:`calibration_crops`. Only Conv nodes are
    quantized: the head (MatMul against the runtime kernel) stays fp32.

    Weights are quantized to 7 bits (``reduce_range``): x86 CPUs without VNNI multiply uint8 by int8 with
    instructions that add pairs of products in saturating int16 (ONNX Runtime's documented caveat), and 8-bit
    weights overflow there (2 x 255 x 127 > 32767), which made the answers CPU-dependent (4.3% of the response
    range on an AVX2-only AMD EPYC against 0.7% on an AVX-512 VNNI Xeon); 7-bit weights cannot overflow."""
    try:
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        raise TrackerError("an int8 export needs onnxruntime: pip install 'siamtrack[onnx]'") from None
    dtype = np.uint8 if spec.input_dtype == "uint8" else np.float32
    feeds = []
    for exemplars, searches in calibration_crops(spec, cfg):
        kernel = exemplar_graph(torch.from_numpy(exemplars.astype(dtype))).numpy()
        feeds.append({"kernel": kernel, "search": searches.astype(dtype)})

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = iter(feeds)

        def get_next(self) -> dict | None:
            return next(self.feeds, None)

    prepared = path.with_suffix(".pre.tmp")  # ``path`` sits in a folder that appears only when complete
    try:
        # shape inference and graph optimisation first, as the quantizer recommends (static shapes: no symbolic)
        quant_pre_process(str(path), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared), str(path), Reader(), quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv"],
            per_channel=True, reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        )  # fmt: skip
    finally:
        prepared.unlink(missing_ok=True)
