"""`zoo train --resume RUN_DIR_OR_CHECKPOINT`: the run continues exactly where its checkpoint left it.

A checkpoint (zoo.checkpoint.TrainingState) holds, besides the weights: the optimizer, scheduler and gradient
scaler; the position (epochs done, batches done in the next one, optimizer steps); and per rank the random state
and the epoch's metric sums so far. The training order of an epoch depends on (seed, epoch) alone, so the resumed
run draws it again and skips the batches already trained on. On the CPU in deterministic mode the resumed run
ends bit for bit where the uninterrupted one does. The config is the checkpoint's; a changed one is refused
unless allowed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo.checkpoint import Progress, RankState, TrainingState, read_state
from zoo.config import Config, apply_overrides, load_config, validate_config
from zoo.distributed import Job
from zoo.errors import ZooError
from zoo.metrics import MetricAccumulator
from zoo.runtime import restore_rng


# ---- what to resume ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ResumePlan:
    checkpoint: Path
    run_dir: Path
    state: TrainingState
    config: Config
    changes: list[str] = field(default_factory=list)  # 'key: old -> new', allowed by allow_config_change


def find_checkpoint(target: Path) -> Path:
    """A run directory's checkpoints/last.pt, or the checkpoint file itself."""
    target = Path(target)
    if target.is_dir():
        for candidate in (target / "checkpoints" / "last.pt", target / "last.pt"):
            if candidate.is_file():
                return candidate
        raise ZooError(f"{target} holds no checkpoints/last.pt to resume from; give a run directory "
                       "(runs/<name>/<time>) or a checkpoint file")
    if not target.exists():
        raise ZooError(f"--resume {str(target)!r} not found; give a run directory (runs/<name>/<time>) or a checkpoint file")
    return target


def run_dir_of(checkpoint: Path) -> Path:
    """runs/<name>/<time>/checkpoints/last.pt -> runs/<name>/<time>; a loose file continues beside itself."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent


def prepare_resume(target: Path, config_path: Path | None = None, overrides: list[str] | None = None,
                   allow_config_change: bool = False) -> ResumePlan:
    """Read the checkpoint and decide the config: the checkpoint's, or the one given (`--config`, `--set`),
    which may differ from it only with `allow_config_change`."""
    checkpoint = find_checkpoint(target)
    state = read_state(checkpoint, "resume")
    stored = validate_config(state.config, f"{checkpoint} (config)")
    if config_path is not None:
        # A fine-tuning run stored its source's mean and std in its config: a file that sets none means those.
        requested = load_config(config_path, overrides).with_normalization(stored.data.mean, stored.data.std)
    else:
        requested = validate_config(apply_overrides(stored.to_dict(), overrides or []), "--set")
    changes = config_changes(stored, requested)
    if changes and not allow_config_change:
        raise ZooError(f"the config differs from the checkpoint's: {'; '.join(changes)}; "
                       "resume with the same config, or add --allow-config-change")
    return ResumePlan(checkpoint, run_dir_of(checkpoint), state, requested, changes)


def config_changes(old: Config, new: Config) -> list[str]:
    """'key.path: old -> new' for every value that differs."""
    before, after = _flatten(old.to_dict()), _flatten(new.to_dict())
    return [f"{key}: {before.get(key)!r} -> {after.get(key)!r}"
            for key in sorted(before.keys() | after.keys()) if before.get(key) != after.get(key)]


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def restore_optimization(optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler,
                         scaler: torch.amp.GradScaler, plan: ResumePlan) -> None:
    """The optimizer's buffers and the scaler as saved. The schedule as saved, too, unless the config changed
    (--allow-config-change): then the new config's hyperparameters stand and its schedule is replayed to the
    saved step, so `--set optimizer.lr=0.01` or `--set train.epochs=200` mean what they say."""
    fresh = [{key: value for key, value in group.items() if key != "params"} for group in optimizer.param_groups]
    try:
        optimizer.load_state_dict(plan.state.optimizer)
    except ValueError as error:
        raise ZooError(f"{plan.checkpoint}: the optimizer state does not fit ({error}); "
                       "resume without the change to the optimizer or fine-tuning settings") from None
    scaler.load_state_dict(plan.state.scaler)
    if not plan.changes:
        scheduler.load_state_dict(plan.state.scheduler)
        return
    for group, settings in zip(optimizer.param_groups, fresh):
        group.update(settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()": replaying is the point
        for _ in range(plan.state.step):
            scheduler.step()


# ---- where the run is --------------------------------------------------------------------------------

@dataclass
class Position:
    """Where a run goes on: after `epoch` epochs and `batch` batches of the next, `step` optimizer steps;
    with this rank's saved random state and, mid-epoch, its share of the epoch's sums."""

    epoch: int = 0
    batch: int = 0
    step: int = 0
    progress: Progress = field(default_factory=Progress)
    rank_state: RankState | None = None

    @classmethod
    def of(cls, state: TrainingState, job: Job) -> Position:
        ranks = state.ranks
        if len(ranks) != job.world_size and state.batch:
            raise ZooError(f"the checkpoint was saved mid-epoch by {len(ranks)} processes and this run has "
                           f"{job.world_size}; resume it with {len(ranks)} (torchrun --nproc_per_node={len(ranks)})")
        if len(ranks) != job.world_size and job.is_main:
            print(f"warning: saved by {len(ranks)} processes, resumed by {job.world_size}: the data order and weights "
                  "go on exactly, the random state (augmentation, dropout) starts afresh")
        return cls(state.epoch, state.batch, state.step, state.progress,
                   ranks[job.rank] if len(ranks) == job.world_size else None)

    def describe(self, steps_per_epoch: int) -> str:
        where = f"epoch {self.epoch + 1}, batch {self.batch}/{steps_per_epoch}" if self.batch else f"the start of epoch {self.epoch + 1}"
        return f"{where} (step {self.step})"

    def restore(self, train_loader: Any) -> None:
        """This rank's random state, as it was when the checkpoint was written."""
        from zoo.data import load_loader_state

        if self.rank_state is not None:
            restore_rng(self.rank_state.rng)
            load_loader_state(train_loader, self.rank_state.loader)

    def entering(self, epoch: int, num_classes: int, device: torch.device) -> tuple[int, MetricAccumulator | None]:
        """(the batch to start `epoch` at, its sums so far): the saved ones for the epoch the run stopped in."""
        if epoch != self.epoch + 1 or not self.batch:
            return 0, None
        meter = MetricAccumulator(num_classes, device)
        meter.load_state_dict(self.rank_state.meter)
        batch, self.batch = self.batch, 0
        return batch, meter
