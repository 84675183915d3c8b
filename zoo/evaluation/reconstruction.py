"""`zoo evaluate` of an autoencoder (task reconstruction): how well it rebuilds a split of its normal pictures (MSE,
PSNR, and the noisy input's PSNR under data.noise), how well its reconstruction error flags abnormal pictures (a
folder of them, or classes of its data set it never trained on: ROC AUC, average precision, the confusion at the run's
threshold), and the same figures of the course's baseline beside it: scikit-learn's PCA with as many components as
the network's code has values, fitted on the same training pixels (course 004: an autoencoder is a non-linear PCA).

Files beside the checkpoint: best.<split>.reconstructions.png (input, noisy input, output) and, with abnormal
pictures, best.<split>.errors.png (the two sets' error histograms and the threshold).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from zoo.checkpoint import TrainingState, checkpoint_file, read_state
from zoo.config import Config, validate_config
from zoo.data import SPLITS, build_datasets, build_loaders
from zoo.data.images import gather, note_others, open_image
from zoo.data.preprocess import Preprocessing
from zoo.errors import ZooError
from zoo.evaluation.source import check_hold_out, checkpoint_config, load_model, split_name
from zoo.loop import Compute, EpochResult, evaluate_loader
from zoo.metrics.reconstruction import Detection, detection, per_image_mse, psnr, threshold_at
from zoo.rundir import WriteError, atomic_write
from zoo.runtime import resolve_device
from zoo.tasks import Reconstruction, task_of

PCA_MAX_PIXELS = 200_000_000  # training pixels PCA is fitted on at most (1.6 GB of float64): more are subsampled


@dataclass(frozen=True)
class Baseline:
    """PCA's figures on the evaluated split (and the abnormal pictures), fitted on the training split's pixels."""

    components: int  # the network's code size, or fewer where the training split has fewer pictures or pixels
    mse: float
    psnr: float
    anomaly: Detection | None

    def to_dict(self) -> dict[str, Any]:
        return {"components": self.components, "mse": self.mse, "psnr": self.psnr,
                **(self.anomaly.summary() if self.anomaly is not None else {})}


@dataclass(frozen=True)
class ReconstructionReport:
    checkpoint: Path
    split: str
    result: EpochResult  # its metrics: zoo.metrics.reconstruction.ReconstructionMetrics
    code_size: int  # values in the network's code per picture
    pca: Baseline | None  # None for colourisation
    anomaly: Detection | None  # with abnormal pictures
    abnormal: str | None = None  # what they were: a folder, or the data set's classes
    normal_errors: np.ndarray = field(default_factory=lambda: np.empty(0))  # per picture, the evaluated split's
    abnormal_errors: np.ndarray = field(default_factory=lambda: np.empty(0))
    # the split's first pictures, as rows of the reconstructions' picture: (input, N x C x H x W), (noisy input ...),
    # (output ...), in [0, 1]
    pictures: list[tuple[str, torch.Tensor]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # the PNGs written beside the checkpoint
    not_saved: str | None = None  # why they were not (a read-only folder): the figures stand alone
    task: Reconstruction = field(default_factory=Reconstruction)

    @property
    def metrics(self) -> Any:
        return self.result.metrics

    def to_dict(self) -> dict[str, Any]:
        return {"checkpoint": str(self.checkpoint), "split": self.split, "task": "reconstruction",
                **self.metrics.summary(), "code_size": self.code_size,
                "anomaly": self.anomaly.summary() if self.anomaly is not None else None,
                "abnormal": self.abnormal, "abnormal_count": len(self.abnormal_errors),
                "pca": self.pca.to_dict() if self.pca is not None else None, **self.files, "not_saved": self.not_saved}


class Pictures(Dataset):
    """Image files through a run's preprocessing: (C x H x W tensor, 0)."""

    def __init__(self, paths: list[Path], preprocessing: Preprocessing) -> None:
        self.paths, self.transform = paths, preprocessing.transform()

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(open_image(self.paths[index])), 0


def evaluate_reconstruction(path: str | Path, split: str = "test", overrides: list[str] | None = None, *,
                            abnormal: str | Path | None = None, abnormal_classes: tuple[int, ...] | None = None,
                            device: str = "auto", save: bool = True) -> ReconstructionReport:
    """An autoencoder checkpoint (or run directory) on `split` of its data, beside PCA with its code's size; with
    `abnormal` (a folder of pictures, read recursively) or `abnormal_classes` (class indices of the run's data set,
    as data.classes gives them), the anomaly figures too. Raises ZooError for a checkpoint of another task, a split
    the data has not, abnormal classes the run trained on, or a folder without pictures."""
    path, split = checkpoint_file(path), split_name(split)
    state = read_state(path, "evaluate")
    config = checkpoint_config(state, path, [*(overrides or []), "data.augment=false"])
    stored = validate_config(dict(state.config), f"{path} (config)")
    if config.task != "reconstruction":
        raise ZooError(f"{path} is a {config.task} model; --abnormal measures an autoencoder (task reconstruction)")
    check_hold_out(config, stored, path)
    task = task_of(config, anomaly_threshold=state.anomaly_threshold)
    where = resolve_device(device, key="--device")
    compute = Compute(where, config.train.precision)
    model = load_model(state, config, path).to(where).eval()
    splits = build_datasets(config.data, in_channels=config.data_channels(),
                            input_size=state.normalization.input_size, seed=config.train.seed)
    loaders = dict(zip(SPLITS, build_loaders(splits, config.data, seed=config.train.seed)))
    if loaders.get(split) is None:
        raise ZooError(f"{config.data.name} has no {split} split in this config; use --split test")
    abnormal_set, described = _abnormal(config, stored, state, path, abnormal, abnormal_classes)
    result, normal = _errors(model, loaders[split], compute, task)
    abnormal_errors = _errors(model, _loader(abnormal_set, config), compute, task)[1] if abnormal_set else None
    code_size = model.code_size(state.normalization.input_size)
    # colourisation's output is not its input's kind: PCA of the gray pictures rebuilds no colour
    pca = None if task.colorize else _baseline(splits, loaders, split, abnormal_set, config, task, code_size)
    anomaly = (detection(normal, abnormal_errors, task.threshold) if abnormal_errors is not None else None)
    report = ReconstructionReport(path, split, result, code_size, pca, anomaly, described, normal,
                                  abnormal_errors if abnormal_errors is not None else np.empty(0),
                                  _first_pictures(model, loaders[split], compute, task), task=task)
    return _save(report, config) if save else report


def folder_pictures(option: str, folder: str | Path, kind: str, state: TrainingState, config: Config) -> Pictures:
    """Every picture of `folder` (read recursively) through the checkpoint's evaluation preprocessing, as zoo predict
    reads them: an autoencoder's --abnormal pictures, a classifier's --unfamiliar ones (`kind` says which). Raises
    ZooError naming `option` for a folder that is not there, a file, or no pictures."""
    if not Path(folder).is_dir():
        what = "is a file" if Path(folder).exists() else "not found"
        raise ZooError(f"{option} {folder}: {what}; give a folder of {kind} (read recursively)")
    found, others = gather([folder])
    if not found:
        raise ZooError(f"{option} {folder}: no pictures there; give a folder of {kind}")
    note_others(Path(folder), others)
    preprocessing = Preprocessing.of_checkpoint(state, config)
    preprocessing.check_pictures()
    return Pictures(found, preprocessing)


def _abnormal(config: Config, stored: Config, state: TrainingState, path: Path, folder: str | Path | None,
              classes: tuple[int, ...] | None) -> tuple[Dataset | None, str | None]:
    """The abnormal pictures: a folder's, through the run's preprocessing, or the data set's `classes` (every image
    of them, none of which the run trained on)."""
    if folder is not None and classes is not None:
        raise ZooError("give --abnormal (a folder) or --abnormal-classes, not both")
    if (folder is not None or classes is not None) and config.reconstruction.colorize:
        option = "--abnormal" if folder is not None else "--abnormal-classes"
        raise ZooError(f"{option}: {path} colourises: its output (colour) is not its input (gray), so there is no "
                       "reconstruction error to flag abnormal pictures by; evaluate it without abnormal pictures")
    if folder is not None:
        return folder_pictures("--abnormal", folder, "abnormal pictures", state, config), f"every image of {folder}"
    if classes is None:
        return None, None
    normal = stored.data.classes
    if normal is None:
        raise ZooError(f"--abnormal-classes: {path} trained on every class of {stored.data.name}, so none is "
                       "abnormal to it; train on data.classes (the normal ones), or give --abnormal FOLDER")
    if overlap := sorted(set(classes) & set(normal)):
        raise ZooError(f"--abnormal-classes {', '.join(map(str, overlap))}: the run trained on "
                       f"{'it' if len(overlap) == 1 else 'them'} as normal (data.classes); name others")
    whole = config.data.model_copy(update={"classes": None})
    splits = build_datasets(whole, in_channels=config.data_channels(),
                            input_size=state.normalization.input_size, seed=config.train.seed)
    if max(classes) >= len(splits.classes):
        raise ZooError(f"--abnormal-classes {max(classes)}: {config.data.name} has classes 0 to "
                       f"{len(splits.classes) - 1}")
    parts = [Subset(part, [i for i, label in enumerate(part.labels.tolist()) if label in classes])
             for part in (splits.train, splits.val, splits.test) if part is not None]
    names = ", ".join(splits.classes[index] for index in classes)
    plural = "es" if len(classes) > 1 else ""
    return torch.utils.data.ConcatDataset(parts), f"every image of class{plural} {names} of {config.data.name}"


def _loader(dataset: Dataset, config: Config) -> DataLoader:
    return DataLoader(dataset, config.data.eval_batch_size or config.data.batch_size)


def _errors(model: nn.Module, loader: Iterable, compute: Compute, task: Reconstruction
            ) -> tuple[EpochResult, np.ndarray]:
    """The loader's figures and each picture's reconstruction error (MSE), in order."""
    scores: list[torch.Tensor] = []
    result = evaluate_loader(model, loader, compute, task.eval_criterion(), 0, task=task, scores=scores)
    return result, torch.cat(scores).numpy()


def _pixels(loader: Iterable, task: Reconstruction) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) of every picture of `loader`, flattened (N x C*H*W, float32): the noisy inputs drawn as
    evaluate_loader draws them (the task's evaluation generator), and the clean pictures."""
    generator = task.generator(torch.device("cpu"))
    inputs, targets = [], []
    for images, labels in loader:
        noisy, clean = task.pair(images.float().cpu(), labels, generator)
        inputs.append(noisy.flatten(1).numpy())
        targets.append(clean.flatten(1).numpy())
    return np.concatenate(inputs), np.concatenate(targets)


def _baseline(splits: Any, loaders: dict[str, Any], split: str, abnormal: Dataset | None, config: Config,
              task: Reconstruction, code_size: int) -> Baseline:
    """PCA of `code_size` components fitted on the training split's clean pixels (scikit-learn, randomized SVD
    seeded by train.seed), reconstructing `split`'s inputs; its anomaly threshold chosen on the validation split's
    errors at the run's false-positive rate, as the network's is."""
    from sklearn.decomposition import PCA

    train = _pixels(_loader(splits.train, config), Reconstruction())[1]  # the clean pictures, as the network's targets
    if train.size > PCA_MAX_PIXELS:
        keep = np.random.default_rng(config.train.seed).choice(len(train), PCA_MAX_PIXELS // train.shape[1], False)
        train = train[np.sort(keep)]
    components = min(code_size, *train.shape)
    pca = PCA(components, random_state=config.train.seed).fit(train)

    def errors(loader: Iterable) -> np.ndarray:
        inputs, targets = _pixels(loader, task)
        rebuilt = np.clip(pca.inverse_transform(pca.transform(inputs)), 0.0, 1.0)
        return per_image_mse(torch.from_numpy(rebuilt), torch.from_numpy(targets)).numpy()

    normal = errors(loaders[split])
    anomaly = None
    if abnormal is not None:
        val = loaders.get("val")
        threshold = threshold_at(errors(val), config.reconstruction.false_positive_rate) if val is not None else None
        anomaly = detection(normal, errors(_loader(abnormal, config)), threshold)
    return Baseline(components, float(normal.mean()), float(psnr(torch.from_numpy(normal)).mean()), anomaly)


@torch.no_grad()
def _first_pictures(model: nn.Module, loader: Iterable, compute: Compute, task: Reconstruction,
                    count: int = 8) -> list[tuple[str, torch.Tensor]]:
    """The split's first `count` pictures as the reconstructions' rows: input, noisy input (with data.noise, the
    noise evaluation draws), output; on the CPU."""
    images, labels = next(iter(loader))
    inputs, targets = task.pair(*compute.batch(images[:count], labels[:count]), task.generator(compute.device))
    outputs = task.probabilities(model(inputs))
    given = "gray input" if task.colorize else "noisy input"
    rows = [("input", targets), *([(given, inputs)] if task.noise or task.colorize else []), ("output", outputs)]
    return [(name, pictures.float().cpu()) for name, pictures in rows]


def _save(report: ReconstructionReport, config: Config) -> ReconstructionReport:
    """The reconstructions' picture and (with abnormal pictures) the error histograms, beside the checkpoint."""
    from zoo.present.figures import error_histogram, png
    from zoo.present.grids import reconstruction_grid

    stem = f"{report.checkpoint.with_suffix('')}.{report.split}"
    files = {"reconstructions_png": Path(f"{stem}.reconstructions.png")}
    pictures = {"reconstructions_png": png(reconstruction_grid(report.pictures,
                                                               f"{config.model.name} on {report.split}"))}
    if report.anomaly is not None:
        files["errors_png"] = Path(f"{stem}.errors.png")
        pictures["errors_png"] = error_histogram(report.normal_errors, report.abnormal_errors, report.anomaly.threshold,
                                                 f"{config.model.name}: reconstruction error")
    try:
        for key, file in files.items():
            atomic_write(file, pictures[key])
    except WriteError as error:
        return replace(report, not_saved=str(error))
    return replace(report, files={key: str(file) for key, file in files.items()})
