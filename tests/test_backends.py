"""Backends behind one protocol: onnx tracks as torch fp32 does, selection is explicit, TensorRT is optional."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from synthetic import make_sequence

from tracker import BackendError, SiamFCTracker, TrackerConfig
from tracker.backends import select
from tracker.backends.autoselect import cpu_candidates
from tracker.backends.exported import export_graphs, exported_graphs
from tracker.backends.graphs import GRAPH_FORMAT, GraphSpec, cuda_index
from tracker.backends.tensorrt_backend import engine_cache_key, tensorrt_unavailable

BOX_TOL = 0.1  # pixels; measured 0.0: ONNX Runtime and torch fp32 pick the same peaks frame after frame


@pytest.fixture(autouse=True)
def cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Exports on first use go to one temporary cache for this module, never to the user's."""
    root = tmp_path_factory.getbasetemp() / "siamtrack-cache"
    monkeypatch.setenv("SIAMTRACK_CACHE", str(root))
    return root


def track(weights: Path, backend: str, frames: list[np.ndarray], first: np.ndarray) -> np.ndarray:
    # fp32 for both: torch would pick bf16 autocast on a CPU with native bf16; compare like with like
    t = SiamFCTracker(weights, backend=backend, device="cpu", config=TrackerConfig(precision="fp32"))
    assert t.backend_name.endswith("-fp32")
    t.init(frames[0], first)
    return np.array([t.update(f).box for f in frames[1:]])


def test_onnx_tracks_like_torch_fp32(handset_weights):
    frames, gt = make_sequence(20, seed=1)
    reference = track(handset_weights, "torch", frames, gt[0])
    boxes = track(handset_weights, "onnx", frames, gt[0])
    assert np.abs(boxes - reference).max() <= BOX_TOL
    assert np.abs(boxes - gt[1:]).mean() < 6  # and it does track


def test_onnx_reports_its_name_and_any_scale_count(handset_weights):
    t = SiamFCTracker(handset_weights, backend="onnx", device="cpu")
    assert t.backend_name == "onnxruntime-cpu-fp32"
    backend = select.create_backend("onnx", handset_weights, "cpu", threads=1, scales=5)
    kernel = backend.embed(np.zeros((1, 127, 127, 3), np.uint8))
    assert backend.score(kernel, np.zeros((5, 255, 255, 3), np.uint8))["response"].shape == (5, 17, 17)


def test_onnx_path_over_exported_graphs_never_imports_torch(handset_weights, tmp_path):
    export_graphs(handset_weights, tmp_path)
    code = (
        "import sys, numpy as np; from tracker import SiamFCTracker; "
        f"t = SiamFCTracker({str(tmp_path)!r}, backend='onnx'); "
        "t.init(np.zeros((240, 320, 3), np.uint8), (100, 100, 40, 30)); t.update(np.zeros((240, 320, 3), np.uint8)); "
        "assert 'torch' not in sys.modules, 'torch imported'; print(t.backend_name)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "onnxruntime-cpu-fp32"


def test_auto_picks_a_measured_cpu_path(handset_weights):
    assert select.auto_backend(handset_weights, "cpu") == "cpu"  # then timed: tests/test_autoselect.py
    t = SiamFCTracker(handset_weights, backend="auto", device="cpu")
    assert t.backend_name.startswith(("torch-cpu-", "onnxruntime-cpu-"))
    assert t.backend_choice.startswith("auto picked ")


def test_auto_over_a_graph_folder_is_openvino_else_onnx(handset_weights, tmp_path, monkeypatch):
    export_graphs(handset_weights, tmp_path)
    if tensorrt_unavailable() is None:
        pytest.skip("TensorRT and a GPU are present: auto picks tensorrt")
    has_openvino = importlib.util.find_spec("openvino") is not None
    assert select.auto_backend(tmp_path, "cpu") == ("openvino" if has_openvino else "onnx")
    (tmp_path / "empty").mkdir()
    assert select.auto_backend(tmp_path / "empty", "cpu") == "onnx"  # whose error names the missing graphs
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    assert select.auto_backend(tmp_path, "cpu") == "onnx"


# --- unavailable backends are errors, never silent fallbacks --------------------------------------------------


def test_unknown_backend(handset_weights):
    with pytest.raises(BackendError, match="unknown backend"):
        SiamFCTracker(handset_weights, backend="tflite")


def test_tensorrt_unavailable_names_what_is_missing(handset_weights):
    reason = tensorrt_unavailable()
    if reason is None:
        pytest.skip("TensorRT, cuda-python and a GPU are all present")
    assert any(word in reason for word in ("TensorRT", "cuda-python", "GPU"))
    with pytest.raises(BackendError) as e:
        SiamFCTracker(handset_weights, backend="tensorrt")
    assert str(e.value) == reason


def test_onnx_on_cuda_without_cuda_provider(handset_weights):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    with pytest.raises(BackendError, match="CUDAExecutionProvider"):
        SiamFCTracker(handset_weights, backend="onnx", device="cuda")


def test_onnx_without_onnxruntime(handset_weights, monkeypatch):
    real = select.importlib.util.find_spec
    monkeypatch.setattr(select.importlib.util, "find_spec", lambda n, *a: None if n == "onnxruntime" else real(n, *a))
    with pytest.raises(BackendError, match="onnxruntime"):
        select.create_backend("onnx", handset_weights)
    assert "onnx" not in {b for b, _ in cpu_candidates()}  # auto then times torch (and openvino where installed)


def test_torch_needs_a_weights_file(handset_weights, tmp_path):
    export_graphs(handset_weights, tmp_path)
    with pytest.raises(BackendError, match="safetensors"):
        select.create_backend("torch", tmp_path)


def test_bad_devices():
    with pytest.raises(BackendError, match="cuda:N"):
        cuda_index("cuda:x")
    with pytest.raises(BackendError, match="cuda:N"):
        cuda_index("cpu")


# --- TensorRT engine cache ------------------------------------------------------------------------------------


def test_engine_cache_key_changes_with_each_part():
    parts = ("a" * 64, "10.3.0", "NVIDIA H100 80GB HBM3", "fp16", "search.onnx", GraphSpec().tag)
    key = engine_cache_key(*parts)
    assert key == engine_cache_key(*parts)  # deterministic
    assert key.startswith("search.onnx-fp16-") and "/" not in key
    changed = ("b" * 64, "8.6.1", "NVIDIA A100-SXM4-40GB", "fp32", "exemplar.onnx", GraphSpec(scales=5).tag)
    for i, other in enumerate(changed):
        assert engine_cache_key(*parts[:i], other, *parts[i + 1 :]) != key
    # the spec's tag names the graph format: an engine built from another version's graphs is not reused
    assert GraphSpec().tag.startswith(f"g{GRAPH_FORMAT}-")


@pytest.mark.parametrize(("version", "precision"), [("10.0.0", "fp32"), ("8.6.1", "fp16")])
def test_tensorrt_plumbing_on_fakes(alexnet_weights, tmp_path, monkeypatch, version, precision):
    """Buffers, copies, batching and the engine cache of the TensorRT backend, with TensorRT and CUDA faked on
    the CPU (tests/fake_tensorrt.py): what can be checked here of a path that needs a GPU to run for real."""
    from fake_tensorrt import FakeCudart, FakeTensorRT

    from tracker.backends import tensorrt_backend
    from tracker.backends.torch_backend import TorchBackend
    from tracker.weights import load_weights

    cudart = FakeCudart()
    monkeypatch.setenv("SIAMTRACK_CACHE", str(tmp_path))
    monkeypatch.setattr(FakeTensorRT, "__version__", version)
    monkeypatch.setattr(FakeTensorRT, "builds", 0)
    monkeypatch.setattr(FakeTensorRT, "flags", [])
    if version.startswith("8."):  # no strong typing before 10.x: the FP16 builder flag instead
        monkeypatch.delattr(FakeTensorRT.NetworkDefinitionCreationFlag, "STRONGLY_TYPED")
    monkeypatch.setattr(tensorrt_backend, "_import_tensorrt", lambda: FakeTensorRT)
    monkeypatch.setattr(tensorrt_backend, "_import_cudart", lambda: cudart)

    backend = select.create_backend("tensorrt", alexnet_weights, precision=precision, targets=2)
    assert backend.name == f"tensorrt-cuda-{precision}" and FakeTensorRT.builds == 2
    assert FakeTensorRT.flags == (["+FP16"] if version.startswith("8.") else ["-TF32"]) * 2  # one per engine
    rng = np.random.default_rng(0)
    exemplars = rng.integers(0, 256, (3, 127, 127, 3), dtype=np.uint8)  # 3 targets: a padded second chunk
    search = rng.integers(0, 256, (9, 255, 255, 3), dtype=np.uint8)
    ref = TorchBackend(load_weights(alexnet_weights), "cpu", "fp32")
    expected = ref.score(ref.embed(exemplars), search)["response"]
    actual = backend.score(backend.embed(exemplars), search)["response"]
    tol = 1e-4 if precision == "fp32" else 0.02
    assert np.abs(actual - expected).max() <= tol * (expected.max() - expected.min())

    assert len(list((tmp_path / "tensorrt").glob("*.engine"))) == 2
    again = select.create_backend("tensorrt", alexnet_weights, precision=precision, targets=2)
    assert FakeTensorRT.builds == 2  # loaded from the cache, not rebuilt
    backend.close()
    again.close()
    assert not cudart.buffers  # every pinned and device buffer freed
    with pytest.raises(BackendError, match="closed"):
        backend.embed(exemplars)


# --- on a GPU -------------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_matches_torch_fp32(alexnet_weights, precision, tmp_path, monkeypatch):
    reason = tensorrt_unavailable()
    if reason:
        pytest.skip(reason)
    import torch

    from tracker.backends.tensorrt_backend import TensorRTBackend
    from tracker.backends.torch_backend import TorchBackend
    from tracker.weights import load_weights

    rng = np.random.default_rng(0)
    exemplars = rng.integers(0, 256, (1, 127, 127, 3), dtype=np.uint8)
    search = rng.integers(0, 256, (3, 255, 255, 3), dtype=np.uint8)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # cuDNN's default TF32 is not fp32
    ref = TorchBackend(load_weights(alexnet_weights), "cuda", "fp32")
    expected = ref.score(ref.embed(exemplars), search)["response"]
    graphs = exported_graphs(alexnet_weights, GraphSpec(input_dtype="float32", precision=precision))
    trt = TensorRTBackend(graphs, "cuda", cache_dir=tmp_path)
    actual = trt.score(trt.embed(exemplars), search)["response"]
    tol = 1e-3 if precision == "fp32" else 0.02  # fp32: other summation orders only; fp16: as gpu_check
    assert np.abs(actual - expected).max() <= tol * (expected.max() - expected.min())
    assert len(list(tmp_path.glob("*.engine"))) == 2  # cached for the next start
    trt.close()
