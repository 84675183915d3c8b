"""Checkpoints: the one schema of what a run saves (TrainingState), written atomically (a crash mid-save never
destroys the last good file) and read safely (`weights_only=True`: unpickling builds tensors and plain
containers, never runs code).

This is the only module that spells the checkpoint's keys. On disk a checkpoint is the plain dict of
`TrainingState.to_dict()`; every reader and writer goes through `TrainingState`, and `read_state` is the one
place that checks a loaded file holds what its use needs (evaluating, resuming), and `TrainingState.from_dict`
what each field holds (`FieldCheck`: types, ranges, sizes against the weights, finite weights; the export
metadata reader, zoo.inference.load.Metadata, uses the same checks).
"""

from __future__ import annotations

import argparse
import functools
import io
import math
import pickle
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor, nn

from zoo.errors import ZooError
from zoo.rundir import atomic_write

if TYPE_CHECKING:
    from zoo.metrics.calibration import Calibration

# Plain records other tools pickle beside the weights, which weights_only loading would refuse: timm's
# train.py and torchvision's reference scripts save their command line as an argparse.Namespace ('args').
SAFE_GLOBALS = [argparse.Namespace]

Need = Literal["weights", "evaluate", "resume"]
WEIGHTS = ("raw", "ema")  # what a checkpoint's model holds: the trained weights, or train.ema's average
_NEEDS: dict[str, tuple[str, ...]] = {  # the keys each use of a checkpoint reads
    "weights": ("model", "config"),
    "evaluate": ("model", "config", "num_classes", "normalization"),
    "resume": ("model", "config", "optimizer", "scheduler", "scaler", "epoch", "batch", "step", "ranks", "progress"),
}


# ---- the schema --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Normalization:
    """How the network's inputs were prepared: per-channel mean and std (after scaling pixels to [0, 1]), and
    the side and channel count images are fitted to. Weights sources (torchvision's) give mean and std only."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: int | None = None  # pixels; 1 for flat features (xor)
    in_channels: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"mean": list(self.mean), "std": list(self.std), "input_size": self.input_size,
                "in_channels": self.in_channels}

    @classmethod
    def from_dict(cls, data: Any, check: FieldCheck, weights: dict[str, Tensor], config: dict[str, Any]
                  ) -> Normalization | None:
        """Checked by `check` against the network's `weights` (its first layer takes in_channels) and `config`."""
        if data is None:
            return None
        data = check.mapping("normalization", data)
        if "mean" not in data or "std" not in data:
            raise check.refuse("normalization", "has no mean and std")
        size, channels = data.get("input_size"), data.get("in_channels")
        size = None if size is None else check.side("normalization.input_size", size, config)
        if channels is not None:
            check.integer("normalization.in_channels", channels, 1)
            check.fits("normalization.in_channels", channels, weights, 1, "as many input channels", flat=True)
        return cls(*check.statistics("normalization", data["mean"], data["std"], channels), size, channels)


@dataclass(frozen=True)
class Vocabulary:
    """How a text network's inputs are prepared (zoo.data.text), as Normalization is a picture network's: the
    training split's words, a word's id its position (<pad> 0, <unk> 1 for any word not there), the tokenizer that
    split the sentences into them (TOKENIZERS), and the lengths in tokens a sentence is cut to and padded to."""

    words: tuple[str, ...]
    max_tokens: int  # data.max_tokens: the rest of a longer sentence is cut
    min_tokens: int  # a batch is padded to at least this many: the network's widest window
    tokenizer: str = "words"

    PAD, UNKNOWN = "<pad>", "<unk>"

    @functools.cached_property
    def index(self) -> dict[str, int]:
        return {word: number for number, word in enumerate(self.words)}

    def ids(self, tokens: list[str]) -> list[int]:
        """The ids of a sentence's tokens (<unk>'s for a word not in the vocabulary), at most max_tokens of them."""
        unknown = self.index[self.UNKNOWN]
        return [self.index.get(token, unknown) for token in tokens[:self.max_tokens]]

    @property
    def builder_arguments(self) -> dict[str, int]:
        """What a token model's builder takes from the vocabulary (zoo.models.registry.INPUTS)."""
        return {"vocab_size": len(self.words), "padding_idx": self.index[self.PAD]}

    def to_dict(self) -> dict[str, Any]:
        return {"words": list(self.words), "max_tokens": self.max_tokens, "min_tokens": self.min_tokens,
                "tokenizer": self.tokenizer}

    @classmethod
    def from_dict(cls, data: Any, check: FieldCheck, weights: dict[str, Tensor] | None) -> Vocabulary | None:
        """Checked by `check`: distinct words, <pad> and <unk> first, as many as the rows of the network's embedding
        in `weights` (where given); lengths of 1 token or more; a tokenizer zoo knows."""
        if data is None:
            return None
        data = check.mapping("vocabulary", data)
        words = check.names("vocabulary.words", data.get("words"), None)
        if words[:2] != [cls.PAD, cls.UNKNOWN]:
            raise check.refuse("vocabulary.words", f"do not begin with {cls.PAD} and {cls.UNKNOWN}")
        if weights is not None:
            check.fits("vocabulary", len(words), weights, 0, "as many rows (the embedding's word vectors)")
        return cls(tuple(words), check.integer("vocabulary.max_tokens", data.get("max_tokens"), 1),
                   check.integer("vocabulary.min_tokens", data.get("min_tokens"), 1),
                   check.text("vocabulary.tokenizer", data.get("tokenizer"), TOKENIZERS))


TOKENIZERS = ("words",)  # zoo.data.text.tokenize's rules, by name: a checkpoint of another zoo's is refused


@dataclass
class Progress:
    """What the run has done so far: time, images, the best epoch, early stopping's counters."""

    seconds: float = 0.0  # training time, validation excluded
    images: int = 0  # trained on, over all ranks
    epochs_run: int = 0
    best_accuracy: float = -1.0  # validation top-1 of the best epoch (fraction); -1 when there is no validation
    best_epoch: int = 0
    best_val: dict[str, float] | None = None  # metrics.json's val section of the best epoch
    early_stopping: tuple[float | None, int] | None = None  # (best value, epochs without improvement)
    best_weights: str = "raw"  # which weights best.pt holds: "raw", or "ema" (train.ema's average validated better)
    threads: int | None = None  # CPU threads per process the run started with (zoo.runtime.cpu_threads)

    def to_dict(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "images": self.images, "epochs_run": self.epochs_run,
                "best_accuracy": self.best_accuracy, "best_epoch": self.best_epoch, "best_val": self.best_val,
                "early_stopping": list(self.early_stopping) if self.early_stopping is not None else None,
                "best_weights": self.best_weights, "threads": self.threads}

    @classmethod
    def from_dict(cls, data: Any, check: FieldCheck) -> Progress:
        data = check.mapping("progress", data)
        missing = [key for key in ("seconds", "images", "epochs_run", "best_accuracy", "best_epoch") if key not in data]
        if missing:
            raise check.refuse("progress", f"has no {', '.join(missing)}")
        early, best_val, threads = data.get("early_stopping"), data.get("best_val"), data.get("threads")
        if early:
            value, count = (check.sequence("progress.early_stopping", early) + [None, None])[:2]
            early = (None if value is None else check.number("progress.early_stopping", value),
                     check.integer("progress.early_stopping's count", count, 0))
        if best_val is not None:  # metrics.json's figures, some n/a: only copied there
            check.mapping("progress.best_val", best_val)
        return cls(check.number("progress.seconds", data["seconds"]),
                   check.integer("progress.images", data["images"], 0),
                   check.integer("progress.epochs_run", data["epochs_run"], 0),
                   check.number("progress.best_accuracy", data["best_accuracy"]),
                   check.integer("progress.best_epoch", data["best_epoch"], 0), best_val, early or None,
                   check.text("progress.best_weights", data.get("best_weights", "raw"), WEIGHTS),
                   None if threads is None else check.integer("progress.threads", threads, 1))


@dataclass(frozen=True)
class RankState:
    """One process's state that is not in the model or optimizer: its global random generators
    (zoo.runtime.capture_rng), the loader's own generator, and mid-epoch the epoch's metric sums so far."""

    rng: dict[str, Any]
    loader: dict[str, Any]
    meter: dict[str, Tensor] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"rng": self.rng, "loader": self.loader, "meter": self.meter}

    @classmethod
    def from_dict(cls, data: Any, check: FieldCheck, name: str) -> RankState:
        data = check.mapping(name, data)
        if "rng" not in data or "loader" not in data:
            raise check.refuse(name, "has no rng and loader state")
        rng = _random_state(check, f"{name}.rng", data["rng"])
        meter = data.get("meter")
        return cls(rng, check.mapping(f"{name}.loader", data["loader"]),
                   None if meter is None else check.weights(f"{name}.meter", meter))


def _random_state(check: FieldCheck, name: str, rng: Any) -> dict[str, Any]:
    """zoo.runtime.capture_rng's record, checked to be what restoring it takes: Python's (version, 625 words,
    gauss), NumPy's MT19937 (624 words, a position), torch's CPU generator and CUDA's as byte tensors."""
    rng = check.mapping(name, rng)
    missing = [key for key in ("python", "numpy", "torch", "cuda") if key not in rng]
    if missing:
        raise check.refuse(name, f"has no {', '.join(missing)} state")
    python, numpy = check.sequence(f"{name}.python", rng["python"]), check.mapping(f"{name}.numpy", rng["numpy"])
    words = python[1] if len(python) == 3 and isinstance(python[1], (list, tuple)) else []
    if len(words) != 625 or not all(isinstance(word, int) for word in (python[0], *words)):
        raise check.refuse(f"{name}.python", "is not Python's random state (a version and 625 words)")
    key = numpy.get("key")
    if not isinstance(key, Tensor) or key.numel() != 624 or key.is_floating_point():
        raise check.refuse(f"{name}.numpy", "has no key of 624 words (NumPy's MT19937 state)")
    check.integer(f"{name}.numpy.pos", numpy.get("pos"), 0, 624)
    check.integer(f"{name}.numpy.has_gauss", numpy.get("has_gauss"), 0, 1)
    check.number(f"{name}.numpy.gauss", numpy.get("gauss"))
    cuda = check.sequence(f"{name}.cuda", rng["cuda"])
    for where, state in {"torch": rng["torch"], **{f"cuda[{i}]": state for i, state in enumerate(cuda)}}.items():
        if not isinstance(state, Tensor) or state.dtype != torch.uint8:
            raise check.refuse(f"{name}.{where}", f"is {_shown(state)}, not a generator's state (bytes)")
    if rng["torch"].shape != torch.get_rng_state().shape:
        raise check.refuse(f"{name}.torch", f"has {rng['torch'].numel():,} bytes, not a CPU generator's "
                           f"{torch.get_rng_state().numel():,}")
    return rng


def _check_meters(state: TrainingState, task: Any, num_classes: int | None, check: FieldCheck) -> None:
    """Each rank's sums of the epoch a checkpoint stopped in hold the task's counts (zoo.metrics)."""
    key, shape, what = {
        "multilabel": ("counts", (num_classes, 2, 2), f"{num_classes} x 2 x 2 per-class counts"),
        "reconstruction": ("images", (), "count of pictures"),
    }.get(task, ("confusion", (num_classes, num_classes), f"{num_classes} x {num_classes} confusion matrix"))
    for index, rank in enumerate(state.ranks):
        sums = (rank.meter or {}).get(key)
        if sums is None or ((num_classes is not None or not shape) and tuple(sums.shape) != shape):
            raise check.refuse(f"ranks[{index}].meter", f"holds no {what} for the epoch it stopped in "
                               f"(batch {state.batch})")


@dataclass
class TrainingState:
    """Everything a checkpoint holds. Weights, config, classes and normalization are enough to evaluate or
    fine-tune; the rest (None in a weights-only file) resumes the run exactly where it stopped: after `epoch`
    epochs and `batch` batches of the next, `step` optimizer steps."""

    model: dict[str, Tensor]  # the network's state_dict (never a DDP wrapper's)
    config: dict[str, Any]  # Config.to_dict()
    model_name: str | None = None
    num_classes: int | None = None
    classes: list[str] | None = None
    normalization: Normalization | None = None
    zoo_version: str | None = None
    torch_version: str | None = None
    optimizer: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None
    scaler: dict[str, Any] | None = None
    epoch: int = 0
    batch: int = 0
    step: int = 0
    ranks: list[RankState] = field(default_factory=list)  # in rank order
    world_size: int | None = None
    progress: Progress | None = None
    split_sizes: dict[str, int] | None = None  # images in train, val, test: a resumed run checks its data is the same
    ema: dict[str, Tensor] | None = None  # train.ema's average (zoo.training.ema.WeightAverage.state_dict)
    weights: str = "raw"  # what `model` holds: the trained weights, or (best.pt) their average, "ema"
    # task multilabel: each class's decision threshold on its sigmoid probability, chosen at the end of the run
    # (best.pt; config.multilabel.threshold); None: 0.5 each
    thresholds: list[float] | None = None
    # task reconstruction: the anomaly threshold on a picture's reconstruction error (MSE), chosen on the validation
    # split's normal pictures at the end of the run (best.pt; config.reconstruction.false_positive_rate)
    anomaly_threshold: float | None = None
    # task classification: temperature, prediction sets' conformity scores and the unfamiliar score, fitted on the
    # validation split at the end of the run (best.pt) or by zoo calibrate (zoo.metrics.calibration); None: not
    # fitted (no validation split, another task, or a checkpoint older than them)
    calibration: Calibration | None = None
    vocabulary: Vocabulary | None = None  # a text network's (data.name text): its words and tokenizer settings

    @classmethod
    def of_network(cls, network: nn.Module, config: dict[str, Any], classes: list[str], normalization: Normalization,
                   vocabulary: Vocabulary | None = None, **training: Any) -> TrainingState:
        """The state of `network` (unwrapped), with this zoo's and torch's versions; a text network's `vocabulary`."""
        import zoo

        # an autoencoder predicts no class (num_classes 0): None, and `classes` are the data's normal ones
        return cls(network.state_dict(), config, network.name, network.num_classes or None, list(classes),
                   normalization,
                   zoo.__version__, str(torch.__version__),  # TorchVersion is not a plain str: weights_only refuses it
                   vocabulary=vocabulary, **training)

    def to_dict(self) -> dict[str, Any]:
        """The plain dict torch.save writes (weights_only loading accepts it)."""
        state = {
            "model": self.model, "model_name": self.model_name, "num_classes": self.num_classes, "config": self.config,
            "classes": self.classes, "normalization": self.normalization.to_dict() if self.normalization else None,
            "zoo_version": self.zoo_version, "torch_version": self.torch_version, "weights": self.weights,
            "thresholds": self.thresholds, "anomaly_threshold": self.anomaly_threshold,
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
            "vocabulary": None if self.vocabulary is None else self.vocabulary.to_dict(),
        }
        if self.optimizer is not None:
            state.update(optimizer=self.optimizer, scheduler=self.scheduler, scaler=self.scaler, epoch=self.epoch,
                         batch=self.batch, step=self.step, ranks=[rank.to_dict() for rank in self.ranks],
                         world_size=self.world_size, progress=self.progress.to_dict() if self.progress else None,
                         split_sizes=self.split_sizes, ema=self.ema)
        return state

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: str | Path = "the checkpoint", need: Need = "weights"
                  ) -> TrainingState:
        """A loaded checkpoint's dict (`read_state` checks first that it has the keys `need` reads), each field
        checked for what it holds: types, ranges, sizes against the weights, finite weights. Raises ZooError,
        one line naming `path` and the field, for a field `need` reads that is None or holds a wrong value."""
        check = FieldCheck(path)
        reconstruction = isinstance(data.get("config"), dict) and data["config"].get("task") == "reconstruction"
        empty = [key for key in _NEEDS[need] if data.get(key) is None and key != "progress"  # progress: optional
                 and not (key == "num_classes" and reconstruction)]  # an autoencoder has no classes to count
        if empty:
            raise check.refuse(empty[0], "is empty (None)")
        model = check.weights("model", data["model"])
        config = check.mapping("config", data["config"])
        num_classes, classes = data.get("num_classes"), data.get("classes")
        if num_classes is not None:
            check.integer("num_classes", num_classes, 1)
            check.fits("num_classes", num_classes, model, 0, "as many rows (the classifier's outputs)")
        if classes is not None:
            wider = isinstance(config.get("model"), dict) and config["model"].get("num_classes") == num_classes
            classes = check.names("classes", classes, num_classes, wider)
        training = "optimizer" in data
        text = {key: None if data.get(key) is None else check.text(key, data[key])
                for key in ("model_name", "zoo_version", "torch_version")}
        state = cls(
            model, config, text["model_name"], num_classes, classes,
            Normalization.from_dict(data.get("normalization"), check, model, config), text["zoo_version"],
            text["torch_version"],
            *(_optional(check.mapping, key, data) for key in ("optimizer", "scheduler", "scaler")),
            *(check.integer(key, data.get(key, 0), 0) for key in ("epoch", "batch", "step")),
            [RankState.from_dict(rank, check, f"ranks[{index}]")
             for index, rank in enumerate(check.sequence("ranks", data.get("ranks") or []))],
            _optional(check.integer, "world_size", data, 1),
            Progress.from_dict(data["progress"], check) if training and data.get("progress") else None,
            _split_sizes(data.get("split_sizes"), check),  # absent before it was added: not checked then
            _average(check, data.get("ema"), model), check.text("weights", data.get("weights", "raw"), WEIGHTS),
            check.thresholds("thresholds", data.get("thresholds"), num_classes),
            _optional(check.number, "anomaly_threshold", data),
            check.calibration("calibration", data.get("calibration"), data.get("normalization"),
                              tokens=data.get("vocabulary") is not None),
            Vocabulary.from_dict(data.get("vocabulary"), check, model),
        )
        if state.batch:  # stopped mid-epoch: each rank's sums of that epoch go on (zoo.metrics, the task's)
            _check_meters(state, config.get("task"), num_classes, check)
        return state

    @staticmethod
    def holds(data: Any, need: Need) -> bool:
        """Whether a loaded file is a zoo checkpoint with what `need` reads (not a bare state_dict, say)."""
        return isinstance(data, dict) and all(key in data for key in _NEEDS[need])


def _optional(read: Any, key: str, data: dict[str, Any], *bounds: int) -> Any:
    """data[key] read by one of FieldCheck's methods, or None where it is absent or None."""
    value = data.get(key)
    return None if value is None else read(key, value, *bounds)


def _average(check: FieldCheck, ema: Any, model: dict[str, Tensor]) -> dict[str, Tensor] | None:
    """train.ema's average (AveragedModel's state: module.<each of the network's keys>, n_averaged), checked to
    be of the network's shapes: a resumed run loads it strictly."""
    if ema is None:
        return None
    ema = check.weights("ema", ema)
    for key, tensor in model.items():
        saved = ema.get(f"module.{key}")
        if saved is None or saved.shape != tensor.shape:
            raise check.refuse("ema", f"has no module.{key} of {tuple(tensor.shape)}, the network's")
    if "n_averaged" not in ema:
        raise check.refuse("ema", "has no n_averaged (the count of weights averaged)")
    return ema


def _split_sizes(sizes: Any, check: FieldCheck) -> dict[str, int] | None:
    if sizes is None:
        return None
    return {check.text("split_sizes", split): check.integer(f"split_sizes.{split}", count, 0)
            for split, count in check.mapping("split_sizes", sizes).items()}


def read_state(path: str | Path, need: Need, map_location: str | torch.device = "cpu") -> TrainingState:
    """The checkpoint at `path`, checked to hold what `need` reads: 'weights' (and the config), 'evaluate' (and
    the class count and normalization) or 'resume' (and the optimizer, position and per-rank random state).
    A file that lacks it, or whose fields hold wrong values (TrainingState.from_dict), is one line (ZooError)
    saying what to do instead."""
    path = checkpoint_file(path)
    data = load_checkpoint(path, map_location)
    if not TrainingState.holds(data, need):
        if need == "resume" and isinstance(data, dict) and data.get("weights") == "ema":
            raise ZooError(f"{path} cannot be resumed: it holds train.ema's average of the weights, the epoch's best, "
                           f"not the training state; resume from {path.parent / 'last.pt'}")
        if need == "resume":
            raise ZooError(f"{path} cannot be resumed: it holds no training state (optimizer, position, random "
                           "state), only weights; fine-tune from it instead (finetune.source)")
        raise ZooError(f"{path} is not a zoo checkpoint (no {', '.join(_NEEDS[need][:-1])} and {_NEEDS[need][-1]} "
                       "inside); use a runs/.../checkpoints/*.pt file")
    return TrainingState.from_dict(data, path, need)


def load_weights(model: nn.Module, state: TrainingState, path: Path, model_name: str) -> None:
    """state.model into `model` (built as `model_name`), strictly; a misfit is one line naming what is off."""
    try:
        model.load_state_dict(state.model)
    except RuntimeError as error:
        lines = [line.strip() for line in str(error).splitlines()[1:] if line.strip()]
        trained = state.model_name
        fix = (f"it holds a {trained}: leave model.name as the checkpoint has it" if trained and trained != model_name
               else "use the checkpoint with the config it was trained with")
        raise ZooError(f"{path} does not fit {model_name} ({lines[0].rstrip('.') if lines else error}); "
                       f"{fix}") from None


# ---- what each field may hold ------------------------------------------------------------------------

MAX_SIDE = 8192  # pixels: one 8192 x 8192 RGB picture is 805 MB as float32; a larger side is a damaged field


class FieldCheck:
    """What a file's fields may hold, one method per kind of field, shared by the checkpoint reader
    (TrainingState.from_dict) and the export metadata reader (zoo.inference.load.Metadata). Each returns the
    value, or raises ZooError: one line naming the file, the field, what is wrong and `fix`."""

    def __init__(self, path: str | Path, fix: str = "use another checkpoint", prefix: str = "") -> None:
        self.path, self.fix, self.prefix = path, fix, prefix  # prefix: "zoo metadata's " for an export's

    def refuse(self, name: str, problem: str) -> ZooError:
        return ZooError(f"{self.path} is damaged: its {self.prefix}{name} {problem}; {self.fix}")

    def integer(self, name: str, value: Any, low: int, high: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.refuse(name, f"is {_shown(value)}, not a whole number")
        if value < low or (high is not None and value > high):
            bounds = f"{low} or more" if high is None else f"{low} to {high:,}"
            raise self.refuse(name, f"is {value:,}, not {bounds}")
        return value

    def number(self, name: str, value: Any, positive: bool = False) -> float:
        """A finite real (an int or float; JSON and pickles give either), above 0 with `positive`."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.refuse(name, f"is {_shown(value)}, not a number")
        number = float(value) if not isinstance(value, int) or abs(value) < 2**1000 else math.inf
        if not math.isfinite(number) or (positive and number <= 0):
            raise self.refuse(name, f"is {value!r}, not {'above 0' if positive else 'a finite number'}")
        return number

    def text(self, name: str, value: Any, choices: tuple[str, ...] | None = None) -> str:
        if not isinstance(value, str):
            raise self.refuse(name, f"is {_shown(value)}, not text")
        if choices is not None and value not in choices:
            raise self.refuse(name, f"is {value!r}, not one of {', '.join(choices)}")
        return value

    def mapping(self, name: str, value: Any) -> dict[Any, Any]:
        if not isinstance(value, dict):
            raise self.refuse(name, f"is {_shown(value)}, not a mapping")
        return value

    def sequence(self, name: str, value: Any) -> list[Any]:
        if not isinstance(value, (list, tuple)):
            raise self.refuse(name, f"is {_shown(value)}, not a list")
        return list(value)

    def names(self, name: str, value: Any, count: int | None, wider: bool = False) -> list[str]:
        """Class names: distinct texts, one per output of a `count`-class head (fewer where the config's
        model.num_classes made the head `wider` than the data)."""
        names = self.sequence(name, value)
        if not all(isinstance(item, str) for item in names):
            raise self.refuse(name, f"holds {_shown(next(i for i in names if not isinstance(i, str)))}, not a name")
        if count is not None and (len(names) > count or (len(names) < count and not wider)):
            raise self.refuse(name, f"has {_count(len(names), 'name')} for the {count:,} outputs of its head")
        if len(set(names)) < len(names):
            raise self.refuse(name, f"names {next(n for n in names if names.count(n) > 1)!r} twice")
        return names

    def thresholds(self, name: str, value: Any, count: int | None) -> list[float] | None:
        """A multi-label model's decision thresholds: None, or one probability strictly between 0 and 1 per class."""
        if value is None:
            return None
        values = self.sequence(name, value)
        if count is not None and len(values) != count:
            raise self.refuse(name, f"holds {len(values)} thresholds for {count} classes")
        numbers = [self.number(f"{name}[{index}]", item) for index, item in enumerate(values)]
        if any(not 0 < number < 1 for number in numbers):
            raise self.refuse(name, "holds a threshold outside (0, 1): they are probabilities")
        return numbers

    def calibration(self, name: str, value: Any, normalization: Any, tokens: bool = False) -> Calibration | None:
        """A classifier's calibration (zoo.metrics.calibration.Calibration.from_dict's checks), its pixel statistics
        as many as the network's input gives (`tokens`, a text network's ids: none); None where absent."""
        from zoo.metrics.calibration import Calibration
        from zoo.metrics.familiarity import feature_count

        if value is None:
            return None
        shape = normalization if isinstance(normalization, dict) else {}
        features = 0 if tokens else feature_count(shape.get("in_channels"), shape.get("input_size"))
        try:
            return Calibration.from_dict(value, features)
        except ValueError as error:
            raise self.refuse(name, str(error)) from None

    def statistics(self, name: str, mean: Any, std: Any, channels: int | None) -> tuple[tuple[float, ...], ...]:
        """(mean, std) per channel: as many of each, 1 or `channels`; finite, std above 0 (it divides). `name`:
        the section holding them ("" where they are fields of their own)."""
        key = f"{name}." if name else ""
        means = tuple(self.number(f"{key}mean", v) for v in self.sequence(f"{key}mean", mean))
        stds = tuple(self.number(f"{key}std", v, positive=True) for v in self.sequence(f"{key}std", std))
        if not means or len(means) != len(stds) or (channels is not None and len(means) not in (1, channels)):
            for_channels = "its channels" if channels is None else _count(channels, "channel")
            raise self.refuse(f"{key}mean and std", f"have {len(means)} and {len(stds)} values for {for_channels}")
        return means, stds

    def side(self, name: str, value: Any, config: dict[str, Any]) -> int:
        """A picture's side in pixels, 1 to MAX_SIDE: the one `config` trains at (data.input_size, else its
        model's registered side) where it names a known model and a data set of pictures."""
        side = self.integer(name, value, 1, MAX_SIDE)
        trained = _trained_side(config)
        if trained is not None and side != trained:
            raise self.refuse(name, f"is {side}, but its config trains the network at {trained} x {trained}")
        return side

    def weights(self, name: str, value: Any) -> dict[str, Tensor]:
        """A state_dict: tensors by name, the floating ones finite (a NaN weight makes every prediction NaN)."""
        tensors = self.mapping(name, value)
        for key, tensor in tensors.items():
            if not isinstance(key, str):
                raise self.refuse(name, f"names a tensor by {_shown(key)}, not by text")
            if not isinstance(tensor, Tensor):
                raise self.refuse(name, f"holds {_shown(tensor)} under {key!r}, not a tensor")
        floats = [(key, tensor) for key, tensor in tensors.items() if tensor.is_floating_point()]
        # A sum is finite only if every term is (NaN and inf propagate): one sum per tensor and one check of them
        # all, 29 ms for resnet152's 60M weights on one core, where isfinite(tensor).all() took 274 ms.
        # A sum that overflowed is looked at element by element.
        if floats and not bool(torch.isfinite(torch.stack([tensor.sum().float() for _, tensor in floats])).all()):
            bad = next((key for key, tensor in floats if not bool(torch.isfinite(tensor).all())), None)
            if bad is not None:
                raise self.refuse(f"{name} tensor {bad}", "holds NaN or infinite values")
        return tensors

    def fits(self, name: str, count: int, weights: dict[str, Tensor], dim: int, role: str, flat: bool = False
             ) -> None:
        """`count` is a size of the network: some tensor of `weights` has it along `dim` (the classifier's rows;
        the first layer's input channels, or with `flat` a multiple of them, as an MLP's flattened pixels), so a
        network is never built (1e9 classes: 336 GB) for a count its weights do not have."""
        if not any(tensor.dim() > dim and (tensor.shape[dim] % count == 0 if flat else tensor.shape[dim] == count)
                   for tensor in weights.values()):
            raise self.refuse(name, f"is {count:,}, but no tensor of its weights has {role}")


def _trained_side(config: dict[str, Any]) -> int | None:
    """The side a raw config trains its network at (Config.geometry's), or None where the config does not say."""
    from zoo.datasets import SPECS
    from zoo.models.registry import get_model_info, list_models

    data, model = config.get("data"), config.get("model")
    if not isinstance(data, dict) or not isinstance(model, dict):
        return None
    spec = SPECS.get(data["name"]) if isinstance(data.get("name"), str) else None
    if spec is not None and not spec.pictures:  # xor's features, text's token ids: size 1
        return None
    if data.get("input_size") is not None:
        side = data["input_size"]
        return side if isinstance(side, int) and not isinstance(side, bool) else None  # else validation says
    return get_model_info(model["name"]).side if model.get("name") in list_models() else None


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}" + ("" if number == 1 else "s")


def _shown(value: Any) -> str:
    """A wrong value as a message shows it: its type and, if short, itself."""
    text = repr(value)
    kind = type(value).__name__
    return ("an " if kind[0] in "aeiou" else "a ") + kind + (f" ({text})" if len(text) <= 40 else "")


# ---- the file ----------------------------------------------------------------------------------------

def save_checkpoint(state: TrainingState | dict[str, Any], path: Path) -> None:
    """Atomic; a full disk or an unwritable folder is one line, with the previous file intact."""
    buffer = io.BytesIO()
    torch.save(state.to_dict() if isinstance(state, TrainingState) else state, buffer)
    atomic_write(path, buffer.getvalue(), fix="the previous checkpoint is intact; free some space or set "
                                             "train.output_dir to a writable folder")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """Load a zoo checkpoint or weights file as saved (a dict); a missing, damaged or unsafe file is a one-line
    ZooError. `read_state` gives a zoo checkpoint as its TrainingState."""
    path = checkpoint_file(path)
    if not path.is_file():
        raise ZooError(f"checkpoint {str(path)!r} not found; runs write runs/<name>/<time>/checkpoints/best.pt")
    if path.suffix.lower() in (".yaml", ".yml"):  # a run's config.yaml, beside its checkpoints/
        raise ZooError(f"{path} is a config, not a checkpoint; give a checkpoint (runs/<name>/<time>/checkpoints/"
                       f"best.pt) or its run directory; zoo train --config {path} trains one")
    if path.suffix == ".safetensors":
        return _load_safetensors(path, map_location)
    damaged = f"{path} is damaged or not a PyTorch checkpoint"
    if path.stat().st_size == 0:
        raise ZooError(f"{damaged} (an empty file); use another checkpoint")
    _check_crcs(path)
    try:
        with warnings.catch_warnings():  # a plain pickle of protocol 4 or 5 makes torch warn before it fails
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            with torch.serialization.safe_globals(SAFE_GLOBALS):
                return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        unsafe = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", str(error))
        if unsafe:
            raise ZooError(f"{path} was refused: it needs the unsafe global {unsafe.group(1)}; zoo loads weights only "
                           "and never runs code from a file") from None
        cause = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", str(error))  # the rest is advice on weights_only
        raise ZooError(f"{damaged} (unpickling failed: {cause.group(1).strip() if cause else _first_line(error)}); "
                       "use another checkpoint") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as error:
        raise ZooError(f"{damaged} ({_first_line(error)}); use another checkpoint") from None
    except (KeyError, IndexError, TypeError, AttributeError) as error:
        # the unpickler's, on bytes that are no pickle (text)
        raise ZooError(f"{damaged} (unpickling failed: {type(error).__name__} {error}); "
                       "use another checkpoint") from None


def checkpoint_file(path: str | Path) -> Path:
    """The checkpoint a path names: a file as it is; a run directory (runs/<name>/<time>) or its checkpoints/
    folder for its best.pt, as `zoo train --resume` takes a run directory for its last.pt. Another folder is a
    one-line ZooError."""
    path = Path(path)
    if not path.is_dir():
        return path
    found = next((candidate for candidate in (path / "checkpoints" / "best.pt", path / "best.pt")
                  if candidate.is_file()), None)
    if found is None:
        raise ZooError(folder_given(path))
    return found


def folder_given(path: Path) -> str:
    """The message for a folder where a checkpoint file belongs and that holds no best.pt."""
    return (f"{path} is a folder without checkpoints/best.pt, not a checkpoint; give a checkpoint file, or a run "
            "directory (runs/<name>/<time>)")


def _check_crcs(path: Path) -> None:
    """torch.load reads a zip checkpoint's tensors without checking the CRC-32 the archive records for each, so a
    flipped bit loads as a wrong weight: check them all (zipfile does at the end of each member; about 1 s a GB).
    A member recorded with CRC 0 is not checked (torch.serialization.set_crc32_options(False) writes 0)."""
    if not zipfile.is_zipfile(path):
        return  # torch.load's legacy format, or no zip at all: torch.load says which
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                if member.CRC != 0:
                    with archive.open(member) as data:
                        while data.read(1 << 24):
                            pass
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
        raise ZooError(f"{path} is damaged ({_first_line(error)}: its bytes changed after it was saved); "
                       "use another checkpoint") from None


def _first_line(error: Exception) -> str:
    """The first sentence of the first line: torch's own messages go on with advice for torch.load's callers."""
    line = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
    return re.split(r"(?<=[a-z])\. (?=[A-Z])", line, maxsplit=1)[0].rstrip(".")


def _load_safetensors(path: Path, map_location: str | torch.device) -> dict[str, Any]:
    """A .safetensors file holds tensors and nothing else: a state_dict, by construction code-free."""
    return read_safetensors(path, map_location)[0]


def read_safetensors(path: Path, map_location: str | torch.device = "cpu") -> tuple[dict[str, Tensor], dict[str, str]]:
    """A .safetensors file's tensors and its header's metadata (text to text; {} when it has none). A damaged
    file, or weights that are not finite, is one line."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device=str(map_location)) as file:
            tensors, metadata = {key: file.get_tensor(key) for key in file.keys()}, file.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise ZooError(f"{path} is damaged or not a safetensors file ({_first_line(error)}); "
                       "use another file") from None
    return FieldCheck(path, "use another file").weights("weights", tensors), metadata
