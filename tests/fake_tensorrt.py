"""Stand-ins for ``tensorrt`` and cuda-python's runtime, on the CPU, to test the TensorRT backend's plumbing
(buffers, copies, batching, engine cache) where neither a GPU nor TensorRT exists.

"Device memory" is host memory; a "serialised engine" is the ONNX graph's bytes, run by ONNX Runtime reading and
writing the addresses that the backend binds, as a real engine reads and writes device buffers.
"""

from __future__ import annotations

import ctypes
import enum
from types import SimpleNamespace

import numpy as np
import onnxruntime

_ONNX_TYPES = {"tensor(float)": np.dtype(np.float32), "tensor(uint8)": np.dtype(np.uint8)}


class FakeCudart:
    """The few cuda-python runtime calls the backend makes; every call returns ``(error, *values)``."""

    class cudaError_t(enum.Enum):  # noqa: N801 (cuda-python's names)
        cudaSuccess = 0
        cudaErrorMemoryAllocation = 2

    class cudaMemcpyKind(enum.Enum):  # noqa: N801
        cudaMemcpyHostToDevice = 1
        cudaMemcpyDeviceToHost = 2

    def __init__(self) -> None:
        self.buffers: dict[int, ctypes.Array] = {}
        self.copies = 0

    def _ok(self, *values: object) -> tuple:
        return (self.cudaError_t.cudaSuccess, *values)

    def cudaMalloc(self, nbytes: int) -> tuple:  # noqa: N802
        buf = ctypes.create_string_buffer(nbytes)
        self.buffers[ctypes.addressof(buf)] = buf
        return self._ok(ctypes.addressof(buf))

    cudaMallocHost = cudaMalloc  # noqa: N815

    def cudaFree(self, ptr: int) -> tuple:  # noqa: N802
        self.buffers.pop(ptr)
        return self._ok()

    cudaFreeHost = cudaFree  # noqa: N815

    def cudaMemcpyAsync(self, dst: int, src: int, nbytes: int, kind: object, stream: object) -> tuple:  # noqa: N802
        ctypes.memmove(dst, src, nbytes)
        self.copies += 1
        return self._ok()

    def cudaStreamCreate(self) -> tuple:  # noqa: N802
        return self._ok(1)

    def cudaStreamSynchronize(self, stream: object) -> tuple:  # noqa: N802
        return self._ok()

    def cudaStreamDestroy(self, stream: object) -> tuple:  # noqa: N802
        return self._ok()

    def cudaSetDevice(self, index: int) -> tuple:  # noqa: N802
        return self._ok()

    def cudaGetDeviceCount(self) -> tuple:  # noqa: N802
        return self._ok(1)

    def cudaGetDeviceProperties(self, index: int) -> tuple:  # noqa: N802
        return self._ok(SimpleNamespace(name=b"Fake GPU"))


class _Context:
    def __init__(self, session: onnxruntime.InferenceSession) -> None:
        self.session, self.addresses = session, {}

    def set_tensor_address(self, name: str, ptr: int) -> None:
        self.addresses[name] = ptr

    def _view(self, arg: onnxruntime.NodeArg) -> np.ndarray:
        dtype = _ONNX_TYPES[arg.type]
        count = int(np.prod(arg.shape))
        raw = (ctypes.c_byte * (count * dtype.itemsize)).from_address(self.addresses[arg.name])
        return np.frombuffer(raw, dtype).reshape(arg.shape)

    def execute_async_v3(self, stream: int) -> bool:
        feeds = {a.name: self._view(a).copy() for a in self.session.get_inputs()}
        for arg, value in zip(self.session.get_outputs(), self.session.run(None, feeds), strict=True):
            self._view(arg)[...] = value
        return True


class _Engine:
    def __init__(self, plan: bytes) -> None:
        self.session = onnxruntime.InferenceSession(plan, providers=["CPUExecutionProvider"])
        self.args = {a.name: a for a in [*self.session.get_inputs(), *self.session.get_outputs()]}
        self.names = list(self.args)
        self.num_io_tensors = len(self.names)

    def get_tensor_name(self, i: int) -> str:
        return self.names[i]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.args[name].shape)

    def get_tensor_dtype(self, name: str) -> np.dtype:
        return _ONNX_TYPES[self.args[name].type]

    def get_tensor_mode(self, name: str) -> int:
        inputs = {a.name for a in self.session.get_inputs()}
        return FakeTensorRT.TensorIOMode.INPUT if name in inputs else FakeTensorRT.TensorIOMode.OUTPUT

    def create_execution_context(self) -> _Context:
        return _Context(self.session)


class FakeTensorRT:
    """The builder, parser and runtime calls the backend makes (TensorRT 10.x names); counts engine builds."""

    __version__ = "10.0.0"
    builds = 0
    flags: list[str] = []

    class Logger:
        WARNING = 2

        def __init__(self, level: int) -> None:
            pass

    NetworkDefinitionCreationFlag = SimpleNamespace(EXPLICIT_BATCH=0, STRONGLY_TYPED=5)
    BuilderFlag = SimpleNamespace(FP16="FP16", TF32="TF32")
    MemoryPoolType = SimpleNamespace(WORKSPACE=0)
    TensorIOMode = SimpleNamespace(INPUT=0, OUTPUT=1)

    @staticmethod
    def nptype(dtype: np.dtype) -> np.dtype:
        return dtype

    class Builder:
        def __init__(self, logger: object) -> None:
            pass

        def create_network(self, flags: int) -> SimpleNamespace:
            return SimpleNamespace(flags=flags, onnx=None)

        def create_builder_config(self) -> SimpleNamespace:
            return SimpleNamespace(
                set_memory_pool_limit=lambda pool, size: None,
                set_flag=lambda flag: FakeTensorRT.flags.append(f"+{flag}"),
                clear_flag=lambda flag: FakeTensorRT.flags.append(f"-{flag}"),
            )

        def build_serialized_network(self, network: SimpleNamespace, config: object) -> bytes:
            FakeTensorRT.builds += 1
            return network.onnx

    class OnnxParser:
        num_errors = 0

        def __init__(self, network: SimpleNamespace, logger: object) -> None:
            self.network = network

        def parse(self, data: bytes) -> bool:
            self.network.onnx = data
            return True

    class Runtime:
        def __init__(self, logger: object) -> None:
            pass

        def deserialize_cuda_engine(self, plan: bytes) -> _Engine:
            return _Engine(plan)
