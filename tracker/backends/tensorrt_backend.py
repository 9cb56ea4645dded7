"""TensorRT backend: engines built from the exported ONNX graphs on first use, cached on disk.

``tensorrt`` and ``cuda-python`` are imported inside functions only, so a machine without them installs, imports
and tests the package; asking for this backend there raises :class:`BackendError` naming what is missing.
Written against the name-based tensor API (``set_tensor_address`` / ``execute_async_v3``) that TensorRT 8.6, 10.x
and 11.x share. Precision comes from the graph (an fp16 export has a half-precision backbone), so networks are
built strongly typed where TensorRT has that (10.x; always on in 11.x) and with the FP16 builder flag on 8.6.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import weakref
from pathlib import Path
from types import ModuleType

import numpy as np

from ..atomic import atomic_path
from ..errors import BackendError
from .graphs import (
    EXEMPLAR_FILE,
    SEARCH_FILE,
    cache_root,
    cuda_index,
    embed_in_chunks,
    read_graph_meta,
    score_in_chunks,
)


def engine_cache_key(
    weights_sha256: str, trt_version: str, gpu_name: str, precision: str, graph: str, spec_tag: str
) -> str:
    """File stem of a cached engine: an engine is only valid for the same weights, TensorRT version, GPU model,
    precision, graph (exemplar or search) and static shapes, so each of them changes the key."""
    parts = (weights_sha256, trt_version, gpu_name, precision, graph, spec_tag)
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]
    return f"{graph}-{precision}-{digest}"


def _import_tensorrt() -> ModuleType:
    try:
        import tensorrt
    except (ImportError, OSError, RuntimeError) as e:  # the PyPI stub raises on import when its libs are absent
        raise BackendError(f"the tensorrt backend needs TensorRT (Python package `tensorrt`): {e}") from None
    return tensorrt


def _import_cudart() -> ModuleType:
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError:
            raise BackendError("the tensorrt backend needs cuda-python: pip install cuda-python") from None
    return cudart


def _check(cudart: ModuleType, result: tuple) -> object:
    """cuda-python calls return ``(error, *values)``: raise on an error, else return the value (or None)."""
    err, *values = result
    if err != cudart.cudaError_t.cudaSuccess:
        raise BackendError(f"CUDA error: {err.name if hasattr(err, 'name') else err}")
    return values[0] if values else None


def tensorrt_unavailable() -> str | None:
    """Why the tensorrt backend cannot run here (TensorRT, cuda-python or a GPU missing), or None if it can."""
    try:
        _import_tensorrt()
        cudart = _import_cudart()
    except BackendError as e:
        return str(e)
    err, count = cudart.cudaGetDeviceCount()
    if err != cudart.cudaError_t.cudaSuccess or not count:
        return f"the tensorrt backend needs a CUDA GPU: none visible ({getattr(err, 'name', err)})"
    return None


class _Engine:
    """One deserialised engine with fixed pinned host and device buffers for each I/O tensor, on one stream."""

    def __init__(self, trt: ModuleType, cudart: ModuleType, runtime: object, plan: bytes, stream: object) -> None:
        self.cudart, self.stream = cudart, stream
        self.engine = runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise BackendError("TensorRT could not deserialise the engine (built by another version?)")
        self.context = self.engine.create_execution_context()
        self.host: dict[str, np.ndarray] = {}
        self.device: dict[str, int] = {}
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self._pinned: list[int] = []
        # freed when the engine is garbage-collected, even if close() is never called
        self._finalizer = weakref.finalize(self, _free, cudart, self._pinned, self.device)
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            shape = tuple(self.engine.get_tensor_shape(name))
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            nbytes = int(np.prod(shape)) * dtype.itemsize
            # pinned host memory: async copies from pageable memory would be staged and synchronous
            ptr = _check(cudart, cudart.cudaMallocHost(nbytes))
            self._pinned.append(int(ptr))
            self.host[name] = np.frombuffer((ctypes.c_byte * nbytes).from_address(int(ptr)), dtype).reshape(shape)
            self.device[name] = int(_check(cudart, cudart.cudaMalloc(nbytes)))
            self.context.set_tensor_address(name, self.device[name])
            is_input = self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            (self.inputs if is_input else self.outputs).append(name)

    def run(self, **arrays: np.ndarray) -> dict[str, np.ndarray]:
        """Copy ``arrays`` (by input name) in, run, and return a copy of every output, by name."""
        if not self._finalizer.alive:  # the buffers below are freed: using them would crash the process
            raise BackendError("the TensorRT backend was closed")
        cudart, stream = self.cudart, self.stream
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name in self.inputs:
            np.copyto(self.host[name], arrays[name], casting="unsafe")  # uint8 crops -> the engine's float input
            host = self.host[name]
            _check(cudart, cudart.cudaMemcpyAsync(self.device[name], host.ctypes.data, host.nbytes, h2d, stream))
        if not self.context.execute_async_v3(int(stream)):
            raise BackendError("TensorRT failed to enqueue the engine")
        for out in self.outputs:
            host = self.host[out]
            _check(cudart, cudart.cudaMemcpyAsync(host.ctypes.data, self.device[out], host.nbytes, d2h, stream))
        _check(cudart, cudart.cudaStreamSynchronize(stream))  # the one sync point per call
        return {out: self.host[out].copy() for out in self.outputs}

    def close(self) -> None:
        self._finalizer()


def _free(cudart: ModuleType, pinned: list[int], device: dict[str, int]) -> None:
    for ptr in pinned:
        cudart.cudaFreeHost(ptr)
    for ptr in device.values():
        cudart.cudaFree(ptr)
    pinned.clear()
    device.clear()


def _build_plan(trt: ModuleType, logger: object, onnx_path: Path, fp16: bool) -> bytes:
    """Parse an ONNX graph and build a serialised engine (seconds to minutes: hence the cache)."""
    builder = trt.Builder(logger)
    flag = trt.NetworkDefinitionCreationFlag
    major = int(trt.__version__.split(".")[0])
    flags = 1 << int(flag.EXPLICIT_BATCH) if major < 10 else 0  # implicit batch is gone from 10.0 on
    strongly_typed = hasattr(flag, "STRONGLY_TYPED")
    if strongly_typed:  # precision as the graph's Casts and weights say
        flags |= 1 << int(flag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 30)
    if fp16 and not strongly_typed:  # TensorRT 8.6: weak typing, let the builder pick fp16 kernels
        config.set_flag(trt.BuilderFlag.FP16)
    if not fp16 and hasattr(trt.BuilderFlag, "TF32"):  # on by default; fp32 is asked for to mean fp32
        config.clear_flag(trt.BuilderFlag.TF32)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise BackendError(f"TensorRT failed to build an engine from {onnx_path} (see its log above)")
    return bytes(plan)


class TensorRTBackend:
    """Runs an export folder's graphs as TensorRT engines on one CUDA GPU.

    Args:
        graphs: a folder written by ``track-export`` (for fp16, exported with ``--fp16``; TensorRT input is best
            exported with ``--float-input``, since uint8 network inputs are not supported by every version).
        device: "cuda" or "cuda:N".
        cache_dir: where engines are cached (default ``<cache root>/tensorrt``).

    Precision is the graphs' (fp16 or fp32). Kernels are float32 host arrays (B, C, k, k): at 36 KiB for the full
    width network their copy per frame costs microseconds, and the handle stays valid for any number of targets.
    """

    def __init__(self, graphs: str | os.PathLike, device: str = "cuda", cache_dir: str | os.PathLike | None = None):
        index = cuda_index(device)  # TensorRT runs on CUDA GPUs only
        reason = tensorrt_unavailable()
        if reason:
            raise BackendError(reason)
        trt, cudart = _import_tensorrt(), _import_cudart()
        folder = Path(graphs)
        self.meta = read_graph_meta(folder)
        self.model_config = self.meta.model_config
        self.precision = self.meta.spec.precision
        if self.precision == "int8":
            raise BackendError(f"{folder} holds int8 graphs, which are for onnxruntime on CPU; export fp16 or fp32")
        _check(cudart, cudart.cudaSetDevice(index))
        gpu = _check(cudart, cudart.cudaGetDeviceProperties(index)).name
        gpu_name = gpu.decode(errors="replace").rstrip("\0") if isinstance(gpu, bytes) else str(gpu)
        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        self._stream = _check(cudart, cudart.cudaStreamCreate())
        self._finalizer = weakref.finalize(self, cudart.cudaStreamDestroy, self._stream)
        cache = Path(cache_dir) if cache_dir else cache_root() / "tensorrt"
        engines = []
        for graph in (EXEMPLAR_FILE, SEARCH_FILE):
            parts = (self.meta.weights_sha256, trt.__version__, gpu_name, self.precision, graph, self.meta.spec.tag)
            path = cache / f"{engine_cache_key(*parts)}.engine"
            if not path.is_file():
                _write_atomic(path, _build_plan(trt, logger, folder / graph, self.precision == "fp16"))
            engines.append(_Engine(trt, cudart, runtime, path.read_bytes(), self._stream))
        self._exemplar, self._search = engines
        self.name = f"tensorrt-cuda-{self.precision}"
        self.gpu_name = gpu_name

    def embed(self, exemplars: np.ndarray) -> np.ndarray:
        """Exemplar crops (B, 127, 127, 3) uint8 BGR -> kernels (B, C, k, k) float32."""
        return embed_in_chunks(lambda x: self._exemplar.run(exemplar=x)["kernel"], exemplars, self.meta)

    def score(self, kernel: object, search: np.ndarray) -> dict[str, np.ndarray]:
        """Kernels of B targets and search crops (B * S, 255, 255, 3) -> the named outputs (``Backend.score``)."""
        run = lambda k, x: self._search.run(kernel=k, search=x)  # noqa: E731
        return score_in_chunks(run, kernel, search, self.meta)

    def close(self) -> None:
        """Free the device and pinned memory now rather than at garbage collection."""
        self._exemplar.close()
        self._search.close()
        self._finalizer()


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename, so a reader never sees half an engine."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
