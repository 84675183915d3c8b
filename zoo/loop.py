"""The loops: one training epoch and one evaluation pass, and the loss they train with.

Lean on purpose: a training step is airbench's order (forward, zero_grad, backward, step, schedule) with AMP.
What a run does around its steps (logging, checkpoints, the guard's look at the loss and at signals) is a
`StepHook` the run passes in, called once per step; nothing syncs with the device inside the loop except there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Protocol

import torch
from torch import Tensor, nn
from tqdm import tqdm

from zoo.metrics import MetricAccumulator, Metrics
from zoo.runtime import autocast

if TYPE_CHECKING:
    from zoo.training.guard import Stop

AUX_WEIGHT = 0.3  # Szegedy et al. 2014: "their loss is added to the total loss ... with a discount weight 0.3"
Criterion = Callable[[Tensor, Tensor], Tensor]


def aux_loss(model: nn.Module, images: Tensor, targets: Tensor, criterion: Criterion,
             aux_weight: float = AUX_WEIGHT) -> tuple[Tensor, Tensor]:
    """Return (loss, main logits) where loss = main + aux_weight x (sum of auxiliary losses).

    Models without auxiliary heads, and any model in eval mode, give the main loss alone. The call goes
    through `model(...)`, so it works on a DistributedDataParallel wrapper too.
    """
    logits, aux_logits = model(images, return_aux=True)
    loss = criterion(logits, targets)
    for aux in aux_logits:
        loss = loss + aux_weight * criterion(aux, targets)
    return loss, logits


@dataclass(frozen=True)
class Compute:
    """Where and how batches run: the device, autocast precision ("32", "bf16", "16") and the images' memory
    layout; `distributed`: an epoch's sums are all-reduced over the ranks of the process group."""

    device: torch.device
    precision: str = "32"
    memory_format: torch.memory_format = torch.contiguous_format  # channels_last: NHWC batches
    distributed: bool = False

    def batch(self, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """The batch on the device (a no-op for the in-memory path's, already there); images in memory_format."""
        layout = self.memory_format if images.dim() == 4 else torch.preserve_format
        return images.to(self.device, non_blocking=True, memory_format=layout), targets.to(self.device, non_blocking=True)


@dataclass(frozen=True)
class TrainStep:
    """One optimizer step on one batch: what a step needs, and nothing the run does around it."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler  # stepped every batch
    scaler: torch.amp.GradScaler  # a no-op unless float16 on CUDA
    criterion: Criterion
    compute: Compute
    aux_weight: float = AUX_WEIGHT
    grad_clip: float | None = None  # max global gradient norm

    def __call__(self, model: nn.Module, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """(loss, logits) of the batch, after the step; both still attached to the graph."""
        with autocast(self.compute.device, self.compute.precision):
            loss, logits = aux_loss(model, images, targets, self.criterion, self.aux_weight)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return loss, logits


class StepHook(Protocol):
    def __call__(self, step: int, batches: int, loss: Tensor, meter: MetricAccumulator) -> Stop | None:
        """After optimizer step `step` of the run, the `batches`-th of this epoch: whether to stop the epoch."""


@dataclass
class EpochResult:
    metrics: Metrics
    seconds: float
    images: int  # trained on in `seconds`: a resumed epoch's metrics also count those before the interruption
    batches: int = 0  # done in this epoch, before the interruption too
    stop: Stop | None = None  # a hook stopped the epoch after `batches`
    steps: int = 0  # optimizer steps of the whole run after this epoch

    @property
    def images_per_second(self) -> float:
        return self.images / max(self.seconds, 1e-9)


def train_epoch(model: nn.Module, loader: Iterable, step: TrainStep, num_classes: int, *, first_step: int = 0,
                start_batch: int = 0, max_batches: int | None = None, meter: MetricAccumulator | None = None,
                hook: StepHook | None = None, progress: tqdm | None = None) -> EpochResult:
    """One epoch, or its rest, of (N x C x H x W images, N labels) batches; the run has taken `first_step`
    optimizer steps before it. A resumed run passes the loader positioned at `start_batch` (resume_at) and the
    epoch's sums so far in `meter`. `max_batches` cuts the epoch short (train.max_steps_per_epoch)."""
    model.train()
    meter = meter or MetricAccumulator(num_classes, step.compute.device)
    limit = None if max_batches is None else max(max_batches - start_batch, 0)
    start, images_seen, batches, count, stop = time.perf_counter(), 0, start_batch, first_step, None
    for images, targets in islice(loader, limit):  # None: the whole loader
        images, targets = step.compute.batch(images, targets)
        loss, logits = step(model, images, targets)
        count += 1
        batches += 1
        meter.update(logits.detach().float(), targets, loss.detach())
        images_seen += targets.numel()
        if progress is not None:
            progress.update(1)
            if batches % 10 == 1:  # .item() waits for the device: not every step
                elapsed = time.perf_counter() - start
                progress.set_postfix(loss=f"{loss.item():.4f}", img_s=f"{images_seen / max(elapsed, 1e-9):,.0f}")
        if hook is not None and (stop := hook(count, batches, loss.detach(), meter)) is not None:
            break
    if images_seen == 0:
        raise RuntimeError("the training loader yielded no batches")
    seen = torch.tensor(images_seen, device=step.compute.device)
    if step.compute.distributed:
        meter.all_reduce()  # the epoch over all ranks: its images and metrics
        torch.distributed.all_reduce(seen)
    return EpochResult(meter.compute(), time.perf_counter() - start, int(seen), batches, stop, count)


@torch.no_grad()
def evaluate_loader(model: nn.Module, loader: Iterable, compute: Compute, criterion: Criterion, num_classes: int,
                    progress: tqdm | None = None, logits: list[Tensor] | None = None) -> EpochResult:
    """Loss, top-1/top-5 and the confusion matrix over every sample of `loader`, counted once (summed over
    ranks when `compute.distributed`). `logits`, when given, gets each batch's (N x num_classes, on the CPU)."""
    model.eval()
    meter = MetricAccumulator(num_classes, compute.device)
    start = time.perf_counter()
    for images, targets in loader:
        images, targets = compute.batch(images, targets)
        with autocast(compute.device, compute.precision):
            outputs = model(images)
        outputs = outputs.float()
        meter.update(outputs, targets, criterion(outputs, targets))
        if logits is not None:
            logits.append(outputs.cpu())
        if progress is not None:
            progress.update(1)
    if compute.distributed:
        meter.all_reduce()
    metrics = meter.compute()
    return EpochResult(metrics, time.perf_counter() - start, metrics.count)
