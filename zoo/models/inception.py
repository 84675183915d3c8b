"""Inception v3: Szegedy et al. (2016), "Rethinking the Inception Architecture for Computer Vision", CVPR 2016,
arXiv:1512.00567.

A stem of plain convolutions, then Inception modules at three grid sizes with two grid reductions between them. The
paper's factorizations (the course's figure "Inception, Factorization, Asymmetric Factorization") are these modules:
- factorization, a 5x5 as two stacked 3x3 (the paper's Figure 5): InceptionA's branch3x3dbl_2 and _3 (Mixed_5b-5d,
  35x35). Not in place of the 5x5, though: torchvision's InceptionA, as Google's released model it was ported from,
  keeps a 1x1-then-5x5 branch (branch5x5_1, _2) beside the pair.
- asymmetric factorization, an n x n as 1 x n then n x 1 (Figure 6, n = 7): InceptionC's branch7x7_2/_3 (one 7x7)
  and branch7x7dbl_2 to _5 (two) in Mixed_6b-6e (17x17), and InceptionD's branch7x7x3_2/_3 (Mixed_7a).
- the expanded filter bank (Figure 7), a 3x3 split into a 1x3 and a 3x1 side by side, concatenated: InceptionE's
  branch3x3_2a/_2b and branch3x3dbl_3a/_3b (Mixed_7b, 7c; 8x8).
InceptionB (Mixed_6a) and InceptionD (Mixed_7a) halve the grid with stride-2 branches beside a max pool, concatenated
(the paper's efficient grid reduction). One auxiliary classifier (AuxLogits) sits on the last 17x17 map, with batch
norm after its convolutions (the paper's "BN-auxiliary" normalizes its FC layer too; torchvision's does not);
`aux_logits=True` builds it, `forward(x, return_aux=True)` returns it in training mode, and the loss adds
loss.aux_weight x its loss (zoo.loop.aux_loss, as for GoogLeNet's two; Google's training code weighs it 0.4).

The layout and names are torchvision's (Conv2d_1a_3x3 ... Mixed_7c, AuxLogits, fc) so its weights load key for key;
that layout is Google's released model, which differs from the paper's Table 1 (its stem ends in a 1x1 to 80 maps,
a 3x3 to 192 and a max pool; four 17x17 modules, where the table lists five). Inputs: 75x75 and up (torchvision's
documented minimum); in training with the auxiliary head built, 299x299 and up, as its first pooling (5x5, stride 3)
and 5x5 convolution need the 17x17 map Mixed_6e gives at 299 (a one-line ZooError below).

torchvision's `transform_input` is not here: its builder turns on, for Google's weights, a conversion of
ImageNet-normalized input to the (x - 0.5) / 0.5 those weights were trained on. zoo's networks take their input as it
comes, and zoo's preprocessing normalizes with those statistics instead where the weights need them
(zoo.training.finetune.INPUT_STATISTICS, used by fine-tuning and zoo.load of torchvision weights).

`activation` (default "relu", the paper's) is the non-linearity after every convolution, auxiliary head included: any
name in zoo.models.layers.ACTIVATIONS; the default ReLU is a function, as in torchvision's tree (GoogLeNet's rule).
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.errors import ZooError
from zoo.models.base import AuxClassifier
from zoo.models.googlenet import BasicConv2d
from zoo.models.registry import Paper, ParamReference, register_model

SZEGEDY_2016 = Paper("Szegedy et al.", 2016, "Rethinking the Inception Architecture for Computer Vision",
                     "arXiv:1512.00567")
MIN_INPUT_SIZE = 75  # Mixed_7a's 3x3 stride-2 convolutions need a 3x3 map: 1x1 out at 75x75
AUX_MIN_INPUT_SIZE = 299  # the auxiliary head's 5x5 pool (stride 3) and 5x5 convolution need Mixed_6e's 17x17


def _avg_pool(x: Tensor) -> Tensor:
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)  # torchvision's: padding counted in the mean


class InceptionA(nn.Module):
    """35x35: 1x1 (64); 1x1 then 5x5 (64); 1x1 then two 3x3 (96, Figure 5's factorized 5x5); 3x3 average pool then
    1x1 (pool_features). N x C x 35 x 35 -> N x (224 + pool_features) x 35 x 35."""

    def __init__(self, in_channels: int, pool_features: int, activation: str = "relu") -> None:
        super().__init__()
        conv = partial(BasicConv2d, activation=activation)
        self.branch1x1 = conv(in_channels, 64, 1)
        self.branch5x5_1 = conv(in_channels, 48, 1)
        self.branch5x5_2 = conv(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = conv(in_channels, 64, 1)
        self.branch3x3dbl_2 = conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = conv(96, 96, 3, padding=1)
        self.branch_pool = conv(in_channels, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), branch5x5, branch3x3dbl, self.branch_pool(_avg_pool(x))], dim=1)


class InceptionB(nn.Module):
    """Grid reduction 35x35 -> 17x17: 3x3 stride 2 (384); 1x1, 3x3, 3x3 stride 2 (96); 3x3 max pool stride 2.
    N x 288 x 35 x 35 -> N x 768 x 17 x 17."""

    def __init__(self, in_channels: int, activation: str = "relu") -> None:
        super().__init__()
        conv = partial(BasicConv2d, activation=activation)
        self.branch3x3 = conv(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = conv(in_channels, 64, 1)
        self.branch3x3dbl_2 = conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = conv(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), branch3x3dbl, F.max_pool2d(x, kernel_size=3, stride=2)], dim=1)


class InceptionC(nn.Module):
    """17x17, Figure 6 with n = 7: 1x1 (192); 1x1, 1x7, 7x1 (a factorized 7x7); 1x1, 7x1, 1x7, 7x1, 1x7 (two); 3x3
    average pool then 1x1 (192). `channels_7x7` maps inside the factorized branches. N x 768 x 17 x 17 both ways."""

    def __init__(self, in_channels: int, channels_7x7: int, activation: str = "relu") -> None:
        super().__init__()
        conv, c7 = partial(BasicConv2d, activation=activation), channels_7x7
        row, column = {"kernel_size": (1, 7), "padding": (0, 3)}, {"kernel_size": (7, 1), "padding": (3, 0)}
        self.branch1x1 = conv(in_channels, 192, 1)
        self.branch7x7_1 = conv(in_channels, c7, 1)
        self.branch7x7_2 = conv(c7, c7, **row)
        self.branch7x7_3 = conv(c7, 192, **column)
        self.branch7x7dbl_1 = conv(in_channels, c7, 1)
        self.branch7x7dbl_2 = conv(c7, c7, **column)
        self.branch7x7dbl_3 = conv(c7, c7, **row)
        self.branch7x7dbl_4 = conv(c7, c7, **column)
        self.branch7x7dbl_5 = conv(c7, 192, **row)
        self.branch_pool = conv(in_channels, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        branch7x7dbl = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            branch7x7dbl = layer(branch7x7dbl)
        return torch.cat([self.branch1x1(x), branch7x7, branch7x7dbl, self.branch_pool(_avg_pool(x))], dim=1)


class InceptionD(nn.Module):
    """Grid reduction 17x17 -> 8x8: 1x1 then 3x3 stride 2 (320); 1x1, 1x7, 7x1, 3x3 stride 2 (192); 3x3 max pool
    stride 2. N x 768 x 17 x 17 -> N x 1280 x 8 x 8."""

    def __init__(self, in_channels: int, activation: str = "relu") -> None:
        super().__init__()
        conv = partial(BasicConv2d, activation=activation)
        self.branch3x3_1 = conv(in_channels, 192, 1)
        self.branch3x3_2 = conv(192, 320, 3, stride=2)
        self.branch7x7x3_1 = conv(in_channels, 192, 1)
        self.branch7x7x3_2 = conv(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = conv(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = conv(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        branch3x3 = self.branch3x3_2(self.branch3x3_1(x))
        branch7x7x3 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([branch3x3, branch7x7x3, F.max_pool2d(x, kernel_size=3, stride=2)], dim=1)


class InceptionE(nn.Module):
    """8x8, Figure 7's expanded filter bank: 1x1 (320); 1x1 then 1x3 and 3x1 side by side (2 x 384); 1x1, 3x3, then
    1x3 and 3x1 side by side (2 x 384); 3x3 average pool then 1x1 (192). N x C x 8 x 8 -> N x 2048 x 8 x 8."""

    def __init__(self, in_channels: int, activation: str = "relu") -> None:
        super().__init__()
        conv = partial(BasicConv2d, activation=activation)
        row, column = {"kernel_size": (1, 3), "padding": (0, 1)}, {"kernel_size": (3, 1), "padding": (1, 0)}
        self.branch1x1 = conv(in_channels, 320, 1)
        self.branch3x3_1 = conv(in_channels, 384, 1)
        self.branch3x3_2a = conv(384, 384, **row)
        self.branch3x3_2b = conv(384, 384, **column)
        self.branch3x3dbl_1 = conv(in_channels, 448, 1)
        self.branch3x3dbl_2 = conv(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = conv(384, 384, **row)
        self.branch3x3dbl_3b = conv(384, 384, **column)
        self.branch_pool = conv(in_channels, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        branch3x3 = self.branch3x3_1(x)
        branch3x3 = torch.cat([self.branch3x3_2a(branch3x3), self.branch3x3_2b(branch3x3)], dim=1)
        branch3x3dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        branch3x3dbl = torch.cat([self.branch3x3dbl_3a(branch3x3dbl), self.branch3x3dbl_3b(branch3x3dbl)], dim=1)
        return torch.cat([self.branch1x1(x), branch3x3, branch3x3dbl, self.branch_pool(_avg_pool(x))], dim=1)


class InceptionAux(nn.Module):
    """The auxiliary classifier on the last 17x17 map: 5x5 average pool stride 3, 1x1 conv (128), 5x5 conv (768),
    FC to the classes; batch norm after both convolutions. No dropout, as in torchvision's."""

    def __init__(self, in_channels: int, num_classes: int, activation: str = "relu") -> None:
        super().__init__()
        self.conv0 = BasicConv2d(in_channels, 128, 1, activation=activation)
        self.conv1 = BasicConv2d(128, 768, 5, activation=activation)
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        # N x 768 x 17 x 17
        x = F.avg_pool2d(x, kernel_size=5, stride=3)  # N x 768 x 5 x 5
        x = self.conv1(self.conv0(x))  # N x 768 x 1 x 1
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))  # N x num_classes


class Inception3(AuxClassifier):
    """Inception v3 in torchvision's layout: N x in_channels x H x W (H, W >= 75; the paper's 299) -> N x num_classes
    logits. `aux_logits` builds the auxiliary head (off by default, where torchvision's builder has it on); `dropout`
    (torchvision's 0.5) is before the FC; `activation` follows every convolution."""

    min_input_size = MIN_INPUT_SIZE  # in training with the auxiliary head built: AUX_MIN_INPUT_SIZE (check_input)

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, aux_logits: bool = False,
                 dropout: float = 0.5, activation: str = "relu") -> None:
        super().__init__()
        self.num_classes = num_classes
        conv = partial(BasicConv2d, activation=activation)
        self.Conv2d_1a_3x3 = conv(in_channels, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = conv(32, 32, 3)
        self.Conv2d_2b_3x3 = conv(32, 64, 3, padding=1)
        self.maxpool1 = nn.MaxPool2d(3, stride=2)
        self.Conv2d_3b_1x1 = conv(64, 80, 1)
        self.Conv2d_4a_3x3 = conv(80, 192, 3)
        self.maxpool2 = nn.MaxPool2d(3, stride=2)
        self.Mixed_5b = InceptionA(192, pool_features=32, activation=activation)
        self.Mixed_5c = InceptionA(256, pool_features=64, activation=activation)
        self.Mixed_5d = InceptionA(288, pool_features=64, activation=activation)
        self.Mixed_6a = InceptionB(288, activation=activation)
        self.Mixed_6b = InceptionC(768, channels_7x7=128, activation=activation)
        self.Mixed_6c = InceptionC(768, channels_7x7=160, activation=activation)
        self.Mixed_6d = InceptionC(768, channels_7x7=160, activation=activation)
        self.Mixed_6e = InceptionC(768, channels_7x7=192, activation=activation)
        # built here, between 6e and 7a, as torchvision does: its place in the module order sets the seeded draws
        self.AuxLogits = InceptionAux(768, num_classes, activation) if aux_logits else None
        self.Mixed_7a = InceptionD(768, activation=activation)
        self.Mixed_7b = InceptionE(1280, activation=activation)
        self.Mixed_7c = InceptionE(2048, activation=activation)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(2048, num_classes)
        self.initialize()

    @property
    def head_paths(self) -> tuple[str, ...]:
        return ("fc",) if self.AuxLogits is None else ("fc", "AuxLogits.fc")

    def init_weights(self) -> None:
        # torchvision's (init_weights=True): truncated normal within +-2 (absolute), std 0.1 for every convolution and
        # FC layer but the auxiliary FC (0.001); biases keep their constructor's draw; batch norm 1 and 0. torchvision
        # also marks the auxiliary conv1 0.01, on the BasicConv2d its loop never tests, so that one gets 0.1 too.
        aux_fc = None if self.AuxLogits is None else self.AuxLogits.fc
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                std = 0.001 if module is aux_fc else 0.1
                nn.init.trunc_normal_(module.weight, mean=0.0, std=std, a=-2, b=2)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def check_input(self, x: Tensor) -> None:
        """Classifier's check (75x75 and up); in training with the auxiliary head built, where it runs, one line
        naming it below 299x299. Raises ZooError."""
        if self.training and self.AuxLogits is not None and x.dim() == 4 and min(x.shape[-2:]) < AUX_MIN_INPUT_SIZE:
            height, width = x.shape[-2:]
            raise ZooError(
                f"{getattr(self, 'name', 'inception_v3')}'s auxiliary head needs inputs of at least "
                f"{AUX_MIN_INPUT_SIZE}x{AUX_MIN_INPUT_SIZE} in training (a 17x17 map at Mixed_6e), got "
                f"{height}x{width}; set data.input_size to {AUX_MIN_INPUT_SIZE}, or model.aux_logits: false"
            )
        super().check_input(x)

    def _trunk(self, x: Tensor, aux: list[Tensor] | None) -> Tensor:
        """The backbone; appends the auxiliary head's logits to `aux` when it is a list. Shapes at 299x299."""
        # N x 3 x 299 x 299
        x = self.Conv2d_1a_3x3(x)  # N x 32 x 149 x 149
        x = self.Conv2d_2a_3x3(x)  # N x 32 x 147 x 147
        x = self.Conv2d_2b_3x3(x)  # N x 64 x 147 x 147
        x = self.maxpool1(x)  # N x 64 x 73 x 73
        x = self.Conv2d_3b_1x1(x)  # N x 80 x 73 x 73
        x = self.Conv2d_4a_3x3(x)  # N x 192 x 71 x 71
        x = self.maxpool2(x)  # N x 192 x 35 x 35
        x = self.Mixed_5b(x)  # N x 256 x 35 x 35
        x = self.Mixed_5c(x)  # N x 288 x 35 x 35
        x = self.Mixed_5d(x)  # N x 288 x 35 x 35
        x = self.Mixed_6a(x)  # N x 768 x 17 x 17
        x = self.Mixed_6b(x)  # N x 768 x 17 x 17
        x = self.Mixed_6c(x)  # N x 768 x 17 x 17
        x = self.Mixed_6d(x)  # N x 768 x 17 x 17
        x = self.Mixed_6e(x)  # N x 768 x 17 x 17
        if aux is not None:
            aux.append(self.AuxLogits(x))
        x = self.Mixed_7a(x)  # N x 1280 x 8 x 8
        x = self.Mixed_7b(x)  # N x 2048 x 8 x 8
        return self.Mixed_7c(x)  # N x 2048 x 8 x 8


    def forward_head(self, x: Tensor) -> Tensor:
        return self.fc(self.dropout(self.avgpool(x)).flatten(1))

    @property
    def has_aux(self) -> bool:
        # forward(x, return_aux=True) gives [aux] in training; check_input refuses below 75x75, and below 299x299 in
        # training with the head built
        return self.AuxLogits is not None


@register_model(family="inception", paper=SZEGEDY_2016, input_size=(3, 299, 299),
                reference=ParamReference(23_834_568, "torchvision inception_v3 (27,161,264 with the aux head)"),
                torchvision="inception_v3")
def inception_v3(num_classes: int = 1000, in_channels: int = 3, **kwargs) -> Inception3:
    """Other keyword arguments go to Inception3: aux_logits (default False, unlike torchvision's builder), dropout
    (0.5, before the FC), activation."""
    return Inception3(num_classes, in_channels, **kwargs)
