"""Pairs around any region (train.regions): the region's box follows every transform, a region is followed into a
neighbouring frame by its measured motion, and held-apart videos give no pairs."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic import make_sequence

from tracker.config import ConfigError, ModelConfig
from tracker.scene import texture
from train import regions
from train.curate import curate
from train.pairs import KINDS, PairConfig, PairDataset

ONLY = {kind: {"p_paste": 0.0, "p_neg": 0.0, "p_self": 0.0, "p_region": 0.0} for kind in KINDS}
for kind in ("paste", "neg", "self", "region"):
    ONLY[kind][f"p_{kind}"] = 1.0


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    for k in range(2):
        frames, boxes = make_sequence(12, size=(320, 240), seed=k)
        (root / f"seq{k}" / "img").mkdir(parents=True)
        for i, f in enumerate(frames):
            cv2.imwrite(str(root / f"seq{k}" / "img" / f"{i + 1:06d}.jpg"), f)
        (root / f"seq{k}" / "groundtruth.txt").write_text("\n".join(",".join(f"{v:.2f}" for v in b) for b in boxes))
    return curate([root], tmp_path_factory.mktemp("cache"), workers=1)


def test_manifest_records_scale_and_centre(cache):
    frame = json.loads((cache / "manifest.json").read_text())["sequences"][0]["frames"][0]
    name, w, h, scale, cx, cy = frame
    assert scale > 0 and w > 0 and h > 0 and np.isfinite([cx, cy]).all()


def test_follow_measures_the_motion_of_a_region():
    """Crop b is crop a moved by (7, -4) pixels with the same scale and target centre: the region's centre in b is
    found 7 px right and 4 px up of where a still scene would put it; a region on the target is not followed."""
    rng = np.random.default_rng(0)
    image_a = texture(rng, 351, 351, 8)
    image_b = cv2.warpAffine(image_a, np.float32([[1, 0, 7], [0, 1, -4]]), (351, 351), borderMode=cv2.BORDER_REFLECT)
    region = regions.Region((90.0, 260.0), (90.0, 260.0), (40.0, 30.0), (40.0, 30.0), 60.0)
    entry = ["x.jpg", 50.0, 50.0, 2.0, 100.0, 100.0]
    moved = regions.follow(region, image_a, entry, image_b, entry)
    assert moved is not None
    assert moved.search_center == pytest.approx((97.0, 256.0), abs=0.7)
    assert moved.search_size == pytest.approx((40.0, 30.0))
    on_target = regions.Region((180.0, 170.0), (180.0, 170.0), (40.0, 30.0), (40.0, 30.0), 60.0)
    assert regions.follow(on_target, image_a, entry, image_b, entry) is None


def test_follow_finds_the_scene_behind_a_moving_target(cache):
    """Synthetic sequences have a still background behind a moving target, so where a background region is in
    another frame is known exactly: the followed centre lands within a pixel or two of it."""
    sequences = json.loads((cache / "manifest.json").read_text())["sequences"]
    rng, c, errors = np.random.default_rng(0), 175.0, []
    for t in range(120):
        seq = sequences[t % len(sequences)]
        frames = seq["frames"]
        i = int(rng.integers(0, len(frames) - 3))
        k = i + int(rng.integers(1, 4))
        a, b = (cv2.imread(str(cache / seq["folder"] / frames[n][0])) for n in (i, k))
        region = regions.random_region(rng, 351, 127, 0.3, frames[i])
        moved = regions.follow(region, a, frames[i], b, frames[k])
        if moved is None:
            continue
        scene = (np.array(region.exemplar_center) - c) / frames[i][3] + np.array(frames[i][4:6])
        truth = c + (scene - np.array(frames[k][4:6])) * frames[k][3]
        errors.append(np.hypot(*(np.array(moved.search_center) - truth)))
    assert len(errors) >= 30
    assert np.median(errors) < 1.0 and np.percentile(errors, 90) < 4.0


def test_follow_gives_up_on_a_featureless_patch():
    flat = np.full((351, 351, 3), 120, np.uint8)
    region = regions.Region((175.0, 175.0), (175.0, 175.0), (40.0, 30.0), (40.0, 30.0), 60.0)
    entry = ["x.jpg", 50.0, 50.0, 2.0, 100.0, 100.0]
    assert regions.follow(region, flat, entry, flat, entry) is None


def test_random_region_context_and_place():
    rng = np.random.default_rng(1)
    for _ in range(50):
        r = regions.random_region(rng, 351, 127)
        assert 0.4 * 127 - 1e-6 <= r.context <= 127 + 1e-6
        assert all(abs(v - 175) <= 0.2 * 351 for v in r.exemplar_center)


def test_rotation_keeps_the_centre_and_bounds_the_turned_box():
    image = np.zeros((351, 351, 3), np.uint8)
    r = regions.Region((100.0, 120.0), (100.0, 120.0), (40.0, 10.0), (40.0, 10.0), 30.0)
    turned, r2 = regions.rotate(image, r, 90.0)
    assert r2.search_center == r.search_center and r2.search_size == pytest.approx((10.0, 40.0))
    assert turned.shape == image.shape


@pytest.mark.parametrize("kind", ["self", "region"])
def test_region_pairs_centre_the_box_on_the_exemplars_content(cache, kind):
    """The box head's positives sit where the search crop shows what the exemplar shows: the exemplar's centre
    patch matches the search crop best at the labelled centre (normalised cross-correlation, no augmentation)."""
    model = ModelConfig(backbone="mobilenetv2", head="box", stride=16, neck=64)
    cfg = PairConfig(**ONLY[kind], p_grey=0, p_flip=0, p_occlude=0, scale_range=0, stretch=0, rotation=0,
                     exemplar_jitter=0)  # fmt: skip
    ds = PairDataset(cache, 40, model, cfg, seed=3)
    hits = 0
    for i in range(len(ds)):
        z, x, cls, _, ltrb, _ = (t.numpy() for t in ds[i])
        assert cls.sum() > 0 and np.isfinite(ltrb).all()
        ys, xs = np.nonzero(cls)
        offsets = (np.arange(model.response_size) - (model.response_size - 1) / 2) * model.stride
        cx = (model.search_size - 1) / 2 + offsets[xs].mean() + (ltrb[2][cls > 0] - ltrb[0][cls > 0]).mean() / 2
        cy = (model.search_size - 1) / 2 + offsets[ys].mean() + (ltrb[3][cls > 0] - ltrb[1][cls > 0]).mean() / 2
        patch = z.transpose(1, 2, 0)[44:84, 44:84].mean(2).astype(np.float32)
        search = x.transpose(1, 2, 0).mean(2).astype(np.float32)
        if patch.std() < 3:
            continue  # a flat patch matches anywhere
        score = cv2.matchTemplate(search, patch, cv2.TM_CCOEFF_NORMED)
        py, px = np.unravel_index(score.argmax(), score.shape)
        hits += np.hypot(px + 20 - cx, py + 20 - cy) <= 8
    assert hits >= 0.7 * len(ds)  # the rest: flat patches, which match anywhere


@pytest.mark.parametrize("kind", ["self", "region", "pos"])
def test_region_boxes_off_leaves_region_pairs_without_a_box(cache, kind):
    """PairConfig(region_boxes=False): self and region pairs keep their cls labels and lose their box targets, so
    the box head's loss trains cls on them and nothing else; pairs of the annotated target keep their boxes."""
    import torch

    from train.losses import box_head_loss

    model = ModelConfig(backbone="mobilenetv2", head="box", stride=16, neck=64)
    only = ONLY[kind] if kind != "pos" else ONLY["self"] | {"p_self": 0.0}
    on, off = (PairDataset(cache, 4, model, PairConfig(**only, region_boxes=b), seed=3) for b in (True, False))
    for i in range(len(on)):
        a, b = on[i], off[i]
        assert torch.equal(a[2], b[2]) and a[2].sum() > 0  # the same positives
        assert torch.isfinite(a[4]).all()
        assert torch.isnan(b[4]).all() if kind != "pos" else torch.equal(a[4], b[4])
    labels, weights, boxes, quality = (torch.stack([off[i][k] for i in range(len(off))]) for k in range(2, 6))
    outputs = {"cls": torch.zeros(4, 1, 16, 16, requires_grad=True), "box": torch.ones(4, 4, 16, 16) * 10,
               "quality": torch.zeros(4, 1, 16, 16, requires_grad=True)}  # fmt: skip
    loss = box_head_loss(outputs, labels, weights, boxes, quality)
    loss.backward()
    assert torch.isfinite(loss) and outputs["cls"].grad.abs().sum() > 0
    grad = outputs["quality"].grad  # None where no positive has a box
    assert (grad is not None and bool(grad.abs().sum() > 0)) == (kind == "pos")


def test_held_apart_videos_give_no_pairs(cache):
    model = ModelConfig()
    ds = PairDataset(cache, 4, model, exclude=("seq0",))
    assert [folder for folder, _, _ in ds.sequences] == ["0_seq1"]
    with pytest.raises(ValueError, match="no sequence"):
        PairDataset(cache, 4, model, exclude=("seq0", "seq1"))


def test_pair_shares_are_checked():
    with pytest.raises(ConfigError, match="p_self"):
        PairConfig(p_self=0.6, p_region=0.6)
    assert sum(PairConfig(p_self=0.2).kind_p) == pytest.approx(1.0)
