"""The course's teaching models: a configurable MLP (XOR, MNIST) and the small MNIST CNN.

The MLP reproduces the course's experiments: the deep sigmoid network that fails on XOR, the ReLU
one that learns it, and the 784-256-256-10 MNIST network. The CNN is the course's (and Keras's
"simple MNIST convnet") 34,826-parameter network; an adaptive pool, the identity at 28x28, lets
its dense layer take other sizes.

Both take `activation`, any name in zoo.models.layers.ACTIVATIONS (sigmoid, tanh, relu, ...): the MLP's after
every hidden layer, the CNN's after both convolutions. The default is the course's, ReLU, for both.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from zoo.errors import ZooError
from zoo.models.base import Classifier
from zoo.models.layers import FitAvgPool2d, activation_layer, check_activation
from zoo.models.registry import Paper, ParamReference, register_model

RUMELHART_1986 = Paper("Rumelhart, Hinton, Williams", 1986, "Learning representations by back-propagating errors",
                       "doi:10.1038/323533a0")
LECUN_1989 = Paper("LeCun et al.", 1989, "Backpropagation applied to handwritten zip code recognition",
                   "doi:10.1162/neco.1989.1.4.541")


class MLP(Classifier):
    """Fully connected layers on the flattened input: in_features -> hidden_sizes... -> num_classes."""

    head_paths = ("fc",)

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        input_size: int | None = 28,  # side of a square image; None for flat inputs such as XOR's two bits
        hidden_sizes: Sequence[int] = (256, 256),
        activation: str = "relu",  # after every hidden layer: a name in zoo.models.layers.ACTIVATIONS
        in_features: int | None = None,  # overrides in_channels x input_size^2
    ) -> None:
        super().__init__()
        check_activation(activation)  # also when there are no hidden layers to put it in
        self.num_classes = num_classes
        if in_features is None:
            in_features = in_channels * (input_size or 1) ** 2
        self.in_features = in_features
        self.min_input_size = input_size  # informational: check_input below wants exactly in_features
        layers: list[nn.Module] = []
        width = in_features
        for hidden in hidden_sizes:
            layers += [nn.Linear(width, hidden), activation_layer(activation, inplace=False)]  # nn.ReLU(), as before
            width = hidden
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(width, num_classes)
        self.initialize()

    def check_input(self, x: Tensor) -> None:
        features = x[0].numel() if x.dim() > 1 else x.numel()
        if features != self.in_features:
            raise ZooError(
                f"mlp expects {self.in_features} input features (in_channels x height x width), got "
                f"{features}; set the model's in_features or input_size to match the data"
            )

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x.flatten(1))

    def forward_head(self, x: Tensor) -> Tensor:
        return self.fc(x)


class MnistCNN(Classifier):
    min_input_size = 10  # conv3 -> pool2 -> conv3 -> pool2 leaves at least 1x1
    head_paths = ("fc",)

    def __init__(self, num_classes: int = 10, in_channels: int = 1, activation: str = "relu") -> None:
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, kernel_size=3), activation_layer(activation),  # N x 32 x 26 x 26
            nn.MaxPool2d(2),  # N x 32 x 13 x 13
            nn.Conv2d(32, 64, kernel_size=3), activation_layer(activation),  # N x 64 x 11 x 11
            nn.MaxPool2d(2),  # N x 64 x 5 x 5
        )
        self.pool = FitAvgPool2d(5)
        self.fc = nn.Linear(64 * 5 * 5, num_classes)
        self.initialize()

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x)

    def forward_head(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(x).flatten(1))


@register_model(family="mlp", paper=RUMELHART_1986, input_size=(1, 28, 28), num_classes=10,
                reference=ParamReference(269_322, "course 004, MNIST DNN 784-256-256-10 (200,960 + 65,792 + 2,570)"))
def mlp(num_classes: int = 10, in_channels: int = 1, **kwargs) -> MLP:
    """Other keyword arguments go to MLP: input_size, hidden_sizes, activation, in_features."""
    return MLP(num_classes, in_channels, **kwargs)


@register_model(family="cnn", paper=LECUN_1989, input_size=(1, 28, 28), num_classes=10,
                reference=ParamReference(34_826, "course 004, MNIST CNN summary (320 + 18,496 + 16,010)"))
def mnist_cnn(num_classes: int = 10, in_channels: int = 1, activation: str = "relu") -> MnistCNN:
    return MnistCNN(num_classes, in_channels, activation)
