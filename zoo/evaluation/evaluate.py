"""`zoo evaluate`: a checkpoint's model on a data split, with per-class precision, recall and F1 and the
confusion matrix, which is also saved beside the checkpoint as CSV and PNG; and the trust figures of zoo.metrics.trust
(ROC AUC, average precision, ECE, the most confidently wrong images), saved beside it as PNGs. A calibrated classifier
(zoo.metrics.calibration) is measured on its temperature-scaled probabilities, with its calibration figures: the ECE
before and after, its prediction sets at a coverage, the share its unfamiliar score flags (of a folder too)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import Dataset

from zoo.checkpoint import TrainingState, checkpoint_file, read_state
from zoo.config import Config, validate_config
from zoo.data import SPLITS, DataSplits, build_datasets, build_folder, build_loaders
from zoo.datasets import SPECS
from zoo.errors import ZooError
from zoo.evaluation.source import (
    _resolved,
    check_hold_out,
    checkpoint_config,
    foreign,
    load_model,
    split_name,
)
from zoo.loop import Compute, EpochResult, evaluate_loader
from zoo.metrics import Metrics
from zoo.metrics.trust import Trust, output_names
from zoo.rundir import WriteError, atomic_write, csv_text
from zoo.runtime import resolve_device
from zoo.tasks import Classification, Task, get_task

if TYPE_CHECKING:
    from zoo.metrics.calibration import Calibration

READ_WHOLE = ("imagefolder", "manifest", "text")  # data sets of the user's own files: new ones are measured whole


@dataclass(frozen=True)
class TrustFiles:
    """The trust figures' PNGs beside the checkpoint (named as confusion_paths names the confusion files)."""

    roc: Path
    pr: Path
    reliability: Path
    wrong: Path | None  # None: no wrong prediction (or inputs that are no images), so no gallery

    @classmethod
    def beside(cls, stem: str) -> TrustFiles:
        return cls(Path(f"{stem}.roc.png"), Path(f"{stem}.pr.png"), Path(f"{stem}.reliability.png"),
                   Path(f"{stem}.wrong.png"))

    def to_dict(self) -> dict[str, str | None]:
        return {"roc_png": str(self.roc), "pr_png": str(self.pr), "reliability_png": str(self.reliability),
                "wrong_png": None if self.wrong is None else str(self.wrong)}


@dataclass(frozen=True)
class EvaluationReport:
    checkpoint: Path
    split: str
    classes: list[str]
    result: EpochResult
    confusion_csv: Path | None  # None: not written (zoo report's test split)
    confusion_png: Path | None
    evaluated: str = ""  # what was measured, as the table's header says it ("" : the split)
    logits: torch.Tensor | None = None  # N x classes, the split's images in order, as the network gives them
    paths: list[str] | None = None  # their files, where the data set reads files (ImageFolder)
    targets: torch.Tensor | None = None  # N labels, in the model's class indices
    trust: Trust | None = None
    trust_files: TrustFiles | None = None  # None: evaluated with save=False, nothing written
    wrong_images: list[Any] | None = None  # PIL pictures of trust.wrong, for the gallery (None: inputs are no images)
    not_saved: str | None = None  # why the files were not written (a read-only folder): the figures stand alone
    task: Task = Classification()  # what the model was trained to do: its probabilities, figures and decisions
    # a calibrated classifier's sections of Calibration.figures (calibration; conformal with a coverage; unfamiliar,
    # with the --unfamiliar folder's figures): None without a calibration
    calibrated: dict[str, Any] | None = None

    @property
    def temperature(self) -> float:
        """A calibrated model's temperature (zoo.metrics.calibration); 1 without one."""
        return self.calibrated["calibration"]["temperature"] if self.calibrated else 1.0

    @property
    def probabilities(self) -> torch.Tensor | None:
        """N x classes probabilities (fractions: the softmax of the logits divided by the temperature, as zoo predict
        gives them, or a multi-label model's sigmoid per class), the split's images in order."""
        return None if self.logits is None else self.task.probabilities(self.logits / self.temperature)

    @property
    def metrics(self) -> Metrics:
        return self.result.metrics

    def per_class(self) -> list[dict[str, Any]]:
        """One row per class the model predicts; precision, recall and F1 are None (n/a) for a class that is
        neither in the data nor predicted, which the macro averages leave out too (zoo.metrics)."""
        present = self.metrics.present().tolist()
        rows = zip(self.classes, *(values.tolist() for values in self.metrics.per_class()), present)
        table = [{"class": name, "precision": p if here else None, "recall": r if here else None,
                  "f1": f if here else None, "support": s} for name, p, r, f, s, here in rows]
        thresholds = self.thresholds
        if thresholds is not None:  # a multi-label model's: what each class's figures were decided at
            for row, threshold in zip(table, thresholds):
                row["threshold"] = threshold
        return table

    @property
    def thresholds(self) -> list[float] | None:
        """A multi-label model's per-class decision thresholds (probabilities); None for a single-label one."""
        chosen = getattr(self.task, "thresholds", None)
        if not self.task.label_sets:
            return None
        return [0.5] * len(self.classes) if chosen is None else chosen.tolist()

    def to_dict(self) -> dict[str, Any]:
        return {
            "checkpoint": str(self.checkpoint),
            "split": self.split,
            "evaluated": self.evaluated or f"the {self.split} split",
            **self.metrics.summary(),
            "macro": self.metrics.macro(),
            "task": self.task.name,
            "per_class": self.per_class(),
            **({"micro": self.metrics.micro(), "thresholds": dict(zip(self.classes, self.thresholds))}
               if self.thresholds is not None else {"confusion_matrix": self.metrics.confusion.tolist()}),
            "confusion_csv": None if self.confusion_csv is None else str(self.confusion_csv),
            "confusion_png": None if self.confusion_png is None else str(self.confusion_png),
            "not_saved": self.not_saved,
            **(self.trust.to_dict() if self.trust is not None else {}),
            **(self.trust_files.to_dict() if self.trust_files is not None else {}),
            **(self.calibrated or {}),
        }


def check_root(config: Config, stored: Config, data: str | None, data_root: str | Path | None) -> None:
    """A data set that reads no files (SPECS' in_process: generated or held by the process) has no use for another
    folder: it would be ignored, and the run's own test split measured as if it were the folder's."""
    if not SPECS[config.data.name].in_process or Path(config.data.root).resolve() == Path(stored.data.root).resolve():
        return
    given = f"--data-root {data_root}" if data_root is not None else f"--set data.root={config.data.root}"
    fix = ("to evaluate on a folder of images add --data imagefolder" if data is None
           else "remove it, or give --data imagefolder to evaluate on a folder of images")
    raise ZooError(f"{given}: {config.data.name} reads no files; {fix}")


def confusion_paths(path: Path, config: Config, stored: Config, split: str, folder: Path | None) -> tuple[Path, Path]:
    """Beside the checkpoint: best.test.confusion.csv/.png for the run's own data; for other data, what differs
    (the data set's name, the folder's, or both) after the stem, so that it never overwrites the run's own:
    best.photos.confusion.csv for every image of photos/, best.held.test.confusion.csv for held/test/,
    best.mnist.test.confusion.csv for --data mnist."""
    stem = output_stem(path, config, stored, split, folder)
    return Path(f"{stem}.confusion.csv"), Path(f"{stem}.confusion.png")


def output_stem(path: Path, config: Config, stored: Config, split: str, folder: Path | None) -> str:
    """What the files of one evaluation begin with (see confusion_paths): .../best.test, .../best.photos."""
    parts = [str(path.with_suffix(""))]
    if foreign(config, stored):
        root = Path(config.data.root).resolve()
        differs = [config.data.name] if config.data.name != stored.data.name else []
        differs += [root.name or "root"] if root != Path(stored.data.root).resolve() else []
        manifest = config.data.manifest
        differs += [Path(manifest).stem] if _resolved(manifest) != _resolved(stored.data.manifest) else []
        parts.append("-".join(differs))
    if folder is None or folder.resolve() != Path(config.data.root).resolve():  # not a folder measured whole
        parts.append(split)
    return ".".join(parts)


def measured(config: Config, stored: Config, split: str, folder: Path | None,
             whole_rows: bool = True) -> tuple[str, str]:
    """What was evaluated, as the table's header says it (every image of a folder measured whole, or a split)
    and as the confusion picture's title does, shorter."""
    if folder is None:
        other = f" of {config.data.name} in {config.data.root}" if foreign(config, stored) else ""
        return f"the {split} split{other}", f"{config.data.name} {split}"
    if folder.is_file():  # a manifest: its split's rows, or every row where it has no split column
        rows = "every row" if whole_rows else f"the {split} rows"
        return f"{rows} of {folder}", f"{folder.name}"
    root = Path(config.data.root).resolve()
    return f"every image of {folder}", root.name + ("" if folder.resolve() == root else f"/{folder.name}")


def evaluate_checkpoint(path: str | Path, split: str = "test", overrides: list[str] | None = None, *,
                        data: str | None = None, data_root: str | Path | None = None,
                        device: str = "auto", save: bool = True, abnormal: str | Path | None = None,
                        abnormal_classes: tuple[int, ...] | None = None, coverage: float | None = None,
                        unfamiliar: str | Path | None = None) -> Any:
    """`path`'s model on `split` (test, val or train) of its data set, or of `data` under `data_root`, with
    `overrides` (key.path=value), on `device` (auto: this machine's best; the training run's device is not
    consulted). Classes are matched to the checkpoint's by name, so a folder may hold some of them, in any
    order. With `save` (the default), writes the confusion matrix (CSV, PNG) and the trust figures (TrustFiles:
    ROC, precision-recall, reliability and, with wrong predictions, their gallery) beside the checkpoint; `zoo
    report` measures without writing. Raises ZooError for a file that is no zoo checkpoint, a split the data has
    not, or data with classes the model does not predict. An autoencoder: zoo.evaluation.reconstruction's report,
    with `abnormal` (a folder) or `abnormal_classes` (of its data set) as its abnormal pictures. A calibrated
    classifier's trust figures are of its temperature-scaled probabilities, and `calibrated` holds _calibrated's
    figures (`coverage`, the `unfamiliar` folder: check_calibration_options' refusals)."""
    path, split = checkpoint_file(path), split_name(split)  # a run directory: its best.pt, beside which files go
    check_calibration_options(path, state := read_state(path, "evaluate"), coverage, unfamiliar)
    if state.config.get("task") == "reconstruction" or abnormal is not None or abnormal_classes is not None:
        return _autoencoder(path, state, split, overrides, data, data_root, device, save, abnormal, abnormal_classes)
    # Evaluating the training split measures the model, not the augmentation: turn it off.
    config = checkpoint_config(state, path, [*(overrides or []), *(["data.augment=false"] if split == "train" else [])],
                               data, data_root)
    where, stored = resolve_device(device, key="--device"), validate_config(dict(state.config), f"{path} (config)")
    check_root(config, stored, data, data_root)
    strangers = unfamiliar_pictures(state, config, unfamiliar)
    whole = config.data.name in READ_WHOLE and foreign(config, stored)
    task = get_task(config.task, state.thresholds)
    splits = data_to_measure(config, stored, state, path, split, whole)
    classes = list(state.classes or splits.classes)
    loader, paths, folder = _split_loader(config, splits, split, whole)
    loader = by_name(loader, splits.classes, classes, path, task, state.num_classes)
    model, compute = load_model(state, config, path).to(where), Compute(where, config.train.precision)
    features: list[torch.Tensor] | None = [] if state.calibration is not None else None
    result, scores, labels = measure(model, loader, compute, task, features)
    calibrated = _calibrated(path, state, config, model, compute, scores, labels, features, coverage, unfamiliar,
                             strangers)
    csv_path, png_path = confusion_paths(path, config, stored, split, folder)
    evaluated, title = measured(config, stored, split, folder, not getattr(splits.test.base, "split_column", False))
    # a calibrated model's figures are of the probabilities zoo predict gives: its logits / T (no top-1 changes)
    trust = task.trust(scores / temperature(state), labels, output_names(classes, scores.shape[1]), paths)
    pictures = wrong_pictures(loader, trust, paths, splits.mean, splits.std)
    files, not_saved = None, None
    if save:
        beside = TrustFiles.beside(output_stem(path, config, stored, split, folder))
        files, not_saved = _save(result, classes, csv_path, png_path, trust, pictures, beside,
                                 f"{config.model.name} on {title}")
    if not save or not_saved or not hasattr(result.metrics, "confusion"):  # multi-label: no confusion matrix
        csv_path, png_path = None, None
    return EvaluationReport(path, split, classes, result, csv_path, png_path, evaluated, scores, paths, labels, trust,
                            files, pictures, not_saved, task, calibrated)


def temperature(state: TrainingState) -> float:
    """A checkpoint's calibration's temperature (zoo.metrics.calibration); 1 without one."""
    return 1.0 if state.calibration is None else state.calibration.temperature


def _split_loader(config: Config, splits: DataSplits, split: str, whole: bool) -> tuple[Iterable, list[str] | None,
                                                                                     Path | None]:
    """(the loader of the split measured, its files where it reads files, the folder or manifest read whole). Raises
    ZooError for a split the config does not hold."""
    loader = dict(zip(SPLITS, build_loaders(splits, config.data, seed=config.train.seed)))["test" if whole else split]
    if loader is None:
        raise ZooError(f"{config.data.name} has no {split} split in this config; use --split test, or set "
                       "data.val_split above 0")
    paths = getattr(getattr(loader, "dataset", None), "paths", None)  # a View's files; the in-memory path has none
    # the folder read (its split folder, or data.root), or the manifest
    folder = Path(getattr(splits.test.base, "file", None) or splits.test.base.root) if whole else None
    return loader, paths, folder


def _calibrated(path: Path, state: TrainingState, config: Config, model: nn.Module, compute: Compute,
                logits: torch.Tensor, labels: torch.Tensor, features: list[torch.Tensor] | None,
                coverage: float | None, unfamiliar: str | Path | None, strangers: Dataset | None
                ) -> dict[str, Any] | None:
    """A calibrated classifier's calibration_figures: with `coverage` (a fraction) its prediction sets', with
    `unfamiliar` (a folder of pictures unlike the training data, read recursively, measured here as `strangers`) how
    many of them its unfamiliar score flags and how well it tells them from the split (ROC AUC). None, with one note
    for a single-label classifier, without a calibration."""
    if state.calibration is None:
        if config.task == "classification" and "calibration" not in state.config:  # older than calibration
            print(f"note: {path} has no calibration; zoo calibrate {calibrate_target(path)} adds a temperature, "
                  "prediction sets (--coverage) and an unfamiliar score", file=sys.stderr)
        return None
    strange = measure_pictures(model, strangers, compute, get_task(config.task), config)
    return calibration_figures(state.calibration, logits, labels, torch.cat(features), coverage, unfamiliar, strange)


def check_calibration_options(path: Path, state: TrainingState, coverage: float | None,
                              unfamiliar: str | Path | None) -> None:
    """Raises ZooError for a `coverage` that is no fraction strictly between 0 and 1, or a coverage or an
    `unfamiliar` folder asked of a model that has no calibration to answer them with: another task than single-label
    classification, or a checkpoint without one (zoo calibrate fits it)."""
    given = [name for name, value in (("--coverage", coverage), ("--unfamiliar", unfamiliar)) if value is not None]
    if not given:
        return
    if coverage is not None and not 0 < coverage < 1:
        raise ZooError(f"--coverage {coverage}: give the share of pictures whose prediction set must hold the true "
                       "class, a fraction between 0 and 1 (e.g. 0.9)")
    options, task = " and ".join(given), state.config.get("task", "classification")
    if task == "reconstruction":
        raise ZooError(f"{options}: {path} is an autoencoder (task reconstruction); prediction sets and the unfamiliar "
                       "score are for single-label classifiers: an autoencoder flags abnormal pictures with "
                       "--abnormal FOLDER")
    if task != "classification":
        raise ZooError(f"{options}: {path} is a {task} model; prediction sets and the unfamiliar score are for "
                       "single-label classifiers (task classification)")
    if state.calibration is None:
        raise ZooError(f"{options}: {path} has no calibration (trained before zoo fitted one, or with "
                       f"calibration.enabled false); run zoo calibrate {calibrate_target(path)} first: it fits a "
                       "temperature, prediction sets and an unfamiliar score on the validation split")
    if unfamiliar is not None and state.calibration.familiarity is None:
        raise ZooError(f"--unfamiliar: {path}'s calibration has no unfamiliar score: its inputs are no pictures")


def calibrate_target(path: Path) -> Path:
    """What `zoo calibrate` is given to calibrate `path`: a run's best.pt as its run directory, else the file."""
    return path.parent.parent if path.name == "best.pt" and path.parent.name == "checkpoints" else path


def unfamiliar_pictures(state: TrainingState, config: Config, folder: str | Path | None) -> Dataset | None:
    """Every picture of `folder` (read recursively) through the checkpoint's evaluation preprocessing, as zoo predict
    reads them; None without a folder. Raises ZooError for a folder that is not there or holds no pictures."""
    if folder is None:
        return None
    if not str(folder).strip():
        raise ZooError("--unfamiliar is empty; give a folder of pictures unlike the training data (read recursively)")
    from zoo.evaluation.reconstruction import folder_pictures  # an autoencoder's --abnormal folder is read alike

    return folder_pictures("--unfamiliar", folder, "pictures unlike the training data", state, config)


def measure_pictures(model: nn.Module, pictures: Dataset | None, compute: Compute, task: Task, config: Config
                     ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The N x classes logits and N x D pixel statistics (zoo.metrics.familiarity) of unlabelled `pictures`, in
    batches of the config's evaluation size; None without pictures."""
    from torch.utils.data import DataLoader

    if pictures is None:
        return None
    features: list[torch.Tensor] = []
    loader = DataLoader(pictures, config.data.eval_batch_size or config.data.batch_size)
    _, logits, _ = measure(model, loader, compute, task, features)
    return logits, torch.cat(features)


def calibration_figures(calibration: Calibration, logits: torch.Tensor, labels: torch.Tensor, features: torch.Tensor,
                        coverage: float | None, folder: str | Path | None = None,
                        folder_outputs: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, Any]:
    """Calibration.figures of the evaluated split's raw `logits`, `labels` and pixel statistics; with a `folder` of
    unlabelled pictures and their (logits, pixel statistics) the unfamiliar section also says how many of them are
    flagged and how well the score tells them from the split's pictures (ROC AUC, the folder's positive)."""
    from zoo.metrics.familiarity import separation

    figures = calibration.figures(logits, labels, features, coverage)
    if folder_outputs is not None:
        folder_logits, folder_features = folder_outputs
        familiar = calibration.unfamiliar(logits, features)
        strange = calibration.unfamiliar(folder_logits, folder_features)
        flagged = float((strange > calibration.familiarity.threshold).double().mean())
        figures["unfamiliar"] |= {"folder": str(folder), "folder_images": len(strange), "folder_flagged": flagged,
                                  "auroc": separation(familiar, strange)}
    return figures


def _autoencoder(path: Path, state: TrainingState, split: str, overrides: list[str] | None, data: str | None,
                 data_root: str | Path | None, device: str, save: bool, abnormal: str | Path | None,
                 abnormal_classes: tuple[int, ...] | None) -> Any:
    """An autoencoder's evaluation (zoo.evaluation.reconstruction); abnormal pictures given for a classifier, or other
    data for an autoencoder, refused in one line."""
    task = state.config.get("task", "classification")
    if task != "reconstruction":
        option = "--abnormal" if abnormal is not None else "--abnormal-classes"
        raise ZooError(f"{option}: {path} is a {task} model; abnormal pictures are for an autoencoder (task "
                       "reconstruction)")
    if data is not None or data_root is not None:
        raise ZooError("--data and --data-root: an autoencoder is measured on its own data's split; give its abnormal "
                       "pictures with --abnormal FOLDER or --abnormal-classes")
    from zoo.evaluation.reconstruction import evaluate_reconstruction

    return evaluate_reconstruction(path, split, overrides, abnormal=abnormal, abnormal_classes=abnormal_classes,
                                   device=device, save=save)


def _save(result: EpochResult, classes: list[str], csv_path: Path, png_path: Path, trust: Trust,
          pictures: list[Any] | None, beside: TrustFiles, title: str) -> tuple[TrustFiles | None, str | None]:
    """The confusion files and the trust figures beside the checkpoint: (the trust files, None), or for a folder
    that cannot take them (read-only, full, a folder in a file's place) (None, the line saying why and what was
    written before it): the figures are printed all the same."""
    targets = [csv_path, png_path, beside.roc, beside.pr, beside.reliability, beside.wrong]
    before = [_stamp(target) for target in targets]
    try:
        if hasattr(result.metrics, "confusion"):  # a multi-label model's per-class counts are in the table instead
            _save_confusion(result.metrics.confusion, classes, csv_path, png_path, title)
        return _save_trust(trust, pictures, beside, title), None
    except WriteError as error:
        written = [str(target) for target, stamp in zip(targets, before) if _stamp(target) != stamp]
        return None, str(error.with_fix("the figures above are complete; to keep the files, make room there or "
                                        "copy the checkpoint to a writable folder")) + (
            f" (written before it: {', '.join(written)})" if written else "")


def _stamp(path: Path) -> int | None:
    """When `path` was last written (ns), None where it is not there: which files an evaluation changed."""
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def data_to_measure(config: Config, stored: Config, state: TrainingState, path: Path, split: str,
                    whole: bool) -> DataSplits:
    """The data the checkpoint is measured on: a new folder whole (every image of it, or of its `split` folder:
    nothing held out), else the data set's splits as the run drew them. Raises ZooError for classes the model
    does not predict: a folder's by name, a built-in set's by count (its fix is the run's data.classes)."""
    normalization = state.normalization
    if whole:
        splits = build_folder(config.data, in_channels=normalization.in_channels, input_size=normalization.input_size,
                              split=split, multilabel=config.task == "multilabel", vocabulary=state.vocabulary)
    else:
        splits = build_datasets(config.data, in_channels=normalization.in_channels, input_size=normalization.input_size,
                                seed=config.train.seed, multilabel=config.task == "multilabel",
                                vocabulary=state.vocabulary)
    if state.classes and config.data.name in READ_WHOLE:
        refuse_unknown(splits.classes, state.classes, path)
    if len(splits.classes) > state.num_classes:
        raise ZooError(f"{config.data.name} has {len(splits.classes)} classes but {path} predicts {state.num_classes}; "
                       "evaluate on the data it was trained on, or fine-tune it first (zoo finetune)")
    check_hold_out(config, stored, path)
    return splits


def measure(model: nn.Module, loader: Iterable, compute: Compute, task: Task = Classification(),
            features: list[torch.Tensor] | None = None) -> tuple[EpochResult, torch.Tensor, torch.Tensor]:
    """The loader's figures (the task's plain loss, unweighted and unsmoothed: the run's test loss, the one
    definition zoo shows), and its N x classes logits and targets (N labels, or N x classes), in order; `features`,
    when given, gets each batch's pixel statistics (zoo.metrics.familiarity.pixel_features)."""
    logits: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []
    result = evaluate_loader(model, loader, compute, task.eval_criterion(), model.num_classes, logits=logits,
                             targets=targets, task=task, features=features)
    return result, torch.cat(logits), torch.cat(targets)


class Relabelled:
    """A loader whose labels, in the data's class numbering, become the model's (Task.relabel)."""

    def __init__(self, loader: Iterable, lookup: torch.Tensor, task: Task, num_classes: int) -> None:
        self.loader, self.lookup, self.task, self.num_classes = loader, lookup, task, num_classes

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for images, targets in self.loader:
            yield images, self.task.relabel(targets, self.lookup, self.num_classes)


def by_name(loader: Iterable, data_classes: list[str], model_classes: list[str], path: Path,
            task: Task = Classification(), num_classes: int | None = None) -> Iterable:
    """`loader` with its labels matched to the model's classes by name (a folder of some classes, in its own
    order), or as it is where the names agree. A class the model does not know is a ZooError naming it."""
    width = num_classes or len(model_classes)
    if data_classes == model_classes[:len(data_classes)] and (not task.label_sets or len(data_classes) == width):
        return loader  # a prefix keeps the indices; a multi-hot row must still be as wide as the model's outputs
    refuse_unknown(data_classes, model_classes, path)
    lookup = [model_classes.index(name) for name in data_classes]
    print(f"note: the data's classes are matched to {path.name}'s by name: "
          + ", ".join(f"{name} -> {index}" for name, index in list(zip(data_classes, lookup))[:10]), file=sys.stderr)
    return Relabelled(loader, torch.tensor(lookup), task, width)


def refuse_unknown(data_classes: list[str], model_classes: list[str], path: Path) -> None:
    """A ZooError naming the data's classes the model does not predict (and the class counts, where the data has
    more), if there are any."""
    unknown = [name for name in data_classes if name not in model_classes]
    if not unknown:
        return
    shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
    more = len(data_classes) > len(model_classes)
    counts = f" ({len(data_classes)} classes for its {len(model_classes)})" if more else ""
    known = ", ".join(model_classes[:10]) + (" ..." if len(model_classes) > 10 else "")
    raise ZooError(f"the data has classes {path} does not predict: {shown}{counts}; it predicts {known}: "
                   "name the classes as in training (the class folders, or a manifest's labels), or fine-tune it on "
                   "the new classes (zoo finetune)")


def _save_confusion(confusion: torch.Tensor, classes: list[str], csv_path: Path, png_path: Path, title: str) -> None:
    from zoo.present.figures import confusion_image, png

    rows = [[name, *row] for name, row in zip(classes, confusion.tolist())]
    atomic_write(csv_path, csv_text(["true \\ predicted", *classes], rows).encode())
    atomic_write(png_path, png(confusion_image(confusion, classes, title)))


def wrong_pictures(loader: Iterable, trust: Trust, paths: list[str] | None, mean: tuple[float, ...],
                   std: tuple[float, ...]) -> list[Any] | None:
    """The pictures of trust.wrong for the gallery: each file itself where the split reads files, else the network's
    input (as the loader gives it, normalized by `mean` and `std`) turned back into pixels; None for inputs that
    are no images (xor's points). Reads only those samples again: the evaluation pass keeps no images."""
    from zoo.data.images import open_image
    from zoo.present.figures import input_picture

    if paths is not None:
        return [open_image(paths[wrong.index]) for wrong in trust.wrong]
    inner = getattr(loader, "loader", loader)  # Relabelled's: the labels differ, the images do not
    positions = [wrong.index for wrong in trust.wrong]
    if hasattr(inner, "eval_indices"):  # a MemoryLoader: its tensors through its (evaluation) pipeline
        chosen = inner.eval_indices[positions].to(inner.images.device)
        inputs = inner.pipeline(inner.images[chosen]).cpu() if positions else torch.empty(0)
    else:  # a DataLoader in order over a data set (no sampler: this is one process)
        inputs = [inner.dataset[position][0] for position in positions]
    if any(image.dim() != 3 for image in inputs):
        return None
    return [input_picture(image, mean, std) for image in inputs]


def _save_trust(trust: Trust, pictures: list[Any] | None, files: TrustFiles, title: str) -> TrustFiles:
    """The trust figures as PNGs beside the checkpoint; the gallery only with wrong predictions of pictures, an
    older one removed otherwise, so that no gallery of another evaluation stands for this one."""
    from zoo.present.figures import png, pr_figure, reliability_figure, roc_figure, wrong_gallery

    drawn = {files.roc: roc_figure(trust, title), files.pr: pr_figure(trust, title),
             files.reliability: reliability_figure(trust, title)}
    if trust.wrong and pictures is not None:
        drawn[files.wrong] = png(wrong_gallery(trust, pictures, title))
    else:
        files.wrong.unlink(missing_ok=True)
        files = TrustFiles(files.roc, files.pr, files.reliability, None)
    for target, data in drawn.items():
        atomic_write(target, data)
    return files
