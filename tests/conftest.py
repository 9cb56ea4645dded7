"""Shared fixtures: weights of the fixed hand-set backbone, so tests check the pipeline, not learned weights."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # for `synthetic`

from tracker.config import ModelConfig  # noqa: E402
from tracker.model import SiamFC  # noqa: E402
from tracker.weights import save_weights  # noqa: E402

# a small out_scale keeps sigmoid(response) off saturation, so scales stay distinguishable
HANDSET = ModelConfig(backbone="handset", metric="cosine", out_scale=1.5)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Graphs exported and backend timings measured on first use go to one temporary cache per test session,
    never to the user's (a module may point SIAMTRACK_CACHE elsewhere)."""
    monkeypatch.setenv("SIAMTRACK_CACHE", str(tmp_path_factory.getbasetemp() / "siamtrack-cache"))


@pytest.fixture(scope="session")
def handset_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights file of the hand-set feature backbone (no training needed, meaningful features)."""
    path = tmp_path_factory.mktemp("weights") / "handset.safetensors"
    save_weights(SiamFC(HANDSET), path)
    return path


@pytest.fixture(scope="session")
def alexnet_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised small AlexNet model (for shape, export and parity tests)."""
    import torch

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "alexnet.safetensors"
    save_weights(SiamFC(ModelConfig(width=0.25)), path)
    return path


@pytest.fixture(scope="session")
def box_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised small box-head model (``ModelConfig(head="box")``) whose outputs spread enough to
    compare backends on."""
    import torch

    torch.manual_seed(0)
    model = SiamFC(ModelConfig(backbone="mobilenetv2", width=0.35, stride=16, neck=16, head="box", tower=16))
    for conv in (model.head.cls, model.head.box, model.head.quality):
        torch.nn.init.normal_(conv.weight, std=0.3)
    path = tmp_path_factory.mktemp("weights") / "box.safetensors"
    save_weights(model.eval(), path)
    return path
