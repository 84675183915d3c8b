"""`zoo train`: one run from a validated Config to a run directory with TensorBoard logs,
checkpoints/last.pt and best.pt (best by validation accuracy), and metrics.json."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

import zoo
from zoo.checkpoint import load_checkpoint, publish_copy, save_checkpoint
from zoo.config import Config
from zoo.data import DataSplits, build_datasets, build_loaders, set_epoch
from zoo.distributed import Job, Silent, launch
from zoo.engine import EpochResult, StepContext, evaluate, train_epoch
from zoo.finetune import Freezer, Source, describe, lr_scale, read_source, transplant
from zoo.init import init_weights
from zoo.optim import build_optimizer, build_scheduler
from zoo.registry import create_model, get_model_info
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
    data = config.data
    if not norm or not data.normalize or data.mean is not None or len(norm["mean"]) != in_channels:
        return config
    return config.model_copy(update={"data": data.model_copy(update={"mean": tuple(norm["mean"]), "std": tuple(norm["std"])})})


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


def train(config: Config, quiet: bool = False) -> RunResult:
    """Train and test one model as the config says. Validation and data loading happen before anything is written.
    Started by torchrun, each process trains its share with DDP (zoo.distributed) and rank 0 writes the run."""
    with launch(config.train.device) as job:
        return _train(config, job, quiet or not job.is_main)


def _train(config: Config, job: Job, quiet: bool) -> RunResult:
    quiet = quiet or not sys.stderr.isatty()
    device = job.device
    seed_everything(config.train.seed + job.rank, config.train.deterministic)  # DDP starts every rank from rank 0's weights
    tune_backends(device, config.train.precision, config.train.deterministic)
    in_channels, input_size = model_geometry(config)
    source = read_source(config.finetune.source, config.model.name) if config.finetune else None
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

    # Weights and freezing before DDP wraps the model: it broadcasts rank 0's weights and registers only
    # the parameters that require gradients at construction.
    freezer = None
    if source is not None:
        report = transplant(model, source, config.finetune.strict)
        freezer = Freezer(model, config.finetune.freeze)
        if job.is_main:
            print(describe(source, report, freezer))
    step_model = compiled(job.wrap(model), device, config.train.compile)  # what training steps call; `model` is the network

    run_dir = job.share(create_run_dir(config.train.output_dir, config.run_name) if job.is_main else None)
    if job.is_main:
        (run_dir / "config.yaml").write_text(config.to_yaml())
    checkpoints = run_dir / "checkpoints"
    print(f"run: {run_dir}\nTensorBoard: tensorboard --logdir {config.train.output_dir}")
    logger = RunLogger(run_dir) if job.is_main else Silent()
    example = next(iter(test_loader))[0][:1].to(device)
    logger.graph(model, example)

    steps_per_epoch = len(train_loader) if config.train.max_steps_per_epoch is None else min(len(train_loader), config.train.max_steps_per_epoch)
    optimizer = build_optimizer(model, config.optimizer, lr_scale(model, config.finetune.backbone_lr_mult) if source else None,
                                include_frozen=freezer is not None)
    scheduler = build_scheduler(optimizer, config.scheduler, config.train.epochs, steps_per_epoch)
    criterion = nn.CrossEntropyLoss(label_smoothing=config.loss.label_smoothing)

    def on_log(step: int, loss: torch.Tensor) -> None:
        logger.scalars({"train/batch_loss": loss.item(), "lr": optimizer.param_groups[0]["lr"]}, step)
        logger.gradient_norms(model, step)

    ctx = StepContext(optimizer, scheduler, grad_scaler(device, config.train.precision), criterion, device,
                      config.train.precision, config.loss.aux_weight, config.train.grad_clip, on_log=on_log,
                      log_interval=config.train.log_interval, max_steps=config.train.max_steps_per_epoch,
                      memory_format=layout, distributed=job.distributed)
    stopper = EarlyStopping(**config.train.early_stopping.model_dump()) if config.train.early_stopping else None
    best_accuracy, best_epoch, best_val = -1.0, 0, None
    train_seconds, train_images, epochs_run = 0.0, 0, 0
    try:
        for epoch in range(1, config.train.epochs + 1):
            if freezer is not None and epoch == config.finetune.unfreeze_at_epoch:
                freezer.unfreeze()
                step_model = compiled(job.wrap(model), device, config.train.compile)  # DDP must see the new parameters
                print(f"epoch {epoch}: every layer trains from now on")
            with tqdm(total=steps_per_epoch, desc=f"epoch {epoch}/{config.train.epochs}", unit="batch",
                      disable=quiet, leave=False, dynamic_ncols=True) as bar:
                set_epoch(train_loader, epoch)
                result = train_epoch(step_model, train_loader, ctx, num_classes, progress=bar)
            train_seconds, train_images, epochs_run = train_seconds + result.seconds, train_images + result.images, epoch
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
            improved = val is None or val.metrics.accuracy > best_accuracy
            if improved:
                best_accuracy, best_epoch, best_val = (val.metrics.accuracy if val else -1.0), epoch, val
            state = checkpoint_state(model, config, splits, optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                                     scaler=ctx.scaler.state_dict(), epoch=epoch, step=ctx.step, best_metric=best_accuracy,
                                     best_epoch=best_epoch, val_metrics=val.metrics.summary() if val else None)
            if job.is_main:
                save_checkpoint(state, checkpoints / "last.pt")
                if improved:
                    publish_copy(checkpoints / "last.pt", checkpoints / "best.pt")
            if stopper is not None and val is not None and stopper.should_stop(val):
                print(f"early stopping: {stopper.metric} has not improved for {stopper.patience} epochs")
                break

        if job.is_main:
            model.load_state_dict(load_checkpoint(checkpoints / "best.pt", map_location=device)["model"])
        job.sync_module(model)  # the other ranks may not see rank 0's disk (several nodes)
        test = evaluate(model, test_loader, criterion, device, num_classes, config.train.precision, job.distributed,
                        memory_format=layout)
        logger.metrics("test", test.metrics, epochs_run)
        metrics = {
            "model": config.model.name,
            "data": config.data.name,
            "best_epoch": best_epoch,
            "epochs_run": epochs_run,
            "val": _section(best_val) if best_val else None,
            "test": _section(test),
            "train": {"time_s": round(train_seconds, 3), "images_per_s": round(train_images / max(train_seconds, 1e-9), 1),
                      "images": train_images, "steps": ctx.step},
        }
        if job.is_main:
            write_json(run_dir / "metrics.json", metrics)
        logger.hparams(_hparams(config), {"hparam/test_accuracy": test.metrics.accuracy,
                                          "hparam/val_accuracy": best_val.metrics.accuracy if best_val else test.metrics.accuracy})
    finally:
        logger.close()
    print(f"test loss {test.metrics.loss:.4f} acc {test.metrics.accuracy:.2%} top5 {test.metrics.top5_accuracy:.2%} "
          f"({test.metrics.count:,} images, best epoch {best_epoch})\nmetrics: {run_dir / 'metrics.json'}")
    return RunResult(run_dir, metrics)


def _section(result: EpochResult) -> dict[str, float]:
    return {**result.metrics.summary(), "time_s": round(result.seconds, 3), "images_per_s": round(result.images_per_second, 1)}


def _hparams(config: Config) -> dict[str, Any]:
    return {"model": config.model.name, "data": config.data.name, "optimizer": config.optimizer.name,
            "lr": config.optimizer.lr, "weight_decay": config.optimizer.weight_decay, "batch_size": config.data.batch_size,
            "epochs": config.train.epochs, "scheduler": config.scheduler.name, "init": config.init, "seed": config.train.seed}
