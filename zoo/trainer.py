"""`zoo train`: one run from a validated Config to a run directory with TensorBoard logs,
checkpoints/last.pt and best.pt (best by validation accuracy), and metrics.json; or, resumed, the rest of
a run in its own directory (zoo.resume). A lock keeps a second process out of a run directory in use."""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

import zoo
from zoo.checkpoint import (atomic_write, load_checkpoint, load_weights, publish_copy, remove_stale_temporaries,
                            save_checkpoint)
from zoo.config import Config
from zoo.data import DataSplits, build_datasets, build_loaders, loader_state, resume_at, set_epoch
from zoo.distributed import Job, Silent, launch
from zoo.engine import EpochResult, StepContext, evaluate, train_epoch
from zoo.errors import RunStopped
from zoo.finetune import Freezer, Source, describe, lr_scale, read_source, transplant
from zoo.guard import Guard, Stop
from zoo.init import init_weights
from zoo.lock import RunLock
from zoo.metrics import MetricAccumulator
from zoo.optim import build_optimizer, build_scheduler
from zoo.registry import create_model, get_model_info
from zoo.resume import Position, Resume, capture_rng
from zoo.runs import create_run_dir, write_json
from zoo.runtime import compiled, grad_scaler, memory_format, seed_everything, tune_backends
from zoo.tracking import RunLogger


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    metrics: dict[str, Any]  # what metrics.json holds


def model_geometry(config: Config) -> tuple[int, int]:
    """(in_channels, input_size): the config's, else the model's own from the registry."""
    info = get_model_info(config.model.name)
    return config.model.in_channels or info.input_size[0], config.data.input_size or info.input_size[1]


def build_model(config: Config, num_classes: int, in_channels: int) -> nn.Module:
    model = create_model(config.model.name, num_classes=config.model.num_classes or num_classes,
                         in_channels=in_channels, **config.model.kwargs)
    return init_weights(model, config.init)


def with_source_normalization(config: Config, source: Source | None, in_channels: int) -> Config:
    """Pre-trained weights expect the normalization they were trained with, unless the config sets one."""
    norm = source.normalization if source else None
    if not norm or len(norm["mean"]) != in_channels:
        return config
    return config.with_normalization(norm["mean"], norm["std"])


def checkpoint_state(model: nn.Module, config: Config, splits: DataSplits, **extra: Any) -> dict[str, Any]:
    """Everything needed to evaluate, fine-tune or resume: weights, the config, classes, normalization."""
    network = getattr(model, "module", model)
    return {
        "model": network.state_dict(),
        "model_name": config.model.name,
        "num_classes": network.num_classes,
        "config": config.to_dict(),
        "classes": list(splits.classes),
        "normalization": {"mean": list(splits.mean), "std": list(splits.std),
                          "input_size": splits.input_size, "in_channels": splits.in_channels},
        "zoo_version": zoo.__version__,
        "torch_version": str(torch.__version__),  # TorchVersion is not a plain str: weights_only refuses it
        **extra,
    }


def _line(epoch: int, epochs: int, train: EpochResult, val: EpochResult | None, lr: float) -> str:
    m = train.metrics
    text = f"epoch {epoch}/{epochs}  train loss {m.loss:.4f} acc {m.accuracy:6.2%}"
    if val is not None:
        v = val.metrics
        text += f"  val loss {v.loss:.4f} acc {v.accuracy:6.2%} top5 {v.top5_accuracy:6.2%}"
    return text + f"  lr {lr:.3g}  {train.images_per_second:,.0f} img/s  {train.seconds:.1f}s"


class EarlyStopping:
    def __init__(self, metric: str, patience: int, min_delta: float) -> None:
        self.metric, self.patience, self.min_delta = metric, patience, min_delta
        self.best: float | None = None
        self.bad_epochs = 0

    def should_stop(self, val: EpochResult) -> bool:
        value = val.metrics.accuracy if self.metric == "val_accuracy" else -val.metrics.loss
        if self.best is None or value > self.best + self.min_delta:
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= self.patience


def train(config: Config, quiet: bool = False, resume: Resume | None = None) -> RunResult:
    """Train and test one model as the config says. Validation and data loading happen before anything is written.
    Started by torchrun, each process trains its share with DDP (zoo.distributed) and rank 0 writes the run.
    With `resume` (zoo.resume.prepare_resume), the run continues in its directory from its checkpoint."""
    with launch(config.train.device) as job:
        return _train(config, job, quiet or not job.is_main, resume)


def _train(config: Config, job: Job, quiet: bool, resume: Resume | None) -> RunResult:
    quiet = quiet or not sys.stderr.isatty()
    device = job.device
    seed_everything(config.train.seed + job.rank, config.train.deterministic)  # DDP starts every rank from rank 0's weights
    tune_backends(device, config.train.precision, config.train.deterministic)
    in_channels, input_size = model_geometry(config)
    source = read_source(config.finetune.source, config.model.name) if config.finetune and resume is None else None
    config = with_source_normalization(config, source, in_channels)
    splits = build_datasets(config.data, in_channels=in_channels, input_size=input_size, seed=config.train.seed)
    train_loader, val_loader, test_loader = build_loaders(splits, config.data, seed=config.train.seed, distributed=job.distributed,
                                                          pin_memory=device.type == "cuda", device=device)
    layout = memory_format(config.train.channels_last)
    model = build_model(config, len(splits.classes), in_channels).to(device, memory_format=layout)
    if splits.input_size > 1:  # images: too small for the model fails here, before anything is written
        model.check_input(torch.empty(1, in_channels, splits.input_size, splits.input_size, device="meta"))
    num_classes = model.num_classes
    if num_classes < len(splits.classes):
        raise zoo.ZooError(f"model.num_classes is {num_classes} but {config.data.name} has {len(splits.classes)} classes; remove model.num_classes")
    steps_per_epoch = len(train_loader) if config.train.max_steps_per_epoch is None else min(len(train_loader), config.train.max_steps_per_epoch)
    position = Position.of(resume.state, job) if resume else Position()

    # Weights and freezing before DDP wraps the model: it broadcasts rank 0's weights and registers only
    # the parameters that require gradients at construction.
    freezer = Freezer(model, config.finetune.freeze) if config.finetune else None
    if source is not None:
        report = transplant(model, source, config.finetune.strict)
        if job.is_main:
            print(describe(source, report, freezer))
    if resume is not None:
        load_weights(model, resume.state, resume.checkpoint, config.model.name)
        if freezer is not None and config.finetune.unfreeze_at_epoch and config.finetune.unfreeze_at_epoch <= position.epoch + 1:
            freezer.unfreeze()
    step_model = compiled(job.wrap(model), device, config.train.compile)  # what training steps call; `model` is the network

    optimizer = build_optimizer(model, config.optimizer, lr_scale(model, config.finetune.backbone_lr_mult) if config.finetune else None,
                                include_frozen=freezer is not None)
    scheduler = build_scheduler(optimizer, config.scheduler, config.train.epochs, steps_per_epoch)
    criterion = nn.CrossEntropyLoss(label_smoothing=config.loss.label_smoothing)
    scaler = grad_scaler(device, config.train.precision)
    if resume is not None:
        restore_training_state(optimizer, scheduler, scaler, resume)

    run_dir = job.share(_open_run_dir(config, resume) if job.is_main else None)
    lock = RunLock(run_dir).acquire() if job.is_main else None
    checkpoints = run_dir / "checkpoints"
    logger = RunLogger(run_dir) if job.is_main else Silent()
    guard = Guard(device, job.distributed)
    try:
        if job.is_main:
            remove_stale_temporaries(checkpoints)
            remove_stale_temporaries(run_dir)
            atomic_write(run_dir / "config.yaml", config.to_yaml().encode())
        if resume is None:
            print(f"run: {run_dir}\nTensorBoard: tensorboard --logdir {config.train.output_dir}")
            logger.graph(model, next(iter(test_loader))[0][:1].to(device))
        else:
            print(f"resuming {run_dir} from {resume.checkpoint.name} at {position.describe(steps_per_epoch)}")
            if resume.changes:
                print(f"config changes (allowed): {'; '.join(resume.changes)}")

        def on_log(step: int, loss: torch.Tensor) -> None:
            logger.scalars({"train/batch_loss": loss.item(), "lr": optimizer.param_groups[0]["lr"]}, step)
            logger.gradient_norms(model, step)

        ctx = StepContext(optimizer, scheduler, scaler, criterion, device, config.train.precision, config.loss.aux_weight,
                          config.train.grad_clip, step=position.step, on_log=on_log, log_interval=config.train.log_interval,
                          max_steps=config.train.max_steps_per_epoch, memory_format=layout, distributed=job.distributed,
                          guard=guard, save_every=config.train.checkpoint_every_steps)
        progress = position.progress
        stopper = EarlyStopping(**config.train.early_stopping.model_dump()) if config.train.early_stopping else None
        if stopper is not None and progress.early_stopping:
            stopper.best, stopper.bad_epochs = progress.early_stopping

        def save(epoch: int, batch: int, meter: MetricAccumulator | None, best: bool = False) -> None:
            """last.pt (and best.pt) as they are after `epoch` epochs and `batch` batches of the next; every rank
            calls it, to hand rank 0 its random state and, mid-epoch, its share of the epoch's sums."""
            mine = {"rng": capture_rng(), "loader": loader_state(train_loader), "meter": meter.state_dict() if meter else None}
            ranks = job.gather(mine)
            if not job.is_main:
                return
            state = checkpoint_state(model, config, splits, optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                                     scaler=scaler.state_dict(), epoch=epoch, batch=batch, step=ctx.step, ranks=ranks,
                                     world_size=job.world_size, progress=progress.to_dict(stopper))
            with guard.save():
                save_checkpoint(state, checkpoints / "last.pt")
                if best:
                    publish_copy(checkpoints / "last.pt", checkpoints / "best.pt")

        with guard.handling_signals():
            position.restore(train_loader)  # the random state last: building the model and loaders drew from it
            for epoch in range(position.epoch + 1, config.train.epochs + 1):
                start_batch, meter = position.entering(epoch, num_classes, device)
                if freezer is not None and freezer.frozen and epoch == config.finetune.unfreeze_at_epoch:
                    freezer.unfreeze()
                    step_model = compiled(job.wrap(model), device, config.train.compile)  # DDP must see the new parameters
                    print(f"epoch {epoch}: every layer trains from now on")
                if start_batch:
                    resume_at(train_loader, epoch, start_batch)
                else:
                    set_epoch(train_loader, epoch)

                def save_mid_epoch(batch: int, sums: MetricAccumulator, epoch: int = epoch) -> None:
                    if batch < steps_per_epoch:  # at the epoch's end its own checkpoint follows
                        save(epoch - 1, batch, sums)

                ctx.on_save = save_mid_epoch
                with tqdm(total=steps_per_epoch, initial=start_batch, desc=f"epoch {epoch}/{config.train.epochs}", unit="batch",
                          disable=quiet, leave=False, dynamic_ncols=True) as bar:
                    result = train_epoch(step_model, train_loader, ctx, num_classes, progress=bar, start_batch=start_batch, meter=meter)
                progress.seconds, progress.images = progress.seconds + result.seconds, progress.images + result.images
                stop = result.stop or guard.check(ctx.step, force=True)  # nothing non-finite is validated or saved
                if stop is not None and (stop.nonfinite_step is not None or result.batches < steps_per_epoch):
                    raise _stopped(stop, epoch, result.batches, ctx.step, run_dir, resume)
                val = evaluate(model, val_loader, criterion, device, num_classes, config.train.precision, job.distributed,
                               memory_format=layout) if val_loader else None
                lr = optimizer.param_groups[0]["lr"]
                logger.metrics("train", result.metrics, epoch)
                logger.scalars({"throughput/images_per_s": result.images_per_second, "time/epoch_s": result.seconds, "lr_epoch": lr}, epoch)
                if epoch % config.train.histogram_interval == 0 or epoch == config.train.epochs:
                    logger.histograms(model, epoch)
                if val is not None:
                    logger.metrics("val", val.metrics, epoch)
                    logger.confusion(val.metrics, splits.classes, epoch)
                print(_line(epoch, config.train.epochs, result, val, lr), flush=True)

                # best.pt: the best validation accuracy so far (the latest epoch when there is no validation split).
                improved = val is None or val.metrics.accuracy > progress.best_accuracy
                if improved:
                    progress.best_accuracy, progress.best_epoch = (val.metrics.accuracy if val else -1.0), epoch
                    progress.best_val = _section(val) if val else None
                early_stop = stopper is not None and val is not None and stopper.should_stop(val)
                progress.epochs_run = epoch
                save(epoch, 0, None, best=improved)
                if stop is None:
                    stop = guard.check(ctx.step, force=True)  # a signal during validation or the save
                if stop is not None:
                    raise _stopped(stop, epoch + 1, 0, ctx.step, run_dir, resume)
                if early_stop:
                    print(f"early stopping: {stopper.metric} has not improved for {stopper.patience} epochs")
                    break

        if job.is_main:
            model.load_state_dict(load_checkpoint(checkpoints / "best.pt", map_location=device)["model"])
        job.sync_module(model)  # the other ranks may not see rank 0's disk (several nodes)
        test = evaluate(model, test_loader, criterion, device, num_classes, config.train.precision, job.distributed,
                        memory_format=layout)
        logger.metrics("test", test.metrics, progress.epochs_run)
        metrics = {
            "model": config.model.name,
            "data": config.data.name,
            "skipped_images": len(splits.skipped),  # unreadable files left out of an ImageFolder
            "best_epoch": progress.best_epoch,
            "epochs_run": progress.epochs_run,
            "val": progress.best_val,
            "test": _section(test),
            "train": {"time_s": round(progress.seconds, 3), "images_per_s": round(progress.images / max(progress.seconds, 1e-9), 1),
                      "images": progress.images, "steps": ctx.step},
        }
        if job.is_main:
            write_json(run_dir / "metrics.json", metrics)
        logger.hparams(_hparams(config), {"hparam/test_accuracy": test.metrics.accuracy,
                                          "hparam/val_accuracy": (progress.best_val or {}).get("accuracy", test.metrics.accuracy)})
    finally:
        logger.close()
        if lock is not None:
            lock.release()
    print(f"test loss {test.metrics.loss:.4f} acc {test.metrics.accuracy:.2%} top5 {test.metrics.top5_accuracy:.2%} "
          f"({test.metrics.count:,} images, best epoch {progress.best_epoch})\nmetrics: {run_dir / 'metrics.json'}")
    return RunResult(run_dir, metrics)


def _open_run_dir(config: Config, resume: Resume | None) -> Path:
    return resume.run_dir if resume is not None else create_run_dir(config.train.output_dir, config.run_name)


def restore_training_state(optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler,
                           scaler: torch.amp.GradScaler, resume: Resume) -> None:
    """The optimizer's buffers and the scaler as saved. The schedule as saved, too, unless the config changed
    (--allow-config-change): then the new config's hyperparameters stand and its schedule is replayed to the
    saved step, so `--set optimizer.lr=0.01` or `--set train.epochs=200` mean what they say."""
    fresh = [{key: value for key, value in group.items() if key != "params"} for group in optimizer.param_groups]
    try:
        optimizer.load_state_dict(resume.state["optimizer"])
    except ValueError as error:
        raise zoo.ZooError(f"{resume.checkpoint}: the optimizer state does not fit ({error}); "
                           "resume without the change to the optimizer or fine-tuning settings") from None
    scaler.load_state_dict(resume.state["scaler"])
    if not resume.changes:
        scheduler.load_state_dict(resume.state["scheduler"])
        return
    for group, settings in zip(optimizer.param_groups, fresh):
        group.update(settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()": replaying is the point
        for _ in range(resume.state["step"]):
            scheduler.step()


def _stopped(stop: Stop, epoch: int, batch: int, step: int, run_dir: Path, resume: Resume | None) -> RunStopped:
    """The one line a stopped run ends with. `epoch`, `batch`: where a resumed run would go on."""
    last = run_dir / "checkpoints" / "last.pt"
    command = f"zoo train --resume {run_dir}"
    if stop.nonfinite_step is not None:
        saved = f"last good checkpoint: {last}" if last.is_file() else "no checkpoint was saved before it"
        return RunStopped(f"the loss is not finite at step {stop.nonfinite_step} (epoch {epoch}); stopped; {saved}; "
                          f"lower optimizer.lr or set train.grad_clip, then {command} --set optimizer.lr=... "
                          "--allow-config-change", stop.exit_code)
    where = f"epoch {epoch}, batch {batch}" if batch else f"the start of epoch {epoch}"
    return RunStopped(f"{stop.signal_name}: stopped at {where} (step {step}); saved {last}; resume with: {command}",
                      stop.exit_code)


def _section(result: EpochResult) -> dict[str, float]:
    return {**result.metrics.summary(), "time_s": round(result.seconds, 3), "images_per_s": round(result.images_per_second, 1)}


def _hparams(config: Config) -> dict[str, Any]:
    return {"model": config.model.name, "data": config.data.name, "optimizer": config.optimizer.name,
            "lr": config.optimizer.lr, "weight_decay": config.optimizer.weight_decay, "batch_size": config.data.batch_size,
            "epochs": config.train.epochs, "scheduler": config.scheduler.name, "init": config.init, "seed": config.train.seed}
