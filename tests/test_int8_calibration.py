"""int8 calibrated on annotated footage (``track-export --int8 --calibrate DATA``): crops cut the way the tracker
cuts them, NNCF's quantization with the head kept in float, close to fp32, and one clear error per bad input."""

from __future__ import annotations

import importlib.util
import json
import shutil

import numpy as np
import onnx
import pytest
from synthetic import write_dataset

from tracker import machine
from tracker.backends import autoselect, graphs
from tracker.backends.exported import export_graphs, exported_graphs, missing_packages
from tracker.backends.graphs import (
    META_FILE,
    SEARCH_FILE,
    GraphSpec,
    read_graph_meta,
    shipped_int8,
    shipped_int8_path,
    shipped_weight_bits,
    weights_sha256,
)
from tracker.backends.onnx_backend import OnnxBackend
from tracker.backends.torch_backend import TorchBackend
from tracker.backends.trace import dataset_crops
from tracker.config import ModelConfig
from tracker.errors import InputError, TrackerError
from tracker.export import main
from tracker.shipped import DEFAULT_MODEL, MODELS, model_weights
from tracker.weights import load_weights

needs_nncf = pytest.mark.skipif(importlib.util.find_spec("nncf") is None, reason="nncf not installed")
# the box-head test model's outputs, int8 against fp32 on crops of the calibration footage: measured 1.6% of the
# range at most (Xeon, AVX-512 VNNI); 7-bit weights make that the same on CPUs without VNNI
INT8_TOL = 0.05


@pytest.fixture(scope="module")
def footage(tmp_path_factory: pytest.TempPathFactory):
    return write_dataset(tmp_path_factory.mktemp("footage"), {"a": 1, "b": 2, "c": 3}, n=10, absent=(4,))


def test_dataset_crops_are_cut_like_the_trackers(footage):
    spec, cfg = GraphSpec(targets=2, scales=3), ModelConfig()
    pairs = dataset_crops(footage, spec, cfg, samples=12)
    assert 1 <= len(pairs) <= 12
    for exemplars, searches in pairs:
        assert exemplars.shape == (2, 127, 127, 3) and searches.shape == (6, 255, 255, 3)
        assert exemplars.dtype == np.uint8 and searches.dtype == np.uint8
        assert (exemplars[0] == exemplars[1]).all()  # a batch of two targets repeats the sequence's target
    again = dataset_crops(footage, spec, cfg, samples=12)  # seeded: the same export twice
    assert all((a[1] == b[1]).all() for a, b in zip(pairs, again, strict=True))


def test_dataset_crops_errors(tmp_path):
    with pytest.raises(InputError, match="dataset folder not found"):
        dataset_crops(tmp_path / "nothing", GraphSpec(), ModelConfig())
    seq = tmp_path / "one"
    (seq / "img").mkdir(parents=True)
    (seq / "img" / "0000.jpg").write_bytes(b"not an image")
    (seq / "groundtruth.txt").write_text("1,1,5,5\nnan,nan,nan,nan\n")
    (seq / "img" / "0001.jpg").write_bytes(b"not an image")
    with pytest.raises(InputError, match="no sequence with two visible frames"):
        dataset_crops(seq, GraphSpec(), ModelConfig())
    (seq / "groundtruth.txt").write_text("1,1,5,5\n2,2,5,5\n")
    with pytest.raises(InputError, match="cannot read image"):
        dataset_crops(seq, GraphSpec(), ModelConfig())


def test_calibration_needs_int8_and_a_folder(box_weights, tmp_path):
    with pytest.raises(InputError, match="int8 export only"):
        export_graphs(box_weights, tmp_path / "g", GraphSpec(scales=1), tmp_path)
    with pytest.raises(InputError, match="calibration folder not found"):
        export_graphs(box_weights, tmp_path / "g", GraphSpec(scales=1, precision="int8"), tmp_path / "missing")
    assert not (tmp_path / "g").exists()


def test_missing_nncf_names_the_extra(box_weights, footage, tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nncf" else real(name, *a))
    spec = GraphSpec(scales=1, precision="int8")
    assert missing_packages(spec, footage) == ["nncf"] and missing_packages(spec) == []
    with pytest.raises(TrackerError, match=r"needs nncf: pip install 'siamtrack\[int8\]'"):
        export_graphs(box_weights, tmp_path / "g", spec, footage)
    assert not (tmp_path / "g").exists()


def test_cli_calibrate_errors(box_weights, footage, tmp_path, capsys):
    assert main(["--weights", str(box_weights), "--out", str(tmp_path / "g"), "--calibrate", str(footage)]) == 2
    assert "--calibrate is for --int8 exports" in capsys.readouterr().err
    args = ["--weights", str(box_weights), "--out", str(tmp_path / "g"), "--int8", "--calibrate", str(tmp_path / "x")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "calibration folder not found" in err and "Traceback" not in err
    assert not (tmp_path / "g").exists()


@needs_nncf
def test_int8_calibrated_on_footage(box_weights, footage, tmp_path, capsys):
    out = tmp_path / "g"
    assert main(["--weights", str(box_weights), "--out", str(out), "--int8", "--calibrate", str(footage)]) == 0
    assert "int8 calibrated on" in capsys.readouterr().out
    meta = read_graph_meta(out)
    assert meta.spec.precision == "int8"
    assert meta.calibration["quantizer"] == "nncf" and meta.calibration["crops"] > 0
    assert json.loads((out / META_FILE).read_text())["calibration"]["data"] == str(footage)

    graph = onnx.load(out / SEARCH_FILE).graph
    producers = {o: node for node in graph.node for o in node.output}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    quantized = {n.name for n in convs if producers.get(n.input[1], n).op_type == "DequantizeLinear"}
    head = {n.name for n in convs if n.name.startswith("/head/")}
    assert head and quantized and not quantized & head  # the backbone in int8, the head's layers in float
    assert {o.name for o in graph.output} == {"cls", "box", "quality"}
    # 7-bit weights where int16 pair sums could saturate (convolutions over channels); depthwise ones (group > 1)
    # stay at 8 bits, their kernels widen to int16 before multiplying
    assert dense_weight_peak(out) <= 64

    # crops of the footage it was calibrated on, int8 against torch fp32
    exemplars, searches = dataset_crops(footage, GraphSpec(scales=1), load_weights(box_weights).config)[-1]
    ref = TorchBackend(load_weights(box_weights), "cpu", "fp32")
    expected = ref.score(ref.embed(exemplars), searches)
    ort = OnnxBackend(out, threads=1)
    assert ort.name == "onnxruntime-cpu-int8"
    actual = ort.score(ort.embed(exemplars), searches)
    for name, want in expected.items():
        spread = float(want.max() - want.min())
        assert spread > 0 and np.abs(actual[name] - want).max() <= INT8_TOL * spread, name


def dense_weight_peak(folder) -> int:
    """The largest |int8 value| among the search graph's quantized dense (not depthwise) convolution weights."""
    graph = onnx.load(folder / SEARCH_FILE).graph
    producers = {o: node for node in graph.node for o in node.output}
    tensors = {t.name: t for t in graph.initializer}
    peaks = [
        int(np.abs(onnx.numpy_helper.to_array(tensors[producers[n.input[1]].input[0]]).astype(np.int32)).max())
        for n in graph.node
        if n.op_type == "Conv"
        and producers.get(n.input[1], n).op_type == "DequantizeLinear"
        and all(a.i == 1 for a in n.attribute if a.name == "group")
    ]
    assert peaks
    return max(peaks)


@needs_nncf
def test_int8_with_8_bit_weights_for_vnni(box_weights, footage, tmp_path):
    """``weight_bits=8`` keeps the dense weights' eighth bit (for VNNI CPUs) and says so in the metadata; on a
    CPU with VNNI it stays as close to fp32 as the 7-bit graph must."""
    spec = GraphSpec(scales=1, precision="int8")
    meta = export_graphs(box_weights, tmp_path / "g", spec, footage, weight_bits=8)
    assert meta.calibration["weight_bits"] == 8
    assert 64 < dense_weight_peak(tmp_path / "g") <= 127
    with pytest.raises(InputError, match="8-bit int8 weights"):
        export_graphs(box_weights, tmp_path / "h", spec, weight_bits=8)  # 8 bits only with NNCF's calibration
    with pytest.raises(InputError, match="8-bit int8 weights"):
        export_graphs(box_weights, tmp_path / "h", GraphSpec(scales=1), weight_bits=8)  # not an int8 export
    with pytest.raises(InputError, match="must be 7 or 8"):
        export_graphs(box_weights, tmp_path / "h", spec, footage, weight_bits=6)
    assert not (tmp_path / "h").exists()
    if not machine.cpu_flags_vnni():
        return
    exemplars, searches = dataset_crops(footage, GraphSpec(scales=1), load_weights(box_weights).config)[-1]
    ref = TorchBackend(load_weights(box_weights), "cpu", "fp32")
    expected = ref.score(ref.embed(exemplars), searches)
    ort = OnnxBackend(tmp_path / "g", threads=1)
    actual = ort.score(ort.embed(exemplars), searches)
    for name, want in expected.items():
        spread = float(want.max() - want.min())
        assert spread > 0 and np.abs(actual[name] - want).max() <= INT8_TOL * spread, name


def test_vnni_is_read_from_the_cpu_flags(monkeypatch):
    monkeypatch.setattr(machine, "cpu_flags", lambda: {"avx2", "avx512f"})
    assert not machine.cpu_flags_vnni()
    for flag in ("avx512_vnni", "avx_vnni", "amx_int8"):
        monkeypatch.setattr(machine, "cpu_flags", lambda flag=flag: {"avx2", flag})
        assert machine.cpu_flags_vnni()
    monkeypatch.setattr(machine, "cpu_flags", lambda: None)  # flags unknown: the graph that is right everywhere
    assert not machine.cpu_flags_vnni()


# --- the int8 search graphs shipped beside the weights ---------------------------------------------------------


@pytest.mark.parametrize("bits", [7, 8])
def test_shipped_int8_graphs_belong_to_the_shipped_weights(bits):
    """Every shipped ``<stem>_int8.onnx`` and ``<stem>_int8_w8.onnx`` names its weights' SHA-256 (re-made
    whenever the weights are) and its weight bits, and the default model has both."""
    shipped = {name: shipped_int8_path(model_weights(name), bits) for name in MODELS}
    present = {name: path for name, path in shipped.items() if path.is_file()}
    assert DEFAULT_MODEL in present
    for name in present:
        calibration = shipped_int8(model_weights(name), GraphSpec(scales=1, precision="int8"), bits)
        assert calibration is not None, f"{present[name].name} was not made for {model_weights(name).name}"
        assert calibration["quantizer"] == "nncf" and calibration["crops"] > 0
        assert calibration.get("weight_bits", 7) == bits
        assert shipped_int8_path(model_weights(name), 7).is_file()  # every CPU has a graph


def test_a_shipped_graph_serves_only_its_weights_and_spec(box_weights, tmp_path):
    weights = tmp_path / "other.safetensors"
    shutil.copyfile(box_weights, weights)
    shutil.copyfile(shipped_int8_path(model_weights(DEFAULT_MODEL)), shipped_int8_path(weights))
    assert shipped_int8(weights) is None  # made for other weights
    default = model_weights(DEFAULT_MODEL)
    assert shipped_int8(default, GraphSpec(scales=1, precision="int8")) is not None
    assert shipped_int8(default, GraphSpec(targets=2, scales=1, precision="int8")) is None  # another batch
    assert shipped_int8(default, GraphSpec(scales=1, input_dtype="float32", precision="int8")) is None


@pytest.mark.parametrize("vnni", [False, True])
def test_int8_from_the_default_weights_runs_the_shipped_graph(tmp_path, monkeypatch, vnni):
    """An export (portable) takes the 7-bit graph; the cache this CPU runs takes the 8-bit one only with VNNI."""
    monkeypatch.setattr(graphs, "cpu_flags_vnni", lambda: vnni)
    monkeypatch.setenv("SIAMTRACK_CACHE", str(tmp_path / "cache"))
    weights = model_weights(DEFAULT_MODEL)
    spec = GraphSpec(scales=1, precision="int8")
    meta = export_graphs(weights, tmp_path / "g", spec)
    assert meta.calibration["shipped"] == shipped_int8_path(weights).name
    assert (tmp_path / "g" / SEARCH_FILE).read_bytes() == shipped_int8_path(weights).read_bytes()
    bits = 8 if vnni else 7
    assert shipped_weight_bits(weights, spec) == bits
    folder = exported_graphs(weights, spec)  # the cache folder of this export says where it came from
    # named by the shipped graph's bytes too: a new graph shipped for the same weights is exported anew
    digest = weights_sha256(shipped_int8_path(weights, bits))[:8]
    assert folder.name.endswith(f"-shipped-w8-{digest}" if vnni else f"-shipped-{digest}")
    assert read_graph_meta(folder).calibration["shipped"] == shipped_int8_path(weights, bits).name
    assert (folder / SEARCH_FILE).read_bytes() == shipped_int8_path(weights, bits).read_bytes()
    assert shipped_weight_bits(weights, GraphSpec(targets=2, scales=1, precision="int8")) is None


def test_auto_times_openvino_int8_only_for_a_calibrated_graph(monkeypatch):
    monkeypatch.setattr(autoselect.importlib.util, "find_spec", lambda name: object())
    assert ("openvino", "int8") not in autoselect.cpu_candidates()
    assert ("openvino", "int8") in autoselect.cpu_candidates(None, calibrated_int8=True)
    assert ("openvino", "int8") in autoselect.cpu_candidates("auto", calibrated_int8=True)
    assert ("onnx", "int8") not in autoselect.cpu_candidates(None, calibrated_int8=True)  # its int8 runs slowly
    assert autoselect.cpu_candidates("fp32", calibrated_int8=True) == [("torch", "fp32"), ("onnx", "fp32"),
                                                                       ("openvino", "fp32")]  # fmt: skip


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino not installed")
def test_auto_measures_the_shipped_int8_graph(tmp_path):
    built = []

    def build(backend, precision):
        built.append((backend, precision))
        return object()

    autoselect.measured_cpu_backend(
        model_weights(DEFAULT_MODEL), build, scales=1, timer=lambda b, s, t: {c: 1.0 for c in b},
        load=lambda run: (run(), None),
    )  # fmt: skip
    assert ("openvino", "int8") in built
