"""Transfer learning: load trained weights into a zoo model whose head is new, freeze what should not move.

Sources: a zoo checkpoint (runs/.../best.pt), a state_dict file (.pth, .safetensors) bare or inside another
tool's training checkpoint (STATE_DICT_ENTRIES), or `torchvision:<WeightsEnum>` through torchvision's weights
API and torch.hub's cache. Every file is read with weights_only=True. Keys keep the prefixes of the wrapper the
network was saved from (DataParallel's `module.`, ...): `transplant` strips the known ones (WRAPPERS). The
source's classifier layers (GoogLeNet's and Inception v3's auxiliary ones too) are never loaded: the model was built
with a new head for the new classes (reset_classifier's layout).
"""

from __future__ import annotations

import contextlib
import sys
from collections import Counter, OrderedDict
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from zoo.checkpoint import Normalization, TrainingState, load_checkpoint
from zoo.errors import ZooError
from zoo.models.densenet import rename_legacy_keys
from zoo.models.registry import get_model_info

# The auxiliary heads' keys, built or not: GoogLeNet's two, Inception v3's one. A source's are skipped where the model
# does not build them, and a model's are new (like a new head) where the source lacks them.
AUX_PREFIXES = ("aux1.", "aux2.", "AuxLogits.")

# Other tools' training checkpoints: the entry that holds the network's state_dict and who writes it. In order
# of precedence: a file with several takes the first, so the trained weights win over their moving average
# (EMA), which every one of these tools writes only when asked to; finetune.source_key picks another.
STATE_DICT_ENTRIES = {
    "state_dict": "PyTorch Lightning, MMPretrain, timm's train.py",
    "model_state_dict": "PyTorch's tutorial on saving a general checkpoint",
    "model": "torchvision's and DeiT's reference training scripts",
    "net": "hand-written scripts such as pytorch-cifar",
    "weights": "hand-written scripts",
    "state_dict_ema": "timm's train.py, the EMA weights",
    "model_ema": "torchvision's reference training scripts, the EMA weights",
}

# Modules that wrap a network and so prefix its keys in their state_dict, several deep at times (a compiled
# model in DataParallel saves module._orig_mod.*). unwrap strips them where the rest fits the model better.
@dataclass(frozen=True)
class Wrapper:
    prefix: str  # on every key of the wrapper's state_dict
    name: str
    own_keys: tuple[str, ...] = ()  # the wrapper's own tensors beside the network's, dropped


WRAPPERS = (
    Wrapper("module.", "DataParallel/DDP"),
    Wrapper("module.", "AveragedModel, torch's SWA/EMA", ("n_averaged",)),
    Wrapper("_orig_mod.", "torch.compile"),
    Wrapper("model.", "a Lightning module's attribute"),
)

# Fewer than this share of the backbone's parameters loaded is a random start in disguise, refused even with
# finetune.strict: false. Parameters, not tensors: a pruned network's file (weight_orig and weight_mask) still
# fits every batch-norm tensor, 95 of 114, and none of the convolutions. A deliberate partial load stays above it:
# resnet18's weights fill 52.5% of resnet34's backbone parameters; a new first layer for other channels, 0.1%.
MIN_LOADED = 0.5
MAX_DEPTH = 4  # wrappers peeled at most (module._orig_mod.model. is 3)


@dataclass(frozen=True)
class Source:
    state: dict[str, Tensor]
    description: str
    classes: list[str] | None = None
    normalization: Normalization | None = None  # the mean and std the weights were trained with
    notes: tuple[str, ...] = ()  # for the load report: where in the file the weights were found


def read_source(spec: str, model_name: str, source_key: str | None = None) -> Source:
    """The weights `spec` names (finetune.source) for a `model_name`: a zoo checkpoint, a file holding a
    state_dict bare or as the `source_key` entry of a dict (default: the first of STATE_DICT_ENTRIES there is),
    or torchvision:<WeightsEnum>. Raises ZooError, one line, for a zoo checkpoint of another model, a file with
    no state_dict found where looked (listing the entries that hold tensors), bad torchvision names."""
    if spec.startswith("torchvision:"):
        return _torchvision_weights(spec.removeprefix("torchvision:"), model_name)
    data = load_checkpoint(Path(spec))
    if TrainingState.holds(data, "weights"):  # a zoo checkpoint
        if source_key is not None:
            raise ZooError(f"finetune.source {spec} is a zoo checkpoint, its weights are known: "
                           "remove finetune.source_key")
        state = TrainingState.from_dict(data, spec)
        if state.model_name != model_name:
            raise ZooError(f"finetune.source {spec} holds a {state.model_name}, not a {model_name}; "
                           f"set model.name: {state.model_name} or choose another source")
        return Source(state.model, f"zoo checkpoint {spec} ({len(state.classes or [])} classes)",
                      state.classes, state.normalization)
    if _is_state_dict(data) and source_key is None:
        return Source(data, f"state_dict {spec}")
    if isinstance(data, dict):
        return _entry(data, spec, source_key)
    raise ZooError(f"finetune.source {spec} is neither a zoo checkpoint nor a state_dict of tensors")


def _is_state_dict(data: Any) -> bool:
    return isinstance(data, dict) and bool(data) and all(isinstance(v, Tensor) for v in data.values())


def _entry(data: dict[Any, Any], spec: str, source_key: str | None) -> Source:
    """The state_dict inside another tool's checkpoint: the `source_key` entry, else the first known one."""
    held = [key for key, value in data.items() if _is_state_dict(value)]
    names = ", ".join(repr(key) for key in held)
    if source_key is not None:
        if source_key not in held:
            fix = (f"its entries holding tensors are {names}" if held else
                   "the file is a state_dict itself: remove finetune.source_key" if _is_state_dict(data) else
                   "no entry holds tensors: choose another source")
            raise ZooError(f"finetune.source_key: {spec} has no entry {source_key!r} holding a state_dict; {fix}")
        key, why = source_key, "finetune.source_key"
    else:
        known = [key for key in STATE_DICT_ENTRIES if key in held]
        if not known:
            if not held:
                raise ZooError(f"finetune.source {spec} is neither a zoo checkpoint nor a state_dict of tensors")
            raise ZooError(f"finetune.source {spec} holds no state_dict under a known key "
                           f"({', '.join(STATE_DICT_ENTRIES)}); "
                           f"its entries holding tensors are {names}: set finetune.source_key to one")
        key, why = known[0], STATE_DICT_ENTRIES[known[0]]
    others = ", ".join(repr(other) for other in held if other != key)
    note = f"the weights are the file's {key!r} entry ({why})" + (
        f"; it also holds {others}: set finetune.source_key to fine-tune from another" if others else "")
    return Source(data[key], f"state_dict {spec}[{key!r}]", notes=(note,))


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
        raise ZooError(f"{name} are weights for another network; "
                       f"{model_name} takes torchvision:{_example(counterpart)}")
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    try:
        # torch.hub says "Downloading: ..." on stdout, where predict's CSV goes
        with contextlib.redirect_stdout(sys.stderr):
            state = torch.hub.load_state_dict_from_url(weights.url, progress=True, weights_only=True)
    except OSError:  # no network: URLError and its kin
        raise ZooError(f"cannot download {weights.url} (offline?); "
                       f"fetch it elsewhere and place it at {cached}") from None
    state = rename_legacy_keys(state)  # torchvision's DenseNet files keep its old key names, as its builder renames
    normalization = None
    transforms = torchvision_transforms(weights, counterpart)
    if hasattr(transforms, "mean"):
        normalization = Normalization(tuple(transforms.mean), tuple(transforms.std))
    return Source(state, f"torchvision {name} ({weights.meta.get('num_params', '?'):,} parameters, "
                         f"{len(weights.meta.get('categories') or [])} classes)", weights.meta.get("categories"),
                  normalization)


# torchvision builders that, given pre-trained weights, turn their ImageNet-normalized input into the statistics the
# weights were trained with (transform_input=True): GoogLeNet's and Inception v3's came from Google's TensorFlow
# models, trained on (x - 0.5) / 0.5. zoo's networks take their input as it comes, so these statistics go into the
# preprocessing.
INPUT_STATISTICS = {
    "googlenet": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "inception_v3": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}


def torchvision_transforms(weights: Any, builder: str) -> Any:
    """The weights' own inference transforms (resize, centre crop, normalize), with the statistics the weights were
    trained with where torchvision's builder converts its input to them (INPUT_STATISTICS)."""
    if builder in INPUT_STATISTICS:
        mean, std = INPUT_STATISTICS[builder]
        return weights.transforms(mean=list(mean), std=list(std))
    return weights.transforms()


def _example(torchvision_name: str) -> str:
    import torchvision

    enum = torchvision.models.get_model_weights(torchvision_name)
    return f"{enum.__name__}.{enum.DEFAULT.name}"


def _names_with_torchvision_weights() -> list[str]:
    from zoo.models.registry import list_models

    return [n for n in list_models() if get_model_info(n).torchvision]


@dataclass
class LoadReport:
    loaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # the old head(s), and aux heads this model does not build
    missing: list[str] = field(default_factory=list)  # in the model, not in the source: they keep their init
    problems: list[str] = field(default_factory=list)  # unexpected keys and shape mismatches
    notes: list[str] = field(default_factory=list)  # prefixes stripped, tensors torch filled in


def head_keys(model: nn.Module) -> set[str]:
    return {f"{path}.{suffix}" for path in model.head_paths for suffix in ("weight", "bias")}


def unwrap(state: dict[str, Tensor], fits: Collection[str]) -> tuple[dict[str, Tensor], list[str]]:
    """`state` without the key prefixes of the WRAPPERS it was saved through, where stripping them makes more
    keys name one of `fits` (the model's); the state as it is otherwise. Also a note for the load report."""
    chain, wrappers = [state], []
    while len(chain) <= MAX_DEPTH and (wrapper := next((w for w in WRAPPERS if _wraps(w, chain[-1])), None)
                                       or _shared_prefix(chain[-1])):
        chain.append(_strip(chain[-1], wrapper))
        wrappers.append(wrapper)
    matches = [sum(key in fits for key in candidate) for candidate in chain]
    best = max(range(len(chain)), key=lambda i: (matches[i], -i))  # a tie keeps the keys as they are
    if best == 0:
        return state, []
    used = wrappers[:best]
    dropped = [key for w in used for key in w.own_keys]  # present: without them DataParallel's matches first
    return chain[best], [f"stripped the prefix {''.join(w.prefix for w in used)!r} ({', '.join(w.name for w in used)}) "
                         f"from {len(chain[best])} keys" + (f" and dropped {', '.join(dropped)}" if dropped else "")]


def _shared_prefix(state: dict[str, Tensor]) -> Wrapper | None:
    """A wrapper no table names: the first key component at least half the keys share (a Lightning module's
    `net.`, MMPretrain's `backbone.`); the other keys (a loss's weights, another head) are dropped with it.
    unwrap keeps it only where it makes more keys fit the model."""
    firsts = Counter(key.split(".", 1)[0] for key in state if "." in key)
    if not firsts:
        return None
    first, count = firsts.most_common(1)[0]
    if count < len(state) / 2:
        return None
    prefix = f"{first}."
    return Wrapper(prefix, f"shared by {count} of {len(state)} keys",
                   tuple(key for key in state if not key.startswith(prefix)))


def _wraps(wrapper: Wrapper, state: dict[str, Tensor]) -> bool:
    return (any(key.startswith(wrapper.prefix) for key in state)
            and all(key.startswith(wrapper.prefix) or key in wrapper.own_keys for key in state))


def _strip(state: dict[str, Tensor], wrapper: Wrapper) -> dict[str, Tensor]:
    """The inner network's keys, and its modules' metadata (their versions, for _load_from_state_dict)."""
    inner: dict[str, Tensor] = OrderedDict((key.removeprefix(wrapper.prefix), value) for key, value in state.items()
                                           if key not in wrapper.own_keys)
    metadata = getattr(state, "_metadata", None)
    if metadata is not None:
        root = wrapper.prefix[:-1]
        inner._metadata = OrderedDict(("" if key == root else key.removeprefix(wrapper.prefix), value)
                                      for key, value in metadata.items()
                                      if key == root or key.startswith(wrapper.prefix))
    return inner


def transplant(model: nn.Module, source: Source, strict: bool = True) -> LoadReport:
    """Copy every source tensor whose name and shape fit, except the classifier layers (head_keys).

    Known wrappers' prefixes are stripped first (unwrap). Which model keys the source may lack is torch's call,
    as in its strict load_state_dict: a module fills in what a file older than its version lacks (batch
    norm's num_batches_tracked, in files saved before PyTorch 0.4.1, per the file's `_metadata` versions).
    Raises ZooError, one line, before changing the model: with `strict`, for a source key not in the model, a
    shape that differs or a missing key (other than the head's and the aux heads', AUX_PREFIXES); in any case when
    less than MIN_LOADED of the model's backbone parameters would load."""
    report, heads, target = LoadReport(), head_keys(model), model.state_dict()
    state, report.notes = unwrap(source.state, target.keys())
    fitting: dict[str, Tensor] = OrderedDict()
    for key, value in state.items():
        if key in heads or (key.startswith(AUX_PREFIXES) and key not in target):
            report.skipped.append(key)
        elif key not in target:
            report.problems.append(f"{key} is not in {model.name}")
        elif target[key].shape != value.shape:
            report.problems.append(f"{key} is {tuple(value.shape)} in the source but "
                                   f"{tuple(target[key].shape)} in {model.name}")
        else:
            fitting[key] = value
    if hasattr(state, "_metadata"):
        fitting._metadata = state._metadata
    absent = _left_missing(model, fitting, target)
    report.loaded = list(fitting)
    report.missing = [k for k in target if k in absent and k not in state and k not in heads]
    # A model with aux heads (GoogLeNet, Inception v3) from a source without them gets new ones, like a new head.
    real_missing = [k for k in report.missing if not k.startswith(AUX_PREFIXES)]
    if strict and (report.problems or real_missing):
        first = (report.problems + [f"{k} is missing from the source" for k in real_missing])[:3]
        raise ZooError(f"{source.description} does not fit {model.name}: {'; '.join(first)}; "
                       "choose the matching model.name, or set finetune.strict: false to load what fits")
    backbone = [k for k in target if k not in heads and not k.startswith(AUX_PREFIXES)]
    kept = [k for k in backbone if k not in absent]  # loaded, or filled in by their module
    share = sum(target[k].numel() for k in kept) / max(sum(target[k].numel() for k in backbone), 1)
    if share < MIN_LOADED:
        matched = [k for k in kept if k in fitting]
        what = (f"matched {', '.join(matched[:3])}{' ...' if len(matched) > 3 else ''}" if matched else "none matched")
        what += f"; first misfit: {report.problems[0]}" if report.problems else ""
        raise ZooError(f"{source.description} fits only {share:.1%} of {model.name}'s backbone parameters "
                       f"({len(kept)} of {len(backbone)} tensors; {what}), "
                       "too few to fine-tune from even with finetune.strict: false; "
                       f"choose weights saved from a {model.name}, or remove finetune to train from scratch")
    filled = [k for k in target if k not in fitting and k not in absent]
    if filled:
        report.notes.append(f"{len(filled)} tensors the source predates were filled in as torch's load_state_dict does "
                            f"({', '.join(filled[:2])}{' ...' if len(filled) > 2 else ''})")
    model.load_state_dict(fitting, strict=False)
    return report


def _left_missing(model: nn.Module, fitting: dict[str, Tensor], target: dict[str, Tensor]) -> set[str]:
    """The model keys torch's load_state_dict(fitting) leaves missing, asked without changing the model: it loads
    the model's own tensors under fitting's names and metadata (copying a tensor onto itself is a no-op)."""
    own: dict[str, Tensor] = OrderedDict((key, target[key]) for key in fitting)
    if hasattr(fitting, "_metadata"):
        own._metadata = fitting._metadata
    return set(model.load_state_dict(own, strict=False).missing_keys)


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
                raise ZooError(f"finetune.freeze: {model.name} has no module {target!r}; "
                               f"its top-level modules are {children}")
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
             *(f"  {note}" for note in (*source.notes, *report.notes)),
             f"  keys loaded {len(report.loaded)}, skipped {len(report.skipped)}"
             + (f" ({', '.join(report.skipped[:4])}{' ...' if len(report.skipped) > 4 else ''})" if report.skipped
                else "")
             + f", missing {len(report.missing)}" + (f" ({', '.join(report.missing[:4])})" if report.missing else ""),
             f"  parameters: {trainable:,} trainable, {frozen:,} frozen (freeze: {freezer.spec})"]
    if report.problems:
        lines.append(f"  not loaded (strict: false): {'; '.join(report.problems[:3])}")
    return "\n".join(lines)
