"""zoo: readable PyTorch implementations of the classic convolutional networks, and a CLI to train them.

    >>> import zoo
    >>> model = zoo.create_model("resnet18", num_classes=10)
    >>> zoo.list_models("vgg*")

The public names are imported on first use, so `import zoo` (and `zoo --help`) stays fast.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "ZooError": "zoo.errors",
    "create_model": "zoo.registry",
    "list_models": "zoo.registry",
    "get_model_info": "zoo.registry",
    "register_model": "zoo.registry",
    "init_weights": "zoo.init",
    "aux_loss": "zoo.losses",
    "summarize": "zoo.summary",
}

__all__ = ["__version__", *_EXPORTS]


_SUBMODULES = {"cli", "errors", "init", "losses", "models", "registry", "summary"}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"zoo.{name}")
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
