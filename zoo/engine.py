"""The loops: one training epoch and one evaluation pass. Lean on purpose (zero_grad, forward,
backward, step, schedule); everything else (logging, checkpoints, the guard's look at the loss and at
signals) happens between epochs or every few steps, and nothing syncs with the device inside the loop
except there."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import islice

import torch
from torch import Tensor, nn
from tqdm import tqdm

from zoo.guard import Guard, Stop
from zoo.losses import aux_loss
from zoo.metrics import MetricAccumulator, Metrics
from zoo.runtime import autocast


@dataclass
class StepContext:
    """What a training step needs besides the batch."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    criterion: Callable[[Tensor, Tensor], Tensor]
    device: torch.device
    precision: str = "32"
    aux_weight: float = 0.3
    grad_clip: float | None = None
    step: int = 0  # optimizer steps taken over the whole run
    on_log: Callable[[int, Tensor], None] | None = None  # called every log_interval steps with the batch loss
    log_interval: int = 50
    max_steps: int | None = None  # per epoch
    memory_format: torch.memory_format = torch.contiguous_format  # channels_last: NHWC batches
    distributed: bool = False  # all-reduce the epoch's metrics over ranks
    guard: Guard | None = None  # stops on a signal or a non-finite loss
    save_every: int | None = None  # steps between mid-epoch checkpoints
    on_save: Callable[[int, MetricAccumulator], None] | None = None  # (batches done this epoch, the epoch's sums)


@dataclass
class EpochResult:
    metrics: Metrics
    seconds: float
    images: int  # trained on in `seconds`: a resumed epoch's metrics also count those before the interruption
    batches: int = 0  # done in this epoch, before the interruption too
    stop: Stop | None = None  # the guard stopped the epoch after `batches`

    @property
    def images_per_second(self) -> float:
        return self.images / max(self.seconds, 1e-9)


def _to(device: torch.device, images: Tensor, targets: Tensor,
        memory_format: torch.memory_format = torch.contiguous_format) -> tuple[Tensor, Tensor]:
    """The batch on `device` (a no-op for the in-memory path's, already there); images in `memory_format`."""
    images = images.to(device, non_blocking=True, memory_format=memory_format if images.dim() == 4 else torch.preserve_format)
    return images, targets.to(device, non_blocking=True)


def train_epoch(model: nn.Module, loader: Iterable, ctx: StepContext, num_classes: int,
                progress: tqdm | None = None, *, start_batch: int = 0, meter: MetricAccumulator | None = None) -> EpochResult:
    """One epoch, or its rest: a resumed run passes the loader positioned at `start_batch` (resume_at) and the
    epoch's sums so far in `meter`."""
    model.train()
    meter = meter or MetricAccumulator(num_classes, ctx.device)
    limit = None if ctx.max_steps is None else max(ctx.max_steps - start_batch, 0)
    start, images_seen, batches, stop = time.perf_counter(), 0, start_batch, None
    for images, targets in islice(loader, limit):  # None: the whole loader
        images, targets = _to(ctx.device, images, targets, ctx.memory_format)
        with autocast(ctx.device, ctx.precision):
            loss, logits = aux_loss(model, images, targets, ctx.criterion, ctx.aux_weight)
        ctx.optimizer.zero_grad(set_to_none=True)
        ctx.scaler.scale(loss).backward()
        if ctx.grad_clip is not None:
            ctx.scaler.unscale_(ctx.optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), ctx.grad_clip)
        ctx.scaler.step(ctx.optimizer)
        ctx.scaler.update()
        ctx.scheduler.step()
        ctx.step += 1
        batches += 1
        meter.update(logits.detach().float(), targets, loss.detach())
        images_seen += targets.numel()
        if ctx.on_log is not None and ctx.step % ctx.log_interval == 0:
            ctx.on_log(ctx.step, loss.detach())
        if progress is not None:
            progress.update(1)
            if batches % 10 == 1:  # .item() waits for the device: not every step
                elapsed = time.perf_counter() - start
                progress.set_postfix(loss=f"{loss.item():.4f}", img_s=f"{images_seen / max(elapsed, 1e-9):,.0f}")
        if ctx.guard is not None:
            ctx.guard.watch(loss, ctx.step)
            save_now = ctx.save_every is not None and ctx.step % ctx.save_every == 0
            stop = ctx.guard.check(ctx.step, force=save_now)  # never save a non-finite state
            finite = stop is None or stop.nonfinite_step is None
            if ctx.on_save is not None and finite and (save_now or stop is not None):
                ctx.on_save(batches, meter)  # a signal saves where it stopped; a non-finite loss never does
            if stop is not None:
                break
    if images_seen == 0:
        raise RuntimeError("the training loader yielded no batches")
    seen = torch.tensor(images_seen, device=ctx.device)
    if ctx.distributed:
        meter.all_reduce()  # the epoch over all ranks: its images and metrics
        torch.distributed.all_reduce(seen)
    return EpochResult(meter.compute(), time.perf_counter() - start, int(seen), batches, stop)


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, criterion: Callable[[Tensor, Tensor], Tensor], device: torch.device,
             num_classes: int, precision: str = "32", distributed: bool = False, progress: tqdm | None = None,
             memory_format: torch.memory_format = torch.contiguous_format) -> EpochResult:
    """Loss, top-1/top-5 and the confusion matrix over every sample of `loader`, counted once."""
    model.eval()
    meter = MetricAccumulator(num_classes, device)
    start = time.perf_counter()
    for images, targets in loader:
        images, targets = _to(device, images, targets, memory_format)
        with autocast(device, precision):
            logits = model(images)
        logits = logits.float()
        meter.update(logits, targets, criterion(logits, targets))
        if progress is not None:
            progress.update(1)
    if distributed:
        meter.all_reduce()
    metrics = meter.compute()
    return EpochResult(metrics, time.perf_counter() - start, metrics.count)
