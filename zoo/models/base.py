"""The interface every zoo model has, after timm's: features, head, classifier reset, and a size check.

`forward(x)` always returns logits. Networks with auxiliary heads (GoogLeNet) return
`(logits, [aux logits])` only when the caller asks with `forward(x, return_aux=True)` in training;
going through `forward` keeps DistributedDataParallel's gradient hooks in the path.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from zoo.errors import ZooError


class Classifier(nn.Module):
    """Base class: subclasses build their layers, set the attributes below and call `self.initialize()` last.

    The default forward_features and forward_head are those of the features/avgpool/classifier layout
    (LeNet-5, AlexNet, VGG); networks laid out otherwise override them.
    """

    num_classes: int
    min_input_size: int | None = None  # smallest H = W accepted; None when any size works
    # Dotted paths of the final Linear layer of every head (aux heads included), for reset_classifier.
    head_paths: tuple[str, ...]

    def forward_features(self, x: Tensor) -> Tensor:
        """The backbone: image batch to the last feature map, before pooling and the head."""
        return self.features(x)

    def forward_head(self, x: Tensor) -> Tensor:
        """Pool, flatten and classify the feature map."""
        return self.classifier(self.avgpool(x).flatten(1))

    def forward(self, x: Tensor, *, return_aux: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        self.check_input(x)
        logits = self.forward_head(self.forward_features(x))
        return (logits, []) if return_aux else logits

    def check_input(self, x: Tensor) -> None:
        """Fail before any layer runs, with the minimum, rather than deep inside a pooling layer."""
        if self.min_input_size is None or x.dim() != 4:
            return
        height, width = x.shape[-2:]
        if min(height, width) < self.min_input_size:
            size = self.min_input_size
            raise ZooError(
                f"{getattr(self, 'name', type(self).__name__.lower())} needs inputs of at least "
                f"{size}x{size}, got {height}x{width}; resize or pad the images (data.input_size)"
            )

    def first_conv(self, key: str = "--filters") -> tuple[str, nn.Conv2d]:
        """(dotted name, module) of the first convolution, the one the input meets first: its weights are the
        filters zoo explain --filters and train.log_filters draw. Raises ZooError naming `key` (the option or
        config key that asked) for a network without one."""
        return first_conv(self, key)

    def get_classifier(self) -> nn.Linear:
        return self.get_submodule(self.head_paths[0])

    def reset_classifier(self, num_classes: int) -> None:
        """Replace every head's final Linear layer (auxiliary heads too) with a new one for num_classes."""
        for path in self.head_paths:
            old = self.get_submodule(path)
            new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
            self.set_submodule(path, new.to(device=old.weight.device, dtype=old.weight.dtype))
        self.num_classes = num_classes

    def initialize(self) -> None:
        """Constructors call this last: the model's own init_weights, where it defines one. Elsewhere the
        layers' constructors have initialized every weight already; initializing again would draw new random
        numbers and change every result for a given seed. Skipped on the meta device (shapes only)."""
        if type(self).init_weights is Classifier.init_weights or any(p.is_meta for p in self.parameters()):
            return
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """The model's own initialization (the paper's, or torchvision's where weights must match); by default
        every layer's reset_parameters, which its constructor ran (the "default" scheme of zoo.models.weight_init)."""
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()


def first_conv(model: nn.Module, key: str = "--filters") -> tuple[str, nn.Conv2d]:
    """(dotted name, module) of the first nn.Conv2d in `model.named_modules()` order (any module;
    unwrap a DistributedDataParallel wrapper first: zoo.distributed.unwrap): the one the input meets first in
    every zoo network (conv1, features.0, GoogLeNet's conv1.conv). Raises ZooError for a network without one
    (the MLP), naming `key`, the option or config key that asked."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module
    kind = getattr(model, "name", None) or type(model).__name__
    raise ZooError(f"{key}: {kind} has no convolution, so no filters to show; a convolutional network has them "
                   "(lenet5, mnist_cnn, alexnet, resnet18 ...)")
