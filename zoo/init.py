"""Weight initialization schemes the training config can name (`init: he_normal`).

Glorot and Bengio (2010) keep the variance of activations and gradients equal across layers of
tanh/sigmoid units: Var(W) = 2 / (fan_in + fan_out). He et al. (2015) double it for ReLU, which
zeroes half its inputs: Var(W) = 2 / fan_in. The course's deep-sigmoid XOR network fails with small
random weights and learns with ReLU and He initialization; these functions make that a config key.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from zoo.errors import ZooError

_WEIGHT_INITS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "xavier_uniform": nn.init.xavier_uniform_,
    "xavier_normal": nn.init.xavier_normal_,
    "he_uniform": lambda w: nn.init.kaiming_uniform_(w, mode="fan_in", nonlinearity="relu"),
    "he_normal": lambda w: nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu"),
}
SCHEMES = ("default", *_WEIGHT_INITS)

_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


@torch.no_grad()
def init_weights(model: nn.Module, scheme: str = "default") -> nn.Module:
    """Initialize conv and linear weights by `scheme`, their biases to 0, norm layers to weight 1, bias 0.

    "default" re-applies the model's own initialization (the paper's, or torchvision's).
    """
    if scheme not in SCHEMES:
        raise ZooError(f"unknown init {scheme!r}; choose one of {', '.join(SCHEMES)}")
    if scheme == "default":
        if hasattr(model, "init_weights"):
            model.init_weights()
        else:
            for module in model.modules():
                if module is not model and hasattr(module, "reset_parameters"):
                    module.reset_parameters()
        return model
    init_weight = _WEIGHT_INITS[scheme]
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            init_weight(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, _NORMS) and getattr(module, "weight", None) is not None:
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model
