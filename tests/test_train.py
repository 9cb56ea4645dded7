"""Training: dataset readers, crop cache, pair sampling, labels, loss, checkpoints, resume, DDP."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from synthetic import make_sequence

from tracker.config import ConfigError, ModelConfig
from tracker.datasets import read_dataset, read_sequence
from tracker.model import SiamFC
from tracker.weights import load_weights, save_weights
from train.__main__ import main as train_main
from train.curate import curate
from train.labels import make_labels
from train.loop import TrainConfig, Trainer, learning_rate, make_optimizer
from train.losses import feature_distill
from train.pairs import PairConfig, PairDataset


def write_plain(root: Path, name: str, n: int = 12, seed: int = 0, absent: tuple[int, ...] = ()) -> np.ndarray:
    """A sequence in the plain layout (img/ + groundtruth.txt, 0-based, nan rows); returns its boxes."""
    frames, boxes = make_sequence(n, size=(160, 120), seed=seed)
    (root / name / "img").mkdir(parents=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(root / name / "img" / f"{i + 1:06d}.jpg"), f)
    lines = ["nan,nan,nan,nan" if i in absent else ",".join(f"{v:.2f}" for v in b) for i, b in enumerate(boxes)]
    (root / name / "groundtruth.txt").write_text("\n".join(lines) + "\n")
    return boxes


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    for k in range(3):
        write_plain(root, f"seq{k}", n=12, seed=k, absent=(3,) if k == 0 else ())
    return root


def test_plain_reader_nan_rows(dataset):
    seqs = read_dataset(dataset)
    assert [s.name for s in seqs] == ["seq0", "seq1", "seq2"]
    assert len(seqs[0]) == 12 and not seqs[0].visible[3] and seqs[0].visible.sum() == 11


def test_otb_reader_one_based_and_separators(tmp_path):
    boxes = write_plain(tmp_path, "s", n=3)
    (tmp_path / "s" / "groundtruth.txt").unlink()
    rows = ["\t".join(str(v + 1 if j < 2 else v) for j, v in enumerate(b)) for b in boxes[:2]]
    rows.append(" ".join(str(v + 1 if j < 2 else v) for j, v in enumerate(boxes[2])))
    (tmp_path / "s" / "groundtruth_rect.txt").write_text("\n".join(rows))
    seq = read_sequence(tmp_path / "s")
    assert np.allclose(seq.boxes, boxes)


def test_vot_reader_polygons(tmp_path):
    (tmp_path / "v" / "color").mkdir(parents=True)
    for i in range(2):
        cv2.imwrite(str(tmp_path / "v" / "color" / f"{i + 1:08d}.jpg"), np.zeros((50, 50, 3), np.uint8))
    (tmp_path / "v" / "groundtruth.txt").write_text("10,20,30,20,30,40,10,40\n1,2,11,2,11,7,1,7\n")
    seq = read_sequence(tmp_path / "v", "vot")
    assert np.allclose(seq.boxes, [[10, 20, 20, 20], [1, 2, 10, 5]])


def test_got10k_reader_absence(tmp_path):
    (tmp_path / "GOT-10k_Train_000001").mkdir()
    for i in range(3):
        cv2.imwrite(str(tmp_path / "GOT-10k_Train_000001" / f"{i + 1:08d}.jpg"), np.zeros((50, 50, 3), np.uint8))
    (tmp_path / "GOT-10k_Train_000001" / "groundtruth.txt").write_text("1,2,3,4\n1,2,3,4\n1,2,3,4\n")
    (tmp_path / "GOT-10k_Train_000001" / "absence.label").write_text("0\n1\n0\n")
    (tmp_path / "list.txt").write_text("GOT-10k_Train_000001\n")
    (seq,) = read_dataset(tmp_path)
    assert seq.visible.tolist() == [True, False, True]


def test_labels_balanced():
    cfg, model = PairConfig(), ModelConfig()
    labels, weights = make_labels(model, cfg, (0.0, 0.0), 1.0)
    pos = labels > 0
    assert pos[8, 8] and pos.sum() == 13  # cells within 16 px (2 cells) of the centre
    assert weights[pos].sum() == pytest.approx(0.5) and weights[~pos].sum() == pytest.approx(0.5)
    labels, weights = make_labels(model, cfg, (24.0, -16.0), 0.5)  # shifted target: positives move with it
    assert labels[6, 11] == 0.5 and labels[8, 8] == 0
    labels, weights = make_labels(model, cfg, None, 1.0)  # negative pair
    assert labels.sum() == 0 and weights.sum() == pytest.approx(1.0)


@pytest.fixture(scope="module")
def cache(dataset, tmp_path_factory) -> Path:
    return curate([dataset], tmp_path_factory.mktemp("cache"), workers=1)


def test_curate_manifest_and_reuse(cache, dataset):
    manifest = json.loads((cache / "manifest.json").read_text())
    seq0 = next(s for s in manifest["sequences"] if s["name"] == "seq0")
    assert seq0["frames"][3] is None and all(f is not None for i, f in enumerate(seq0["frames"]) if i != 3)
    assert curate([dataset], cache.parent, workers=1) == cache  # same data -> same cache, not rebuilt


def test_curate_reports_unreadable_frames(tmp_path, capsys):
    write_plain(tmp_path / "data", "s", n=4)
    (tmp_path / "data" / "s" / "img" / "000002.jpg").write_bytes(b"not a jpeg")
    cache = curate([tmp_path / "data"], tmp_path / "cache", workers=1)
    (seq,) = json.loads((cache / "manifest.json").read_text())["sequences"]
    assert seq["frames"][1] is None and seq["unreadable"] == ["000002.jpg"]
    assert "1 unreadable frame(s) left out: s (1)" in capsys.readouterr().err


def test_pairs_respect_gap_and_visibility(cache):
    ds = PairDataset(cache, 200, ModelConfig(), PairConfig(max_gap=2), seed=1)
    seen = []
    ds._load_orig = ds._load
    ds._load = lambda seq, frame: (seen.append((seq, frame)), ds._load_orig(seq, frame))[1]
    for i in range(40):
        seen.clear()
        z, x, labels, weights = ds[i]
        assert z.shape == (3, 127, 127) and x.shape == (3, 255, 255) and labels.shape == (17, 17)
        assert all(ds.sequences[s][1][f] is not None for s, f in seen)  # only visible frames
        if seen[1][0] == seen[0][0]:
            assert abs(seen[1][1] - seen[0][1]) <= 2
        # the search crop shows the target (positive labels) exactly when it comes from the exemplar's sequence
        assert (labels.max() > 0) == (seen[1][0] == seen[0][0])
    a, b = ds[7], ds[7]
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))  # a pair depends on (seed, index) alone


def tiny_config(**kw) -> TrainConfig:
    base = dict(steps=30, batch_size=4, warmup_steps=5, lr=2e-2, workers=0, checkpoint_every=10, val_every=0)
    base.update(kw)
    cfg = TrainConfig(**base)
    return TrainConfig.from_dict({**cfg.to_dict(), "model": {"width": 0.125}})


def test_lr_schedule():
    cfg = TrainConfig(steps=100, warmup_steps=10, lr=1.0, min_lr=0.0)
    assert learning_rate(0, cfg) == pytest.approx(0.1) and learning_rate(9, cfg) == pytest.approx(1.0)
    assert learning_rate(100, cfg) == pytest.approx(0.0) and learning_rate(55, cfg) == pytest.approx(0.5)


@pytest.mark.slow
def test_training_lowers_loss_on_fixed_pairs(cache, tmp_path):
    torch.set_num_threads(2)
    pairs = PairConfig(p_neg=0.0, p_paste=0.0, scale_range=0.0)  # hard labels: the loss can approach 0
    trainer = Trainer(tiny_config(steps=60, pairs=pairs), cache, tmp_path / "run")
    batch = [torch.stack(t) for t in zip(*[trainer._loader().dataset[i] for i in range(8)], strict=True)]
    losses = [trainer.train_step(batch) for _ in range(60)]
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])


def test_distillation_takes_a_teacher_on_the_same_grid(cache, tmp_path):
    teacher = tmp_path / "teacher.safetensors"
    save_weights(SiamFC(ModelConfig(width=0.125)), teacher)
    trainer = Trainer(tiny_config(steps=2, teacher=str(teacher), distill_weight=1.0), cache, tmp_path / "run")
    batch = [torch.stack(t) for t in zip(*[trainer._loader().dataset[i] for i in range(2)], strict=True)]
    plain = Trainer(tiny_config(steps=2), cache, tmp_path / "plain")
    # the same model start (seed) and pairs: the teacher's term adds to the label loss
    assert trainer.train_step(batch) > plain.train_step(batch)
    assert not any(p.grad is not None for p in trainer.teacher.parameters())
    unweighted = Trainer(tiny_config(steps=2, teacher=str(teacher), distill_weight=0.0), cache, tmp_path / "w0")
    assert unweighted.teacher is None  # a teacher of weight 0 is not run
    other = tmp_path / "other.safetensors"
    save_weights(SiamFC(ModelConfig(width=0.125, search_size=239)), other)
    with pytest.raises(ConfigError, match="search_size"):
        Trainer(tiny_config(steps=2, teacher=str(other)), cache, tmp_path / "bad")
    with pytest.raises(ConfigError, match="head 'box'"):  # a shipped model by name: the box head's, not this fc
        Trainer(tiny_config(steps=2, teacher="accurate"), cache, tmp_path / "named")
    # several teachers: their maps averaged, each output the mean of theirs
    second = tmp_path / "second.safetensors"
    save_weights(SiamFC(ModelConfig(width=0.125)), second)  # another random start
    cfg = TrainConfig.from_dict({**tiny_config(steps=2).to_dict(), "teacher": [str(teacher), str(second)]})
    ensemble = Trainer(cfg, cache, tmp_path / "ensemble").teacher
    z, x = batch[0][:1].float(), batch[1][:1].float()
    members = [load_weights(path).eval() for path in (teacher, second)]
    with torch.no_grad():
        expected = {k: (members[0](z, x)[k] + members[1](z, x)[k]) / 2 for k in ("response",)}
        np.testing.assert_allclose(ensemble(z, x)["response"], expected["response"], rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="non-empty list"):
        tiny_config(steps=2, teacher=())


def test_feature_distillation_learns_the_teachers_features(cache, tmp_path):
    """feature_weight: the backbone's outputs on both crops learn the teacher's beside its maps."""
    torch.manual_seed(3)
    teacher = tmp_path / "teacher.safetensors"
    save_weights(SiamFC(ModelConfig(width=0.125)), teacher)
    maps = Trainer(tiny_config(steps=20, teacher=str(teacher)), cache, tmp_path / "maps")
    both = Trainer(tiny_config(steps=20, teacher=str(teacher), feature_weight=1.0), cache, tmp_path / "both")
    batch = [torch.stack(t) for t in zip(*[both._loader().dataset[i] for i in range(4)], strict=True)]
    z = batch[0].float()

    def gap() -> float:
        with torch.no_grad():
            return float(feature_distill(both.model.embed(z), both.teacher.embed(z)))

    # the same model start (seed) and pairs: the feature term adds to the loss, and steps close the gap
    before = gap()
    assert both.train_step(batch) > maps.train_step(batch)
    for _ in range(15):
        both.train_step(batch)
    assert gap() < 0.8 * before
    feats = torch.randn(2, 8, 4, 4)
    assert float(feature_distill(feats, feats)) == 0.0
    assert float(feature_distill(2 * feats, feats)) == pytest.approx(1.0)
    wider = tmp_path / "wider.safetensors"
    save_weights(SiamFC(ModelConfig(width=0.25)), wider)
    with pytest.raises(ConfigError, match="in the model's shape"):
        Trainer(tiny_config(steps=2, teacher=str(wider), feature_weight=1.0), cache, tmp_path / "wider")
    with pytest.raises(ConfigError, match="needs one teacher"):
        tiny_config(steps=2, feature_weight=1.0)
    with pytest.raises(ConfigError, match="needs one teacher"):
        tiny_config(steps=2, teacher=(str(teacher), str(wider)), feature_weight=1.0)


def test_a_cut_down_copy_starts_from_the_trained_model(cache, tmp_path):
    full = dict(backbone="mobilenetv1", width=0.25, stride=16, neck=16, head="box", tower=16)
    source = tmp_path / "full.safetensors"
    torch.manual_seed(1)
    trained = SiamFC(ModelConfig(**full))
    save_weights(trained, source)
    cfg = TrainConfig.from_dict({**tiny_config(steps=2).to_dict(), "model": {**full, "blocks": 8}, "init": str(source)})
    own, kept = Trainer(cfg, cache, tmp_path / "run").model.state_dict(), trained.state_dict()
    shared = [k for k in own if k in kept]
    assert any(k.startswith("head.") for k in shared) and any(k.startswith("backbone.features.16.") for k in shared)
    assert all(torch.equal(own[k], kept[k]) for k in shared)
    # the neck now follows block 8, not block 11: its layers are new
    assert "backbone.features.17.weight" in own and "backbone.features.17.weight" not in kept
    fresh = Trainer(TrainConfig.from_dict({**cfg.to_dict(), "init": None}), cache, tmp_path / "fresh").model
    assert not torch.equal(fresh.state_dict()["head.cls.weight"], kept["head.cls.weight"])
    alexnet = tmp_path / "alexnet.safetensors"
    save_weights(SiamFC(ModelConfig(width=0.125)), alexnet)
    with pytest.raises(ConfigError, match="has backbone alexnet, the model mobilenetv1"):
        Trainer(TrainConfig.from_dict({**cfg.to_dict(), "init": str(alexnet)}), cache, tmp_path / "none")
    # a cut that loses the stride is refused with the config, before any run folder exists
    with pytest.raises(ConfigError, match="leaves stride 8"):
        TrainConfig.from_dict({**cfg.to_dict(), "model": {**full, "blocks": 5}})


def test_weight_average_follows_the_steps_and_resumes(cache, tmp_path):
    """ema: after each step the average moves (1 - ema) of the way to the new weights, BatchNorm statistics too;
    ema.safetensors and the checkpoint carry it, and last.safetensors stays the plain weights."""
    trainer = Trainer(tiny_config(steps=3, ema=0.5), cache, tmp_path / "run")
    batch = [torch.stack(t) for t in zip(*[trainer._loader().dataset[i] for i in range(2)], strict=True)]
    expected = None
    for _ in range(3):
        trainer.train_step(batch)
        now = {k: v.detach().clone() for k, v in trainer.model.state_dict().items() if v.is_floating_point()}
        expected = now if expected is None else {k: 0.5 * expected[k] + 0.5 * now[k] for k in now}
    average = trainer.ema.module.state_dict()
    assert any("running_mean" in k for k in expected)
    assert all(torch.allclose(average[k], expected[k], atol=1e-6) for k in expected)
    assert any(not torch.allclose(average[k], now[k]) for k in now)  # an average, not the last step's weights
    trainer.save()
    saved = load_weights(tmp_path / "run" / "ema.safetensors").state_dict()
    assert all(torch.allclose(saved[k], average[k]) for k in expected)
    plain = load_weights(tmp_path / "run" / "last.safetensors").state_dict()
    assert all(torch.allclose(plain[k], now[k]) for k in now)
    resumed = Trainer(tiny_config(steps=3, ema=0.5), cache, tmp_path / "run", resume=True)
    again = resumed.ema.module.state_dict()
    assert all(torch.equal(again[k], average[k]) for k in expected)
    with pytest.raises(ConfigError, match="ema"):
        TrainConfig(ema=1.0)


@pytest.mark.slow
def test_checkpoint_resume_continues_at_same_step(cache, tmp_path):
    out = tmp_path / "run"
    full = Trainer(tiny_config(steps=20), cache, tmp_path / "full")
    full.run()
    part = Trainer(tiny_config(steps=20), cache, out)
    part.run(max_minutes=0.0)  # stops (with a checkpoint) after the first step
    assert part.step == 1
    resumed = Trainer(tiny_config(steps=20), cache, out, resume=True)
    assert resumed.step == 1
    resumed.run()
    assert resumed.step == 20
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)
    assert load_weights(out / "last.safetensors").config == resumed.model.config
    rows = (out / "log.csv").read_text().splitlines()
    assert rows[0].startswith("step,loss") and rows[-1].startswith("20,")
    weights, log = (out / "last.safetensors").read_bytes(), (out / "log.csv").read_text()
    again = Trainer(tiny_config(steps=20), cache, out, resume=True)  # a finished run resumed: no step more
    again.run()
    assert again.step == 20 and (out / "last.safetensors").read_bytes() == weights
    assert (out / "log.csv").read_text() == log


def test_sizes_follow_the_model(cache):
    model = ModelConfig(backbone="mobilenetv2", width=1.0, stride=16, exemplar_size=95, search_size=191)
    z, x, labels, weights = PairDataset(cache, 4, model, PairConfig(), seed=0)[0]
    assert z.shape == (3, 95, 95) and x.shape == (3, 191, 191) and labels.shape == (model.response_size,) * 2


def test_train_config_is_guarded():
    with pytest.raises(ConfigError, match="unknown TrainConfig key"):
        TrainConfig.from_dict({"step": 10})
    with pytest.raises(ConfigError, match="loss"):
        TrainConfig(loss="hinge")
    with pytest.raises(ConfigError, match="steps"):
        TrainConfig(steps=0)
    with pytest.raises(ConfigError, match="finite"):
        TrainConfig(clip_grad=float("nan"))
    with pytest.raises(ConfigError, match="pairs.stride"):
        TrainConfig.from_dict({"pairs": {"stride": 16}})
    with pytest.raises(ConfigError, match="pretrained needs a MobileNet"):
        TrainConfig(pretrained="x.tflite")
    old = TrainConfig.from_dict({"pairs": {"exemplar_size": 127, "search_size": 255, "response_size": 17, "stride": 8}})
    assert old.pairs == PairConfig()  # older configs repeated the model's sizes: accepted when they agree
    with pytest.raises(dataclasses.FrozenInstanceError):
        old.steps = 5


def test_frozen_layers_and_backbone_rate():
    cfg = TrainConfig(model=ModelConfig(backbone="mobilenetv2", width=1.0, neck=32), freeze_layers=2, backbone_lr=0.1)
    model = SiamFC(cfg.model)
    optimizer = make_optimizer(model, cfg)
    frozen = [p for layer in list(model.backbone.features)[:2] for p in layer.parameters()]
    assert frozen and not any(p.requires_grad for p in frozen)
    trained = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert not trained & {id(p) for p in frozen}
    neck = {id(p) for layer in list(model.backbone.features)[-2:] for p in layer.parameters()}
    for g in optimizer.param_groups:
        ids = {id(p) for p in g["params"]}
        assert g["lr_scale"] == (0.1 if g["backbone"] else 1.0)
        assert not (g["backbone"] and ids & neck)  # the new neck trains at the full rate


def test_run_folder_is_never_mixed(dataset, tmp_path, capsys):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(tiny_config(steps=2).to_dict()))
    args = [
        "--data",
        str(dataset),
        "--out",
        str(tmp_path / "run"),
        "--cache",
        str(tmp_path / "c"),
        "--config",
        str(cfg),
    ]
    assert train_main([*args, "--resume"]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    assert train_main(args) == 0
    assert f"weights: {tmp_path / 'run' / 'last.safetensors'}" in capsys.readouterr().out
    assert train_main(args) == 2  # a second run into the same folder
    assert "already holds a run" in capsys.readouterr().err
    mine = tmp_path / "run" / "notes.txt"
    mine.write_text("kept")
    assert train_main([*args, "--overwrite"]) == 0
    assert mine.read_text() == "kept" and (tmp_path / "run" / "log.csv").read_text().count("\n") == 2


def test_holdout_validates_on_videos_it_never_trains_on(dataset, tmp_path, capsys):
    """--holdout: the named sequences give no pairs and are the validation split; an unknown name is refused
    before anything is written."""
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({**tiny_config(steps=2).to_dict(), "val_every": 2}))
    base = ["--data", str(dataset), "--cache", str(tmp_path / "c"), "--config", str(cfg)]
    assert train_main([*base, "--out", str(tmp_path / "bad"), "--holdout", "nosuch"]) == 2
    assert "no sequence named nosuch" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    assert train_main([*base, "--out", str(tmp_path / "run"), "--holdout", "seq2"]) == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["holdout"] == ["seq2"]
    assert "validation AUC" in capsys.readouterr().out
    assert (tmp_path / "run" / "best.safetensors").is_file()  # chosen on the held-apart video
    ds = PairDataset(next((tmp_path / "c").iterdir()), 4, tiny_config().model, exclude=("seq2",))
    assert {folder for folder, _, _ in ds.sequences} == {"0_seq0", "0_seq1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_two_processes(dataset, tmp_path):
    """torchrun-style launch of 2 CPU processes (gloo) for a few steps."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({**tiny_config(steps=4).to_dict()}))
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
        "-m", "train", "--data", str(dataset), "--out", str(tmp_path / "ddp"), "--cache", str(tmp_path / "c"),
        "--config", str(cfg),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=Path(__file__).parent.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "ddp" / "last.safetensors").is_file()
    assert (tmp_path / "ddp" / "log.csv").read_text().splitlines()[-1].startswith("4,")
