"""ImageNet-pretrained MobileNets from 8-bit TFLite files (``../shared/pretrained``-style, Apache-2.0).

``read_convs`` parses the flatbuffer with the pure-Python ``tflite`` package and dequantises every convolution
in graph order; ``load_pretrained`` copies them, in the same order, into a :class:`tracker.model.MobileNet`
(which is built from TFLite's own layers: "SAME" padding, ReLU6, BatchNorm already folded). The stem's input
channels are flipped from the files' RGB to the tracker's BGR, so no channel shuffle runs at inference.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tracker.errors import WeightsError
from tracker.model import MobileNet
from tracker.model.backbones import TFConv


@dataclass(frozen=True)
class TFLiteConv:
    """One convolution of a TFLite graph, dequantised: ``weight`` in PyTorch's (out, in / groups, kh, kw)."""

    name: str
    weight: np.ndarray
    bias: np.ndarray
    stride: int
    depthwise: bool
    relu6: bool


def _tflite():
    try:
        import tflite
    except ImportError:
        raise WeightsError("reading TFLite files needs the tflite package: pip install 'siamtrack[train]'") from None
    return tflite


def _dequantise(model, graph, index: int) -> np.ndarray:
    """Tensor ``index`` of ``graph`` as float32: (q - zero_point) * scale, per tensor or per axis."""
    t = graph.Tensors(index)
    buf = model.Buffers(t.Buffer()).DataAsNumpy()
    dtype = {2: np.int32, 3: np.uint8, 9: np.int8, 0: np.float32}[t.Type()]
    data = np.frombuffer(buf.tobytes(), dtype).reshape(t.ShapeAsNumpy()).astype(np.float32)
    q = t.Quantization()
    if q is None or q.ScaleLength() == 0:
        return data
    scale, zero = q.ScaleAsNumpy().astype(np.float32), q.ZeroPointAsNumpy().astype(np.float32)
    if scale.size > 1:  # per-axis: broadcast along the quantised dimension
        shape = [1] * data.ndim
        shape[q.QuantizedDimension()] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return (data - zero) * scale


def read_convs(path: str | Path) -> list[TFLiteConv]:
    """Every CONV_2D and DEPTHWISE_CONV_2D of a TFLite file, in graph order, dequantised to float32."""
    tflite = _tflite()
    try:
        model = tflite.Model.GetRootAsModel(Path(path).read_bytes(), 0)
        graph = model.Subgraphs(0)
    except OSError as e:
        raise WeightsError(f"cannot read {path}: {e.strerror or e}") from None
    except Exception as e:  # a flatbuffer parse error has no common type
        raise WeightsError(f"{path} is not a TFLite model ({type(e).__name__})") from None
    ops = tflite.BuiltinOperator
    convs = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        kind = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if kind not in (ops.CONV_2D, ops.DEPTHWISE_CONV_2D):
            continue
        depthwise = kind == ops.DEPTHWISE_CONV_2D
        opts = (tflite.DepthwiseConv2DOptions if depthwise else tflite.Conv2DOptions)()
        opts.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
        weight = _dequantise(model, graph, op.Inputs(1))  # conv: (O, H, W, I); depthwise: (1, H, W, C)
        weight = weight.transpose(3, 0, 1, 2) if depthwise else weight.transpose(0, 3, 1, 2)
        convs.append(
            TFLiteConv(
                name=graph.Tensors(op.Inputs(1)).Name().decode().split(";")[0],
                weight=np.ascontiguousarray(weight),
                bias=_dequantise(model, graph, op.Inputs(2)),
                stride=opts.StrideH(),
                depthwise=depthwise,
                relu6=opts.FusedActivationFunction() == tflite.ActivationFunctionType.RELU6,
            )
        )
    return convs


def load_pretrained(module: nn.Module, path: str | Path) -> int:
    """Copy a TFLite file's convolutions, in order, into the :class:`TFConv` layers of ``module`` (a MobileNet or
    a network that starts with one); returns how many were loaded. Refuses a file whose layers do not match."""
    layers = [m for m in module.modules() if isinstance(m, TFConv)]
    convs = read_convs(path)
    if len(convs) < len(layers):
        raise WeightsError(f"{path} has {len(convs)} convolutions, the backbone needs {len(layers)}")
    for i, (layer, conv) in enumerate(zip(layers, convs, strict=False)):
        target = layer.conv
        if tuple(target.weight.shape) != conv.weight.shape or target.stride[0] != conv.stride:
            raise WeightsError(
                f"{path}: layer {i} ({conv.name}) is {conv.weight.shape} at stride {conv.stride}, the backbone "
                f"expects {tuple(target.weight.shape)} at stride {target.stride[0]} (wrong file or width?)"
            )
        weight = conv.weight[:, ::-1] if i == 0 else conv.weight  # RGB -> BGR input channels
        with torch.no_grad():
            target.weight.copy_(torch.from_numpy(weight.copy()))
            target.bias.copy_(torch.from_numpy(conv.bias))
    return len(layers)


class Classifier(nn.Module):
    """The whole ImageNet classifier of a MobileNet file (for checking a conversion): BGR 0-255 in, logits out."""

    def __init__(self, version: int, width: float) -> None:
        super().__init__()
        self.body = MobileNet(version, width, stride=32)
        c = self.body.out_channels
        self.last = TFConv(c, 1280, 1) if version == 2 else nn.Identity()
        self.logits = TFConv(1280 if version == 2 else c, 1001, 1, relu6=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.last(self.body(x)).mean((2, 3), keepdim=True)
        return self.logits(f).flatten(1)


def version_and_width(path: str | Path) -> tuple[int, float]:
    """MobileNet version and width named in a ``mobilenet_v<1|2>_<width>_<size>_quant.tflite`` file name."""
    name = Path(path).name
    try:
        return int(name.split("_")[1][1]), float(name.split("_")[2])
    except (IndexError, ValueError):
        raise WeightsError(f"{name}: expected a mobilenet_v<1|2>_<width>_<size>_quant.tflite file name") from None


def classifier(path: str | Path) -> Classifier:
    """The classifier of a ``mobilenet_v{1,2}_{width}_{size}_quant.tflite`` file, weights loaded, in eval mode."""
    net = Classifier(*version_and_width(path))
    load_pretrained(net, path)
    return net.eval()
