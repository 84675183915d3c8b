"""VGG: Simonyan and Zisserman (2014), "Very Deep Convolutional Networks for Large-Scale Image
Recognition", arXiv:1409.1556. Configurations A (vgg11), B (vgg13), D (vgg16) and E (vgg19) of the
paper's Table 1, with the `_bn` versions (batch normalization after every convolution) that
torchvision added; state dicts are key for key torchvision's.

Stacks of 3x3 convolutions: two 3x3 see as far as one 5x5 and three as one 7x7, with fewer weights
and more non-linearities. An adaptive average pool to the 7x7 grid (the identity at 224x224)
lets the head take inputs from 32x32 up, as torchvision's does.

Every builder takes `activation` (default "relu", the paper's), the non-linearity after each convolution
(after its batch norm in the `_bn` versions) and after the first two FC layers: any name in
zoo.models.layers.ACTIVATIONS. The initialization stays He et al.'s for ReLU whatever the activation.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from zoo.models.base import Classifier
from zoo.models.layers import FitAvgPool2d, activation_layer
from zoo.models.registry import Paper, ParamReference, register_model

SIMONYAN_2014 = Paper("Simonyan, Zisserman", 2014, "Very Deep Convolutional Networks for Large-Scale Image Recognition",
                      "arXiv:1409.1556")

# Output channels of each 3x3 convolution; "M" is a 2x2 stride-2 max pool (one per stage, five stages).
CONFIGS: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def make_features(config: list[int | str], in_channels: int, batch_norm: bool,
                  activation: str = "relu") -> nn.Sequential:
    layers: list[nn.Module] = []
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(in_channels, item, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(item))
        layers.append(activation_layer(activation))
        in_channels = item
    return nn.Sequential(*layers)


class VGG(Classifier):
    min_input_size = 32  # five 2x2 pools: 32x32 becomes 1x1
    head_paths = ("classifier.6",)

    def __init__(self, config: str, batch_norm: bool = False, num_classes: int = 1000, in_channels: int = 3,
                 dropout: float = 0.5, activation: str = "relu") -> None:
        super().__init__()
        self.num_classes = num_classes
        self.features = make_features(CONFIGS[config], in_channels, batch_norm, activation)  # N x 512 x 7 x 7
        self.avgpool = FitAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), activation_layer(activation), nn.Dropout(dropout),
            nn.Linear(4096, 4096), activation_layer(activation), nn.Dropout(dropout),
            nn.Linear(4096, num_classes),
        )
        self.initialize()

    def init_weights(self) -> None:
        # He et al. (2015) for the ReLU convolutions; the paper's N(0, 0.01) for the FC layers.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                module.reset_parameters()
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)


def _register_vgg(name: str, config: str, batch_norm: bool, params: int) -> Callable[..., VGG]:
    """VGG's eight builders differ only in configuration, so they are registered from one table."""

    def build(num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5, activation: str = "relu") -> VGG:
        return VGG(config, batch_norm, num_classes, in_channels, dropout, activation)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"VGG configuration {config}{' with batch normalization' if batch_norm else ''}."
    return register_model(family="vgg", paper=SIMONYAN_2014, input_size=(3, 224, 224),
                          reference=ParamReference(params, f"torchvision {name}"), torchvision=name)(build)


vgg11 = _register_vgg("vgg11", "A", False, 132_863_336)
vgg11_bn = _register_vgg("vgg11_bn", "A", True, 132_868_840)
vgg13 = _register_vgg("vgg13", "B", False, 133_047_848)
vgg13_bn = _register_vgg("vgg13_bn", "B", True, 133_053_736)
vgg16 = _register_vgg("vgg16", "D", False, 138_357_544)
vgg16_bn = _register_vgg("vgg16_bn", "D", True, 138_365_992)
vgg19 = _register_vgg("vgg19", "E", False, 143_667_240)
vgg19_bn = _register_vgg("vgg19_bn", "E", True, 143_678_248)
