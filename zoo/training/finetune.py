"""Transfer learning: load trained weights into a zoo model whose head is new, freeze what should not move.

Sources: a zoo checkpoint (runs/.../best.pt), a torchvision-format state_dict file (.pth), or
`torchvision:<WeightsEnum>` through torchvision's weights API and torch.hub's cache. Every file is
read with weights_only=True. The source's classifier layers (GoogLeNet's auxiliary ones too) are never
loaded: the model was built with a new head for the new classes (reset_classifier's layout).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from zoo.checkpoint import Normalization, TrainingState, load_checkpoint
from zoo.errors import ZooError
from zoo.registry import get_model_info

AUX_PREFIXES = ("aux1.", "aux2.")


@dataclass(frozen=True)
class Source:
    state: dict[str, Tensor]
    description: str
    classes: list[str] | None = None
    normalization: Normalization | None = None  # the mean and std the weights were trained with


def read_source(spec: str, model_name: str) -> Source:
    if spec.startswith("torchvision:"):
        return _torchvision_weights(spec.removeprefix("torchvision:"), model_name)
    data = load_checkpoint(Path(spec))
    if TrainingState.holds(data, "weights"):  # a zoo checkpoint
        state = TrainingState.from_dict(data)
        if state.model_name != model_name:
            raise ZooError(f"finetune.source {spec} holds a {state.model_name}, not a {model_name}; "
                           f"set model.name: {state.model_name} or choose another source")
        return Source(state.model, f"zoo checkpoint {spec} ({len(state.classes or [])} classes)",
                      state.classes, state.normalization)
    if isinstance(data, dict) and data and all(isinstance(v, Tensor) for v in data.values()):
        return Source(data, f"state_dict {spec}")
    raise ZooError(f"finetune.source {spec} is neither a zoo checkpoint nor a state_dict of tensors")


def _torchvision_weights(name: str, model_name: str) -> Source:
    import torchvision

    counterpart = get_model_info(model_name).torchvision
    if counterpart is None:
        fits = ", ".join(n for n in _names_with_torchvision_weights())
        raise ZooError(f"{model_name} has no torchvision counterpart; torchvision weights fit {fits}")
    try:
        weights = torchvision.models.get_weight(name)
    except (ValueError, KeyError, AttributeError):
        raise ZooError(f"unknown torchvision weights {name!r}; e.g. torchvision:{_example(counterpart)}") from None
    if type(weights) is not torchvision.models.get_model_weights(counterpart):
        raise ZooError(f"{name} are weights for another network; {model_name} takes torchvision:{_example(counterpart)}")
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    try:
        state = torch.hub.load_state_dict_from_url(weights.url, progress=True, weights_only=True)
    except OSError:  # no network: URLError and its kin
        raise ZooError(f"cannot download {weights.url} (offline?); fetch it elsewhere and place it at {cached}") from None
    normalization = None
    transforms = weights.transforms()
    if hasattr(transforms, "mean"):
        normalization = Normalization(tuple(transforms.mean), tuple(transforms.std))
    return Source(state, f"torchvision {name} ({weights.meta.get('num_params', '?'):,} parameters, "
                         f"{len(weights.meta.get('categories') or [])} classes)", weights.meta.get("categories"), normalization)


def _example(torchvision_name: str) -> str:
    import torchvision

    enum = torchvision.models.get_model_weights(torchvision_name)
    return f"{enum.__name__}.{enum.DEFAULT.name}"


def _names_with_torchvision_weights() -> list[str]:
    from zoo.registry import list_models

    return [n for n in list_models() if get_model_info(n).torchvision]


@dataclass
class LoadReport:
    loaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # the old head(s), and aux heads this model does not build
    missing: list[str] = field(default_factory=list)  # in the model, not in the source: they keep their init
    problems: list[str] = field(default_factory=list)  # unexpected keys and shape mismatches


def head_keys(model: nn.Module) -> set[str]:
    return {f"{path}.{suffix}" for path in model.head_paths for suffix in ("weight", "bias")}


def transplant(model: nn.Module, source: Source, strict: bool = True) -> LoadReport:
    """Copy every source tensor whose name and shape fit, except the classifier layers."""
    report, heads, target = LoadReport(), head_keys(model), model.state_dict()
    fitting: dict[str, Tensor] = {}
    for key, value in source.state.items():
        if key in heads or (key.startswith(AUX_PREFIXES) and key not in target):
            report.skipped.append(key)
        elif key not in target:
            report.problems.append(f"{key} is not in {model.name}")
        elif target[key].shape != value.shape:
            report.problems.append(f"{key} is {tuple(value.shape)} in the source but {tuple(target[key].shape)} in {model.name}")
        else:
            fitting[key] = value
    report.loaded = list(fitting)
    report.missing = [k for k in target if k not in source.state and k not in heads]
    # A GoogLeNet with aux heads from a source without them gets new ones, like a new head.
    real_missing = [k for k in report.missing if not k.startswith(AUX_PREFIXES)]
    if strict and (report.problems or real_missing):
        first = (report.problems + [f"{k} is missing from the source" for k in real_missing])[:3]
        raise ZooError(f"{source.description} does not fit {model.name}: {'; '.join(first)}; "
                       "choose the matching model.name, or set finetune.strict: false to load what fits")
    model.load_state_dict(fitting, strict=False)
    return report


class Freezer:
    """Freezes parameters and keeps frozen batch-norm layers in eval mode (running statistics stay put)."""

    def __init__(self, model: nn.Module, spec: str) -> None:
        self.model, self.spec = model, spec
        self.frozen: list[str] = []
        self._hooks: list[torch.utils.hooks.RemovableHandle] = []
        if spec == "none":
            return
        modules = list(model.named_modules())
        if spec == "backbone":
            heads = tuple(model.head_paths)
            frozen_modules = {name for name, _ in modules if name and not _within(name, heads)}
        else:
            target = spec.removeprefix("until:")
            names = [name for name, _ in modules]
            if target not in names:
                children = ", ".join(name for name, _ in model.named_children())
                raise ZooError(f"finetune.freeze: {model.name} has no module {target!r}; its top-level modules are {children}")
            # named_modules is pre-order: the target's descendants follow it directly.
            last = max(i for i, name in enumerate(names) if _within(name, (target,)))
            frozen_modules = {name for name in names[1:last + 1]}
        for name, module in modules:
            if name in frozen_modules:
                for param_name, param in module.named_parameters(recurse=False):
                    param.requires_grad_(False)
                    self.frozen.append(f"{name}.{param_name}")
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    self._hooks.append(module.register_forward_pre_hook(_keep_eval))

    def unfreeze(self) -> None:
        for param in self.model.parameters():
            param.requires_grad_(True)
        for hook in self._hooks:
            hook.remove()
        self.frozen, self._hooks = [], []

    def counts(self) -> tuple[int, int]:
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in self.model.parameters() if not p.requires_grad)
        return trainable, frozen


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _keep_eval(module: nn.Module, args: Any) -> None:
    module.train(False)  # a frozen batch norm normalizes with its running statistics and never updates them


def lr_scale(model: nn.Module, backbone_lr_mult: float):
    """The new head trains at optimizer.lr; the pre-trained layers at backbone_lr_mult x that."""
    heads = tuple(model.head_paths)
    return lambda name: 1.0 if _within(name.rsplit(".", 1)[0], heads) else backbone_lr_mult


def describe(source: Source, report: LoadReport, freezer: Freezer) -> str:
    trainable, frozen = freezer.counts()
    lines = [f"fine-tuning {freezer.model.name} from {source.description}",
             f"  keys loaded {len(report.loaded)}, skipped {len(report.skipped)}"
             + (f" ({', '.join(report.skipped[:4])}{' ...' if len(report.skipped) > 4 else ''})" if report.skipped else "")
             + f", missing {len(report.missing)}" + (f" ({', '.join(report.missing[:4])})" if report.missing else ""),
             f"  parameters: {trainable:,} trainable, {frozen:,} frozen (freeze: {freezer.spec})"]
    if report.problems:
        lines.append(f"  not loaded (strict: false): {'; '.join(report.problems[:3])}")
    return "\n".join(lines)
