"""SE-ResNet: Hu, Shen, Sun (2017), "Squeeze-and-Excitation Networks", arXiv:1709.01507.

A ResNet whose every block rescales its residual branch's channels, before the addition, by a
squeeze-and-excitation module (zoo.models.layers.SqueezeExcite) with reduction r = 16. SE is an
option of zoo's ResNet blocks, so these builders only choose it.

`activation` (default "relu", the paper's) goes to ResNet: any name in zoo.models.layers.ACTIVATIONS replaces
the blocks' ReLUs and the one between the SE module's two FC layers; the SE gate stays a sigmoid (see
zoo.models.layers.SqueezeExcite for why).
"""

from __future__ import annotations

from functools import partial

from zoo.models.registry import Paper, ParamReference, register_model
from zoo.models.resnet import BasicBlock, Bottleneck, ResNet

HU_2017 = Paper("Hu, Shen, Sun", 2017, "Squeeze-and-Excitation Networks", "arXiv:1709.01507")
REDUCTION = 16

_register = partial(register_model, family="senet", paper=HU_2017, input_size=(3, 224, 224))


def _published(count: int) -> ParamReference:
    return ParamReference(count, "Hu et al. 2017, released SE-ResNet models (r=16)")


@_register()
def se_resnet18(num_classes: int = 1000, in_channels: int = 3, **kwargs) -> ResNet:
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes, in_channels, se_reduction=REDUCTION, **kwargs)


@_register()
def se_resnet34(num_classes: int = 1000, in_channels: int = 3, **kwargs) -> ResNet:
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes, in_channels, se_reduction=REDUCTION, **kwargs)


@_register(reference=_published(28_088_024))
def se_resnet50(num_classes: int = 1000, in_channels: int = 3, **kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, in_channels, se_reduction=REDUCTION, **kwargs)


@_register(reference=_published(49_326_872))
def se_resnet101(num_classes: int = 1000, in_channels: int = 3, **kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 23, 3], num_classes, in_channels, se_reduction=REDUCTION, **kwargs)


@_register(reference=_published(66_821_848))
def se_resnet152(num_classes: int = 1000, in_channels: int = 3, **kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 8, 36, 3], num_classes, in_channels, se_reduction=REDUCTION, **kwargs)
