"""Backbones: fully convolutional feature extractors shared by the exemplar and search branches.

Each takes float BGR crops in [0, 255], shape (N, 3, H, W), does its own channel order and normalisation, and
declares ``stride`` and ``out_channels``. :func:`build_backbone` maps a config name to a constructor; the geometry
each one produces (padding kind, strides it can be cut at) is declared in :mod:`tracker.config`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError, ModelConfig


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, relu: bool = True, groups: int = 1) -> list[nn.Module]:
    conv = nn.Conv2d(cin, cout, k, stride, groups=groups)
    layers: list[nn.Module] = [conv, nn.BatchNorm2d(cout, eps=1e-6, momentum=0.05)]
    return layers + [nn.ReLU(inplace=True)] if relu else layers


class AlexNet(nn.Module):
    """SiamFC's AlexNet (Bertinetto et al. 2016) with BatchNorm; ``width`` scales every layer's channels.

    127 -> 6x6 and 255 -> 22x22 features, total stride 8, for any odd ``stem_kernel`` from 5 to 11 (the first
    layer's kernel; SiamFC's is 11). ``groups`` splits conv2, conv4 and conv5 into that many groups, as the
    original AlexNet did with 2 (conv1 and conv3 stay dense so that every group sees every channel).
    """

    def __init__(self, width: float = 1.0, stem_kernel: int = 11, groups: int = 1) -> None:
        super().__init__()
        c = [max(8, int(round(n * width / 8)) * 8) for n in (96, 256, 384, 384, 256)]
        self.out_channels, self.stride = c[4], 8
        self.features = nn.Sequential(
            *_conv_bn(3, c[0], stem_kernel, 2), nn.MaxPool2d(3, 2),
            *_conv_bn(c[0], c[1], 5, groups=groups), nn.MaxPool2d(3, 2),
            *_conv_bn(c[1], c[2], 3),
            *_conv_bn(c[2], c[3], 3, groups=groups),
            nn.Conv2d(c[3], c[4], 3, groups=groups),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (x - 128) / 64 keeps the first layer's inputs near unit scale without a dataset mean
        return self.features((x - 128.0) / 64.0)

    def backbone_parameters(self) -> list[nn.Parameter]:
        """The parameters the optimiser treats as backbone (``TrainConfig.backbone_lr``): all of them."""
        return list(self.parameters())


class HandSet(nn.Module):
    """Fixed, hand-set features (no training): grey level and its gradients, 8x8-pooled.

    Fully convolutional like AlexNet (127 -> 6x6, 255 -> 22x22, stride 8), so the tracking pipeline can be
    tested without learned weights.
    """

    out_channels, stride = 3, 8

    def backbone_parameters(self) -> list[nn.Parameter]:
        """All of them: there are none, the features are fixed."""
        return list(self.parameters())

    def __init__(self) -> None:
        super().__init__()
        grey = torch.tensor([0.114, 0.587, 0.299]).view(1, 3, 1, 1)  # BGR
        sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0
        self.register_buffer("grey", grey)
        self.register_buffer("sobel", torch.stack([sobel, sobel.t()]).unsqueeze(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = (x * self.grey).sum(1, keepdim=True) / 255.0
        g = g - F.avg_pool2d(g, 31, 1, 15, count_include_pad=False)  # local contrast, not brightness
        grad = F.conv2d(g, self.sobel, padding=1)
        f = F.avg_pool2d(torch.cat([g, grad.abs()], 1), 8, 8)  # 127 -> 15, 255 -> 31
        return f[:, :, 4:-5, 4:-5]  # same trim on both branches keeps it translation-equivariant: 6 and 22


class TFConv(nn.Module):
    """Convolution with TensorFlow's "SAME" padding, bias and optional ReLU6: the layer the TFLite MobileNets use.

    At stride 2 TF pads asymmetrically ((0, 1) for an even input, (1, 1) for an odd one), so features sit where
    the pretrained weights expect them. The padding depends only on the input size, which is fixed per branch,
    so exported graphs get static pads. ``groups == cin`` makes it depthwise.
    """

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, relu6: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, padding=(k // 2 if stride == 1 else 0), groups=groups)
        self.relu6 = relu6

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.conv.kernel_size[0], self.conv.stride[0]
        if s > 1:
            pads = [_same_pad(int(x.shape[-1]), k, s), _same_pad(int(x.shape[-2]), k, s)]
            x = F.pad(x, (pads[0][0], pads[0][1], pads[1][0], pads[1][1]))
        x = self.conv(x)
        return F.relu6(x) if self.relu6 else x


def _same_pad(n: int, k: int, s: int) -> tuple[int, int]:
    total = max((-(-n // s) - 1) * s + k - n, 0)
    return total // 2, total - total // 2


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expand (ReLU6), 3x3 depthwise (ReLU6), linear 1x1 project, identity shortcut."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int, hidden: int | None = None) -> None:
        super().__init__()
        mid = cin * expand if hidden is None else hidden
        layers = [TFConv(cin, mid, 1)] if expand != 1 else []
        layers += [TFConv(mid, mid, 3, stride, groups=mid), TFConv(mid, cout, 1, relu6=False)]
        self.layers = nn.Sequential(*layers)
        self.shortcut = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x) if self.shortcut else self.layers(x)


def _last_channels(layers: list[nn.Module]) -> int:
    """Output channels of the last convolution in ``layers``."""
    return [m for layer in layers for m in layer.modules() if isinstance(m, nn.Conv2d)][-1].out_channels


def _divisible(c: float, d: int = 8) -> int:
    """TF's channel rounding for width multipliers (nearest multiple of ``d``, never below 90% of ``c``)."""
    out = max(d, int(c + d / 2) // d * d)
    return out + d if out < 0.9 * c else out


# MobileNetV2 (Sandler et al. 2018): (expansion, channels, repeats, stride) per stage, after a 32-channel stem
V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
# MobileNetV1 (Howard et al. 2017): (channels, stride) of each depthwise-separable layer, after a 32-channel stem
V1_LAYERS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), *((512, 1),) * 5, (1024, 2), (1024, 1))


class MobileNet(nn.Module):
    """MobileNetV1 or V2 at a width multiplier, cut where the total stride would exceed ``stride`` (8, 16 or 32
    for the whole network), or after its first ``blocks`` blocks where that keeps the stride. Layers are TFLite's,
    so ImageNet weights load one convolution at a time in order (``train.pretrained``). ``neck > 0`` adds a 1x1
    convolution + BatchNorm to that many channels. Channel counts at a width are rounded to a multiple of
    ``multiple`` (TF's 8; 4 for DeepLabV3's MobileNetV2 0.5 encoder). ``expansions`` (V2): each kept block's hidden
    channels, where a pruned network has fewer than the paper's."""

    def __init__(
        self, version: int, width: float = 1.0, stride: int = 8, neck: int = 0, blocks: int | None = None,
        multiple: int = 8, expansions: tuple[int, ...] | None = None,
    ):  # fmt: skip
        super().__init__()
        c = _divisible(32 * width, multiple)
        layers: list[nn.Module] = [TFConv(3, c, 3, 2)]
        # each block's channels and stride up to the stride, built once the cut and the hidden channels are known:
        # (cin, cout, stride, expansion) for a V2 inverted residual, (cin, cout, stride) for a V1 separable pair
        cut: list[tuple[int, ...]] = []
        total = 2
        if version == 2:
            for t, cout, n, s in V2_STAGES:
                if total * s > stride:
                    break
                total *= s
                cout = _divisible(cout * width, multiple)
                for i in range(n):
                    cut.append((c, cout, s if i == 0 else 1, t))
                    c = cout
        else:
            for cout, s in V1_LAYERS:
                if total * s > stride:
                    break
                total *= s
                cout = _divisible(cout * width, multiple)
                cut.append((c, cout, s))
                c = cout
        if blocks is not None:
            kept = 2 * math.prod(spec[2] for spec in cut[:blocks])
            if blocks > len(cut) or kept != total:
                raise ConfigError(
                    f"MobileNetV{version} at stride {total} has {len(cut)} blocks, and a cut must keep its stride: "
                    f"blocks {blocks} {'is more' if blocks > len(cut) else f'leaves stride {kept}'}"
                )
            cut = cut[:blocks]
        if version == 2:
            hidden = _check_expansions(cut, expansions) if expansions is not None else [None] * len(cut)
            layers += [InvertedResidual(cin, cout, s, t, h) for (cin, cout, s, t), h in zip(cut, hidden, strict=True)]
        else:
            for cin, cout, s in cut:
                layers += [TFConv(cin, cin, 3, s, groups=cin), TFConv(cin, cout, 1)]
        c = _last_channels(layers)
        if neck:
            layers += [nn.Conv2d(c, neck, 1), nn.BatchNorm2d(neck, eps=1e-5, momentum=0.05)]
            c = neck
        self.stride, self.out_channels = total, c
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # BGR in [0, 255] -> the (u8 - 128) / 128 the TFLite files were trained on; the stem's weights are stored in
        # BGR order (train.pretrained flips them), so no channel shuffle runs here
        return self.features((x - 128.0) / 128.0)

    def backbone_parameters(self) -> list[nn.Parameter]:
        """The parameters the optimiser treats as backbone (``TrainConfig.backbone_lr``): TFLite's own layers,
        which ImageNet weights fill; the neck is new and trains like the head."""
        return [p for m in self.modules() if isinstance(m, TFConv) for p in m.parameters()]


def _check_expansions(cut: list[tuple[int, ...]], expansions: tuple[int, ...]) -> tuple[int, ...]:
    """``expansions``, the hidden channels of MobileNetV2's ``cut`` blocks (cin, cout, stride, expansion), one count
    per block, once each is checked against its block."""
    if len(expansions) != len(cut):
        raise ConfigError(f"expansions has {len(expansions)} counts for the {len(cut)} blocks kept after the cut")
    for n, ((cin, _, _, t), hidden) in enumerate(zip(cut, expansions, strict=True), start=1):
        if t == 1 and hidden != cin:
            raise ConfigError(
                f"expansions: block {n} does not expand: its hidden channels are its {cin} inputs, not {hidden}"
            )
        if hidden > cin * t:
            raise ConfigError(f"expansions: block {n} has at most {cin * t} hidden channels, not {hidden}")
    return expansions


# backbone name (tracker.config.BACKBONES, which describes each) -> its constructor from a ModelConfig
BUILDERS = {
    "alexnet": lambda c: AlexNet(c.width, c.stem_kernel, c.groups),
    "handset": lambda c: HandSet(),
    "mobilenetv2": lambda c: MobileNet(2, c.width, c.stride, c.neck, c.blocks, c.channel_multiple, c.expansions),
    "mobilenetv1": lambda c: MobileNet(1, c.width, c.stride, c.neck, c.blocks, c.channel_multiple),
}


def build_backbone(config: ModelConfig) -> nn.Module:
    """The backbone named by ``config.backbone``, cut at ``config.stride``."""
    return BUILDERS[config.backbone](config)
