"""LeNet-5: LeCun, Bottou, Bengio, Haffner (1998), "Gradient-based learning applied to document recognition".

As in the course table: two 5x5 tanh convolutions with 2x2 average pooling, then FC 120, 84 and the
classes. Differences from the paper, which change no parameter count: the paper's partial C3
connection table is a full convolution here, its trainable subsampling is plain average pooling,
and its RBF output layer is a linear layer (logits for cross-entropy). An adaptive average pool,
the identity at 32x32, lets the same head take larger inputs.

`activation` (default "tanh", the paper's squashing function, without its 1.7159 and 2/3 scales) is the
non-linearity after both convolutions and both hidden FC layers: any name in zoo.models.layers.ACTIVATIONS.
"""

from __future__ import annotations

from torch import Tensor, nn

from zoo.models.base import Classifier
from zoo.models.layers import FitAvgPool2d, activation_layer
from zoo.models.registry import Paper, ParamReference, register_model

LECUN_1998 = Paper("LeCun, Bottou, Bengio, Haffner", 1998, "Gradient-based learning applied to document recognition",
                   "doi:10.1109/5.726791")


class LeNet5(Classifier):
    min_input_size = 16  # conv5 -> pool2 -> conv5 -> pool2 leaves at least 1x1
    head_paths = ("classifier.4",)

    def __init__(self, num_classes: int = 10, in_channels: int = 1, activation: str = "tanh") -> None:
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5), activation_layer(activation),  # N x 6 x 28 x 28
            nn.AvgPool2d(2),  # N x 6 x 14 x 14
            nn.Conv2d(6, 16, kernel_size=5), activation_layer(activation),  # N x 16 x 10 x 10
            nn.AvgPool2d(2),  # N x 16 x 5 x 5
        )
        self.pool = FitAvgPool2d(5)  # 'pool', not torchvision's 'avgpool': configs freeze until:pool
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120), activation_layer(activation),
            nn.Linear(120, 84), activation_layer(activation),
            nn.Linear(84, num_classes),
        )
        self.initialize()

    def forward_head(self, x: Tensor) -> Tensor:
        return self.classifier(self.pool(x).flatten(1))


@register_model(family="lenet", paper=LECUN_1998, input_size=(1, 32, 32), num_classes=10,
                reference=ParamReference(61_706, "course 002, LeNet-5 table (156 + 2,416 + 48,120 + 10,164 + 850)"),
                explain="occlusion")  # Grad-CAM marks the digits' background: docs/inspecting.md
def lenet5(num_classes: int = 10, in_channels: int = 1, activation: str = "tanh") -> LeNet5:
    return LeNet5(num_classes, in_channels, activation)
