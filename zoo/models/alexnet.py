"""AlexNet and ZFNet: five convolutions, three max pools, three fully connected layers.

- `alexnet`: Krizhevsky, Sutskever, Hinton (2012), "ImageNet Classification with Deep Convolutional
  Neural Networks", as the single-tower network of the course table (227x227 input, 96-256-384-384-256
  maps, 62,378,344 parameters). The paper splits conv2, conv4 and conv5 across two GPUs; one tower
  connects every map, which is where the course's count comes from. Local response normalization
  follows the ReLU of conv1 and conv2, before pooling, as in the paper.
- `alexnet_owt`: Krizhevsky (2014), "One weird trick for parallelizing convolutional neural networks",
  arXiv:1404.5997: 64-192-384-256-256 maps, no LRN. This is torchvision's `alexnet`; its state_dict
  loads key for key.
- `zfnet`: Zeiler and Fergus (2013), "Visualizing and Understanding Convolutional Networks",
  arXiv:1311.2901: conv1 7x7 stride 2, conv2 5x5 stride 2, 3x3 stride-2 pooling in ceil mode and
  normalization after pooling. `zfnet_wide` is their 512-1024-512 variant of layers 3-5.

An adaptive average pool to the 6x6 grid (the identity at the native size) lets the head take
any input above the minimum, as torchvision's does.

Every builder takes `activation` (default "relu", the papers'), the non-linearity after each convolution and
after fc6 and fc7: any name in zoo.models.layers.ACTIVATIONS.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from torch import nn

from zoo.models.base import Classifier
from zoo.models.layers import FitAvgPool2d, activation_layer, conv_act
from zoo.models.registry import Paper, ParamReference, register_model

KRIZHEVSKY_2012 = Paper("Krizhevsky, Sutskever, Hinton", 2012,
                        "ImageNet Classification with Deep Convolutional Neural Networks", "NIPS 2012")
KRIZHEVSKY_2014 = Paper("Krizhevsky", 2014, "One weird trick for parallelizing convolutional neural networks",
                        "arXiv:1404.5997")
ZEILER_2013 = Paper("Zeiler, Fergus", 2013, "Visualizing and Understanding Convolutional Networks", "arXiv:1311.2901")


def _lrn() -> nn.LocalResponseNorm:
    return nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)  # the paper's constants


def _paper_features(
    in_channels: int, widths: Sequence[int], conv1: tuple[int, int, int], conv2: tuple[int, int, int],
    ceil_mode: bool, lrn_after_pool: bool, activation: str = "relu",
) -> nn.Sequential:
    """conv1 and conv2 are (kernel, stride, padding); conv3-5 are 3x3 with padding 1."""
    conv = partial(conv_act, activation=activation)

    def pool_and_norm() -> list[nn.Module]:
        pool, norm = nn.MaxPool2d(3, stride=2, ceil_mode=ceil_mode), _lrn()
        return [pool, norm] if lrn_after_pool else [norm, pool]

    w1, w2, w3, w4, w5 = widths
    return nn.Sequential(
        *conv(in_channels, w1, *conv1), *pool_and_norm(),  # alexnet: N x 96 x 27 x 27
        *conv(w1, w2, *conv2), *pool_and_norm(),  # N x 256 x 13 x 13
        *conv(w2, w3, 3, 1, 1),
        *conv(w3, w4, 3, 1, 1),
        *conv(w4, w5, 3, 1, 1),
        nn.MaxPool2d(3, stride=2, ceil_mode=ceil_mode),  # N x 256 x 6 x 6
    )


class AlexNet(Classifier):
    """The shared skeleton; `features` and the minimum input size it implies come from the builders below."""

    head_paths = ("classifier.6",)

    def __init__(self, features: nn.Sequential, feature_channels: int, num_classes: int, min_input_size: int,
                 dropout: float = 0.5, torchvision_layout: bool = False, activation: str = "relu") -> None:
        super().__init__()
        self.num_classes = num_classes
        self.min_input_size = min_input_size
        self.features = features
        self.avgpool = FitAvgPool2d((6, 6))
        fc6, fc7, fc8 = nn.Linear(feature_channels * 36, 4096), nn.Linear(4096, 4096), nn.Linear(4096, num_classes)
        act6, act7 = activation_layer(activation), activation_layer(activation)
        if torchvision_layout:  # dropout before fc6 and fc7: torchvision's indices 1, 4, 6
            layers = [nn.Dropout(dropout), fc6, act6, nn.Dropout(dropout), fc7, act7, fc8]
        else:  # the paper's: dropout on the outputs of fc6 and fc7
            layers = [fc6, act6, nn.Dropout(dropout), fc7, act7, nn.Dropout(dropout), fc8]
        self.classifier = nn.Sequential(*layers)
        self.initialize()


# Each minimum input size is the smallest side whose map reaches the last pool at its smallest input, 3x3 (2x2
# with ZFNet's ceil mode); the trailing comments trace the side through each strided layer.
@register_model(family="alexnet", paper=KRIZHEVSKY_2012, input_size=(3, 227, 227),
                reference=ParamReference(62_378_344, "course 002, AlexNet table (single tower)"))
def alexnet(num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5, activation: str = "relu") -> AlexNet:
    features = _paper_features(in_channels, (96, 256, 384, 384, 256), (11, 4, 0), (5, 1, 2), ceil_mode=False,
                               lrn_after_pool=False, activation=activation)
    # 67 -> 15 -> 7 -> 3 -> 1
    return AlexNet(features, 256, num_classes, min_input_size=67, dropout=dropout, activation=activation)


@register_model(family="alexnet", paper=KRIZHEVSKY_2014, input_size=(3, 224, 224),
                reference=ParamReference(61_100_840, "torchvision alexnet"), torchvision="alexnet")
def alexnet_owt(num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5,
                activation: str = "relu") -> AlexNet:
    conv = partial(conv_act, activation=activation)
    features = nn.Sequential(
        *conv(in_channels, 64, 11, 4, 2), nn.MaxPool2d(3, stride=2),  # N x 64 x 27 x 27
        *conv(64, 192, 5, 1, 2), nn.MaxPool2d(3, stride=2),  # N x 192 x 13 x 13
        *conv(192, 384, 3, 1, 1),
        *conv(384, 256, 3, 1, 1),
        *conv(256, 256, 3, 1, 1),
        nn.MaxPool2d(3, stride=2),  # N x 256 x 6 x 6
    )
    return AlexNet(features, 256, num_classes, min_input_size=63, dropout=dropout, torchvision_layout=True,
                   activation=activation)  # 63 -> 15 -> 7 -> 3 -> 1


@register_model(family="zfnet", paper=ZEILER_2013, input_size=(3, 224, 224),
                reference=ParamReference(62_357_608, "AlexNet's count with conv1 7x7x3x96 (course 002, table 8.1)"))
def zfnet(num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5, activation: str = "relu") -> AlexNet:
    features = _paper_features(in_channels, (96, 256, 384, 384, 256), (7, 2, 1), (5, 2, 0), ceil_mode=True,
                               lrn_after_pool=True, activation=activation)
    # 47 -> 22 -> 11 -> 4 -> 2 -> 1
    return AlexNet(features, 256, num_classes, min_input_size=47, dropout=dropout, activation=activation)


@register_model(family="zfnet", paper=ZEILER_2013, input_size=(3, 224, 224),
                reference=ParamReference(107_627_624, "course 002, table 8.1 (512-1024-512 maps in layers 3-5)"))
def zfnet_wide(num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5,
               activation: str = "relu") -> AlexNet:
    """ZFNet with 512, 1024 and 512 maps in layers 3-5."""
    features = _paper_features(in_channels, (96, 256, 512, 1024, 512), (7, 2, 1), (5, 2, 0), ceil_mode=True,
                               lrn_after_pool=True, activation=activation)
    return AlexNet(features, 512, num_classes, min_input_size=47, dropout=dropout, activation=activation)
