"""Calibration of a trained classifier (zoo.metrics.calibration): at the end of every run, and by `zoo calibrate RUN`
for a run that has none (trained before it, or with calibration.enabled false).

    result = calibrate_run("runs/lenet5_digits/<time>")    # best.pt gains its calibration
    result.calibration.temperature, result.figures["calibration"]["ece_after"]

What is fitted, and on what: the temperature and the prediction sets' conformity scores on the validation split's
logits; the unfamiliar score on the training images' pixel statistics (at most TRAIN_IMAGES of them, evenly spaced,
prepared as evaluation prepares pictures) and the validation split's energies and pixel statistics (sentences have
none: a text network's score is the energy alone, zoo.metrics.familiarity). All of it is a
function of best.pt's weights and the data alone, so a resumed run fits the same as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from zoo.errors import ZooError
from zoo.metrics.calibration import Calibration

TRAIN_IMAGES = 2000  # training images whose pixel statistics are kept: enough for a 60 x 60 shrunk covariance
COVERAGE = 0.9  # the test figures' prediction sets, as metrics.json gives them (zoo.training.run.COVERAGE)


@dataclass(frozen=True)
class CalibrationResult:
    checkpoint: Path
    calibration: Calibration
    figures: dict[str, Any]  # the test split's (Calibration.figures at coverage 0.9)
    validation_images: int
    replaced: bool = False  # the checkpoint had a calibration, which this one replaces
    metrics: Path | None = None  # the run's metrics.json, updated with `figures`

    def to_dict(self) -> dict[str, Any]:
        return {"checkpoint": str(self.checkpoint), "validation_images": self.validation_images, **self.figures}


def train_features(splits: Any, data: Any, device: torch.device | str) -> torch.Tensor | None:
    """The pixel statistics (N x D) of at most TRAIN_IMAGES training images, as evaluation prepares them; None where
    the data hold no pictures; sentences' none (N x 0: the unfamiliar score is the energy alone)."""
    from zoo.data.loaders import unaugmented_train
    from zoo.metrics.familiarity import pixel_features

    if splits.vocabulary is not None:
        return torch.empty(min(len(splits.train), TRAIN_IMAGES), 0, dtype=torch.float64)
    batches = unaugmented_train(splits, data, TRAIN_IMAGES, device)
    if batches is None:
        return None
    parts = [pixel_features(images) for images in batches]
    return torch.cat(parts) if parts else None


EXPORTS = (".onnx", ".safetensors", ".pt2")  # zoo export's files: they carry a calibration, they are not fitted


def calibrate_run(source: str | Path, device: str = "auto") -> CalibrationResult:
    """Fit `source`'s calibration (a run directory or a checkpoint of a single-label classifier) on its validation
    split, as the end of a run does, and write it into the checkpoint (replacing one it had), and its test figures
    into the run's metrics.json where the checkpoint is a run's. Raises ZooError for an export, another task, a run
    without a validation split, data that cannot be read again, or a checkpoint that cannot be written."""
    from zoo.checkpoint import checkpoint_file, read_state, save_checkpoint
    from zoo.evaluation.evaluate import measure
    from zoo.evaluation.source import checkpoint_config, load_model
    from zoo.loop import Compute
    from zoo.rundir import WriteError
    from zoo.runtime import resolve_device
    from zoo.tasks import get_task

    path = checkpoint_file(source)
    if path.suffix.lower() in EXPORTS:
        raise ZooError(f"{path} is an export (zoo export); zoo calibrate fits a checkpoint: give the run directory or "
                       "its checkpoints/best.pt, then export it again")
    state = read_state(path, "evaluate")
    config = checkpoint_config(state, path, [])
    if config.task != "classification":
        raise ZooError(f"{path} is a {config.task} model; zoo calibrate fits single-label classifiers (task "
                       "classification)")
    where = resolve_device(device, key="--device")
    splits, loaders = _run_data(config, state, path)
    model = load_model(state, config, path).to(where)
    compute, task = Compute(where, config.train.precision), get_task("classification")
    features: list[torch.Tensor] = []
    _, logits, labels = measure(model, loaders["val"], compute, task, features)
    calibration = Calibration.fit(logits, labels, torch.cat(features), train_features(splits, config.data, where),
                                  config.calibration.familiar_share)
    try:
        save_checkpoint(replace(read_state(path, "weights"), calibration=calibration), path)
    except WriteError as error:
        raise error.with_fix("make room there, or copy the run to a writable folder") from None
    features = []
    _, logits, labels = measure(model, loaders["test"], compute, task, features)
    figures = calibration.figures(logits, labels, torch.cat(features), COVERAGE)
    return CalibrationResult(path, calibration, figures, calibration.conformal.count, state.calibration is not None,
                             _update_metrics(path, figures))


def _run_data(config: Any, state: Any, path: Path) -> tuple[Any, dict[str, Any]]:
    """The run's splits, drawn again from its config and seed, and their loaders. Raises ZooError for a run without
    a validation split."""
    from zoo.data import SPLITS, build_datasets, build_loaders

    normalization = state.normalization
    splits = build_datasets(config.data, in_channels=normalization.in_channels, input_size=normalization.input_size,
                            seed=config.train.seed, vocabulary=state.vocabulary)
    loaders = dict(zip(SPLITS, build_loaders(splits, config.data, seed=config.train.seed)))
    if loaders["val"] is None:
        raise ZooError(f"{path}'s run has no validation split (data.val_split 0): calibration is fitted on one; "
                       "train again with data.val_split above 0")
    return splits, loaders


def _update_metrics(path: Path, figures: dict[str, Any]) -> Path | None:
    """The run's metrics.json (beside checkpoints/ where `path` is its best.pt) with the new calibration's test
    figures, as a run that fitted it writes them; None where there is none to update (or it cannot be read)."""
    import json

    from zoo.rundir import WriteError, write_json

    metrics = path.parent.parent / "metrics.json"
    if path.name != "best.pt" or path.parent.name != "checkpoints" or not metrics.is_file():
        return None
    try:
        kept = json.loads(metrics.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(kept, dict):
        return None
    try:
        write_json(metrics, kept | figures)
    except WriteError as error:
        raise error.with_fix("best.pt is calibrated; make room there for metrics.json's figures, or leave them "
                             "out: zoo evaluate measures them") from None
    return metrics
