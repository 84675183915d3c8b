"""`zoo evaluate`: a checkpoint's model on a data split, with per-class precision, recall and F1 and the
confusion matrix, which is also saved beside the checkpoint as CSV and PNG."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.checkpoint import atomic_write, load_checkpoint, load_weights
from zoo.config import Config, apply_overrides, validate_config
from zoo.data import build_datasets, build_loaders
from zoo.engine import EpochResult, evaluate
from zoo.errors import ZooError
from zoo.metrics import Metrics
from zoo.registry import create_model
from zoo.runtime import resolve_device

SPLITS = ("test", "val", "train")


@dataclass(frozen=True)
class EvaluationReport:
    checkpoint: Path
    split: str
    classes: list[str]
    result: EpochResult
    confusion_csv: Path
    confusion_png: Path

    @property
    def metrics(self) -> Metrics:
        return self.result.metrics

    def to_dict(self) -> dict[str, Any]:
        precision, recall, f1, support = self.metrics.per_class()
        return {
            "checkpoint": str(self.checkpoint),
            "split": self.split,
            **self.metrics.summary(),
            "macro": self.metrics.macro(),
            "per_class": [
                {"class": name, "precision": p, "recall": r, "f1": f, "support": s}
                for name, p, r, f, s in zip(self.classes, precision.tolist(), recall.tolist(), f1.tolist(), support.tolist())
            ],
            "confusion_matrix": self.metrics.confusion.tolist(),
            "confusion_csv": str(self.confusion_csv),
            "confusion_png": str(self.confusion_png),
        }


def checkpoint_config(state: dict[str, Any], path: Path, overrides: list[str]) -> Config:
    """The run's config with the caller's overrides, normalized exactly as the model was trained."""
    config = validate_config(apply_overrides(dict(state["config"]), overrides), f"{path} (config)")
    normalization = state.get("normalization") or {}
    return config.with_normalization(normalization.get("mean"), normalization.get("std"))


def load_model(state: dict[str, Any], config: Config, path: Path) -> nn.Module:
    in_channels = (state.get("normalization") or {}).get("in_channels")
    model = create_model(config.model.name, num_classes=state["num_classes"], in_channels=in_channels, **config.model.kwargs)
    load_weights(model, state, path, config.model.name)
    return model


def evaluate_checkpoint(path: str | Path, split: str = "test", overrides: list[str] | None = None) -> EvaluationReport:
    path = Path(path)
    if split not in SPLITS:
        raise ZooError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    state = load_checkpoint(path)
    if not isinstance(state, dict) or not {"model", "config", "num_classes", "normalization"} <= set(state):
        raise ZooError(f"{path} is not a zoo checkpoint (no model, config, num_classes and normalization inside); "
                       "use a runs/.../checkpoints/*.pt file")
    # Evaluating the training split measures the model, not the augmentation: turn it off.
    config = checkpoint_config(state, path, [*(overrides or []), *(["data.augment=false"] if split == "train" else [])])
    device = resolve_device(config.train.device)
    normalization = state.get("normalization") or {}
    splits = build_datasets(config.data, in_channels=normalization["in_channels"], input_size=normalization["input_size"],
                            seed=config.train.seed)
    if len(splits.classes) > state["num_classes"]:
        raise ZooError(f"{config.data.name} has {len(splits.classes)} classes but {path} predicts {state['num_classes']}; "
                       "evaluate on the data it was trained on, or fine-tune it first (zoo finetune)")
    classes = list(state.get("classes") or splits.classes)
    train_loader, val_loader, test_loader = build_loaders(splits, config.data, seed=config.train.seed)
    loader = {"test": test_loader, "val": val_loader, "train": train_loader}[split]
    if loader is None:
        raise ZooError(f"{config.data.name} has no {split} split in this config; use --split test, or set data.val_split above 0")
    model = load_model(state, config, path).to(device)
    criterion = nn.CrossEntropyLoss()
    result = evaluate(model, loader, criterion, device, model.num_classes, config.train.precision)
    stem = path.with_suffix("")
    csv_path, png_path = Path(f"{stem}.{split}.confusion.csv"), Path(f"{stem}.{split}.confusion.png")
    _save_confusion(result.metrics.confusion, classes, csv_path, png_path, f"{config.model.name} on {config.data.name} {split}")
    return EvaluationReport(path, split, classes, result, csv_path, png_path)


def _save_confusion(confusion: torch.Tensor, classes: list[str], csv_path: Path, png_path: Path, title: str) -> None:
    from zoo.plots import confusion_image

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["true \\ predicted", *classes])
    for name, row in zip(classes, confusion.tolist()):
        writer.writerow([name, *row])
    atomic_write(csv_path, text.getvalue().encode())
    image = io.BytesIO()
    confusion_image(confusion, classes, title).save(image, format="png")
    atomic_write(png_path, image.getvalue())
