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
    """Base class: subclasses build `features`/head layers and set the attributes below."""

    num_classes: int
    min_input_size: int | None = None  # smallest H = W accepted; None when any size works
    # Dotted paths of the final Linear layer of every head (aux heads included), for reset_classifier.
    head_paths: tuple[str, ...] = ("fc",)

    def forward_features(self, x: Tensor) -> Tensor:
        """The backbone: image batch to the last feature map, before pooling and the head."""
        raise NotImplementedError

    def forward_head(self, x: Tensor) -> Tensor:
        """Pool, flatten and classify the feature map."""
        raise NotImplementedError

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
        """Constructors call this last: the model's own init, skipped on the meta device (shapes only)."""
        if not any(p.is_meta for p in self.parameters()):
            self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """The model's own initialization (the paper's, or torchvision's where weights must match)."""
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()
