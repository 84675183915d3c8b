"""The course's teaching models: a configurable MLP (XOR, MNIST) and the small MNIST CNN.

The MLP reproduces the course's experiments: the deep sigmoid network that fails on XOR, the ReLU
one that learns it, and the 784-256-256-10 MNIST network. The CNN is the course's (and Keras's
"simple MNIST convnet") 34,826-parameter network; an adaptive pool, the identity at 28x28, lets
its dense layer take other sizes.

Both take `activation`, any name in zoo.models.layers.ACTIVATIONS (sigmoid, tanh, relu, ...): the MLP's after
every hidden layer, the CNN's after both convolutions. The default is the course's, ReLU, for both.

Both also take the two options of the course's regularization lessons, off by default, where the networks (modules,
parameter counts, state_dict keys, so old checkpoints) are exactly as without them:
- `dropout` (0 to below 1; Srivastava et al. 2014, JMLR 15:1929): the MLP's after every hidden activation, the
  CNN's on the flattened features before its dense layer, where Keras's "simple MNIST convnet" puts its 0.5.
- `batch_norm` (Ioffe and Szegedy 2015, arXiv:1502.03167): after every hidden Linear (the MLP's) or convolution
  (the CNN's), before the activation, as the paper places it.
The layers an option adds to `features` move the later ones along (the CNN's second convolution becomes features.4
with batch_norm), as in VGG's `_bn` versions: a checkpoint loads into the network built with its own options.
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


def check_dropout(dropout: float) -> None:
    """Raise ZooError, one line naming the key and its range, unless 0 <= dropout < 1 (1 would zero every unit)."""
    if not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
        raise ZooError(f"dropout must be a probability in [0, 1), got {dropout!r}; set it below 1, such as 0.5 "
                       "(Keras's MNIST convnet), or to 0 for none")


def _conv(in_channels: int, out_channels: int, activation: str, batch_norm: bool) -> list[nn.Module]:
    """A 3x3 convolution, its batch norm if asked, and the activation."""
    # The convolution (and MLP's Linear) keeps its bias under batch norm, though the norm's mean subtraction cancels
    # it (the paper's section 3.2; beta shifts instead): it is then the same module with the option on or off, so
    # the lesson's two networks differ by the norms alone, as torchvision's vgg11 and vgg11_bn do.
    norm = [nn.BatchNorm2d(out_channels)] if batch_norm else []
    return [nn.Conv2d(in_channels, out_channels, kernel_size=3), *norm, activation_layer(activation)]


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
        dropout: float = 0.0,  # probability of nn.Dropout after every hidden activation; 0: no Dropout layer
        batch_norm: bool = False,  # nn.BatchNorm1d after every hidden Linear, before its activation
    ) -> None:
        super().__init__()
        check_activation(activation)  # also when there are no hidden layers to put it in
        check_dropout(dropout)
        self.num_classes = num_classes
        if in_features is None:
            in_features = in_channels * (input_size or 1) ** 2
        self.in_features = in_features
        self.min_input_size = input_size  # informational: check_input below wants exactly in_features
        layers: list[nn.Module] = []
        width = in_features
        for hidden in hidden_sizes:
            layers.append(nn.Linear(width, hidden))  # with its bias under batch norm too: see _conv
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden))
            layers.append(activation_layer(activation, inplace=False))  # nn.ReLU(), as before
            if dropout:
                layers.append(nn.Dropout(dropout))
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

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        activation: str = "relu",  # after both convolutions: a name in zoo.models.layers.ACTIVATIONS
        dropout: float = 0.0,  # probability of nn.Dropout before the dense layer (Keras's: 0.5); 0: no such layer
        batch_norm: bool = False,  # nn.BatchNorm2d after each convolution, before its activation
    ) -> None:
        super().__init__()
        check_dropout(dropout)
        self.num_classes = num_classes
        self.features = nn.Sequential(
            *_conv(in_channels, 32, activation, batch_norm),  # N x 32 x 26 x 26
            nn.MaxPool2d(2),  # N x 32 x 13 x 13
            *_conv(32, 64, activation, batch_norm),  # N x 64 x 11 x 11
            nn.MaxPool2d(2),  # N x 64 x 5 x 5
        )
        self.pool = FitAvgPool2d(5)
        self.dropout = nn.Dropout(dropout) if dropout else None  # None: no module, so the default tree is as before
        self.fc = nn.Linear(64 * 5 * 5, num_classes)
        self.initialize()

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x)

    def forward_head(self, x: Tensor) -> Tensor:
        x = self.pool(x).flatten(1)  # N x 1600
        return self.fc(x if self.dropout is None else self.dropout(x))


@register_model(family="mlp", paper=RUMELHART_1986, input_size=(1, 28, 28), num_classes=10,
                reference=ParamReference(269_322, "course 004, MNIST DNN 784-256-256-10 (200,960 + 65,792 + 2,570)"))
def mlp(num_classes: int = 10, in_channels: int = 1, **kwargs) -> MLP:
    """Other keyword arguments go to MLP: input_size, hidden_sizes, activation, in_features, dropout (Srivastava et
    al. 2014, JMLR 15:1929; after every hidden activation) and batch_norm (Ioffe and Szegedy 2015, arXiv:1502.03167;
    after every hidden Linear, before its activation)."""
    return MLP(num_classes, in_channels, **kwargs)


@register_model(family="cnn", paper=LECUN_1989, input_size=(1, 28, 28), num_classes=10,
                reference=ParamReference(34_826, "course 004, MNIST CNN summary (320 + 18,496 + 16,010)"))
def mnist_cnn(num_classes: int = 10, in_channels: int = 1, activation: str = "relu", dropout: float = 0.0,
              batch_norm: bool = False) -> MnistCNN:
    """The course's MNIST CNN. dropout: before the dense layer, as Keras's "simple MNIST convnet" (0.5 there;
    Srivastava et al. 2014, JMLR 15:1929); batch_norm: after each convolution, before its activation (Ioffe and
    Szegedy 2015, arXiv:1502.03167)."""
    return MnistCNN(num_classes, in_channels, activation, dropout, batch_norm)
