"""The checkpoint a `zoo evaluate` measures and the data it is measured on, as both kinds of evaluation read them
(evaluate.py's classifiers, reconstruction.py's autoencoders): its config with the caller's overrides, the test split
it may not redraw, and its network with its weights."""

from __future__ import annotations

import copy
from pathlib import Path

from torch import nn

from zoo.checkpoint import TrainingState, load_weights
from zoo.config import HOLD_OUT_KEYS, Config, apply_overrides, validate_config
from zoo.data import SPLITS
from zoo.errors import ZooError

CHOICES = tuple(reversed(SPLITS))  # test, val, train: the order `zoo evaluate --split` offers them


def split_name(split: object) -> str:
    """The split to measure (the CLI's choice enum, or its text); a ZooError for one zoo does not know."""
    split = str(getattr(split, "value", split))
    if split not in CHOICES:
        raise ZooError(f"unknown split {split!r}; choose one of {', '.join(CHOICES)}")
    return split


def checkpoint_config(state: TrainingState, path: Path, overrides: list[str], data: str | None = None,
                      data_root: str | Path | None = None) -> Config:
    """The run's config with another data set (`data`, `data_root`: its classes are matched by name, so the
    run's data.classes is dropped) and the caller's overrides, normalized exactly as the model was trained.
    On the run's own data, an override that would draw another test split is a ZooError."""
    raw = copy.deepcopy(state.config)  # overrides change nested sections in place; the state's stay the run's
    if data is not None or data_root is not None:
        kept = {key: value for key, value in raw.get("data", {}).items() if key != "classes"}
        raw["data"] = {**kept, **({"name": data} if data is not None else {}),
                       **({"root": str(data_root)} if data_root is not None else {})}
    config = validate_config(apply_overrides(raw, overrides), f"{path} (config)")
    normalization = state.normalization
    return config.with_normalization(normalization.mean, normalization.std) if normalization else config


def check_hold_out(config: Config, stored: Config, path: Path) -> None:
    """On the run's own data, the keys that draw its test split must be the run's: another draw could count
    images the model trained on (data.classes [1, 2] of three classes: 7 of 8 such 'test' images were)."""
    if foreign(config, stored):
        return
    for key in HOLD_OUT_KEYS:
        section, name = key.split(".")
        if getattr(getattr(config, section), name) != getattr(getattr(stored, section), name):
            raise ZooError(f"--set {key}: it draws another test split from {path}'s training data, which could count "
                           "images the model trained on; evaluate with the run's value (the per-class rows give each "
                           "class's figures)")


def load_model(state: TrainingState, config: Config, path: Path) -> nn.Module:
    """The checkpoint's network, built as it was trained, with its weights."""
    model = config.model.build(state.num_classes, state.normalization.in_channels, state.vocabulary)
    load_weights(model, state, path, config.model.name)
    return model


def foreign(config: Config, stored: Config) -> bool:
    """Whether `config` names other data than the run trained on: another data set, folder or manifest file."""
    return (config.data.name != stored.data.name or Path(config.data.root).resolve() != Path(stored.data.root).resolve()
            or _resolved(config.data.manifest) != _resolved(stored.data.manifest))


def _resolved(path: Path | None) -> Path | None:
    return None if path is None else Path(path).resolve()
