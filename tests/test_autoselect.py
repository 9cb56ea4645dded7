"""auto on a CPU: the pick follows the timings (injected here, so no test depends on this machine's speed), is
cached per weights, machine and setting, and survives a bad cache or a candidate that cannot start."""

from __future__ import annotations

import json
import shutil

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


def pick(weights, timer, build=Fake, **kwargs):
    return measured_cpu_backend(weights, build, candidates=CANDIDATES, timer=timer, **kwargs)


@pytest.mark.parametrize(
    ("timings", "expected"),
    [
        ({("torch", "fp32"): 45, ("onnx", "fp32"): 40, ("onnx", "int8"): 25}, ("onnx", "int8")),
        ({("torch", "fp32"): 45, ("onnx", "fp32"): 30, ("onnx", "int8"): 27}, ("onnx", "fp32")),  # int8 < 15% ahead
        ({("torch", "bf16"): 12, ("onnx", "fp32"): 16, ("onnx", "int8"): 11}, ("torch", "bf16")),
        ({("torch", "fp32"): 20, ("onnx", "fp32"): 21}, ("torch", "fp32")),
        ({("onnx", "int8"): 50}, ("onnx", "int8")),  # the only one that ran
    ],
)
def test_choose_fastest_and_int8_only_when_clearly_faster(timings, expected):
    assert choose(timings) == expected


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
    assert built == [("onnx", "int8")]  # only the cached pick is built
    assert "cached measurement" in again.describe()


def test_cache_key_follows_weights_threads_and_precision(handset_weights, alexnet_weights, tmp_path):
    copy = tmp_path / "copy.safetensors"
    shutil.copy(handset_weights, copy)
    key = autoselect.cache_file
    assert key(handset_weights, None, 3, 1, None) == key(copy, None, 3, 1, None)  # the content counts, not the path
    others = [key(alexnet_weights, None, 3, 1, None), key(handset_weights, 1, 3, 1, None)]
    others += [key(handset_weights, None, 5, 1, None), key(handset_weights, None, 3, 1, "int8")]
    assert len({key(handset_weights, None, 3, 1, None), *others}) == 5


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
    assert autoselect.cpu_candidates("int8") == [("onnx", "int8")]
    with pytest.raises(BackendError, match="fp16"):
        autoselect.cpu_candidates("fp16")


def test_real_timer_times_each_backend(handset_weights):
    from tracker.backends.select import create_backend

    built = {("torch", "fp32"): create_backend("torch", handset_weights, "cpu", precision="fp32")}
    ms = autoselect.time_candidates(built, scales=3, targets=2, rounds=2)
    assert set(ms) == {("torch", "fp32")} and ms[("torch", "fp32")] > 0
