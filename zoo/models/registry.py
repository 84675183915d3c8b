"""The model registry: each model file registers its builders with `register_model`.

A builder is a function `(num_classes, in_channels, **kwargs) -> nn.Module` whose defaults are the
paper's; the decorator records what the summary, data and CLI code need to know without building the
network, and gives the builder a docstring that cites the paper (`help(zoo.models.resnet.resnet18)`).
Each model records its task (TASKS): a classifier's builder uses num_classes, a reconstruction model's
(an autoencoder: num_classes 0) takes it and ignores it. Importing this module does not import torch.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import importlib
import inspect
import re
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from zoo.errors import ZooError

if TYPE_CHECKING:
    from torch import nn

# What a registered model does: a classifier (zoo.models.base.Classifier) gives class logits, a reconstruction model
# (zoo.models.base.Autoencoder) gives the picture's pixel logits back.
TASKS = ("classification", "reconstruction")
# What a registered model reads: pictures (N x C x H x W floats), or token ids (N x L int64: sentences, zoo.data.text).
# A token model's builder also takes vocab_size and padding_idx, which the data's vocabulary decides.
INPUTS = ("image", "tokens")


@dataclass(frozen=True)
class Paper:
    authors: str
    year: int
    title: str
    link: str  # arXiv id or other stable reference

    def cite(self) -> str:
        return f"{self.authors} ({self.year}), {self.title}, {self.link}"


@dataclass(frozen=True)
class ParamReference:
    """A published parameter count. `precision` is the unit it was rounded to (1 = exact)."""

    count: int
    source: str
    precision: int = 1

    def matches(self, computed: int) -> bool:
        return round(computed / self.precision) * self.precision == self.count


@dataclass(frozen=True)
class ModelInfo:
    name: str
    family: str
    paper: Paper
    input_size: tuple[int, ...]  # (C, H, W) the paper trains at; a token model's (L,): token ids per sentence
    num_classes: int  # the paper's class count
    reference: ParamReference | None
    torchvision: str | None  # the torchvision builder whose state_dict ours matches key for key
    builder: Callable[..., nn.Module]
    explain: str = "gradcam"  # zoo explain's default method: one that marks what the network uses (measured)
    task: str = "classification"  # one of TASKS
    input: str = "image"  # one of INPUTS

    @property
    def in_channels(self) -> int:
        """The input's channels the paper trains with; a token model's: 1 (one embedding per token)."""
        return self.input_size[0] if self.input == "image" else 1

    @property
    def side(self) -> int:
        """The picture side (H = W) the paper trains at; 1 for a token model, whose inputs are no pictures (as xor's
        features are data.input_size 1)."""
        return self.input_size[1] if self.input == "image" else 1

    @property
    def shown_input(self) -> str:
        """The input as `zoo list` and the docstrings show it: '3x224x224', or '20 tokens'."""
        return "x".join(map(str, self.input_size)) if self.input == "image" else f"{self.input_size[0]} tokens"

    @functools.cached_property
    def min_input_size(self) -> int:
        """Smallest H = W the network accepts (see zoo.models.base), or a token model's fewest tokens per sentence, as
        the model built with the defaults states it; built on the meta device, shapes only, and once per process."""
        import torch

        with torch.device("meta"):
            return self.builder(num_classes=self.num_classes, in_channels=self.in_channels).min_input_size

    def describe(self) -> str:
        """The registry's facts, for the builder's docstring (after the builder's own, if it has one)."""
        size = self.shown_input
        target = f", {self.num_classes} classes" if self.task == "classification" else f"; {self.task} (no classes)"
        lines = [f"Paper: {self.paper.cite()}.", f"Default input: {size}{target}."]
        if (reference := self.reference) is not None:
            rounded = "" if reference.precision == 1 else f", to the nearest {reference.precision:,}"
            lines.append(f"Parameters: {reference.count:,} ({reference.source}{rounded}).")
        if self.torchvision:
            lines.append(f"torchvision's {self.torchvision} weights load key for key.")
        return "\n".join(lines)


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(
    *,
    family: str,
    paper: Paper,
    input_size: tuple[int, ...],
    num_classes: int = 1000,
    reference: ParamReference | None = None,
    torchvision: str | None = None,
    explain: str = "gradcam",
    task: str = "classification",
    input: str = "image",
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a builder under its function name and add the registry's facts to its docstring. A duplicate
    name, a task not in TASKS, an input not in INPUTS (or an input_size not of its form: C, H, W; L), or a builder
    whose num_classes or in_channels default is not the paper's, fails at import."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if input not in INPUTS or len(input_size) != (3 if input == "image" else 1):
        raise ValueError(f"input {input!r} with input_size {input_size}: give image (C, H, W) or tokens (L,)")

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = builder.__name__
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        info = ModelInfo(name, family, paper, input_size, num_classes, reference, torchvision, builder, explain, task,
                         input)
        parameters = inspect.signature(builder).parameters
        for argument, paper_value in (("num_classes", num_classes), ("in_channels", info.in_channels)):
            if argument in parameters and parameters[argument].default != paper_value:
                raise ValueError(f"builder {name}'s {argument} defaults to {parameters[argument].default}; "
                                 f"the registry says {paper_value}")
        own = inspect.cleandoc(builder.__doc__) + "\n\n" if builder.__doc__ else ""
        builder.__doc__ = own + info.describe()
        _REGISTRY[name] = info
        return builder

    return decorate


@functools.cache
def _load_models() -> None:
    from zoo.models import FAMILY_MODULES

    for module in FAMILY_MODULES:  # importing a family's file registers its builders
        importlib.import_module(f"zoo.models.{module}")


def list_models(pattern: str = "*", task: str | None = None, input: str | None = None) -> list[str]:
    """Registered names matching an fnmatch pattern such as 'resnet*', in any case ('ResNet*' too), sorted; with
    `task` (one of TASKS), only that task's models: `list_models(task="classification")`; with `input` (one of
    INPUTS), only the models reading it: `list_models(input="tokens")`."""
    if task is not None and task not in TASKS:
        raise ZooError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if input is not None and input not in INPUTS:
        raise ZooError(f"unknown input {input!r}; choose one of {', '.join(INPUTS)}")
    _load_models()
    return sorted(name for name, info in _REGISTRY.items()
                  if fnmatch.fnmatchcase(name, pattern.lower()) and task in (None, info.task)
                  and input in (None, info.input))


def get_model_info(name: str) -> ModelInfo:
    _load_models()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else "; run 'zoo list' to see them all"
        raise ZooError(f"unknown model {name!r}{hint}")
    return _REGISTRY[name]


def argument_types(name: str) -> dict[str, Any]:
    """The types of the keyword arguments `name`'s builder takes: its own and, where it passes **kwargs on, its
    model class's (the builder's return annotation). Read from the annotations, for the config to check
    and convert a builder argument given in YAML (`small_input: no` is False)."""
    builder = get_model_info(name).builder
    hints: dict[str, Any] = {}
    for function in (getattr(_hints(builder).get("return"), "__init__", None), builder):
        hints.update(_hints(function))
    hints.pop("return", None)
    return hints


def _hints(function: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(function) if function is not None else {}
    except (NameError, TypeError):  # an annotation that does not resolve: no type to check against
        return {}


def create_model(name: str, num_classes: int | None = None, in_channels: int | None = None, **kwargs) -> nn.Module:
    """Build a registered model: `create_model('resnet18', num_classes=10)`.

    num_classes and in_channels default to the paper's; other keyword arguments go to the builder.
    """
    info = get_model_info(name)
    try:
        model = info.builder(
            num_classes=info.num_classes if num_classes is None else num_classes,
            in_channels=info.in_channels if in_channels is None else in_channels,
            **kwargs,
        )
    except TypeError as error:
        module = f"zoo.models.{info.builder.__module__.rsplit('.', 1)[-1]}"
        if unexpected := re.search(r"unexpected keyword argument '(\w+)'", str(error)):
            raise ZooError(f"{name} takes no argument {unexpected.group(1)!r}; see help({module})") from None
        if fixed := re.search(r"multiple values for keyword argument '(\w+)'", str(error)):
            raise ZooError(f"{name} sets {fixed.group(1)!r} itself; leave it out (see help({module}))") from None
        raise
    model.name = name
    return model
