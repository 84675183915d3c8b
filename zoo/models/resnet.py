"""ResNet: He, Zhang, Ren, Sun (2015), "Deep Residual Learning for Image Recognition", arXiv:1512.03385.

- `resnet18` ... `resnet152`: the ImageNet networks of the paper's Table 1, basic (two 3x3) and
  bottleneck (1x1, 3x3, 1x1) blocks; state dicts are key for key torchvision's, which puts the
  stride of a downsampling bottleneck on its 3x3 convolution (the "v1.5" variant).
- `resnet20` ... `resnet110`: the paper's CIFAR-10 networks (section 4.2): a 3x3 stem, three stages
  of 16, 32 and 64 maps with n basic blocks each (6n + 2 layers), and parameter-free shortcuts that
  subsample and zero-pad the new channels (option A).
- `small_input=True` swaps the ImageNet stem (7x7 stride 2, max pool) for a 3x3 stride-1 convolution
  without pooling, for 32x32 data.
- `se_reduction=r` puts a squeeze-and-excitation module in every block (zoo.models.senet).
- `drop_path=p` trains with stochastic depth (Huang, Sun, Liu, Sedra, Weinberger 2016, "Deep Networks with
  Stochastic Depth", arXiv:1603.09382): each block's residual branch is dropped per image with a probability
  rising linearly from 0 at the first block to p at the last (the paper's linear decay rule, as timm's
  drop_path_rate), through torchvision.ops.StochasticDepth, which scales kept branches by 1 / (1 - p) and is the
  identity in eval mode. It has no weights, so state dicts are unchanged.
- `activation=name` (default "relu", the paper's) replaces every ReLU, stem and blocks (and the one inside SE),
  with any name in zoo.models.layers.ACTIVATIONS. The modules keep torchvision's attribute name `relu`. The
  initialization stays He et al.'s for ReLU whatever the activation.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch.nn.functional as F
from torch import Tensor, nn

from zoo.models.base import Classifier
from zoo.models.layers import SqueezeExcite, activation_layer
from zoo.models.registry import Paper, ParamReference, register_model

HE_2015 = Paper("He, Zhang, Ren, Sun", 2015, "Deep Residual Learning for Image Recognition", "arXiv:1512.03385")


def stochastic_depth(rate: float) -> nn.Module | None:
    """torchvision.ops.StochasticDepth in "row" mode (a sample's whole branch), or None at rate 0. Imported here:
    importing torchvision costs 1.5 s (its ops import torch._dynamo), which evaluate, predict and report of a
    network without it need not pay."""
    if not rate:
        return None
    from torchvision.ops import StochasticDepth

    return StochasticDepth(rate, "row")


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class ZeroPadShortcut(nn.Module):
    """Option A of the paper: subsample by the stride and append zero channels. No parameters."""

    def __init__(self, out_channels: int, stride: int) -> None:
        super().__init__()
        self.out_channels, self.stride = out_channels, stride

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.out_channels - x.shape[1]))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 se_reduction: int | None = None, drop_path: float = 0.0, activation: str = "relu") -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = activation_layer(activation)  # torchvision's name, whatever the activation
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se = SqueezeExcite(planes, se_reduction, activation) if se_reduction else None
        self.drop_path = stochastic_depth(drop_path)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)
        if self.drop_path is not None:
            out = self.drop_path(out)
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 se_reduction: int | None = None, drop_path: float = 0.0, activation: str = "relu") -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = conv1x1(in_channels, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = activation_layer(activation)
        self.se = SqueezeExcite(out_channels, se_reduction, activation) if se_reduction else None
        self.drop_path = stochastic_depth(drop_path)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.se is not None:
            out = self.se(out)
        if self.drop_path is not None:
            out = self.drop_path(out)
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


Block = type[BasicBlock] | type[Bottleneck]


def make_stage(block: Block, in_channels: int, planes: int, blocks: int, stride: int,
               zero_pad_shortcut: bool = False, se_reduction: int | None = None,
               drop_paths: Sequence[float] = (), activation: str = "relu") -> nn.Sequential:
    """`blocks` blocks of `planes`; the first takes in_channels maps, strides, and gets the shortcut projection.
    `drop_paths`: each block's stochastic-depth probability (none: 0)."""
    drop_paths = list(drop_paths) or [0.0] * blocks
    out_channels = planes * block.expansion
    downsample = None
    if stride != 1 or in_channels != out_channels:
        if zero_pad_shortcut:
            downsample = ZeroPadShortcut(out_channels, stride)
        else:
            downsample = nn.Sequential(conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))
    stage = [block(in_channels, planes, stride, downsample, se_reduction, drop_paths[0], activation)]
    stage += [block(out_channels, planes, se_reduction=se_reduction, drop_path=drop_paths[index], activation=activation)
              for index in range(1, blocks)]
    return nn.Sequential(*stage)


class ResNet(Classifier):
    head_paths = ("fc",)

    def __init__(
        self,
        block: Block,
        layers: Sequence[int],  # blocks per stage
        num_classes: int = 1000,
        in_channels: int = 3,
        widths: Sequence[int] = (64, 128, 256, 512),  # planes per stage; the stem has widths[0] maps
        small_input: bool = False,  # 3x3 stride-1 stem without max pool, for 32x32 images
        zero_pad_shortcut: bool = False,  # option A shortcuts (the paper's CIFAR networks)
        se_reduction: int | None = None,  # SE-ResNet when set (Hu et al. use 16)
        zero_init_residual: bool = False,  # start each block as the identity (Goyal et al. 2017)
        # stochastic depth: the last block's drop probability, 0 at the first (Huang et al. 2016)
        drop_path: float = 0.0,
        activation: str = "relu",  # every non-linearity, SE's inner one too: a name in zoo.models.layers.ACTIVATIONS
    ) -> None:
        super().__init__()
        if not 0.0 <= drop_path < 1.0:
            raise ValueError(f"drop_path is {drop_path}; give a probability from 0 up to (not including) 1")
        self.num_classes = num_classes
        if small_input:
            self.conv1 = conv3x3(in_channels, widths[0])
        else:
            self.conv1 = nn.Conv2d(in_channels, widths[0], 7, stride=2, padding=3, bias=False)  # N x 64 x 112 x 112
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = activation_layer(activation)
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(3, stride=2, padding=1)  # N x 64 x 56 x 56
        # Stage i halves the resolution after the first; imagenet: 56 -> 28 -> 14 -> 7.
        width = widths[0]
        depth = sum(layers)
        rates = [drop_path * block / max(depth - 1, 1) for block in range(depth)]  # over the whole network's blocks
        for index, (planes, blocks) in enumerate(zip(widths, layers), start=1):
            first = sum(layers[:index - 1])
            stage = make_stage(block, width, planes, blocks, 1 if index == 1 else 2, zero_pad_shortcut, se_reduction,
                               rates[first:first + blocks], activation)
            self.add_module(f"layer{index}", stage)
            width = planes * block.expansion
        self.num_stages = len(layers)
        self.num_features = width  # the head's input width (timm's name): 512, or 2048 with bottlenecks
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(self.num_features, num_classes)
        # The last stage's map is 1x1 at this size; below it the network downsamples padding alone.
        self.min_input_size = 2 ** (self.num_stages - 1) * (1 if small_input else 4)
        self.zero_init_residual = zero_init_residual
        self.initialize()

    def init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, (nn.BatchNorm2d, nn.Linear)):
                module.reset_parameters()
        if self.zero_init_residual:
            for module in self.modules():
                if isinstance(module, (BasicBlock, Bottleneck)):
                    last_bn = module.bn3 if isinstance(module, Bottleneck) else module.bn2
                    nn.init.zeros_(last_bn.weight)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for index in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{index}")(x)
        return x  # imagenet: N x 512 (x4 for bottlenecks) x 7 x 7

    def forward_head(self, x: Tensor) -> Tensor:
        return self.fc(self.avgpool(x).flatten(1))


_imagenet = partial(register_model, family="resnet", paper=HE_2015, input_size=(3, 224, 224))
_cifar = partial(register_model, family="resnet", paper=HE_2015, input_size=(3, 32, 32), num_classes=10)


def _tv(name: str, count: int) -> dict:
    return {"reference": ParamReference(count, f"torchvision {name}"), "torchvision": name}


def _paper_table6(millions: float) -> ParamReference:
    precision = 10_000 if millions < 1 else 100_000  # the table prints 0.27M and 1.7M
    return ParamReference(round(millions * 1_000_000), "He et al. 2015, Table 6 (CIFAR-10)", precision)


@_imagenet(**_tv("resnet18", 11_689_512))
def resnet18(num_classes: int = 1000, in_channels: int = 3, **kwargs) -> ResNet:
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes, in_channels, **kwargs)


@_imagenet(**_tv("resnet34", 21_797_672))
def resnet34(num_classes: int = 1000, in_channels: int = 3, **kwargs) -> ResNet:
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes, in_channels, **kwargs)


@_imagenet(**_tv("resnet50", 25_557_032))
def resnet50(num_classes: int = 1000, in_channels: int = 3, **kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, in_channels, **kwargs)


@_imagenet(**_tv("resnet101", 44_549_160))
def resnet101(num_classes: int = 1000, in_channels: int = 3, **kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 23, 3], num_classes, in_channels, **kwargs)


@_imagenet(**_tv("resnet152", 60_192_808))
def resnet152(num_classes: int = 1000, in_channels: int = 3, **kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 8, 36, 3], num_classes, in_channels, **kwargs)


def cifar_resnet(n: int, num_classes: int = 10, in_channels: int = 3, **kwargs) -> ResNet:
    """The paper's 6n+2-layer CIFAR network."""
    return ResNet(BasicBlock, [n, n, n], num_classes, in_channels, widths=(16, 32, 64), small_input=True,
                  zero_pad_shortcut=True, **kwargs)


@_cifar(reference=_paper_table6(0.27))
def resnet20(num_classes: int = 10, in_channels: int = 3, **kwargs) -> ResNet:
    return cifar_resnet(3, num_classes, in_channels, **kwargs)


@_cifar(reference=_paper_table6(0.46))
def resnet32(num_classes: int = 10, in_channels: int = 3, **kwargs) -> ResNet:
    return cifar_resnet(5, num_classes, in_channels, **kwargs)


@_cifar(reference=_paper_table6(0.66))
def resnet44(num_classes: int = 10, in_channels: int = 3, **kwargs) -> ResNet:
    return cifar_resnet(7, num_classes, in_channels, **kwargs)


@_cifar(reference=_paper_table6(0.85))
def resnet56(num_classes: int = 10, in_channels: int = 3, **kwargs) -> ResNet:
    return cifar_resnet(9, num_classes, in_channels, **kwargs)


@_cifar(reference=_paper_table6(1.7))
def resnet110(num_classes: int = 10, in_channels: int = 3, **kwargs) -> ResNet:
    return cifar_resnet(18, num_classes, in_channels, **kwargs)
