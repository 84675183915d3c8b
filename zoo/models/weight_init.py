"""Weight initialization schemes the training config can name (`init: he_normal`).

Glorot and Bengio (2010) keep the variance of activations and gradients equal across layers of
tanh/sigmoid units: Var(W) = 2 / (fan_in + fan_out). He et al. (2015) double it for ReLU, which
zeroes half its inputs: Var(W) = 2 / fan_in. The course's deep-sigmoid XOR network fails with small
random weights and learns with ReLU and He initialization; these functions make that a config key.

Importing this module does not import torch, so the config schema can take SCHEMES from here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from zoo.errors import ZooError

if TYPE_CHECKING:
    from torch import Tensor, nn

SCHEMES = ("default", "xavier_uniform", "xavier_normal", "he_uniform", "he_normal")


def _weight_init(scheme: str) -> Callable[[Tensor], Tensor]:
    from torch import nn

    return {
        "xavier_uniform": nn.init.xavier_uniform_,
        "xavier_normal": nn.init.xavier_normal_,
        "he_uniform": lambda w: nn.init.kaiming_uniform_(w, mode="fan_in", nonlinearity="relu"),
        "he_normal": lambda w: nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu"),
    }[scheme]


def init_weights(model: nn.Module, scheme: str = "default") -> nn.Module:
    """Initialize conv and linear weights by `scheme`, their biases to 0, norm layers to weight 1, bias 0.

    "default" re-applies the model's own initialization (the paper's, or torchvision's).
    """
    if scheme not in SCHEMES:
        raise ZooError(f"unknown init {scheme!r}; choose one of {', '.join(SCHEMES)}")
    import torch
    from torch import nn

    with torch.no_grad():
        if scheme == "default":
            if hasattr(model, "init_weights"):
                model.init_weights()
            else:
                for module in model.modules():
                    if module is not model and hasattr(module, "reset_parameters"):
                        module.reset_parameters()
            return model
        init_weight = _weight_init(scheme)
        norms = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
        for module in model.modules():
            if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
                init_weight(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, norms) and getattr(module, "weight", None) is not None:
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
    return model
