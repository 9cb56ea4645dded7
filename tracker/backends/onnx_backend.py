"""ONNX Runtime backend: runs the two exported graphs (``track-export``) without importing torch."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import BackendError
from .graphs import EXEMPLAR_FILE, SEARCH_FILE, cuda_index, embed_in_chunks, read_graph_meta, score_in_chunks


class OnnxBackend:
    """Runs an export folder's ``exemplar.onnx`` and ``search.onnx`` with ONNX Runtime.

    Args:
        graphs: a folder written by ``track-export`` (or by :func:`~tracker.backends.exported.exported_graphs`).
        device: "cpu" (CPUExecutionProvider) or "cuda[:N]" (CUDAExecutionProvider, which must be installed).
        threads: intra-op threads; None lets ONNX Runtime use one per physical core.

    The sessions' threads never spin-wait (``session.intra_op.allow_spinning`` = 0, a per-session option, so
    other sessions of the process keep theirs): by default ONNX Runtime's idle threads spin for work, which on
    a busy CPU takes cores from the threads doing it (measured beside other jobs: 1.2-1.6x the update() time
    with spinning, at 2 threads on 2 cores; docs/DEPLOY.md, "Threads and busy machines").

    Any number of targets runs through graphs of a fixed batch in chunks; the scales per target must match the
    export. Kernels (the handle :meth:`embed` returns) are float32 arrays (B, C, k, k).
    """

    def __init__(self, graphs: str | os.PathLike, device: str = "cpu", threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendError("the onnx backend needs onnxruntime: pip install 'siamtrack[onnx]'") from None
        folder = Path(graphs)
        self.meta = read_graph_meta(folder)
        self.model_config = self.meta.model_config
        available = ort.get_available_providers()
        if device == "cpu":
            providers: list = ["CPUExecutionProvider"]
        elif device.startswith("cuda"):
            if "CUDAExecutionProvider" not in available:
                raise BackendError(
                    "device 'cuda' asked for, but this onnxruntime has no CUDAExecutionProvider "
                    f"(it has {', '.join(available)}): install onnxruntime-gpu"
                )
            providers = [("CUDAExecutionProvider", {"device_id": cuda_index(device)}), "CPUExecutionProvider"]
        else:
            raise BackendError(f"invalid device {device!r} for the onnx backend: use cpu, cuda or cuda:N")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            options.intra_op_num_threads = threads
        for pool in ("intra_op", "inter_op"):  # idle threads sleep rather than spin: see the class docstring
            options.add_session_config_entry(f"session.{pool}.allow_spinning", "0")
        # the graphs are chains: parallel branches would only contend for the same cores
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self._exemplar = ort.InferenceSession(str(folder / EXEMPLAR_FILE), options, providers=providers)
            self._search = ort.InferenceSession(str(folder / SEARCH_FILE), options, providers=providers)
        except Exception as e:  # onnxruntime raises its own untyped errors for unreadable or invalid graphs
            raise BackendError(f"onnxruntime cannot load the graphs in {folder}: {e}") from None
        if device != "cpu" and "CUDAExecutionProvider" not in self._search.get_providers():
            # onnxruntime falls back to the CPU when the CUDA provider fails to start (missing CUDA libraries)
            raise BackendError("onnxruntime could not start its CUDAExecutionProvider (see its log above)")
        self._input_dtype = np.dtype(self.meta.spec.input_dtype)
        self.device = "cuda" if device.startswith("cuda") else "cpu"
        self.name = f"onnxruntime-{self.device}-{self.meta.spec.precision}"

    def _crops(self, crops: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(crops, dtype=self._input_dtype)

    def _run_exemplar(self, exemplars: np.ndarray) -> np.ndarray:
        return self._exemplar.run(None, {"exemplar": self._crops(exemplars)})[0]

    def _run_search(self, kernel: np.ndarray, search: np.ndarray) -> dict[str, np.ndarray]:
        names = self.model_config.outputs
        return dict(
            zip(names, self._search.run(list(names), {"kernel": kernel, "search": self._crops(search)}), strict=True)
        )

    def embed(self, exemplars: np.ndarray) -> np.ndarray:
        """Exemplar crops (B, 127, 127, 3) uint8 BGR -> kernels (B, C, k, k) float32."""
        return embed_in_chunks(self._run_exemplar, exemplars, self.meta)

    def score(self, kernel: object, search: np.ndarray) -> dict[str, np.ndarray]:
        """Kernels of B targets and search crops (B * S, 255, 255, 3) -> the named outputs (``Backend.score``)."""
        return score_in_chunks(self._run_search, kernel, search, self.meta)
