"""auto on a CPU: the pick follows the timings (injected here, so no test depends on this machine's speed), is
cached per weights, machine and setting, and survives a bad cache or a candidate that cannot start."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tracker import BackendError
from tracker.backends import autoselect
from tracker.backends.autoselect import choose, measured_cpu_backend


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """A fresh cache per test: each one starts from nothing measured."""
    monkeypatch.setenv("SIAMTRACK_CACHE", str(tmp_path / "cache"))


CANDIDATES = [("torch", "fp32"), ("torch", "bf16"), ("onnx", "fp32"), ("onnx", "int8")]


class Fake:
    def __init__(self, backend: str, precision: str) -> None:
        self.name = f"{backend}-{precision}"


class Timer:
    """Injected timings: ms per candidate; counts its calls."""

    def __init__(self, ms: dict[tuple[str, str], float]) -> None:
        self.ms, self.calls = ms, 0

    def __call__(self, built: dict, scales: int, targets: int) -> dict:
        self.calls += 1
        return {c: self.ms[c] for c in built}


def quiet(run):
    """An injected load probe: no other process was busy."""
    return run(), 0.0


def pick(weights, timer, build=Fake, load=quiet, **kwargs):
    return measured_cpu_backend(weights, build, candidates=CANDIDATES, timer=timer, load=load, **kwargs)


@pytest.mark.parametrize(
    ("timings", "expected"),
    [
        ({("torch", "fp32"): 45, ("onnx", "fp32"): 40}, ("onnx", "fp32")),
        ({("torch", "bf16"): 12, ("onnx", "fp32"): 16}, ("torch", "bf16")),
        ({("torch", "fp32"): 20, ("onnx", "fp32"): 21}, ("torch", "fp32")),
        ({("onnx", "int8"): 50}, ("onnx", "int8")),  # the only one that ran (int8 asked for)
    ],
)
def test_choose_fastest(timings, expected):
    assert choose(timings) == expected


def test_int8_is_a_candidate_only_when_asked_for(monkeypatch):
    """int8 changes the answers, so auto never trades accuracy for speed on its own."""
    monkeypatch.setattr(autoselect.importlib.util, "find_spec", lambda name: object())
    assert ("onnx", "int8") not in autoselect.cpu_candidates()
    assert ("onnx", "int8") not in autoselect.cpu_candidates("auto")
    assert ("onnx", "fp32") in autoselect.cpu_candidates()
    assert autoselect.cpu_candidates("int8") == [("onnx", "int8"), ("openvino", "int8")]
    assert ("openvino", "fp32") in autoselect.cpu_candidates()


def test_a_timing_under_load_is_not_cached(handset_weights):
    """Other processes busy while timing: the pick serves this start, and the next start measures again."""
    timer = Timer({("torch", "fp32"): 1046, ("torch", "bf16"): 900, ("onnx", "fp32"): 29, ("onnx", "int8"): 20})
    backend, choice = pick(handset_weights, timer, load=lambda run: (run(), 1.0))
    assert not autoselect.cache_file(handset_weights, None, 3, 1, None).exists()
    assert "not cached" in choice.describe() and "1.0 CPUs" in choice.describe()
    pick(handset_weights, timer)
    assert timer.calls == 2  # measured again, now quietly: cached from here on
    pick(handset_weights, timer)
    assert timer.calls == 2


def test_load_probe_sees_other_processes():
    """A busy child process counts as other processes' load; this process's own work does not."""
    import subprocess
    import sys
    import time

    if not Path("/proc/stat").exists():
        pytest.skip("no /proc/stat here")
    _, alone = autoselect.others_busy(lambda: sum(range(3_000_000)))
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        _, busy = autoselect.others_busy(lambda: time.sleep(1.0))
    finally:
        child.kill()
        child.wait()
    assert busy is not None and busy > autoselect.BUSY_CPUS
    assert alone is not None and busy > alone


def test_choose_nothing_ran():
    with pytest.raises(BackendError, match="no CPU backend"):
        choose({})


def test_measures_once_then_reads_the_cache(handset_weights):
    timer = Timer({("torch", "fp32"): 45, ("torch", "bf16"): 200, ("onnx", "fp32"): 40, ("onnx", "int8"): 25})
    backend, choice = pick(handset_weights, timer)
    assert backend.name == "onnx-int8" and not choice.cached and timer.calls == 1
    assert choice.timings_ms["torch:bf16"] == 200 and "onnx int8" in choice.describe()
    built = []
    backend, again = pick(handset_weights, timer, build=lambda b, p: built.append((b, p)) or Fake(b, p))
    assert backend.name == "onnx-int8" and again.cached and timer.calls == 1
    assert built == [("onnx", "int8")]  # only the cached pick is built (the candidates are injected here)
    assert "cached measurement" in again.describe()


def test_cache_key_follows_weights_threads_and_precision(handset_weights, alexnet_weights, tmp_path):
    copy = tmp_path / "copy.safetensors"
    shutil.copy(handset_weights, copy)
    key = autoselect.cache_file
    assert key(handset_weights, None, 3, 1, None) == key(copy, None, 3, 1, None)  # the content counts, not the path
    others = [key(alexnet_weights, None, 3, 1, None), key(handset_weights, 1, 3, 1, None)]
    others += [key(handset_weights, None, 5, 1, None), key(handset_weights, None, 3, 1, "int8")]
    assert len({key(handset_weights, None, 3, 1, None), *others}) == 5


def test_cache_key_follows_the_shipped_int8_graph(handset_weights, tmp_path, monkeypatch):
    key = lambda: autoselect.cache_file(handset_weights, None, 1, 1, None)  # noqa: E731
    none = key()
    graph = tmp_path / "w_int8.onnx"
    graph.write_bytes(b"one graph")
    monkeypatch.setattr(autoselect, "shipped_weight_bits", lambda weights, spec: 7)
    monkeypatch.setattr(autoselect, "shipped_int8_path", lambda weights, bits: graph)
    first = key()
    graph.write_bytes(b"another graph shipped for the same weights")
    assert len({none, first, key()}) == 3


def test_a_graph_shipped_for_vnni_alone_makes_int8_a_candidate(handset_weights, tmp_path, monkeypatch):
    """Weights that ship only the 8-bit-weight graph (for CPUs with VNNI) on such a CPU: int8 is timed too, as the
    cache key, which names that graph, says; it once looked for the 7-bit graph alone and cached a float pick."""
    graph = tmp_path / "w_int8_w8.onnx"
    graph.write_bytes(b"a graph for VNNI")
    monkeypatch.setattr(autoselect, "shipped_weight_bits", lambda weights, spec: 8)
    monkeypatch.setattr(autoselect, "shipped_int8_path", lambda weights, bits: graph)
    asked = []
    monkeypatch.setattr(autoselect, "cpu_candidates", lambda precision, calibrated: asked.append(calibrated) or [])
    with pytest.raises(BackendError):  # no candidate built: what matters is what was asked for
        measured_cpu_backend(handset_weights, Fake, timer=Timer({}), load=quiet)
    assert asked == [True]


def test_machine_change_measures_again(handset_weights, monkeypatch):
    timer = Timer(dict.fromkeys(CANDIDATES, 10.0))
    pick(handset_weights, timer)
    monkeypatch.setattr(autoselect, "machine_key", lambda: {"cpu": "another CPU"})
    pick(handset_weights, timer)
    assert timer.calls == 2


def test_unreadable_cache_is_measured_again(handset_weights):
    timer = Timer({("torch", "fp32"): 10, ("torch", "bf16"): 20, ("onnx", "fp32"): 30, ("onnx", "int8"): 40})
    path = autoselect.cache_file(handset_weights, None, 3, 1, None)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json")
    backend, choice = pick(handset_weights, timer)
    assert backend.name == "torch-fp32" and timer.calls == 1
    assert json.loads(path.read_text())["backend"] == "torch"  # rewritten


def test_candidate_that_cannot_start_is_skipped(handset_weights):
    def build(backend, precision):
        if backend == "onnx":
            raise BackendError("the onnx backend needs onnxruntime")
        return Fake(backend, precision)

    timer = Timer({("torch", "fp32"): 45, ("torch", "bf16"): 20})
    backend, choice = pick(handset_weights, timer, build=build)
    assert backend.name == "torch-bf16" and set(choice.skipped) == {"onnx:fp32", "onnx:int8"}
    assert set(choice.timings_ms) == {"torch:fp32", "torch:bf16"}


def test_precision_narrows_the_candidates(monkeypatch):
    real = autoselect.importlib.util.find_spec
    monkeypatch.setattr(autoselect.importlib.util, "find_spec", lambda n, *a: None if n == "openvino" else real(n, *a))
    assert autoselect.cpu_candidates("int8") == [("onnx", "int8")]
    with pytest.raises(BackendError, match="fp16"):
        autoselect.cpu_candidates("fp16")


def test_real_timer_times_each_backend(handset_weights):
    from tracker.backends.select import create_backend

    built = {("torch", "fp32"): create_backend("torch", handset_weights, "cpu", precision="fp32")}
    ms = autoselect.time_candidates(built, scales=3, targets=2, rounds=2)
    assert set(ms) == {("torch", "fp32")} and ms[("torch", "fp32")] > 0
