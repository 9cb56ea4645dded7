"""OpenVINO backend: runs the two exported graphs (``track-export``) with Intel's OpenVINO runtime on the CPU,
without importing torch. It reads the ONNX files directly; an int8 export's quantize / dequantize pairs
(:func:`~tracker.backends.trace.quantize_search_graph`) become int8 convolutions there."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import BackendError
from ..machine import cpu_flags_native_bf16
from .graphs import EXEMPLAR_FILE, SEARCH_FILE, embed_in_chunks, read_graph_meta, score_in_chunks

MISSING = "the openvino backend needs openvino: pip install 'siamtrack[openvino]'"
# what OpenVINO computes the float layers in, by the precision asked for. Left to itself OpenVINO runs in bf16 on
# CPUs with native bf16 (AMX, AVX-512 BF16), which changes fp32's answers, so fp32 asks for f32. An int8 graph's
# float parts (the box head's correlation and tower, kept float by the calibrated recipe) run in bf16 where the CPU
# has it natively: on the shipped graphs that left their distance to fp32 as it was (docs/DEPLOY.md, "int8") and
# cut the default network's update() by about a tenth; elsewhere, and in the exemplar graph (float), in f32
HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


class OpenVinoBackend:
    """Runs an export folder's ``exemplar.onnx`` and ``search.onnx`` with OpenVINO on the CPU.

    Args:
        graphs: a folder written by ``track-export`` (or by :func:`~tracker.backends.exported.exported_graphs`).
        threads: threads of this backend's compiled models (``INFERENCE_NUM_THREADS``, their own pool: the
            process's torch and ONNX Runtime threads are not touched); None lets OpenVINO use its default.
        precision: "fp32" (the default), "bf16" (the float layers in bf16: CPUs with native bf16 only) or "int8"
            (an int8 export folder; the search graph's float layers in bf16 where the CPU has native bf16, else
            fp32). Defaults to the export's own precision.

    The compiled models use the LATENCY hint (one request at a time, all threads on it) and no CPU pinning, so a
    busy machine can move their threads. Kernels (the handle :meth:`embed` returns) are float32 (B, C, k, k).
    """

    def __init__(self, graphs: str | os.PathLike, threads: int | None = None, precision: str | None = None) -> None:
        try:
            import openvino as ov
        except ImportError:
            raise BackendError(MISSING) from None
        folder = Path(graphs)
        self.meta = read_graph_meta(folder)
        self.model_config = self.meta.model_config
        exported = self.meta.spec.precision
        precision = precision or exported
        if precision not in HINTS or (precision == "int8") != (exported == "int8") or exported == "fp16":
            raise BackendError(
                f"the openvino backend runs fp32 or bf16 from fp32 graphs and int8 from int8 graphs, not {precision}"
                f" from the {exported} graphs in {folder}"
            )
        if threads is not None and threads < 1:
            raise BackendError(f"threads must be >= 1, got {threads}")
        config = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": HINTS[precision],
            "ENABLE_CPU_PINNING": False,
        }
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = threads
        core = ov.Core()
        search_config = dict(config)
        if precision == "int8" and native_bf16(core):
            search_config["INFERENCE_PRECISION_HINT"] = "bf16"
        # what the search graph's float layers compute in: "fp32" or "bf16"
        self.float_precision = {"f32": "fp32", "bf16": "bf16"}[search_config["INFERENCE_PRECISION_HINT"]]
        try:
            self._exemplar = core.compile_model(str(folder / EXEMPLAR_FILE), "CPU", config).create_infer_request()
            search = core.compile_model(str(folder / SEARCH_FILE), "CPU", search_config)
        except Exception as e:  # OpenVINO raises its own RuntimeErrors for unreadable or unsupported graphs
            raise BackendError(f"openvino cannot compile the graphs in {folder}: {e}") from None
        self._search = search.create_infer_request()
        self._tensor = ov.Tensor
        # the verifier's crops (embed_appearance) through the exemplar graph at the search graph's float precision:
        # bf16 on the int8 path where native (similarities within 0.011 of f32's, docs/DEPLOY.md). That compiled
        # copy (about 0.1 s) is made at its first use: a tracker without the verifier never needs it
        same = search_config["INFERENCE_PRECISION_HINT"] == config["INFERENCE_PRECISION_HINT"]
        self._appearance = self._exemplar if same else None
        self._appearance_compile = lambda: core.compile_model(str(folder / EXEMPLAR_FILE), "CPU", search_config)
        # each named output's index among the search graph's outputs
        self._outputs = {name: list(search.outputs).index(search.output(name)) for name in self.model_config.outputs}
        self._input_dtype = np.dtype(self.meta.spec.input_dtype)
        self.device = "cpu"
        self.precision = precision
        self.name = f"openvino-cpu-{precision}"

    def _crops(self, crops: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(crops, dtype=self._input_dtype)

    def _run_exemplar(self, exemplars: np.ndarray) -> np.ndarray:
        return np.array(self._exemplar.infer({"exemplar": self._crops(exemplars)})[0], copy=True)

    def _run_search(self, kernel: np.ndarray, search: np.ndarray) -> dict[str, np.ndarray]:
        # tensors over the arrays themselves, set by name, and a bare infer(): the request reads them in place,
        # and the dictionary dispatch of infer(inputs) is skipped (about 0.15 ms a frame at 1 thread)
        request = self._search
        request.set_tensor("kernel", self._tensor(np.ascontiguousarray(kernel, dtype=np.float32), shared_memory=True))
        request.set_tensor("search", self._tensor(self._crops(search), shared_memory=True))
        request.infer()
        # copies: the request's output tensors are reused by its next call
        return {name: request.get_output_tensor(i).data.copy() for name, i in self._outputs.items()}

    def embed(self, exemplars: np.ndarray) -> np.ndarray:
        """Exemplar crops (B, 127, 127, 3) uint8 BGR -> kernels (B, C, k, k) float32."""
        return embed_in_chunks(self._run_exemplar, exemplars, self.meta)

    def embed_appearance(self, crops: np.ndarray) -> np.ndarray:
        """The appearance verifier's crops (B, 127, 127, 3) -> their exemplar features (B, C, k, k) float32, at
        the float precision of the search graph (``float_precision``): kernels for matching stay :meth:`embed`'s."""
        return embed_in_chunks(self._run_appearance, crops, self.meta)

    def _run_appearance(self, crops: np.ndarray) -> np.ndarray:
        if self._appearance is None:
            self._appearance = self._appearance_compile().create_infer_request()
        return np.array(self._appearance.infer({"exemplar": self._crops(crops)})[0], copy=True)

    def score(self, kernel: object, search: np.ndarray) -> dict[str, np.ndarray]:
        """Kernels of B targets and search crops (B * S, 255, 255, 3) -> the named outputs (``Backend.score``)."""
        return score_in_chunks(self._run_search, kernel, search, self.meta)


def native_bf16(core: object) -> bool:
    """Whether this CPU computes bf16 natively: OpenVINO's CPU plugin lists BF16 among its capabilities, and the
    CPU flags (where Linux lists them) name AVX-512 BF16 or AMX-BF16, not an emulation on plain AVX-512."""
    try:
        listed = "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # an OpenVINO without the property: keep f32
        return False
    return listed and cpu_flags_native_bf16()
