"""The absence benchmark (tracker.absence): its metrics on hand-made cases, the splices, and the command."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic import write_dataset

from tracker import InputError, TrackResult
from tracker.datasets import Sequence, read_dataset
from tracker.eval import absence, evaluate


def test_auroc_matches_a_hand_computed_case() -> None:
    # positives 0.9 and 0.4 against negatives 0.8, 0.6, 0.4: 0.9 wins 3 pairs, 0.4 ties one -> 3.5 of 6 pairs
    scores = [0.9, 0.8, 0.4, 0.6, 0.4]
    positive = [True, False, True, False, False]
    assert absence.auroc(scores, positive) == pytest.approx(3.5 / 6)
    assert absence.auroc([1, 2, 3, 4], [False, False, True, True]) == 1.0
    assert absence.auroc([1, 2, 3, 4], [True, True, False, False]) == 0.0
    assert absence.auroc([0.5] * 4, [True, False, True, False]) == 0.5
    assert absence.auroc([1, 2], [True, True]) is None


def test_reacquisition_counts_frames_from_the_return() -> None:
    visible = np.array([1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 0, 1], bool)
    iou = np.array([0.9, 0.9, 0, 0, 0.2, 0.6, 0.9, 0, 0.1, 0.3, 0, 0.7])
    assert absence.returns(visible) == [4, 8, 11]
    # re-acquired one frame after the return; never before leaving again; on the return frame itself
    assert absence.reacquisition(iou, visible) == [1, None, 0]


def test_stream_metrics_and_pool() -> None:
    gt = np.array([[0, 0, 10, 10]] * 2 + [[np.nan] * 4] * 2 + [[0, 0, 10, 10]] * 12, float)
    boxes = np.tile([0, 0, 10, 10], (16, 1)).astype(float)
    boxes[2:15] = [50, 50, 10, 10]  # lost at the absence, found again only 11 frames after the return
    found = np.ones(16, bool)
    found[2:4] = False
    found[5] = False
    scores = np.where(found, 0.9, 0.1)
    m = absence.stream_metrics(scores, found, boxes, gt)
    assert (m["absent_frames"], m["absent_lost"], m["visible_frames"], m["visible_lost"]) == (2, 2, 14, 1)
    assert m["visible_found_off"] == 10  # frames 4 and 6-14: in view, the box elsewhere, reported found
    assert m["delays"] == [11]
    p = absence.pool([m, m])
    assert p["absent_lost"] == 1.0 and p["visible_lost"] == pytest.approx(1 / 14)
    assert p["visible_found_off"] == pytest.approx(10 / 14)
    assert p["returns"] == 2 and p["reacquired_10"] == 0.0 and p["median_delay"] == 11.0
    # 26 visible frames outscore the 4 absent ones; the 2 lost visible frames tie them
    assert p["auroc"] == pytest.approx((26 * 4 + 0.5 * 2 * 4) / (28 * 4))
    assert p["auc"] == pytest.approx(m["auc"])


def _sequences(n: int = 3, length: int = 60) -> list[Sequence]:
    seqs = []
    for k in range(n):
        boxes = np.tile([10.0, 10.0, 20.0, 20.0], (length + k, 1))
        boxes[5 + k] = np.nan
        seqs.append(Sequence(f"s{k}", [Path(f"s{k}/{i:04d}.jpg") for i in range(length + k)], boxes))
    return seqs


def test_splices_are_deterministic_and_valid() -> None:
    seqs = _sequences()
    plan = absence.plan_splices(seqs, 2, 7, seed=3)
    assert plan == absence.plan_splices(seqs, 2, 7, seed=3)
    assert plan != absence.plan_splices(seqs, 2, 7, seed=4)
    # a sequence's splices do not depend on which other sequences run with it
    assert absence.plan_splices(seqs[:2], 2, 7, seed=3)["s0"][0].at == plan["s0"][0].at
    for seq in seqs:
        splices = plan[seq.name]
        assert len(splices) == 2
        assert all(s.donor != seq.name and s.frames == 7 for s in splices)
        ats = [s.at for s in splices]
        assert ats[0] >= absence.LEAD and ats[1] - ats[0] >= absence.LEAD and ats[1] <= len(seq) - absence.TAIL
        stream = absence.build_stream(seq, splices, {s.name: s for s in seqs})
        assert len(stream) == len(seq) + 14 and stream.spliced.sum() == 14
        assert np.isnan(stream.gt[stream.spliced]).all()
        assert [p.parent.name for p, resized in stream.frames if resized] == [
            s.donor for s in splices for _ in range(7)
        ]
    assert absence.plan_splices(seqs, 0, 7, seed=3) == {s.name: [] for s in seqs}


def test_splice_errors() -> None:
    from tracker.errors import InputError

    with pytest.raises(InputError, match="at least two sequences"):
        absence.plan_splices(_sequences(1), 1, 5, seed=0)
    with pytest.raises(InputError, match=">= 0"):
        absence.plan_splices(_sequences(), -1, 5, seed=0)


class _Recorder:
    """Says found on frames of the original size, lost on the others; records the shapes it is given."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def init(self, frame: np.ndarray, box: object) -> None:
        self.box = tuple(float(v) for v in box)

    def update(self, frame: np.ndarray) -> TrackResult:
        self.shapes.append(frame.shape)
        mean = float(frame.mean())
        return TrackResult(self.box, mean / 255, mean > 100)


def test_spliced_frames_are_resized_to_the_frame_size(tmp_path: Path) -> None:
    seqs = []
    for k, (shape, value) in enumerate((((40, 60, 3), 200), ((30, 20, 3), 10))):
        paths = []
        for i in range(40):
            paths.append(tmp_path / f"{k}_{i}.png")
            cv2.imwrite(str(paths[-1]), np.full(shape, value, np.uint8))
        seqs.append(Sequence(f"q{k}", paths, np.tile([5.0, 5.0, 10.0, 10.0], (40, 1))))
    stream = absence.build_stream(seqs[0], absence.plan_splices(seqs, 1, 4, seed=0)["q0"], {s.name: s for s in seqs})
    rec = _Recorder()
    run = absence.run_stream(stream, [rec])
    assert set(rec.shapes) == {(40, 60, 3)} and len(rec.shapes) == 43
    assert (run["found"][0] == ~stream.spliced[1:]).all()
    m = absence.stream_metrics(run["scores"][0], run["found"][0], run["boxes"][0], run["gt"])
    assert absence.pool([m])["auroc"] == 1.0 and m["delays"] == [0]


def test_same_size_resizes_every_frame_and_its_box(tmp_path: Path) -> None:
    paths = []
    for i, shape in enumerate(((40, 60, 3), (20, 30, 3), (40, 60, 3))):
        paths.append(tmp_path / f"f{i}.png")
        cv2.imwrite(str(paths[-1]), np.full(shape, 200, np.uint8))
    boxes = np.array([[5.0, 5.0, 10.0, 10.0], [2.0, 3.0, 4.0, 6.0], [5.0, 5.0, 10.0, 10.0]])
    stream = absence.build_stream(Sequence("q", paths, boxes), [], {})
    with pytest.raises(InputError, match="--same-size"):
        absence.run_stream(stream, [_Recorder()])
    rec = _Recorder()
    run = absence.run_stream(stream, [rec], same_size=True)
    assert set(rec.shapes) == {(40, 60, 3)}
    np.testing.assert_allclose(run["gt"], [[4.0, 6.0, 8.0, 12.0], [5.0, 5.0, 10.0, 10.0]])
    assert np.isnan(run["similarity"]).all()  # a tracker that does not verify gives none
    np.testing.assert_allclose(stream.gt[1], boxes[1])  # the stream itself is left as it was


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("absence"), {"alpha": 0, "beta": 1}, n=40, absent=(3,))


def test_absence_command_writes_the_table(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    argv = [str(dataset), "--absence", "--trackers", "MIL", "--splices", "1", "--splice-frames", "5", "--out", str(out)]
    assert evaluate.main([*argv, "--threads", "1", "--seed", "2"]) == 0
    results = json.loads((out / "absence.json").read_text())
    o = results["trackers"]["MIL"]["overall"]
    assert o["absent_frames"] == 2 + 2 * 5 and o["visible_frames"] == 2 * 39 - 2
    assert o["returns"] == 4 and 0 <= o["auroc"] <= 1
    assert "| MIL |" in (out / "absence.md").read_text() and "| MIL |" in capsys.readouterr().out


def test_absence_command_errors(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    base = [str(dataset), "--absence", "--trackers", "MIL", "--out", str(tmp_path / "o")]
    assert evaluate.main([*base, "--splices", "-1"]) == 2
    assert "error: --splices and --splice-frames must be >= 0" in capsys.readouterr().err
    assert evaluate.main([*base, "--sequences", "alpha"]) == 2
    assert "error: spliced absences need at least two sequences" in capsys.readouterr().err


def test_a_canvas_places_the_sequence_among_other_sequences(tmp_path: Path) -> None:
    def frame(name: str, value: int, shape: tuple[int, int] = (20, 30)) -> Path:
        path = tmp_path / f"{name}.png"
        cv2.imwrite(str(path), np.full((*shape, 3), value, np.uint8))
        return path

    paths = [frame(f"f{i}", 200 + 10 * i) for i in range(3)]
    tiles = [[frame(f"t{k}_{j}", 10 * k + j, (10, 15)) for j in range(2)] for k in range(8)]
    boxes = np.array([[5.0, 5.0, 10.0, 10.0]] * 3)
    donor = Sequence("d", [frame("donor", 90, (7, 9))], boxes[:1])
    stream = absence.build_stream(Sequence("q", paths, boxes), [absence.Splice(2, "d", 0, 1)], {"d": donor})

    class Frames(_Recorder):
        def init(self, frame: np.ndarray, box: object) -> None:
            super().init(frame, box)
            self.frames = [frame]

        def update(self, frame: np.ndarray) -> TrackResult:
            self.frames.append(frame)
            return super().update(frame)

    rec = Frames()
    run = absence.run_stream(stream, [rec], canvas=tiles)
    assert {f.shape for f in rec.frames} == {(60, 90, 3)}
    middle = (slice(20, 40), slice(30, 60))
    assert [int(f[middle].mean()) for f in rec.frames] == [200, 210, 90, 220]  # the splice replaces the middle only
    for t, f in enumerate(rec.frames):  # tile k plays its frames in turn (resized to the sequence's frame size)
        assert f[0, 0, 0] == t % 2 and f[0, 30, 0] == 10 + t % 2 and f[59, 89, 0] == 70 + t % 2
    np.testing.assert_allclose(rec.box, [35.0, 25.0, 10.0, 10.0])  # the boxes move with the frames
    np.testing.assert_allclose(run["gt"][[0, 2]], [[35.0, 25.0, 10.0, 10.0]] * 2)
    assert np.isnan(run["gt"][1]).all()


def test_canvas_tiles_are_other_sequences_and_odd_sides_only(dataset: Path) -> None:
    sequences = read_dataset(dataset)
    tiles = absence.canvas_tiles("alpha", sequences, 3, 0)
    assert len(tiles) == 8 and all(p.parent.parent.name == "beta" for t in tiles for p in t)
    assert tiles == absence.canvas_tiles("alpha", sequences, 3, 0)  # drawn from the seed
    for n in (1, 2, 4):
        with pytest.raises(InputError, match="--canvas"):
            absence.benchmark({}, sequences, 1, 2, 0, canvas=n)
