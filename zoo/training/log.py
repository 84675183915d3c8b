"""What a run reports as it goes: progress bars and a line per epoch on the console, and on rank 0 TensorBoard
(zoo.training.tensorboard) and history.csv (zoo.training.history).

    with RunLog(run_dir, config, job, quiet) as log:
        log.start(run_dir, parts, ...)       # where the run writes, or where a resumed one goes on from
        log.epoch(epoch, train, val, parts)  # TensorBoard's scalars and pictures, history.csv's row, the console line
        log.finish(test, ...)                # the test split, its PR curves, hparams
"""

from __future__ import annotations

import contextlib
import functools
import math
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from zoo.config import Config
from zoo.distributed import Job
from zoo.errors import RunStopped
from zoo.loop import EpochResult
from zoo.present.console import say
from zoo.rundir import WriteError, check_present
from zoo.tasks import Classification, Task
from zoo.training.history import History
from zoo.training.optim import learning_rates
from zoo.training.setup import Parts


def _writes(method: Callable) -> Callable:
    """RunLog's methods that write TensorBoard's event file or history.csv run inside RunLog.writing."""

    @functools.wraps(method)
    def wrapper(self: RunLog, *args: Any, **kwargs: Any) -> Any:
        with self.writing():
            return method(self, *args, **kwargs)

    return wrapper


class RunLog:
    """The console (progress bars, one line per epoch) and, on rank 0, TensorBoard (zoo.training.tensorboard) and
    history.csv; a context manager that closes them."""

    def __init__(self, run_dir: Path, config: Config, job: Job, quiet: bool) -> None:
        from zoo.training.tensorboard import TensorBoardLogger

        self.config, self.quiet = config, quiet or not job.is_main or not sys.stderr.isatty()
        self.run_dir = run_dir
        self.tensorboard = TensorBoardLogger(run_dir) if job.is_main else None
        self.history: History | None = None

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """TensorBoard's event file and history.csv: a run directory removed under the run (or its disk gone) stops
        the run in one line (zoo.rundir.check_present) instead of the event writer's traceback; a full disk is
        history.csv's one line (zoo.rundir.WriteError)."""
        try:
            yield
        except (OSError, WriteError) as error:
            check_present(self.run_dir)
            if isinstance(error, WriteError):
                raise
            raise WriteError(Path(error.filename or self.run_dir), error.strerror or str(error),
                             "free some space, then continue the run with zoo train --resume "
                             f"{self.run_dir}") from None

    @_writes
    def start(self, run_dir: Path, parts: Parts, plan_changes: list[str] | None, resumed_from: str | None,
              reason: str | None = None) -> None:
        """Where the run writes (or, resumed, where it goes on from, and `reason`: what continued it), and the
        model's graph once."""
        if self.tensorboard is not None:
            self.history = History(run_dir / "history.csv", parts.ema is not None,
                                   list(learning_rates(parts.step.optimizer)),
                                   parts.position.epoch if resumed_from is not None else None,
                                   "accuracy" if parts.task.has_classes else "psnr")
        if resumed_from is None:
            say(f"run: {run_dir}\nTensorBoard: tensorboard --logdir {self.config.train.output_dir}")
            if parts.step.mix is not None:
                say("data.augment mixes training batches (Mixup/CutMix): the training loss is against the mixed "
                      "targets, the training accuracy against each image's own label")
            if self.tensorboard is not None:
                images, labels = next(iter(parts.test_loader))
                example = parts.task.pair(images[:1], labels[:1])[0]  # what the network takes (colourisation: gray)
                self.tensorboard.graph(parts.model, example.to(parts.compute.device))
            else:
                next(iter(parts.test_loader))  # the same random draws on every rank (a DataLoader's base seed)
            return
        why = f" ({reason})" if reason else ""
        say(f"resuming {run_dir} from {resumed_from} at {parts.position.describe(parts.batches_per_epoch)}{why}")
        if plan_changes:
            say(f"config changes (allowed): {'; '.join(plan_changes)}")
        for note in parts.resume_notes:
            say(note)

    def bar(self, epoch: int, start_batch: int, total: int) -> tqdm:
        return tqdm(total=total, initial=start_batch, desc=f"epoch {epoch}/{self.config.train.epochs}", unit="batch",
                    disable=self.quiet, leave=False, dynamic_ncols=True)

    @_writes
    def step(self, step: int, loss: torch.Tensor, parts: Parts) -> None:
        """Every train.log_interval steps: the batch loss, the learning rate and per-layer gradient norms."""
        if self.tensorboard is not None:
            self.tensorboard.scalars({"train/batch_loss": loss.item(), **learning_rates(parts.step.optimizer)}, step)
            self.tensorboard.gradient_norms(parts.model, step)

    @_writes
    def epoch(self, epoch: int, train: EpochResult, val: EpochResult | None, parts: Parts,
              ema_val: EpochResult | None = None) -> None:
        rates = learning_rates(parts.step.optimizer)
        lr = next(iter(rates.values()))  # the head's when fine-tuning sets the backbone's apart
        if self.tensorboard is not None:
            board = self.tensorboard
            board.metrics("train", train.metrics, epoch)
            board.scalars({"throughput/images_per_s": train.images_per_second, "time/epoch_s": train.seconds,
                           **{name.replace("lr", "lr_epoch", 1): rate for name, rate in rates.items()}}, epoch)
            drawn = picture_epoch(epoch, self.config.train.epochs, self.config.train.histogram_interval)
            if drawn:
                board.histograms(parts.model, epoch)
            if val is not None:
                board.metrics("val", val.metrics, epoch)
                if drawn and hasattr(val.metrics, "confusion"):  # multi-label has per-class counts instead
                    board.confusion(val.metrics, parts.splits.classes, epoch)
                if not parts.task.has_classes:  # an autoencoder: what it rebuilds, each validation
                    board.reconstructions(parts.model, parts.val_loader, parts.task, parts.compute, epoch)
                if self.config.train.log_filters:
                    board.filters(parts.model, epoch)
            if ema_val is not None:
                board.metrics("val_ema", ema_val.metrics, epoch)
        if self.history is not None:
            self.history.write(epoch, train, val, ema_val, rates)
        say(epoch_line(epoch, self.config.train.epochs, train, val, lr, ema_val, parts.task))

    @_writes
    def finish(self, test: EpochResult, epochs_run: int, best_val: dict[str, float] | None, classes: list[str],
               scores: tuple[torch.Tensor, torch.Tensor] | None = None, task: Task = Classification()) -> None:
        """The test split's figures on best.pt's weights; `scores`, its (N x classes logits, targets) over every
        rank, draw its per-class PR curves on the `task`'s probabilities."""
        if self.tensorboard is not None:
            self.tensorboard.metrics("test", test.metrics, epochs_run)
            if scores is not None:
                logits, targets = scores
                self.tensorboard.pr_curves("test", task.probabilities(logits),
                                           task.positives(targets, len(classes)), classes, epochs_run)
            figure = "accuracy" if task.has_classes else "psnr"  # an autoencoder's accuracy is its PSNR (dB)
            self.tensorboard.hparams(hparams(self.config),
                                     {f"hparam/test_{figure}": test.metrics.accuracy,
                                      f"hparam/val_{figure}": (best_val or {}).get(figure, test.metrics.accuracy)})

    @_writes
    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        try:
            self.close()
        except (WriteError, RunStopped):
            if kind is None:  # else the run's own error says it first
                raise


def epoch_line(epoch: int, epochs: int, train: EpochResult, val: EpochResult | None, lr: float,
               ema_val: EpochResult | None = None, task: Task = Classification()) -> str:
    """The epoch's figures, the accuracy as the task names and shows it (zoo.tasks: acc, exact for exact match, psnr
    in dB)."""
    m, accuracy = train.metrics, task.accuracy_name
    text = f"epoch {epoch}/{epochs}  train loss {m.loss:.4f} {accuracy} {task.shown(m.accuracy)}"
    for name, result in (("val", val), ("ema val", ema_val)):
        if result is not None:
            v = result.metrics
            text += f"  {name} loss {v.loss:.4f} {accuracy} {task.shown(v.accuracy)}"
            if v.top5_accuracy is not None:  # None with 5 classes or fewer
                text += f" top5 {v.top5_accuracy:6.2%}"
    return text + f"  lr {lr:.3g}  {train.images_per_second:,.0f} img/s  {train.seconds:.1f}s"


def hparams(config: Config) -> dict[str, Any]:
    return {"model": config.model.name, "data": config.data.name, "optimizer": config.optimizer.name,
            "lr": config.optimizer.lr, "weight_decay": config.optimizer.weight_decay,
            "batch_size": config.data.batch_size, "epochs": config.train.epochs, "scheduler": config.scheduler.name,
            "init": config.init, "seed": config.train.seed}


# per run, at most about: weight histograms and validation confusion images with train.histogram_interval auto
PICTURES = 10


def picture_epoch(epoch: int, epochs: int, interval: int | None) -> bool:
    """Whether `epoch` draws the weight histograms and the validation confusion image in TensorBoard: every
    `interval` epochs (train.histogram_interval), for None every ceil(epochs / PICTURES), and always the last.
    Each costs milliseconds that a small model's epoch notices (the main job: 20 of each took 0.6 s of 7)."""
    every = interval if interval is not None else max(1, math.ceil(epochs / PICTURES))
    return epoch % every == 0 or epoch == epochs
