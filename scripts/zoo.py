"""Reference CNNs for tests and benchmarks, written in plain torch.nn and exported to ONNX.

torchvision is not a dependency, so the classic architectures are spelled out here. Weights are
random but seeded, and every BatchNorm carries non-trivial running statistics and affine
parameters, so a compiler that folds or normalises wrongly gives a visibly different answer.
BatchNormalization nodes are kept in the exported graph (constant folding off) for that reason.

    python scripts/zoo.py [names...] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

ZOO_VERSION = 1  # bump when an architecture or the init changes, so stale cache files are rebuilt
SEED = 0


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act=nn.ReLU,
             dilation: int = 1):
    layers = [nn.Conv2d(cin, cout, k, stride, dilation * (k // 2), dilation, groups, bias=False),
              nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, act()) if act else nn.Sequential(*layers)


class _Residual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, *body: nn.Module):
        super().__init__()
        self.body = nn.Sequential(*body)
        self.short = (nn.Identity() if cin == cout and stride == 1
                      else _conv_bn(cin, cout, 1, stride, act=None))
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.body(x) + self.short(x))


def _resnet_features(depths: list[int], bottleneck: bool, dilations=(1, 1, 1, 1)):
    """ResNet's stem and stages (layers, output channels); a stage dilated by d > 1 keeps its
    input's resolution instead of striding (DeepLab's backbone)."""
    layers, cin = [_conv_bn(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)], 64
    for i, (depth, d) in enumerate(zip(depths, dilations)):
        width = 64 << i
        cout = 4 * width if bottleneck else width
        for j in range(depth):
            stride = 2 if i > 0 and j == 0 and d == 1 else 1
            if bottleneck:
                body = [_conv_bn(cin, width, 1), _conv_bn(width, width, 3, stride, dilation=d),
                        _conv_bn(width, cout, 1, act=None)]
            else:
                body = [_conv_bn(cin, width, 3, stride, dilation=d),
                        _conv_bn(width, cout, 3, act=None, dilation=d)]
            layers.append(_Residual(cin, cout, stride, *body))
            cin = cout
    return layers, cin


def _resnet(depths: list[int], bottleneck: bool) -> nn.Module:
    layers, cin = _resnet_features(depths, bottleneck)
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 1000))


def resnet18() -> nn.Module:
    return _resnet([2, 2, 2, 2], bottleneck=False)


def resnet50() -> nn.Module:
    return _resnet([3, 4, 6, 3], bottleneck=True)


class _InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        layers = [_conv_bn(cin, hidden, 1, act=nn.ReLU6)] if expand != 1 else []
        layers += [_conv_bn(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6),
                   _conv_bn(hidden, cout, 1, act=None)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


def mobilenet_v2() -> nn.Module:
    layers, cin = [_conv_bn(3, 32, 3, 2, act=nn.ReLU6)], 32
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        for i in range(n):
            layers.append(_InvertedResidual(cin, c, s if i == 0 else 1, t))
            cin = c
    return nn.Sequential(*layers, _conv_bn(cin, 1280, 1, act=nn.ReLU6), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(1280, 1000))


class _Fire(nn.Module):
    def __init__(self, cin: int, squeeze: int, expand: int):
        super().__init__()
        self.squeeze = nn.Sequential(nn.Conv2d(cin, squeeze, 1), nn.ReLU())
        self.e1 = nn.Sequential(nn.Conv2d(squeeze, expand, 1), nn.ReLU())
        self.e3 = nn.Sequential(nn.Conv2d(squeeze, expand, 3, padding=1), nn.ReLU())

    def forward(self, x):
        x = self.squeeze(x)
        return torch.cat([self.e1(x), self.e3(x)], 1)


def squeezenet() -> nn.Module:
    """SqueezeNet 1.1; its ceil-mode max pools are part of what it tests."""
    def pool():
        return nn.MaxPool2d(3, 2, ceil_mode=True)
    return nn.Sequential(
        nn.Conv2d(3, 64, 3, 2), nn.ReLU(), pool(), _Fire(64, 16, 64), _Fire(128, 16, 64), pool(),
        _Fire(128, 32, 128), _Fire(256, 32, 128), pool(), _Fire(256, 48, 192),
        _Fire(384, 48, 192), _Fire(384, 64, 256), _Fire(512, 64, 256),
        nn.Conv2d(512, 1000, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def vgg() -> nn.Module:
    """VGG-11 with BatchNorm; a pooled single Linear head keeps the file small."""
    layers, cin = [], 3
    for v in [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers.append(_conv_bn(cin, v, 3))
            cin = v
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 1000))


def lenet5() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5), nn.Tanh(),
        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.Tanh(), nn.Linear(120, 84),
        nn.Tanh(), nn.Linear(84, 10))


class _Inception(nn.Module):
    def __init__(self, cin: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, proj: int):
        super().__init__()

        def conv(i, o, k):
            return nn.Sequential(nn.Conv2d(i, o, k, padding=k // 2), nn.ReLU())
        self.b1 = conv(cin, c1, 1)
        self.b3 = nn.Sequential(conv(cin, c3r, 1), conv(c3r, c3, 3))
        self.b5 = nn.Sequential(conv(cin, c5r, 1), conv(c5r, c5, 5))
        self.bp = nn.Sequential(nn.MaxPool2d(3, 1, 1), conv(cin, proj, 1))

    def forward(self, x):
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(x)], 1)


class _LRNFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, size, alpha, beta, k):
        return nn.functional.local_response_norm(x, size, alpha, beta, k)

    @staticmethod
    def symbolic(g, x, size, alpha, beta, k):
        return g.op("LRN", x, size_i=size, alpha_f=alpha, beta_f=beta, bias_f=k)


class _LRN(nn.LocalResponseNorm):
    """Exports as one ONNX LRN node; torch's own LRN traces into a Pad/AveragePool/If tangle."""

    def forward(self, x):
        return _LRNFunction.apply(x, self.size, self.alpha, self.beta, self.k)


def inception() -> nn.Module:
    """A two-block GoogLeNet in the original style: biased convs, LRN, no BatchNorm."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 7, 2, 3), nn.ReLU(), nn.MaxPool2d(3, 2, 1),
        _LRN(5, 0.5, 0.75, 2.0),  # alpha far above GoogLeNet's 1e-4, so LRN visibly matters
        _Inception(64, 32, 48, 64, 8, 16, 16), _Inception(128, 64, 64, 96, 16, 32, 32),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(224, 1000))


class _SqueezeExcite(nn.Module):
    def __init__(self, c: int, squeeze: int, act, gate):
        super().__init__()
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, squeeze, 1), act(),
                                  nn.Conv2d(squeeze, c, 1), gate())

    def forward(self, x):
        return x * self.gate(x)


class _MBConv(nn.Module):
    """EfficientNet's and MobileNetV3's block: 1x1 expand, k x k depthwise, squeeze-excite (when
    ``squeeze``), 1x1 project, residual when the shape allows."""

    def __init__(self, cin: int, hidden: int, cout: int, k: int, stride: int, act, gate,
                 squeeze: int):
        super().__init__()
        layers = [_conv_bn(cin, hidden, 1, act=act)] if hidden != cin else []
        layers.append(_conv_bn(hidden, hidden, k, stride, groups=hidden, act=act))
        if squeeze:
            layers.append(_SqueezeExcite(hidden, squeeze, act, gate))
        self.body = nn.Sequential(*layers, _conv_bn(hidden, cout, 1, act=None))
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


def efficientnet() -> nn.Module:
    """EfficientNet-B0's stem and first five stages: SiLU, squeeze-excite, 5x5 depthwise."""
    layers, cin = [_conv_bn(3, 32, 3, 2, act=nn.SiLU)], 32
    for expand, k, stride, c, n in [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2),
                                    (6, 3, 2, 80, 3), (6, 5, 1, 112, 3)]:
        for i in range(n):
            layers.append(_MBConv(cin, cin * expand, c, k, stride if i == 0 else 1, nn.SiLU,
                                  nn.Sigmoid, max(4, cin // 4)))
            cin = c
    return nn.Sequential(*layers, _conv_bn(cin, 640, 1, act=nn.SiLU), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(640, 1000))


def mobilenet_v3() -> nn.Module:
    """MobileNetV3-Small: hard-swish, squeeze-excite gated by hard-sigmoid, 5x5 depthwise."""
    hs, re = nn.Hardswish, nn.ReLU
    layers, cin = [_conv_bn(3, 16, 3, 2, act=hs)], 16
    for k, hidden, c, se, act, stride in [
            (3, 16, 16, True, re, 2), (3, 72, 24, False, re, 2), (3, 88, 24, False, re, 1),
            (5, 96, 40, True, hs, 2), (5, 240, 40, True, hs, 1), (5, 240, 40, True, hs, 1),
            (5, 120, 48, True, hs, 1), (5, 144, 48, True, hs, 1), (5, 288, 96, True, hs, 2),
            (5, 576, 96, True, hs, 1), (5, 576, 96, True, hs, 1)]:
        squeeze = -(-hidden // 32) * 8 if se else 0  # hidden / 4, rounded up to a multiple of 8
        layers.append(_MBConv(cin, hidden, c, k, stride, act, nn.Hardsigmoid, squeeze))
        cin = c
    return nn.Sequential(*layers, _conv_bn(cin, 576, 1, act=hs), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(576, 1024), hs(), nn.Linear(1024, 1000))


class _ShuffleUnit(nn.Module):
    """ShuffleNetV2's unit: a channel split (or, downsampling, two strided branches), a concat and
    the channel shuffle (reshape, transpose, reshape)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        half = cout // 2
        self.stride = stride
        self.left = nn.Sequential(
            _conv_bn(cin, cin, 3, stride, groups=cin, act=None),
            _conv_bn(cin, half, 1)) if stride > 1 else None
        cb = cin if stride > 1 else half
        self.right = nn.Sequential(_conv_bn(cb, half, 1),
                                   _conv_bn(half, half, 3, stride, groups=half, act=None),
                                   _conv_bn(half, half, 1))

    def forward(self, x):
        if self.stride > 1:
            y = torch.cat([self.left(x), self.right(x)], 1)
        else:
            a, b = x.chunk(2, dim=1)
            y = torch.cat([a, self.right(b)], 1)
        n, c, h, w = y.shape
        return y.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)


def shufflenet_v2() -> nn.Module:
    """ShuffleNetV2 1.0x: 116, 232 and 464 channels, none a whole number of vectors."""
    layers, cin = [_conv_bn(3, 24, 3, 2), nn.MaxPool2d(3, 2, 1)], 24
    for c, n in [(116, 4), (232, 8), (464, 4)]:
        for i in range(n):
            layers.append(_ShuffleUnit(cin, c, 2 if i == 0 else 1))
            cin = c
    return nn.Sequential(*layers, _conv_bn(cin, 1024, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(1024, 1000))


def _grouped_resnet(stem: list, cin: int, stages, first_stride: int) -> nn.Module:
    """Bottleneck residual stages of (width, depth, out channels, groups of the 3x3 conv)."""
    layers = list(stem)
    for i, (width, depth, cout, groups) in enumerate(stages):
        for j in range(depth):
            stride = (first_stride if i == 0 else 2) if j == 0 else 1
            body = [_conv_bn(cin, width, 1), _conv_bn(width, width, 3, stride, groups=groups),
                    _conv_bn(width, cout, 1, act=None)]
            layers.append(_Residual(cin, cout, stride, *body))
            cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 1000))


def resnext() -> nn.Module:
    """ResNeXt-50 32x4d's stages, one block each: 32 groups of 4, 8, 16 and 32 channels."""
    return _grouped_resnet([_conv_bn(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)], 64,
                           [(128, 1, 256, 32), (256, 1, 512, 32), (512, 1, 1024, 32),
                            (1024, 1, 2048, 32)], first_stride=1)


def regnet() -> nn.Module:
    """RegNetX-400MF's widths, fewer blocks: groups of 16 channels (32, 64, 160, 384 wide)."""
    return _grouped_resnet([_conv_bn(3, 32, 3, 2)], 32,
                           [(32, 1, 32, 2), (64, 2, 64, 4), (160, 3, 160, 10), (384, 2, 384, 24)],
                           first_stride=2)


def m5() -> nn.Module:
    """M5 (Dai et al., 2017), a 1-D CNN on raw audio: 0.5 s at 16 kHz -> 35 keywords."""
    def block(cin, cout, k, stride=1):
        return [nn.Conv1d(cin, cout, k, stride), nn.BatchNorm1d(cout), nn.ReLU(), nn.MaxPool1d(4)]

    return nn.Sequential(*block(1, 128, 80, 4), *block(128, 128, 3), *block(128, 256, 3),
                         *block(256, 512, 3), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
                         nn.Linear(512, 35))


class _LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of NCHW, as ConvNeXt writes it: a permute to channels-last and
    back."""

    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class _ConvNeXtBlock(nn.Module):
    """A 7x7 depthwise conv, then LayerNorm and a 4x MLP with GELU over channels-last pixels, a
    layer scale and the residual."""

    def __init__(self, c: int):
        super().__init__()
        self.dw = nn.Conv2d(c, c, 7, 1, 3, groups=c)
        self.mlp = nn.Sequential(nn.LayerNorm(c, eps=1e-6), nn.Linear(c, 4 * c), nn.GELU(),
                                 nn.Linear(4 * c, c))
        self.gamma = nn.Parameter(torch.empty(c))  # drawn in build()

    def forward(self, x):
        return x + (self.mlp(self.dw(x).permute(0, 2, 3, 1)) * self.gamma).permute(0, 3, 1, 2)


def convnext() -> nn.Module:
    """ConvNeXt-T's stem, widths and downsampling, one block per stage."""
    layers, cin = [nn.Conv2d(3, 96, 4, 4), _LayerNorm2d(96, eps=1e-6)], 96
    for c in (96, 192, 384, 768):
        if c != cin:
            layers += [_LayerNorm2d(cin, eps=1e-6), nn.Conv2d(cin, c, 2, 2)]
        layers.append(_ConvNeXtBlock(c))
        cin = c
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.LayerNorm(cin, eps=1e-6), nn.Linear(cin, 1000))


def _norm_relu(c: int) -> list[nn.Module]:
    return [nn.InstanceNorm2d(c, affine=True), nn.ReLU()]


class _ReflectResidual(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), *_norm_relu(c),
                                  nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3),
                                  nn.InstanceNorm2d(c, affine=True))

    def forward(self, x):
        return x + self.body(x)


def cyclegan() -> nn.Module:
    """CycleGAN's ResNet generator at half width with 3 residual blocks: reflection pads, instance
    norms, transposed convs and a 7x7 conv to RGB."""
    return nn.Sequential(
        nn.ReflectionPad2d(3), nn.Conv2d(3, 32, 7), *_norm_relu(32),
        nn.Conv2d(32, 64, 3, 2, 1), *_norm_relu(64), nn.Conv2d(64, 128, 3, 2, 1), *_norm_relu(128),
        *[_ReflectResidual(128) for _ in range(3)],
        nn.ConvTranspose2d(128, 64, 3, 2, 1, output_padding=1), *_norm_relu(64),
        nn.ConvTranspose2d(64, 32, 3, 2, 1, output_padding=1), *_norm_relu(32),
        nn.ReflectionPad2d(3), nn.Conv2d(32, 3, 7), nn.Tanh())


class _UNet(nn.Module):
    """Four levels of two 3x3 conv-BN-ReLU each; max-pool down, 2x2 transposed conv up, skip
    concats; a 1x1 conv to one mask channel."""

    def __init__(self, widths=(32, 64, 128, 256)):
        super().__init__()
        self.down, cin = nn.ModuleList(), 3
        for c in widths:
            self.down.append(nn.Sequential(_conv_bn(cin, c, 3), _conv_bn(c, c, 3)))
            cin = c
        self.up, self.merge = nn.ModuleList(), nn.ModuleList()
        for c in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(cin, c, 2, 2))
            self.merge.append(nn.Sequential(_conv_bn(2 * c, c, 3), _conv_bn(c, c, 3)))
            cin = c
        self.head = nn.Conv2d(cin, 1, 1)

    def forward(self, x):
        skips = []
        for i, level in enumerate(self.down):
            x = level(nn.functional.max_pool2d(x, 2) if i else x)
            skips.append(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips[:-1])):
            x = merge(torch.cat([up(x), skip], 1))
        return self.head(x)


def unet() -> nn.Module:
    """U-Net for segmentation (image sizes divisible by 8)."""
    return _UNet()


class _DeepLab(nn.Module):
    """DeepLabV3: a backbone at output stride 8, then atrous spatial pyramid pooling (a 1x1 conv,
    dilated 3x3 convs and the image mean broadcast back, concatenated and projected), a 1x1
    classifier, and a bilinear upsampling of the class scores to the input's size."""

    def __init__(self, rates=(6, 12, 18), width: int = 128, classes: int = 21):
        super().__init__()
        layers, cin = _resnet_features([2, 2, 2, 2], bottleneck=False, dilations=(1, 1, 2, 4))
        self.backbone = nn.Sequential(*layers)
        self.branches = nn.ModuleList([_conv_bn(cin, width, 1)] + [
            _conv_bn(cin, width, 3, dilation=r) for r in rates])
        self.image = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, width, 1), nn.ReLU())
        self.project = _conv_bn(width * (len(rates) + 2), width, 1)
        self.classify = nn.Conv2d(width, classes, 1)

    def forward(self, x):
        f = self.backbone(x)
        mean = self.image(f).expand(-1, -1, f.shape[2], f.shape[3])
        y = self.project(torch.cat([b(f) for b in self.branches] + [mean], 1))
        return nn.functional.interpolate(self.classify(y), size=x.shape[2:], mode="bilinear",
                                         align_corners=False)


def deeplab() -> nn.Module:
    """DeepLabV3 on ResNet-18 for semantic segmentation (its last two stages dilated by 2 and 4,
    ASPP rates 6, 12 and 18), 21 classes."""
    return _DeepLab()


MODELS = {f.__name__: f for f in
          [resnet18, resnet50, mobilenet_v2, squeezenet, vgg, lenet5, inception, efficientnet,
           mobilenet_v3, shufflenet_v2, resnext, regnet, m5, convnext, cyclegan, unet, deeplab]}
_SHAPES = {"lenet5": (1, 1, 32, 32), "inception": (1, 3, 112, 112), "m5": (1, 1, 8000),
           "cyclegan": (1, 3, 128, 128), "unet": (1, 3, 128, 128)}


def input_shape(name: str, size: tuple[int, int] | None = None) -> tuple[int, ...]:
    """The model's input shape; ``size`` (H, W; a length for the 1-D m5) replaces its image size
    (the nets pool globally, so any size from about 32 up works)."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    shape = _SHAPES.get(name, (1, 3, 224, 224))
    return shape if size is None else (*shape[:2], *size)


@torch.no_grad()
def build(name: str) -> nn.Module:
    """The model with seeded random weights, in eval mode; independent of the global RNG."""
    model = MODELS[name]()
    gen = torch.Generator().manual_seed(SEED)
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            # fan-in He init keeps activations O(1) through deep stacks
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu", generator=gen)
            if m.bias is not None:
                nn.init.uniform_(m.bias, -0.1, 0.1, generator=gen)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.uniform_(m.weight, 0.5, 1.5, generator=gen)
            nn.init.uniform_(m.bias, -0.2, 0.2, generator=gen)
            m.running_mean.uniform_(-0.5, 0.5, generator=gen)
            m.running_var.uniform_(0.5, 2.0, generator=gen)
        elif isinstance(m, (nn.LayerNorm, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.uniform_(m.weight, 0.5, 1.5, generator=gen)
            nn.init.uniform_(m.bias, -0.2, 0.2, generator=gen)
        elif isinstance(m, _ConvNeXtBlock):
            nn.init.uniform_(m.gamma, 0.2, 0.8, generator=gen)
    return model.eval()


def sample_input(name: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """A fixed random input of the model's shape."""
    gen = torch.Generator().manual_seed(SEED + 1)
    return torch.randn(input_shape(name, size), generator=gen).numpy()


def _export(name: str, path: Path, size: tuple[int, int] | None = None) -> None:
    """Export to a temp file, check it against torch in onnxruntime, then move it into place."""
    import onnxruntime as ort

    model, x = build(name), torch.from_numpy(sample_input(name, size))
    fd, tmp = tempfile.mkstemp(suffix=".onnx.tmp", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the legacy-exporter notice
            torch.onnx.export(model, x, tmp, dynamo=False, opset_version=17,
                              do_constant_folding=False,
                              input_names=["input"], output_names=["output"])
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(tmp, opts, providers=["CPUExecutionProvider"])
        got = sess.run(None, {"input": x.numpy()})[0]
        with torch.no_grad():
            ref = model(x).numpy()
        err = float(np.abs(got - ref).max() / np.abs(ref).max())
        if not err < 1e-5:
            raise RuntimeError(f"{name}: onnxruntime differs from torch (relative error {err:.2e})")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def default_cache_dir() -> Path:
    """Where generated reference models are cached: $TVMCONV_CACHE, else ~/.cache/tvmconv/models."""
    env = os.environ.get("TVMCONV_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "tvmconv" / "models"


def model_path(name: str, cache_dir: Path | None = None,
               size: tuple[int, int] | None = None) -> Path:
    """The cached ONNX file for `name` (at image ``size`` if given), built on first use."""
    input_shape(name, size)  # validates the name
    cache_dir = default_cache_dir() if cache_dir is None else cache_dir
    tag = "" if size is None else "-" + "x".join(str(d) for d in size)
    path = Path(cache_dir) / f"{name}{tag}-v{ZOO_VERSION}.onnx"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _export(name, path, size)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the reference ONNX models.")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"models to build (default: all of {', '.join(MODELS)})")
    parser.add_argument("--out", type=Path, help="cache folder (default: $TVMCONV_CACHE or "
                        "~/.cache/tvmconv/models)")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    for name in args.names or MODELS:
        start = time.perf_counter()
        path = model_path(name, args.out)
        size = path.stat().st_size / 2**20
        print(f"{name:13s} {size:7.1f} MiB {time.perf_counter() - start:6.1f} s  {path}")


if __name__ == "__main__":
    main()
