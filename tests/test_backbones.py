"""Backbones as parts: geometry from ModelConfig, labels aligned with responses, TFLite import, export parity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tracker.config import BACKBONES, ConfigError, ModelConfig
from tracker.errors import WeightsError
from tracker.model import MobileNet, SiamFC, inference_form
from tracker.model.backbones import TFConv, _same_pad
from train.labels import make_labels
from train.pairs import PairConfig
from train.pretrained import TFLiteConv, load_pretrained

PRETRAINED = Path(__file__).resolve().parents[2] / "shared" / "pretrained"

CONFIGS = [
    ModelConfig(backbone="alexnet", width=0.25),
    ModelConfig(backbone="handset"),
    ModelConfig(backbone="mobilenetv2", width=1.0),
    ModelConfig(backbone="mobilenetv2", width=1.0, stride=16, neck=32),
    ModelConfig(backbone="mobilenetv1", width=0.25),
    ModelConfig(backbone="mobilenetv1", width=0.5, stride=16),
]


def test_every_backbone_is_covered():
    assert {c.backbone for c in CONFIGS} == set(BACKBONES)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.backbone}-s{c.stride}")
def test_response_size_and_stride_come_from_the_backbone(cfg):
    torch.manual_seed(0)
    model = SiamFC(cfg).eval()
    assert model.backbone.stride == cfg.stride
    with torch.no_grad():
        kernel = model.embed(torch.rand(1, 3, cfg.exemplar_size, cfg.exemplar_size) * 255)
        response = model.score(kernel, torch.rand(2, 3, cfg.search_size, cfg.search_size) * 255)["response"]
    assert response.shape == (2, 1, cfg.response_size, cfg.response_size)
    assert make_labels(cfg, PairConfig(), (0.0, 0.0), 1.0)[0].shape == response.shape[-2:]


@pytest.mark.parametrize(
    "cfg", [c for c in CONFIGS if c.backbone != "handset"], ids=lambda c: f"{c.backbone}-s{c.stride}"
)
@pytest.mark.parametrize("shift", [(0, 0), (2, -1), (-3, 2)])
def test_labels_line_up_with_the_response(cfg, shift):
    """A textured patch on mid-grey, at the centre of the exemplar and ``shift`` strides off the centre of the
    search crop. With every bias at zero, mid-grey gives zero features at every layer, exactly what zero padding
    gives, so the exemplar's features reappear unchanged in the search features: the response (negative
    Euclidean distance) peaks at distance 0, which must be the centre of the labels' positives. The crops are
    larger than the defaults so that no feature next to the exemplar's border sees the patch (receptive fields
    reach over 100 pixels at stride 16)."""
    torch.manual_seed(0)
    sizes = {"exemplar_size": 383, "search_size": 639}
    cfg = ModelConfig(**{**cfg.to_dict(), "metric": "euclidean", "out_scale": 1.0, **sizes})
    model = SiamFC(cfg).eval()
    he_init(model)
    rng = np.random.default_rng(1)
    patch = rng.integers(0, 256, (24, 24, 3)).astype(np.float32)
    dx, dy = shift[0] * cfg.stride, shift[1] * cfg.stride
    exemplar = place(patch, cfg.exemplar_size, 0, 0)
    search = place(patch, cfg.search_size, dx, dy)
    with torch.no_grad():
        response = model(exemplar, search)["response"][0, 0].numpy()
    labels, _ = make_labels(cfg, PairConfig(radius=1.0), (float(dx), float(dy)), 1.0)
    assert labels.sum() == 1
    assert np.unravel_index(response.argmax(), response.shape) == tuple(np.argwhere(labels > 0)[0])
    assert abs(response.max()) < 1e-3 * abs(response.min())  # an exact match, not a near one


def he_init(model: torch.nn.Module) -> None:
    """He-initialised convolutions with zero biases: deep random features that neither vanish nor saturate."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                m.bias.zero_()


def place(patch: np.ndarray, side: int, dx: int, dy: int) -> torch.Tensor:
    """A ``side`` x ``side`` mid-grey (128) crop with ``patch`` centred at the crop centre plus (dx, dy)."""
    img = np.full((side, side, 3), 128.0, np.float32)
    c = (side - 1) // 2
    h = patch.shape[0] // 2
    img[c + dy - h : c + dy + h, c + dx - h : c + dx + h] = patch
    return torch.from_numpy(img).permute(2, 0, 1)[None]


def test_same_padding_is_tensorflows():
    # TF "SAME": out = ceil(n / s), total pad = (out - 1) * s + k - n, the odd pixel on the right/bottom
    assert _same_pad(224, 3, 2) == (0, 1)
    assert _same_pad(127, 3, 2) == (1, 1)
    assert _same_pad(64, 3, 2) == (0, 1)
    assert _same_pad(10, 1, 2) == (0, 0)
    layer = TFConv(1, 1, 3, 2, relu6=False)
    with torch.no_grad():
        layer.conv.weight.fill_(1.0)
        layer.conv.bias.zero_()
    x = torch.arange(16.0).view(1, 1, 4, 4)
    out = layer(x)[0, 0]
    # output (0, 0) covers rows/cols 0..2 (no pad on the left/top); output (1, 1) covers 2..3 plus one zero pad
    assert out[0, 0] == x[0, 0, 0:3, 0:3].sum() and out[1, 1] == x[0, 0, 2:4, 2:4].sum()


def test_relu6_and_linear_layers():
    layer = TFConv(1, 1, 1, relu6=True)
    with torch.no_grad():
        layer.conv.weight.fill_(1.0)
        layer.conv.bias.zero_()
    x = torch.tensor([-3.0, 2.0, 9.0]).view(1, 1, 1, 3)
    assert layer(x).flatten().tolist() == [0.0, 2.0, 6.0]
    layer.relu6 = False
    assert layer(x).flatten().tolist() == [-3.0, 2.0, 9.0]


def test_tflite_convolutions_load_in_order(monkeypatch):
    """``load_pretrained`` fills the backbone's convolutions in graph order (stem, depthwise, pointwise) and flips
    the stem's RGB input channels to BGR: check against a direct computation of the same three layers."""
    net = MobileNet(1, 0.25, stride=2)  # stem 3 -> 8 at stride 2, then depthwise 8 and pointwise 8 -> 16
    rng = np.random.default_rng(0)
    shapes = [(8, 3, 3, 3), (8, 1, 3, 3), (16, 8, 1, 1)]
    weights = [rng.normal(size=s).astype(np.float32) for s in shapes]
    biases = [rng.normal(size=s[0]).astype(np.float32) for s in shapes]
    fake = [
        TFLiteConv(f"conv{i}", w, b, 2 if i == 0 else 1, i == 1, True)
        for i, (w, b) in enumerate(zip(weights, biases, strict=True))
    ]
    monkeypatch.setattr("train.pretrained.read_convs", lambda path: fake)
    assert load_pretrained(net, "fake.tflite") == 3
    bgr = torch.rand(1, 3, 9, 9) * 255
    w, b = [torch.from_numpy(x) for x in weights], [torch.from_numpy(x) for x in biases]
    x = F.relu6(F.conv2d(F.pad((bgr[:, [2, 1, 0]] - 128) / 128, (1, 1, 1, 1)), w[0], b[0], 2))  # RGB weights
    x = F.relu6(F.conv2d(x, w[1], b[1], padding=1, groups=8))
    expected = F.relu6(F.conv2d(x, w[2], b[2]))
    assert torch.allclose(net(bgr), expected, atol=1e-4)


def test_a_mismatched_file_is_refused(monkeypatch):
    from tracker.errors import WeightsError

    fake = [TFLiteConv("stem", np.zeros((16, 3, 3, 3), np.float32), np.zeros(16, np.float32), 2, False, True)]
    fake = fake * 3  # enough layers, but the stem has 16 channels where width 0.25 has 8
    monkeypatch.setattr("train.pretrained.read_convs", lambda path: fake)
    with pytest.raises(WeightsError, match="layer 0"):
        load_pretrained(MobileNet(1, 0.25, stride=2), "fake.tflite")


def test_inference_form_folds_the_neck():
    torch.manual_seed(0)
    model = SiamFC(ModelConfig(backbone="mobilenetv2", width=1.0, neck=32))
    model.train()
    model(torch.rand(4, 3, 127, 127) * 255, torch.rand(4, 3, 255, 255) * 255)  # BatchNorm statistics move
    model.eval()
    x = torch.rand(2, 3, 255, 255) * 255
    with torch.no_grad():
        assert torch.allclose(inference_form(model.backbone)(x), model.backbone(x), rtol=1e-4, atol=1e-4)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in inference_form(model.backbone).modules())


def test_a_block_cut_keeps_the_stride_and_drops_the_last_blocks():
    full = MobileNet(2, 1.0, stride=16, neck=32)
    cut = MobileNet(2, 1.0, stride=16, neck=32, blocks=10)  # without the 96-channel stage
    assert cut.stride == full.stride == 16 and cut.out_channels == 32
    assert len(cut.features) == len(full.features) - 3
    x = torch.rand(1, 3, 255, 255) * 255
    with torch.no_grad():
        assert cut(x).shape == full(x).shape == (1, 32, 16, 16)
    assert MobileNet(1, 0.25, stride=16, blocks=6).out_channels == 128  # V1: a block is a separable pair
    with pytest.raises(ConfigError, match="leaves stride 8"):
        MobileNet(2, 1.0, stride=16, blocks=6)  # the last stride-2 block is the 7th
    with pytest.raises(ConfigError, match="has 13 blocks"):
        SiamFC(ModelConfig(backbone="mobilenetv2", width=1.0, stride=16, blocks=14))
    for bad in (0, 2.5, True):
        with pytest.raises(ConfigError, match="blocks"):
            ModelConfig(backbone="mobilenetv2", width=1.0, blocks=bad)
    with pytest.raises(ConfigError, match="blocks"):
        ModelConfig(backbone="alexnet", blocks=3)


def test_channel_multiple_rounds_a_width():
    """TF's rounding (multiples of 8) makes MobileNetV2 0.5's 12-channel stage 16; DeepLabV3's 0.5 encoder keeps
    12 (multiples of 4), so its file loads only into a network built with ``channel_multiple=4``."""

    def widths(net):
        return [m.out_channels for m in net.modules() if isinstance(m, torch.nn.Conv2d)]

    assert widths(MobileNet(2, 0.5, stride=16))[:6] == [16, 16, 8, 48, 48, 16]
    assert widths(MobileNet(2, 0.5, stride=16, multiple=4))[:6] == [16, 16, 8, 48, 48, 12]
    assert widths(MobileNet(2, 1.0, stride=16, multiple=4)) == widths(MobileNet(2, 1.0, stride=16))
    cfg = ModelConfig(backbone="mobilenetv2", width=0.5, stride=16, neck=64, head="box", channel_multiple=4)
    older = {k: v for k, v in cfg.to_dict().items() if k != "channel_multiple"}  # a file from before the field
    assert ModelConfig.from_dict(older).channel_multiple == 8
    with torch.no_grad():
        assert SiamFC(cfg).backbone(torch.rand(1, 3, 255, 255) * 255).shape == (1, 64, 16, 16)
    for bad in (3, 0, 16, True):
        with pytest.raises(ConfigError, match="channel_multiple"):
            ModelConfig(backbone="mobilenetv2", width=0.5, channel_multiple=bad)


def test_expansions_rebuild_a_pruned_mobilenetv2(tmp_path):
    """A MobileNetV2 with fewer hidden channels in some blocks (``ModelConfig.expansions``) keeps its input, output
    and every block's outer channels; its weights file rebuilds that very network, and counts that cannot be are
    refused by name."""
    from tracker.weights import load_weights, save_weights

    full = ModelConfig(backbone="mobilenetv2", width=0.5, stride=16, neck=32, head="box", tower=32)
    hidden = [m.layers[-1].conv.in_channels for m in SiamFC(full).backbone.features if hasattr(m, "layers")]
    pruned_counts = [hidden[0], 24, 24] + hidden[3:]
    cfg = ModelConfig.from_dict({**full.to_dict(), "expansions": pruned_counts})  # JSON gives a list
    assert cfg.expansions == tuple(pruned_counts)
    model = SiamFC(cfg).eval()
    blocks = [m for m in model.backbone.features if hasattr(m, "layers")]
    assert [b.layers[-1].conv.in_channels for b in blocks] == pruned_counts
    assert blocks[1].layers[1].conv.groups == 24  # the depthwise convolution follows the expansion
    with torch.no_grad():
        assert model.backbone(torch.rand(1, 3, 255, 255) * 255).shape == (1, 32, 16, 16)
    assert sum(p.numel() for p in model.parameters()) < sum(p.numel() for p in SiamFC(full).parameters())
    save_weights(model, tmp_path / "pruned.safetensors")
    again = load_weights(tmp_path / "pruned.safetensors")
    assert again.config == cfg
    z, x = torch.rand(1, 3, 127, 127) * 255, torch.rand(1, 3, 255, 255) * 255
    with torch.no_grad():
        assert torch.equal(model(z, x)["cls"], again.eval()(z, x)["cls"])
    bad_counts = {
        "counts for the": pruned_counts[:-1],  # one count per block kept
        "at most": [hidden[0], hidden[1] + 8] + hidden[2:],
        "does not expand": [hidden[0] - 8] + hidden[1:],  # the first block has no expansion to prune
    }
    for message, counts in bad_counts.items():
        with pytest.raises(ConfigError, match=message):
            SiamFC(ModelConfig.from_dict({**full.to_dict(), "expansions": counts}))
    for bad in ([], [0], "96", [1.5]):
        with pytest.raises(ConfigError, match="expansions"):
            ModelConfig(backbone="mobilenetv2", width=0.5, expansions=bad)
    with pytest.raises(ConfigError, match="MobileNetV2's"):
        ModelConfig(backbone="mobilenetv1", width=0.5, expansions=[8])


def test_deeplab_encoder_loads_up_to_its_dilated_blocks():
    """DeepLabV3's MobileNetV2 0.5 encoder (output stride 16) fills a stride-16 cut: its dilated blocks come
    after it, and a width-0.5 network with TF's rounding is refused."""
    path = PRETRAINED / "deeplabv3_mnv2_dm05_pascal_quant.tflite"
    if not path.is_file():
        pytest.skip("../shared/pretrained is not here")
    pytest.importorskip("tflite")
    from train.__main__ import pretrained_shape

    shape = pretrained_shape(str(path))
    assert shape == {"width": 0.5, "channel_multiple": 4}
    net = MobileNet(2, shape["width"], stride=16, multiple=shape["channel_multiple"])
    assert load_pretrained(net, path) == 39  # stem, the first block's 2, and 12 blocks of 3
    with pytest.raises(WeightsError, match="wrong file or width"):
        load_pretrained(MobileNet(2, 0.5, stride=16), path)


def test_geometry_is_validated():
    with pytest.raises(ConfigError, match="stride"):
        ModelConfig(backbone="alexnet", stride=16)
    with pytest.raises(ConfigError, match="neck"):
        ModelConfig(backbone="alexnet", neck=32)
    with pytest.raises(ConfigError, match="multiples"):
        ModelConfig(backbone="mobilenetv2", width=1.0, exemplar_size=125)


@pytest.mark.parametrize("name", ["mobilenet_v2_1.0_224_quant.tflite", "mobilenet_v1_0.5_160_quant.tflite"])
def test_converted_classifier_agrees_with_the_tflite_runtime(name):
    """The converted float network gives the TFLite runtime's top-1 class on both check images, with logits close
    to the runtime's (the runtime is 8-bit throughout, so close, not equal)."""
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    if not (PRETRAINED / name).is_file():
        pytest.skip("../shared/pretrained is not here")
    import cv2

    from train.pretrained import classifier

    net = classifier(PRETRAINED / name)
    runtime = litert.Interpreter(model_path=str(PRETRAINED / name), experimental_preserve_all_tensors=True)
    runtime.allocate_tensors()
    size = runtime.get_input_details()[0]["shape"][1]
    # the logits: the softmax's (1, 1001) input
    logits_detail = next(
        t for t in runtime.get_tensor_details() if list(t["shape"]) == [1, 1001] and "Softmax" not in t["name"]
    )
    for image in ("cat_720p.jpg", "hot_dog.jpg"):
        bgr = cv2.resize(cv2.imread(str(PRETRAINED / "check" / image)), (size, size), interpolation=cv2.INTER_AREA)
        runtime.set_tensor(runtime.get_input_details()[0]["index"], bgr[None, :, :, ::-1].copy())
        runtime.invoke()
        scale, zero = logits_detail["quantization"]
        expected = (runtime.get_tensor(logits_detail["index"])[0].astype(np.float32) - zero) * scale
        with torch.no_grad():
            logits = net(torch.from_numpy(bgr).permute(2, 0, 1)[None].float())[0].numpy()
        assert logits.argmax() == expected.argmax()
        top = np.argsort(expected)[-5:]
        assert np.abs(logits[top] - expected[top]).max() < 0.1 * (expected.max() - expected.min())


@pytest.mark.parametrize("cfg", [c for c in CONFIGS if c.backbone.startswith("mobilenet")], ids=lambda c: c.backbone)
def test_export_matches_torch(cfg, tmp_path):
    """Every MobileNet exports to static ONNX graphs whose responses match the torch backend (fp32)."""
    pytest.importorskip("onnxruntime")
    from tracker.backends.exported import export_graphs
    from tracker.backends.onnx_backend import OnnxBackend
    from tracker.backends.torch_backend import TorchBackend
    from tracker.weights import load_weights, save_weights

    torch.manual_seed(0)
    model = SiamFC(cfg)
    he_init(model)
    save_weights(model, tmp_path / "w.safetensors")
    export_graphs(tmp_path / "w.safetensors", tmp_path / "graphs")
    rng = np.random.default_rng(0)
    exemplars = rng.integers(0, 256, (1, cfg.exemplar_size, cfg.exemplar_size, 3), dtype=np.uint8)
    search = rng.integers(0, 256, (3, cfg.search_size, cfg.search_size, 3), dtype=np.uint8)
    ort = OnnxBackend(tmp_path / "graphs", threads=1)
    ref = TorchBackend(load_weights(tmp_path / "w.safetensors"), "cpu", "fp32")
    expected = ref.score(ref.embed(exemplars), search)["response"]
    actual = ort.score(ort.embed(exemplars), search)["response"]
    assert actual.shape == expected.shape == (3, cfg.response_size, cfg.response_size)
    assert np.abs(actual - expected).max() <= 1e-4 * (expected.max() - expected.min())


@pytest.mark.parametrize(
    "name", ["mobilenetv2_s8.safetensors", "mobilenetv2_s16.safetensors", "mobilenetv1_s16.safetensors"]
)
def test_shipped_mobilenet_weights_rebuild_and_track(name):
    """The MobileNet alternatives in weights/ with the classic head rebuild their own model and track a moving
    square."""
    from synthetic import make_sequence

    from tracker import SiamFCTracker
    from tracker.weights import load_weights

    path = Path(__file__).resolve().parents[1] / "weights" / name
    model = load_weights(path)
    assert model.config.backbone == name.split("_")[0] and model.config.stride in (8, 16)
    assert model.config.head == "fc"
    frames, boxes = make_sequence(6, size=(320, 240), seed=0)
    tracker = SiamFCTracker(path, backend="torch")
    tracker.init(frames[0], tuple(boxes[0]))
    for frame in frames[1:]:
        result = tracker.update(frame)
        assert np.isfinite(result.box).all() and result.box[2] > 0 and result.box[3] > 0
