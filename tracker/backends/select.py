"""Backend selection: one place that turns a name and a weights file into a running backend.

torch is imported only on the paths that need it, so the onnx backend over an exported folder runs without it.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

from ..errors import BackendError
from . import Backend
from .graphs import GraphSpec, read_graph_meta

BACKENDS = ("auto", "torch", "onnx", "openvino", "tensorrt")


def create_backend(
    name: str,
    weights: str | os.PathLike,
    device: str | None = None,
    threads: int | None = None,
    *,
    scales: int = 3,
    targets: int = 1,
    precision: str | None = None,
) -> Backend:
    """Build the backend ``name`` for ``weights``. Asking for an unavailable backend is an error, not a fallback.

    Args:
        name: "torch", "onnx", "openvino" (CPU only), "tensorrt", or "auto": TensorRT when it is installed and a
            GPU is visible, else torch on CUDA, else the CPU path measured fastest here (:mod:`.autoselect`;
            cached), whose :class:`~.autoselect.Choice` the backend then carries as ``auto_choice``.
        weights: a ``.safetensors`` file, or (onnx, openvino, tensorrt) a folder written by ``track-export``. From
            a weights file those backends export graphs to a cache folder on first use (this imports torch).
        device: "cpu", "cuda" or "cuda:N"; None lets the backend choose.
        threads: CPU threads for this backend's calls (torch: set around each call, 1 by default; onnxruntime:
            its sessions' intra-op threads, one per physical core by default; openvino: its compiled models').
        scales, targets: search crops per target, and targets per run, that exported graphs are made for.
        precision: torch "auto" | "fp32" | "bf16" | "fp16"; onnx "fp32" (default) | "fp16" | "int8"; openvino
            "fp32" (default) | "bf16" | "int8"; tensorrt "fp16" (default) | "fp32".
    """
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if device is not None and not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise BackendError(f"unknown device {device!r}: use cpu, cuda or cuda:N")
    if name == "auto":
        name = auto_backend(weights, device)
    if name == "cpu":
        from .autoselect import measured_cpu_backend

        def build(backend: str, prec: str) -> Backend:
            return create_backend(backend, weights, "cpu", threads, scales=scales, targets=targets, precision=prec)

        backend, choice = measured_cpu_backend(
            weights, build, threads=threads, scales=scales, targets=targets, precision=precision
        )
        backend.auto_choice = choice
        return backend
    if name == "torch":
        return _torch_backend(weights, device, threads, precision or "auto")
    if name == "onnx":
        from .onnx_backend import OnnxBackend

        if importlib.util.find_spec("onnxruntime") is None:  # before exporting anything
            raise BackendError("the onnx backend needs onnxruntime: pip install 'siamtrack[onnx]'")
        spec = GraphSpec(targets, scales, "uint8", precision or "fp32")
        return OnnxBackend(_graphs(weights, spec, precision), device or "cpu", threads)
    if name == "openvino":
        from .openvino_backend import MISSING, OpenVinoBackend

        if importlib.util.find_spec("openvino") is None:  # before exporting anything
            raise BackendError(MISSING)
        if device not in (None, "cpu"):
            raise BackendError(f"the openvino backend runs on the cpu, not {device!r}")
        if precision not in (None, "fp32", "bf16", "int8"):
            raise BackendError(f"the openvino backend runs fp32, bf16 or int8, not {precision!r}")
        graphs = "int8" if precision == "int8" else "fp32"  # bf16: fp32 graphs, computed in bf16 by OpenVINO
        spec = GraphSpec(targets, scales, "uint8", graphs)
        return OpenVinoBackend(_graphs(weights, spec, None if precision is None else graphs), threads, precision)
    from .tensorrt_backend import TensorRTBackend, tensorrt_unavailable

    reason = tensorrt_unavailable()
    if reason:
        raise BackendError(reason)
    # float32 crop inputs: uint8 network inputs are not supported by every TensorRT version
    spec = GraphSpec(targets, scales, "float32", precision or "fp16")
    return TensorRTBackend(_graphs(weights, spec, precision), device or "cuda")


def _graphs(weights: str | os.PathLike, spec: GraphSpec, precision: str | None) -> Path:
    """:func:`exported_graphs`, refusing a ready-made export folder of another precision than the one asked for
    (``None``: any), rather than running it silently."""
    from .exported import exported_graphs

    folder = exported_graphs(weights, spec)
    if precision is not None and Path(weights).is_dir():
        found = read_graph_meta(folder).spec.precision
        if found != precision:
            raise BackendError(
                f"the graphs in {folder} are {found}, not {precision}: export {precision} graphs with track-export, "
                "or leave the precision unset"
            )
    return folder


def auto_backend(weights: str | os.PathLike, device: str | None = None) -> str:
    """What "auto" resolves to for ``weights`` on ``device`` (None: any): "tensorrt", "torch" (on CUDA), for a
    folder of exported graphs "openvino" (when installed and the graphs are fp32 or int8) or "onnx", or "cpu":
    the CPU paths, one of which is then picked by measurement. OpenVINO ran every export folder here faster than
    ONNX Runtime, up to 4.7x for int8 calibrated on footage (docs/DEPLOY.md, "int8")."""
    from .tensorrt_backend import tensorrt_unavailable

    on_gpu_allowed = device is None or device.startswith("cuda")
    if on_gpu_allowed and tensorrt_unavailable() is None:
        return "tensorrt"
    if Path(weights).is_dir():  # exported graphs: no torch model to run
        return "openvino" if _openvino_runs(Path(weights)) else "onnx"
    import torch

    if on_gpu_allowed and torch.cuda.is_available():
        return "torch"
    if device is not None and device != "cpu":
        raise BackendError(f"device {device!r} asked for, but no CUDA GPU is visible to TensorRT or torch")
    return "cpu"


def _openvino_runs(folder: Path) -> bool:
    """Whether OpenVINO is installed and can run the export in ``folder`` (fp32 or int8 graphs)."""
    if importlib.util.find_spec("openvino") is None:
        return False
    try:
        return read_graph_meta(folder).spec.precision in ("fp32", "int8")
    except BackendError:  # not an export folder: the onnx backend names the problem
        return False


def _torch_backend(weights: str | os.PathLike, device: str | None, threads: int | None, precision: str) -> Backend:
    import torch

    from ..weights import load_weights
    from .torch_backend import TorchBackend

    if Path(weights).is_dir():
        raise BackendError(f"the torch backend needs a .safetensors weights file, not the folder {weights}")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return TorchBackend(load_weights(weights, device="cpu"), device=device, precision=precision, threads=threads)
