"""Checkpoints: the one schema of what a run saves (TrainingState), written atomically (a crash mid-save never
destroys the last good file) and read safely (`weights_only=True`: unpickling builds tensors and plain
containers, never runs code).

This is the only module that spells the checkpoint's keys. On disk a checkpoint is the plain dict of
`TrainingState.to_dict()`; every reader and writer goes through `TrainingState`, and `read_state` is the one
place that checks a loaded file holds what its use needs (evaluating, resuming).
"""

from __future__ import annotations

import argparse
import io
import pickle
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from zoo.errors import ZooError
from zoo.rundir import atomic_write

# Plain records other tools pickle beside the weights, which weights_only loading would refuse: timm's
# train.py and torchvision's reference scripts save their command line as an argparse.Namespace ('args').
SAFE_GLOBALS = [argparse.Namespace]

Need = Literal["weights", "evaluate", "resume"]
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
    def from_dict(cls, data: dict[str, Any] | None) -> Normalization | None:
        if not data:
            return None
        return cls(tuple(data["mean"]), tuple(data["std"]), data.get("input_size"), data.get("in_channels"))


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
    def from_dict(cls, data: dict[str, Any]) -> Progress:
        early = data.get("early_stopping")
        return cls(data["seconds"], data["images"], data["epochs_run"], data["best_accuracy"], data["best_epoch"],
                   data.get("best_val"), tuple(early) if early else None, data.get("best_weights", "raw"),
                   data.get("threads"))


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
    def from_dict(cls, data: dict[str, Any]) -> RankState:
        return cls(data["rng"], data["loader"], data.get("meter"))


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

    @classmethod
    def of_network(cls, network: nn.Module, config: dict[str, Any], classes: list[str], normalization: Normalization,
                   **training: Any) -> TrainingState:
        """The state of `network` (unwrapped), with this zoo's and torch's versions."""
        import zoo

        return cls(network.state_dict(), config, network.name, network.num_classes, list(classes), normalization,
                   zoo.__version__, str(torch.__version__),  # TorchVersion is not a plain str: weights_only refuses it
                   **training)

    def to_dict(self) -> dict[str, Any]:
        """The plain dict torch.save writes (weights_only loading accepts it)."""
        state = {
            "model": self.model, "model_name": self.model_name, "num_classes": self.num_classes, "config": self.config,
            "classes": self.classes, "normalization": self.normalization.to_dict() if self.normalization else None,
            "zoo_version": self.zoo_version, "torch_version": self.torch_version, "weights": self.weights,
        }
        if self.optimizer is not None:
            state.update(optimizer=self.optimizer, scheduler=self.scheduler, scaler=self.scaler, epoch=self.epoch,
                         batch=self.batch, step=self.step, ranks=[rank.to_dict() for rank in self.ranks],
                         world_size=self.world_size, progress=self.progress.to_dict() if self.progress else None,
                         split_sizes=self.split_sizes, ema=self.ema)
        return state

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingState:
        """A loaded checkpoint's dict; `read_state` checks first that it holds what its use needs."""
        training = "optimizer" in data
        return cls(
            data["model"], data["config"], data.get("model_name"), data.get("num_classes"), data.get("classes"),
            Normalization.from_dict(data.get("normalization")), data.get("zoo_version"), data.get("torch_version"),
            data.get("optimizer"), data.get("scheduler"), data.get("scaler"), data.get("epoch", 0),
            data.get("batch", 0), data.get("step", 0), [RankState.from_dict(rank) for rank in data.get("ranks") or []],
            data.get("world_size"),
            Progress.from_dict(data["progress"]) if training and data.get("progress") else None,
            data.get("split_sizes"),  # absent from checkpoints before it was added: not checked then
            data.get("ema"), data.get("weights", "raw"),
        )

    @staticmethod
    def holds(data: Any, need: Need) -> bool:
        """Whether a loaded file is a zoo checkpoint with what `need` reads (not a bare state_dict, say)."""
        return isinstance(data, dict) and all(key in data for key in _NEEDS[need])


def read_state(path: str | Path, need: Need, map_location: str | torch.device = "cpu") -> TrainingState:
    """The checkpoint at `path`, checked to hold what `need` reads: 'weights' (and the config), 'evaluate' (and
    the class count and normalization) or 'resume' (and the optimizer, position and per-rank random state).
    A file that lacks it is one line saying what to do instead."""
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
    return TrainingState.from_dict(data)


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


# ---- the file ----------------------------------------------------------------------------------------

def save_checkpoint(state: TrainingState | dict[str, Any], path: Path) -> None:
    """Atomic; a full disk or an unwritable folder is one line, with the previous file intact."""
    buffer = io.BytesIO()
    torch.save(state.to_dict() if isinstance(state, TrainingState) else state, buffer)
    try:
        atomic_write(path, buffer.getvalue())
    except OSError as error:
        raise ZooError(f"cannot save {path} ({error.strerror or error}); the previous checkpoint is intact; "
                       "free some space or set train.output_dir to a writable folder") from None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """Load a zoo checkpoint or weights file as saved (a dict); a missing, damaged or unsafe file is a one-line
    ZooError. `read_state` gives a zoo checkpoint as its TrainingState."""
    path = checkpoint_file(path)
    if not path.is_file():
        raise ZooError(f"checkpoint {str(path)!r} not found; runs write runs/<name>/<time>/checkpoints/best.pt")
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
    file is one line."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device=str(map_location)) as file:
            return {key: file.get_tensor(key) for key in file.keys()}, file.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise ZooError(f"{path} is damaged or not a safetensors file ({_first_line(error)}); "
                       "use another file") from None
