"""What a run does around its steps and epochs, one small object each: checkpoints, early stopping, the choice of
best.pt's weights, and the per-step hook that joins them with the log and the guard; `Run` bundles what they
share. The run's epoch loop (zoo.training.run._epochs) calls them; train.ema is the one concern that also has a
line there (its average is validated beside the weights), besides its update in the step hook."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from zoo.checkpoint import Progress, RankState, save_checkpoint
from zoo.config import Config, EarlyStoppingConfig
from zoo.data import loader_state
from zoo.distributed import Job
from zoo.errors import RunStopped
from zoo.loop import EpochResult, Stop
from zoo.metrics import MetricAccumulator
from zoo.rundir import atomic_write, check_present, publish_copy, remove_stale_temporaries
from zoo.runtime import capture_rng
from zoo.training.guard import Guard
from zoo.training.log import RunLog
from zoo.training.setup import Parts

# zoo sweep's pruner, as zoo.train takes it: (epoch, the epoch's validation top-1 0-1) -> stop the run here?
Judge = Callable[[int, float], bool]


def section(result: EpochResult) -> dict[str, float]:
    """A split's figures as metrics.json records them."""
    return {**result.metrics.summary(), "time_s": round(result.seconds, 3),
            "images_per_s": round(result.images_per_second, 1)}


class EarlyStopping:
    """Stop after `patience` epochs whose validation metric did not beat the best by more than `min_delta`."""

    def __init__(self, metric: str, patience: int, min_delta: float) -> None:
        self.metric, self.patience, self.min_delta = metric, patience, min_delta
        self.best: float | None = None
        self.bad_epochs = 0

    @classmethod
    def of(cls, config: EarlyStoppingConfig | None, progress: Progress) -> EarlyStopping | None:
        """From the config, with the counters a resumed run's progress kept."""
        if config is None:
            return None
        stopper = cls(**config.model_dump())
        if progress.early_stopping:
            stopper.best, stopper.bad_epochs = progress.early_stopping
        return stopper

    def should_stop(self, val: EpochResult) -> bool:
        value = val.metrics.accuracy if self.metric == "val_accuracy" else -val.metrics.loss
        if self.best is None or value > self.best + self.min_delta:
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= self.patience


def better(val: EpochResult | None, ema_val: EpochResult | None) -> tuple[EpochResult | None, str]:
    """With train.ema, the epoch's better weights, (their validation, "raw" or "ema"): the higher validation
    top-1, a tie going to the lower loss, and to the raw weights. Without a validation split the average is
    taken: it is what train.ema asks for, and there is nothing to measure it against."""
    if val is None:
        return None, "ema"
    if ema_val is None:
        return val, "raw"
    raw, ema = val.metrics, ema_val.metrics
    return (ema_val, "ema") if (ema.accuracy, -ema.loss) > (raw.accuracy, -raw.loss) else (val, "raw")


def record_epoch(progress: Progress, epoch: int, train: EpochResult, val: EpochResult | None,
                 weights: str = "raw") -> bool:
    """Count the epoch into `progress`; True when it is the best so far: the best validation top-1, a tie broken
    by the lower validation loss (the latest epoch when there is no validation split), which best.pt then holds.
    Without the tie-break a small validation split at 100% from epoch 1 keeps epoch 1's weights for good.
    `val` is the validation of the epoch's `weights` (better() chose them)."""
    progress.epochs_run = epoch
    best = progress.best_val
    tied = val is not None and val.metrics.accuracy == progress.best_accuracy
    improved = val is None or val.metrics.accuracy > progress.best_accuracy or (
        tied and best is not None and val.metrics.loss < best["loss"])
    if improved:
        progress.best_accuracy, progress.best_epoch = (val.metrics.accuracy if val else -1.0), epoch
        progress.best_val = section(val) if val else None
        progress.best_weights = weights
    return improved


@dataclass
class Run:
    """What one run's epochs share: its parts, this process's place, the run directory, the log, the guard, early
    stopping (None without train.early_stopping), a judge (zoo sweep's pruner) and the checkpointer built from them."""

    parts: Parts
    job: Job
    directory: Path
    log: RunLog
    guard: Guard
    stopper: EarlyStopping | None
    judge: Judge | None = None  # zoo sweep's pruner: told each epoch's validation, may stop the run (zoo.train)
    saver: Checkpointer = field(init=False)

    def __post_init__(self) -> None:
        self.saver = Checkpointer(self)


class Checkpointer:
    """checkpoints/last.pt (and best.pt) of the run. Every rank calls `save`, to hand rank 0 its random state
    and, mid-epoch, its share of the epoch's sums; rank 0 writes, atomically, and a signal waits for it."""

    def __init__(self, run: Run) -> None:
        self.folder = run.directory / "checkpoints"
        self.parts, self.job, self.guard, self.stopper = run.parts, run.job, run.guard, run.stopper
        self.progress = run.parts.position.progress
        self.saved = (self.folder / "last.pt").is_file()  # a resumed run's, or one of this run's saves

    def clean(self) -> None:
        """What a killed save left behind: temporary files, and a best.pt one best behind last.pt."""
        remove_stale_temporaries(self.folder)
        remove_stale_temporaries(self.folder.parent)
        self._publish_best_again()

    def _publish_best_again(self) -> None:
        """An epoch's save writes last.pt, then best.pt: a run killed between the two kept an earlier best.pt while
        last.pt names the epoch it holds as the best. So a run resumed at the end of its best epoch publishes
        best.pt again from last.pt (its weights, or the average restored from it); at any other position the
        save that made the best epoch's best.pt was followed by another last.pt, so both were written."""
        position = self.parts.position
        if not self.saved or position.batch or position.epoch == 0 or self.progress.best_epoch != position.epoch:
            return
        if self.progress.best_weights == "ema":
            save_checkpoint(self.parts.averaged_state(), self.folder / "best.pt")
        else:
            publish_copy(self.folder / "last.pt", self.folder / "best.pt")

    def save(self, epoch: int, batch: int, step: int, meter: MetricAccumulator | None, best: bool = False) -> None:
        """The state after `epoch` epochs and `batch` batches of the next, `step` optimizer steps."""
        mine = RankState(capture_rng(), loader_state(self.parts.train_loader), meter.state_dict() if meter else None)
        ranks = self.job.gather(mine)
        if not self.job.is_main:
            return
        if self.stopper is not None:
            self.progress.early_stopping = (self.stopper.best, self.stopper.bad_epochs)
        train_step = self.parts.step
        state = self.parts.state(self.job, optimizer=train_step.optimizer.state_dict(),
                                 scheduler=train_step.scheduler.state_dict(), scaler=train_step.scaler.state_dict(),
                                 epoch=epoch, batch=batch, step=step, ranks=ranks, world_size=self.job.world_size,
                                 progress=self.progress)
        check_present(self.folder.parent)  # a removed run directory is not made again by a save
        with self.guard.save():
            save_checkpoint(state, self.folder / "last.pt")
            self.saved = True
            if best and self.progress.best_weights == "ema":
                save_checkpoint(self.parts.averaged_state(), self.folder / "best.pt")
            elif best:
                publish_copy(self.folder / "last.pt", self.folder / "best.pt")

    def write_config(self, config: Config) -> None:
        if self.job.is_main:
            atomic_write(self.folder.parent / "config.yaml", config.to_yaml().encode())


LOG_POINTS = 20  # per-step TensorBoard points a run gets at least, whatever train.log_interval says


def log_interval(configured: int, total_steps: int) -> int:
    """Optimizer steps between per-step logs: train.log_interval, or fewer when the run has too few steps for
    LOG_POINTS of them (48 steps at log_interval 50 would log nothing)."""
    return max(1, min(configured, total_steps // LOG_POINTS))


class StepHook:
    """After each optimizer step of `epoch`: the average of the weights (train.ema); the log every log_interval
    steps; the guard's look at the loss and at signals; and a checkpoint every train.checkpoint_every_steps, or
    where a signal stops the epoch (never after a non-finite loss)."""

    def __init__(self, epoch: int, run: Run) -> None:
        parts = run.parts
        self.epoch, self.parts, self.log, self.guard, self.saver = epoch, parts, run.log, run.guard, run.saver
        self.log_interval = log_interval(parts.config.train.log_interval,
                                         parts.config.train.epochs * parts.steps_per_epoch)
        self.save_every = parts.config.train.checkpoint_every_steps

    def __call__(self, step: int, batches: int, loss: torch.Tensor, meter: MetricAccumulator) -> Stop | None:
        if self.parts.ema is not None:
            self.parts.ema.update(self.parts.model)
        if step % self.log_interval == 0:
            self.log.step(step, loss, self.parts)
        self.guard.watch(loss, step)
        save_now = self.save_every is not None and step % self.save_every == 0
        stop = self.guard.check(step, force=save_now)  # never save a non-finite state
        if (save_now or stop is not None) and (stop is None or stop.nonfinite_step is None):
            if batches < self.parts.batches_per_epoch:  # at the epoch's end its own checkpoint follows
                self.saver.save(self.epoch - 1, batches, step, meter)
        return stop


def resume_command(run_dir: Path, job: Job, run_id: str | None = None) -> str:
    """How the run in `run_dir` goes on: for train.run_id's run (`run_id`) its own command line again; else
    `zoo train --resume RUN_DIR`, under torchrun in the launch it needs (a checkpoint saved mid-epoch by N
    processes is resumed by N)."""
    nodes = max(1, job.world_size // max(1, job.local_world_size)) if job.distributed else 1
    if run_id is not None:
        again = "the same command" if nodes == 1 else "the same launch on every node"
        return f"{again} (train.run_id {run_id} continues the run)"
    if not job.distributed:
        return f"zoo train --resume {run_dir}"
    launch = f"--nproc_per_node={job.local_world_size}" if nodes == 1 else \
        f"--nnodes={nodes} --nproc_per_node={job.local_world_size} ... (on every node)"
    return f"torchrun {launch} -m zoo train --resume {run_dir}"


def stopped(stop: Stop, epoch: int, batch: int, step: int, run_dir: Path, job: Job,
            run_id: str | None = None) -> RunStopped:
    """The one line a stopped run ends with. `epoch`, `batch`: where a resumed run would go on; `run_id`:
    train.run_id's, whose own command line continues the run."""
    last = run_dir / "checkpoints" / "last.pt"
    command = resume_command(run_dir, job)  # a changed learning rate needs --resume, run_id or not
    if stop.nonfinite_step is not None:
        if not last.is_file():  # nothing to resume: the advice is to start again
            return RunStopped(f"the loss is not finite at step {stop.nonfinite_step} (epoch {epoch}); stopped; "
                              "no checkpoint was saved before it; "
                              "lower optimizer.lr or set train.grad_clip, and train again",
                              stop.exit_code)
        return RunStopped(f"the loss is not finite at step {stop.nonfinite_step} (epoch {epoch}); stopped; last good "
                          f"checkpoint: {last}; lower optimizer.lr or set train.grad_clip, then {command} "
                          "--set optimizer.lr=... --allow-config-change", stop.exit_code)
    where = f"epoch {epoch}, batch {batch}" if batch else f"the start of epoch {epoch}"
    return RunStopped(f"{stop.signal_name}: stopped at {where} (step {step}); saved {last}; resume with: "
                      f"{resume_command(run_dir, job, run_id)}",
                      stop.exit_code)
