"""The benchmark times the real update() through the tracker's stage clock, and cleans up its busy processes."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from synthetic import make_sequence

from tracker import SiamFCTracker
from tracker.eval import bench
from tracker.timing import STAGES, StageClock


@pytest.fixture(autouse=True)
def cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIAMTRACK_CACHE", str(tmp_path_factory.getbasetemp() / "siamtrack-cache"))


def test_stage_clock_times_the_real_update(handset_weights, monkeypatch):
    frames, gt = make_sequence(4, seed=0)
    t = SiamFCTracker(handset_weights, backend="torch", device="cpu")
    t.init(frames[0], gt[0])
    slow = 0.2
    score = t._backend.score
    monkeypatch.setattr(t._backend, "score", lambda *a: time.sleep(slow) or score(*a))
    t.stage_clock = clock = StageClock()
    walls = []
    for f in frames[1:]:
        t0 = time.perf_counter()
        t.update(f)
        walls.append(time.perf_counter() - t0)
    assert all(len(clock.laps[s]) == 3 for s in STAGES)
    total = np.sum([clock.laps[s] for s in STAGES], axis=0)
    assert np.all(total <= np.array(walls)) and np.all(total >= 0.9 * np.array(walls))
    assert min(clock.laps["network"]) >= slow  # the backend call lands in the network stage
    t.stage_clock = None
    t.update(frames[1])
    assert all(len(clock.laps[s]) == 3 for s in STAGES)  # off again


def test_busy_processes_are_stopped_on_error():
    with pytest.raises(KeyboardInterrupt), bench.busy_processes(2) as procs:
        assert len(procs) == 2 and all(p.poll() is None for p in procs)
        raise KeyboardInterrupt
    assert all(p.poll() is not None for p in procs)


def test_bench_prints_tables(alexnet_weights: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["--weights", str(alexnet_weights), "--frames", "3", "--threads", "2", "--targets", "1,2"]
    assert bench.main([*argv, "--size", "320x240", "--busy", "0,1", "--backends", "torch:fp32@1"]) == 0
    out = capsys.readouterr().out
    assert "| tracker | backend | threads | 0 busy: fps | 1 busy: fps (% of 0 busy) |" in out
    rows = [line for line in out.splitlines() if line.startswith(f"| {alexnet_weights} (alexnet x0.25)")]
    # fps and stages (by busy level) of K separate trackers and of one MultiTracker for K = 1, 2; one batched
    # score(); target updates per second, separate against MultiTracker, by K and busy level
    assert len(rows) == 4 + 8 + 1 + 4
    speedups = [r for r in rows if r.endswith("x |")]
    assert len(speedups) == 4 and all("| torch-cpu-fp32 | 1 | " in r for r in speedups)
    stage_row = next(r for r in rows if "1 target(s) | torch-cpu-fp32 | 1 | 1 |" in r)
    assert "n/a" not in stage_row


@pytest.mark.parametrize(
    ("argv", "needle"),
    [(["--threads", "0"], "thread counts"), (["--backends", "tflite"], "unknown backend"), (["--busy", "-1"], "busy")]
    + [(["--backends", "torch@0"], "thread counts")],
)
def test_bench_bad_arguments(argv, needle, capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(argv)
    assert e.value.code == 2 and needle in capsys.readouterr().err


def test_rate_against_nanotrack_is_paired_turn_by_turn(capsys: pytest.CaptureFixture) -> None:
    block = bench.BLOCK
    # the machine slows down 4x halfway; in every turn NanoTrack takes 1.25x this tracker's time
    load = np.repeat([1.0] * 5 + [4.0] * 5, block)
    ours = bench.Entry("w (mobilenetv2), 1 target(s)", "openvino", "1", [object()], times={0: list(1e-3 * load)})
    nano = bench.Entry("OpenCV NanoTrack", "opencv", "1", [object()], times={0: list(1.25e-3 * load)})
    two = bench.Entry("w (mobilenetv2), 2 target(s)", "openvino", "1", [object()] * 2, times={0: list(load)})
    other = bench.Entry("w (mobilenetv2), 1 target(s)", "openvino", "2", [object()], times={0: list(load)})
    np.testing.assert_allclose(bench.turn_ratios(ours, nano, 0), 1.25)
    # NanoTrack faster in 3 turns of 10
    nano.times[0] = list(1e-3 * load * np.repeat([0.5] * 3 + [2.0] * 7, block))
    bench.print_peer_ratios([ours, two, other, nano], [0])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| w (mobilenetv2)")]
    # only one target, and only against NanoTrack at the same threads
    assert rows == ["| w (mobilenetv2), 1 target(s) | openvino | 1 | 0 | 2.00x | 0.50-2.00x | 70% |"]
