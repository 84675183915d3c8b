"""GoogLeNet (Inception v1): Szegedy et al. (2014), "Going Deeper with Convolutions", arXiv:1409.4842.

Nine Inception modules, each concatenating four branches: 1x1; 1x1 reduce then 3x3; 1x1 reduce then
"5x5"; 3x3 max pool then 1x1 projection. Two auxiliary classifiers (after 4a and 4d) add
0.3 x their losses during training only; `aux_logits=True` builds them and
`forward(x, return_aux=True)` returns them in training mode. Evaluation uses the main head alone.

The layout is torchvision's so that its weights load key for key, and that layout differs from the
paper in three ways: batch normalization after every convolution (from Inception v2) in place of
local response normalization, adaptive pooling in the auxiliary heads, and a 3x3 convolution in the
"5x5" branch (a long-standing quirk of torchvision's port, kept by its weights). The last is a
choice here: `branch3_kernel_size=5` gives the paper's 5x5 (and then torchvision's weights no
longer fit that branch).

`activation` (default "relu", the paper's) is the non-linearity after every convolution, auxiliary heads
included, and after the auxiliary heads' FC 1024: any name in zoo.models.layers.ACTIVATIONS. The default ReLU
is applied as a function, as in torchvision's port, so the module tree is torchvision's; any other is a
module (`act`) of each BasicConv2d and InceptionAux.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn

from zoo.models.base import AuxClassifier
from zoo.models.layers import activation_layer
from zoo.models.registry import Paper, ParamReference, register_model

SZEGEDY_2014 = Paper("Szegedy et al.", 2014, "Going Deeper with Convolutions", "arXiv:1409.4842")


def _optional_activation(activation: str) -> nn.Module | None:
    """None for the default ReLU, applied as a function (no module: torchvision's tree); else the module."""
    return None if activation == "relu" else activation_layer(activation)


class BasicConv2d(nn.Module):
    """Convolution without bias, batch norm (eps 0.001, as torchvision's weights expect), ReLU (or `activation`)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0, activation: str = "relu") -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)
        self.act = _optional_activation(activation)

    def forward(self, x: Tensor) -> Tensor:
        x = self.bn(self.conv(x))
        return x.relu_() if self.act is None else self.act(x)


class Inception(nn.Module):
    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int,
                 pool_proj: int, branch3_kernel_size: int = 3, activation: str = "relu") -> None:
        super().__init__()
        conv = partial(BasicConv2d, activation=activation)
        self.branch1 = conv(in_channels, ch1x1, 1)
        self.branch2 = nn.Sequential(conv(in_channels, ch3x3red, 1), conv(ch3x3red, ch3x3, 3, padding=1))
        self.branch3 = nn.Sequential(
            conv(in_channels, ch5x5red, 1),
            conv(ch5x5red, ch5x5, branch3_kernel_size, padding=branch3_kernel_size // 2),
        )
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                     conv(in_channels, pool_proj, 1))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], dim=1)


class InceptionAux(nn.Module):
    """Average pool to 4x4, 1x1 conv to 128 maps, FC 1024 with ReLU (or `activation`), dropout 0.7, FC to the
    classes."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7, activation: str = "relu") -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d((4, 4))
        self.conv = BasicConv2d(in_channels, 128, 1, activation=activation)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.act = _optional_activation(activation)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.fc1(self.conv(self.pool(x)).flatten(1))
        x = x.relu_() if self.act is None else self.act(x)
        return self.fc2(self.dropout(x))


class GoogLeNet(AuxClassifier):
    min_input_size = 32  # the last map is 1x1 at 32x32 (total stride 32)

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, aux_logits: bool = False,
                 dropout: float = 0.2, aux_dropout: float = 0.7, branch3_kernel_size: int = 3,
                 activation: str = "relu") -> None:
        super().__init__()
        self.num_classes = num_classes
        conv = partial(BasicConv2d, activation=activation)
        inception = partial(Inception, branch3_kernel_size=branch3_kernel_size, activation=activation)

        self.conv1 = conv(in_channels, 64, 7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = conv(64, 64, 1)
        self.conv3 = conv(64, 192, 3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        # in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj (the paper's Table 1)
        self.inception3a = inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = inception(832, 384, 192, 384, 48, 128, 128)
        self.aux1 = InceptionAux(512, num_classes, aux_dropout, activation) if aux_logits else None
        self.aux2 = InceptionAux(528, num_classes, aux_dropout, activation) if aux_logits else None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)
        self.initialize()

    @property
    def head_paths(self) -> tuple[str, ...]:
        return ("fc",) if self.aux1 is None else ("fc", "aux1.fc2", "aux2.fc2")

    def init_weights(self) -> None:
        # torchvision's: truncated normal, std 0.01, for every convolution and FC layer.
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(module.weight, mean=0.0, std=0.01, a=-2, b=2)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                module.reset_parameters()

    def _trunk(self, x: Tensor, aux: list[Tensor] | None) -> Tensor:
        """The backbone; appends the auxiliary heads' logits to `aux` when it is a list. Shapes at 224x224."""
        # N x 3 x 224 x 224
        x = self.conv1(x)  # N x 64 x 112 x 112
        x = self.maxpool1(x)  # N x 64 x 56 x 56
        x = self.conv2(x)  # N x 64 x 56 x 56
        x = self.conv3(x)  # N x 192 x 56 x 56
        x = self.maxpool2(x)  # N x 192 x 28 x 28
        x = self.inception3a(x)  # N x 256 x 28 x 28
        x = self.inception3b(x)  # N x 480 x 28 x 28
        x = self.maxpool3(x)  # N x 480 x 14 x 14
        x = self.inception4a(x)  # N x 512 x 14 x 14
        if aux is not None:
            aux.append(self.aux1(x))
        x = self.inception4b(x)  # N x 512 x 14 x 14
        x = self.inception4c(x)  # N x 512 x 14 x 14
        x = self.inception4d(x)  # N x 528 x 14 x 14
        if aux is not None:
            aux.append(self.aux2(x))
        x = self.inception4e(x)  # N x 832 x 14 x 14
        x = self.maxpool4(x)  # N x 832 x 7 x 7
        x = self.inception5a(x)  # N x 832 x 7 x 7
        return self.inception5b(x)  # N x 1024 x 7 x 7

    def forward_head(self, x: Tensor) -> Tensor:
        return self.fc(self.dropout(self.avgpool(x).flatten(1)))

    @property
    def has_aux(self) -> bool:
        return self.aux1 is not None  # forward(x, return_aux=True) gives [aux1, aux2] in training


@register_model(family="googlenet", paper=SZEGEDY_2014, input_size=(3, 224, 224),
                reference=ParamReference(6_624_904, "torchvision googlenet (13,004,888 with aux heads)"),
                torchvision="googlenet")
def googlenet(num_classes: int = 1000, in_channels: int = 3, **kwargs) -> GoogLeNet:
    """Other keyword arguments go to GoogLeNet: aux_logits, dropout, aux_dropout, branch3_kernel_size, activation."""
    return GoogLeNet(num_classes, in_channels, **kwargs)
