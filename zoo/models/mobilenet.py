"""MobileNetV2 and MobileNetV3: networks built from depthwise convolutions, for phones.

- `mobilenet_v2`: Sandler, Howard, Zhu, Zhmoginov, Chen (2018), "MobileNetV2: Inverted Residuals and Linear
  Bottlenecks", arXiv:1801.04381. Each block expands its maps t times with a 1x1 convolution, filters each map
  alone (a depthwise 3x3: groups = maps, 9 multiply-adds per output value where a full 3x3 would take 9 x maps),
  and projects back with a 1x1 convolution that has no activation (the linear bottleneck); the residual joins the
  narrow ends (the inverted residual). ReLU6 throughout.
- `mobilenet_v3_large`, `mobilenet_v3_small`: Howard et al. (2019), "Searching for MobileNetV3", arXiv:1905.02244,
  Tables 1 and 2: the V2 block, 3x3 or 5x5 depthwise, with squeeze-and-excitation (a hard-sigmoid gate, the
  squeeze 1/4 of the expanded maps) in some blocks, ReLU in the early blocks and hard-swish (x * ReLU6(x + 3) / 6)
  in the late ones, and a last stage that pools before its 1x1 convolution (an FC layer here) to 1280 (1024) maps.

The layout and attribute names are torchvision's, so its state dicts load key for key. `width_mult` scales every
layer's maps, rounded to multiples of 8 as the papers (and torchvision) do. MobileNetV2's `small_input=True` keeps
the stem and the second stage at stride 1 (total stride 8: a 4x4 last map at 32x32, not 1x1), as the CIFAR-10
MobileNetV2 of kuangliu/pytorch-cifar does; no paper's, and no weight changes shape.

`activation=name` replaces every non-linearity (ReLU6; in V3 ReLU and hard-swish, the stem, the head and SE's inner
ReLU too) with any name in zoo.models.layers.ACTIVATIONS; SE's hard-sigmoid gate stays, as the gate is part of SE.
The default, None, is the paper's. No state dict key changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import NamedTuple

from torch import Tensor, nn

from zoo.models.base import Classifier
from zoo.models.layers import activation_layer, check_activation
from zoo.models.registry import Paper, ParamReference, register_model

SANDLER_2018 = Paper("Sandler, Howard, Zhu, Zhmoginov, Chen", 2018,
                     "MobileNetV2: Inverted Residuals and Linear Bottlenecks", "arXiv:1801.04381")
HOWARD_2019 = Paper("Howard et al.", 2019, "Searching for MobileNetV3", "arXiv:1905.02244")

Norm = Callable[[int], nn.Module]
V3_NORM = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)  # TensorFlow's, which torchvision's V3 weights expect


def make_divisible(value: float, divisor: int = 8) -> int:
    """`value` rounded to the nearest multiple of `divisor` (at least divisor), never below 90% of it: the
    papers' channel rounding (TensorFlow's `_make_divisible`, torchvision's)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def nonlinearity(paper: type[nn.Module], activation: str | None, inplace: bool = True) -> nn.Module:
    """A new `paper` module (the paper's non-linearity) when `activation` is None, else `activation`'s."""
    return paper(inplace=inplace) if activation is None else activation_layer(activation, inplace)


def conv_norm(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1,
              norm: Norm = nn.BatchNorm2d, act: nn.Module | None = None) -> nn.Sequential:
    """Convolution without bias ("same" padding), batch norm, then `act` if any: torchvision's Conv2dNormActivation,
    keys `0.weight`, `1.weight` ... N x in x H x W to N x out x H/stride x W/stride (rounded up)."""
    layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2, groups=groups,
                        bias=False), norm(out_channels)]
    return nn.Sequential(*layers, *([act] if act is not None else []))


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expansion to t x in maps (none when t = 1), depthwise 3x3 (stride s), linear 1x1
    projection; the input is added when the shapes agree. N x in x H x W to N x out x H/s x W/s."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int,
                 activation: str | None = None) -> None:
        super().__init__()
        hidden = round(in_channels * expand_ratio)
        act = partial(nonlinearity, nn.ReLU6, activation)
        expand = [conv_norm(in_channels, hidden, 1, act=act())] if expand_ratio != 1 else []
        self.conv = nn.Sequential(*expand, conv_norm(hidden, hidden, 3, stride, groups=hidden, act=act()),
                                  nn.Conv2d(hidden, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
        self.stride, self.out_channels = stride, out_channels
        self.use_res_connect = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class SqueezeExcitation(nn.Module):
    """torchvision's SE (Hu et al. 2017, arXiv:1709.01507) as MobileNetV3 uses it: global average pool, 1x1
    convolution to `squeeze` maps, ReLU (or `activation`), 1x1 convolution back, hard-sigmoid gate, channel-wise
    scale. zoo.models.layers.SqueezeExcite holds its FC layers as nn.Linear (weights out x in), where torchvision's
    `fc1` and `fc2` are 1x1 convolutions (out x in x 1 x 1): the same numbers, another shape, so its keys would not
    load. N x C x H x W in and out."""

    def __init__(self, channels: int, squeeze: int, activation: str | None = None) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = nonlinearity(nn.ReLU, activation, inplace=False)
        self.scale_activation = nn.Hardsigmoid()

    def forward(self, x: Tensor) -> Tensor:
        scale = self.fc2(self.activation(self.fc1(self.avgpool(x))))  # N x C x 1 x 1
        return self.scale_activation(scale) * x


class Bneck(NamedTuple):
    """One row of MobileNetV3's Tables 1 and 2: a block's depthwise kernel, expanded and output maps, whether it has
    SE, whether its activation is hard-swish (else ReLU), and its stride. Its input is the previous row's output."""

    kernel: int
    expanded: int
    out: int
    se: bool
    hard_swish: bool
    stride: int


class InvertedResidualV3(nn.Module):
    """MobileNetV3's block: 1x1 expansion (none when expanded = in), depthwise k x k (stride s), SE if the row
    says so, linear 1x1 projection; the input is added when the shapes agree. N x in x H x W to N x out x H/s x W/s."""

    def __init__(self, in_channels: int, row: Bneck, activation: str | None = None) -> None:
        super().__init__()
        act = partial(nonlinearity, nn.Hardswish if row.hard_swish else nn.ReLU, activation)
        conv = partial(conv_norm, norm=V3_NORM)
        expand = [conv(in_channels, row.expanded, 1, act=act())] if row.expanded != in_channels else []
        excite = [SqueezeExcitation(row.expanded, make_divisible(row.expanded // 4), activation)] if row.se else []
        self.block = nn.Sequential(*expand, conv(row.expanded, row.expanded, row.kernel, row.stride,
                                                 groups=row.expanded, act=act()),
                                   *excite, conv(row.expanded, row.out, 1))
        self.out_channels = row.out
        self.use_res_connect = row.stride == 1 and in_channels == row.out

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        return out + x if self.use_res_connect else out


class MobileNet(Classifier):
    """What V2 and V3 share: `features`, `avgpool` and a `classifier` whose last layer is the FC to the classes;
    torchvision's initialization; inputs of 32x32 or more (total stride 32: the last map is 1x1 there)."""

    min_input_size = 32  # below it the stride-2 convolutions would downsample padding alone

    @staticmethod
    def check_arguments(width_mult: float, activation: str | None) -> None:
        """ValueError for a width multiplier that is not positive, or an activation ACTIVATIONS has not."""
        if width_mult <= 0:
            raise ValueError(f"width_mult is {width_mult}; give a positive multiplier of every layer's maps")
        if activation is not None:
            check_activation(activation)

    def init_weights(self) -> None:
        # torchvision's: He normal (fan out) for convolutions, N(0, 0.01) for FC layers, zero biases, BN the identity.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    @property
    def head_paths(self) -> tuple[str, ...]:
        return (f"classifier.{len(self.classifier) - 1}",)


# MobileNetV2's Table 2: expansion t, output maps c, blocks n, first block's stride s (shapes at 224x224).
V2_SETTING = ((1, 16, 1, 1),  # N x 16 x 112 x 112
              (6, 24, 2, 2),  # N x 24 x 56 x 56
              (6, 32, 3, 2),  # N x 32 x 28 x 28
              (6, 64, 4, 2),  # N x 64 x 14 x 14
              (6, 96, 3, 1),  # N x 96 x 14 x 14
              (6, 160, 3, 2),  # N x 160 x 7 x 7
              (6, 320, 1, 1))  # N x 320 x 7 x 7


class MobileNetV2(MobileNet):
    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        width_mult: float = 1.0,  # the paper's width multiplier: 0.35 to 1.4 in its Table 6
        dropout: float = 0.2,  # before the classifier (torchvision's)
        small_input: bool = False,  # stride 1 in the stem and the second stage, for 32x32 images (4x4 last map)
        activation: str | None = None,  # None: ReLU6, the paper's; else a name in zoo.models.layers.ACTIVATIONS
    ) -> None:
        super().__init__()
        self.check_arguments(width_mult, activation)
        self.num_classes = num_classes
        act = partial(nonlinearity, nn.ReLU6, activation)
        width = make_divisible(32 * width_mult)
        stem_stride, strides = 2, [s for *_, s in V2_SETTING]
        if small_input:
            stem_stride, strides[1] = 1, 1
        layers: list[nn.Module] = [conv_norm(in_channels, width, 3, stem_stride, act=act())]  # N x 32 x 112 x 112
        for (t, c, n, _), stride in zip(V2_SETTING, strides):
            out = make_divisible(c * width_mult)
            for index in range(n):
                layers.append(InvertedResidual(width, out, stride if index == 0 else 1, t, activation))
                width = out
        self.num_features = make_divisible(1280 * max(1.0, width_mult))
        layers.append(conv_norm(width, self.num_features, 1, act=act()))  # N x 1280 x 7 x 7
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)  # torchvision's V2 pools with a function: no key either way
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.num_features, num_classes))
        self.min_input_size = 8 if small_input else 32  # total stride: the last map is 1x1 there
        self.initialize()


# MobileNetV3's Table 1 (large) and 2 (small): kernel, expanded, out, SE, hard-swish, stride (shapes at 224x224).
V3_LARGE = (Bneck(3, 16, 16, False, False, 1),  # N x 16 x 112 x 112
            Bneck(3, 64, 24, False, False, 2), Bneck(3, 72, 24, False, False, 1),  # N x 24 x 56 x 56
            Bneck(5, 72, 40, True, False, 2), *[Bneck(5, 120, 40, True, False, 1)] * 2,  # N x 40 x 28 x 28
            Bneck(3, 240, 80, False, True, 2), Bneck(3, 200, 80, False, True, 1),
            *[Bneck(3, 184, 80, False, True, 1)] * 2,  # N x 80 x 14 x 14
            Bneck(3, 480, 112, True, True, 1), Bneck(3, 672, 112, True, True, 1),  # N x 112 x 14 x 14
            Bneck(5, 672, 160, True, True, 2), *[Bneck(5, 960, 160, True, True, 1)] * 2)  # N x 160 x 7 x 7
V3_SMALL = (Bneck(3, 16, 16, True, False, 2),  # N x 16 x 56 x 56
            Bneck(3, 72, 24, False, False, 2), Bneck(3, 88, 24, False, False, 1),  # N x 24 x 28 x 28
            Bneck(5, 96, 40, True, True, 2), *[Bneck(5, 240, 40, True, True, 1)] * 2,  # N x 40 x 14 x 14
            Bneck(5, 120, 48, True, True, 1), Bneck(5, 144, 48, True, True, 1),  # N x 48 x 14 x 14
            Bneck(5, 288, 96, True, True, 2), *[Bneck(5, 576, 96, True, True, 1)] * 2)  # N x 96 x 7 x 7


class MobileNetV3(MobileNet):
    def __init__(
        self,
        setting: Sequence[Bneck],  # the blocks, V3_LARGE or V3_SMALL
        head_width: int,  # maps of the 1x1 convolution (an FC layer) after the pool: 1280 large, 1024 small
        num_classes: int = 1000,
        in_channels: int = 3,
        width_mult: float = 1.0,  # the paper's multiplier (0.35 to 1.25 in its Table 3); scales the head too
        dropout: float = 0.2,  # before the classifier (torchvision's)
        activation: str | None = None,  # None: the paper's ReLU and hard-swish; else a name in ACTIVATIONS
    ) -> None:
        super().__init__()
        self.check_arguments(width_mult, activation)
        self.num_classes = num_classes
        hswish = partial(nonlinearity, nn.Hardswish, activation)
        rows = [row._replace(expanded=make_divisible(row.expanded * width_mult),
                             out=make_divisible(row.out * width_mult)) for row in setting]
        width = make_divisible(16 * width_mult)
        stem = conv_norm(in_channels, width, 3, 2, norm=V3_NORM, act=hswish())  # N x 16 x 112 x 112
        layers: list[nn.Module] = [stem]
        for row in rows:
            layers.append(InvertedResidualV3(width, row, activation))
            width = row.out
        self.num_features = 6 * width  # 960 large, 576 small
        layers.append(conv_norm(width, self.num_features, 1, norm=V3_NORM, act=hswish()))  # N x 960 x 7 x 7
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)  # N x 960 x 1 x 1
        head_width = make_divisible(head_width * width_mult)
        # torchvision's dropout is in place; not here, where it may follow an activation whose backward needs its output
        self.classifier = nn.Sequential(nn.Linear(self.num_features, head_width), hswish(),
                                        nn.Dropout(dropout), nn.Linear(head_width, num_classes))
        self.initialize()


def _tv(name: str, count: int) -> dict:
    return {"reference": ParamReference(count, f"torchvision {name}"), "torchvision": name}


@register_model(family="mobilenet", paper=SANDLER_2018, input_size=(3, 224, 224), **_tv("mobilenet_v2", 3_504_872))
def mobilenet_v2(num_classes: int = 1000, in_channels: int = 3, **kwargs) -> MobileNetV2:
    """Other keyword arguments go to MobileNetV2: width_mult, dropout, small_input, activation."""
    return MobileNetV2(num_classes, in_channels, **kwargs)


_v3 = partial(register_model, family="mobilenet", paper=HOWARD_2019, input_size=(3, 224, 224))


@_v3(**_tv("mobilenet_v3_large", 5_483_032))
def mobilenet_v3_large(num_classes: int = 1000, in_channels: int = 3, **kwargs) -> MobileNetV3:
    """Other keyword arguments go to MobileNetV3: width_mult, dropout, activation."""
    return MobileNetV3(V3_LARGE, 1280, num_classes, in_channels, **kwargs)


@_v3(**_tv("mobilenet_v3_small", 2_542_856))
def mobilenet_v3_small(num_classes: int = 1000, in_channels: int = 3, **kwargs) -> MobileNetV3:
    """Other keyword arguments go to MobileNetV3: width_mult, dropout, activation."""
    return MobileNetV3(V3_SMALL, 1024, num_classes, in_channels, **kwargs)
