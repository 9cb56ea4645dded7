"""Exported ONNX graphs on disk: their metadata, where the export cache lives, the batching of
any number of targets through graphs of a fixed batch, and the other helpers the graph backends share.

No torch here: the ONNX Runtime and TensorRT backends read exported graphs without importing it. Writing them
(for ``track-export``, and the export cache :func:`~tracker.backends.exported.exported_graphs`) is
:mod:`tracker.backends.exported`'s.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import ConfigError, ModelConfig
from ..errors import BackendError
from ..machine import cpu_flags_vnni

GRAPH_FORMAT = "3"  # bump when the graphs' inputs, outputs, layout or quantization change (3: 7-bit int8 weights)
META_FILE = "siamtrack_graphs.json"
EXEMPLAR_FILE = "exemplar.onnx"
SEARCH_FILE = "search.onnx"


@dataclass(frozen=True)
class GraphSpec:
    """The static shapes and types baked into a pair of exported graphs.

    targets: targets per run (exemplar batch); scales: search crops per target (search batch = targets * scales);
    input_dtype: "uint8" (crops as read; the graph casts) or "float32" (for runtimes without uint8 inputs);
    precision: "fp32"; "fp16" for a half-precision backbone (the head and the outputs stay fp32); or "int8" for
    a search graph whose convolutions are quantized to int8 (ONNX Runtime on CPU; the exemplar graph and the
    head stay fp32).
    """

    targets: int = 1
    scales: int = 3
    input_dtype: str = "uint8"
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.targets < 1 or self.scales < 1:
            raise ConfigError(f"targets and scales must be >= 1, got {self.targets} and {self.scales}")
        if self.input_dtype not in ("uint8", "float32"):
            raise ConfigError(f"input_dtype must be uint8 or float32, got {self.input_dtype!r}")
        if self.precision not in ("fp32", "fp16", "int8"):
            raise ConfigError(f"precision must be fp32, fp16 or int8, got {self.precision!r}")

    @property
    def tag(self) -> str:
        """Short name of the spec in this version's graph format, keying the caches of exported graphs and of
        TensorRT engines, e.g. ``g2-t1s3-uint8-fp32``: what a version of another format cached is not reused."""
        return f"g{GRAPH_FORMAT}-t{self.targets}s{self.scales}-{self.input_dtype}-{self.precision}"


@dataclass(frozen=True)
class GraphMeta:
    """What an export folder holds: the model config, the weights' hash and the graphs' spec."""

    model_config: ModelConfig
    weights_sha256: str
    spec: GraphSpec
    opset: int
    kernel_shape: tuple[int, ...]  # (targets, C, k, k): the exemplar graph's output, the search graph's input
    calibration: dict | None = None  # int8: how it was calibrated (quantizer, data, crops); None for float graphs

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": GRAPH_FORMAT,
                "model_config": self.model_config.to_dict(),
                "weights_sha256": self.weights_sha256,
                "spec": {f: getattr(self.spec, f) for f in ("targets", "scales", "input_dtype", "precision")},
                "opset": self.opset,
                "kernel_shape": list(self.kernel_shape),
                "calibration": self.calibration,
                "exemplar": EXEMPLAR_FILE,
                "search": SEARCH_FILE,
            },
            indent=2,
        )


def read_graph_meta(folder: str | os.PathLike) -> GraphMeta:
    """Read and check the metadata of an export folder (written by ``track-export``)."""
    folder = Path(folder)
    path = folder / META_FILE
    if not path.is_file():
        raise BackendError(f"{folder} holds no exported graphs ({META_FILE} missing): run `track-export`")
    try:
        data = json.loads(path.read_text())
        if data["format"] != GRAPH_FORMAT:
            raise BackendError(f"{path}: graph format {data['format']!r}, this version reads {GRAPH_FORMAT!r}")
        meta = GraphMeta(
            ModelConfig.from_dict(data["model_config"]),
            str(data["weights_sha256"]),
            GraphSpec(**data["spec"]),
            int(data["opset"]),
            tuple(int(v) for v in data["kernel_shape"]),
            data.get("calibration"),
        )
    except (KeyError, TypeError, ValueError, ConfigError) as e:
        raise BackendError(f"{path} is not valid graph metadata ({e})") from None
    for name in (EXEMPLAR_FILE, SEARCH_FILE):
        if not (folder / name).is_file():
            raise BackendError(f"{folder}: {name} missing; export again with `track-export`")
    return meta


# the one spec shipped int8 search graphs are made for: one target, one crop (a box head), uint8 crops
SHIPPED_INT8_SPEC = GraphSpec(targets=1, scales=1, input_dtype="uint8", precision="int8")


def shipped_int8_path(weights: str | os.PathLike, weight_bits: int = 7) -> Path:
    """Where a weights file's shipped int8 search graph lives beside it: ``<stem>_int8.onnx`` (dense weights in 7
    bits: right on every x86 CPU) or ``<stem>_int8_w8.onnx`` (8 bits: for CPUs with VNNI only,
    :func:`~tracker.machine.cpu_flags_vnni`; tracker.backends.trace.quantize_search_graph says why)."""
    if weight_bits not in (7, 8):
        raise ValueError(f"weight_bits must be 7 or 8, got {weight_bits}")
    weights = Path(weights)
    return weights.with_name(f"{weights.stem}_int8{'_w8' if weight_bits == 8 else ''}.onnx")


def shipped_int8(weights: str | os.PathLike, spec: GraphSpec | None = None, weight_bits: int = 7) -> dict | None:
    """How the int8 search graph shipped beside ``weights`` with ``weight_bits``-bit dense weights was calibrated
    (its ``siamtrack_calibration`` metadata), when there is one made for these weights (their SHA-256) and for
    ``spec`` (None: any spec it was made for); else None. Reads the graph's metadata only (protobuf, through onnx)."""
    path = shipped_int8_path(weights, weight_bits)
    if not path.is_file() or not Path(weights).is_file():
        return None
    if spec is not None and spec != SHIPPED_INT8_SPEC:
        return None
    try:
        import onnx

        meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        if meta.get("siamtrack_weights_sha256") != weights_sha256(weights):
            return None
        return json.loads(meta["siamtrack_calibration"])
    except Exception:  # no onnx, or a file that is not such a graph: nothing shipped for these weights
        return None


def shipped_weight_bits(weights: str | os.PathLike, spec: GraphSpec | None = None) -> int | None:
    """The shipped int8 search graph this CPU runs for ``weights`` and ``spec``, by its weight bits: 8 where the
    CPU has VNNI and that graph is shipped, else 7 where that one is, else None (nothing shipped)."""
    if cpu_flags_vnni() and shipped_int8(weights, spec, 8) is not None:
        return 8
    return 7 if shipped_int8(weights, spec, 7) is not None else None


def weights_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a weights file's bytes: names its exported graphs and engines in the caches."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_root() -> Path:
    """Where exported graphs and engines are cached: ``$SIAMTRACK_CACHE``, else ``$XDG_CACHE_HOME/siamtrack``,
    else ``~/.cache/siamtrack``."""
    if os.environ.get("SIAMTRACK_CACHE"):
        return Path(os.environ["SIAMTRACK_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "siamtrack"


def cuda_index(device: str) -> int:
    """GPU index of a device string: ``"cuda"`` -> 0, ``"cuda:N"`` -> N."""
    kind, _, index = device.partition(":")
    try:
        if kind != "cuda":
            raise ValueError
        return int(index or 0)
    except ValueError:
        raise BackendError(f"invalid CUDA device {device!r}: use cuda or cuda:N") from None


def _pad(batch: np.ndarray, n: int) -> np.ndarray:
    """``batch`` grown to ``n`` rows by repeating its last row (real data, so no NaN from all-zero crops)."""
    if len(batch) == n:
        return batch
    return np.concatenate([batch, np.repeat(batch[-1:], n - len(batch), axis=0)])


def _check_crops(crops: np.ndarray, side: int, what: str) -> None:
    if not isinstance(crops, np.ndarray) or crops.ndim != 4 or crops.shape[1:] != (side, side, 3) or not len(crops):
        got = crops.shape if isinstance(crops, np.ndarray) else type(crops).__name__
        raise BackendError(f"{what} crops must be (N, {side}, {side}, 3) with N >= 1, got {got}")


def embed_in_chunks(run: Callable[[np.ndarray], np.ndarray], exemplars: np.ndarray, meta: GraphMeta) -> np.ndarray:
    """Kernels of any number of exemplar crops through ``run``, which takes exactly ``spec.targets`` of them."""
    _check_crops(exemplars, meta.model_config.exemplar_size, "exemplar")
    spec = meta.spec
    out = []
    for i in range(0, len(exemplars), spec.targets):
        chunk = exemplars[i : i + spec.targets]
        out.append(run(_pad(chunk, spec.targets))[: len(chunk)])
    return np.concatenate(out)


def score_in_chunks(
    run: Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]], kernel: object, search: np.ndarray, meta: GraphMeta
) -> dict[str, np.ndarray]:
    """Named outputs of B targets' search crops (B * scales, ...) through ``run``, which takes exactly
    ``spec.targets`` kernels and ``spec.targets * spec.scales`` crops and returns the outputs by name."""
    if not isinstance(kernel, np.ndarray) or kernel.shape[1:] != meta.kernel_shape[1:]:
        raise BackendError(f"kernel must be an array (B, {', '.join(map(str, meta.kernel_shape[1:]))}) from embed()")
    _check_crops(search, meta.model_config.search_size, "search")
    spec = meta.spec
    b, s = len(kernel), spec.scales
    if len(search) != b * s:
        raise BackendError(
            f"got {len(search)} search crops for {b} target(s), but the graphs were exported for {s} scales "
            f"per target: export with `track-export --scales {max(1, len(search) // max(b, 1))}`"
        )
    if b == spec.targets:  # one run, as exported (every frame of one tracked target): no chunks to join
        return run(kernel, search)
    out: dict[str, list[np.ndarray]] = {}
    for i in range(0, b, spec.targets):
        k = kernel[i : i + spec.targets]
        x = search[i * s : (i + len(k)) * s]
        for name, value in run(_pad(k, spec.targets), _pad(x, spec.targets * s)).items():
            out.setdefault(name, []).append(value[: len(k) * s])
    return {name: np.concatenate(parts) for name, parts in out.items()}
