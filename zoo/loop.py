"""The loops: one training epoch and one evaluation pass, and the loss they train with.

Lean on purpose: a training step is airbench's order (forward, zero_grad, backward, step, schedule) with AMP,
and gradient accumulation splits it at the backward.
What a run does around its steps (logging, checkpoints, the guard's look at the loss and at signals) is a
`StepHook` the run passes in, called once per optimizer step. The loop itself waits for the device only to show
the loss on the progress bar, every 10th batch and only where a bar is shown; the hook decides its own waits.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from itertools import islice
from typing import Protocol

import torch
from torch import Tensor, nn
from tqdm import tqdm

from zoo.metrics import MetricAccumulator, Metrics
from zoo.metrics.familiarity import pixel_features
from zoo.runtime import autocast
from zoo.tasks import Classification, Task

AUX_WEIGHT = 0.3  # Szegedy et al. 2014: "their loss is added to the total loss ... with a discount weight 0.3"
Criterion = Callable[[Tensor, Tensor], Tensor]
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal, as shells report it
NONFINITE_EXIT_CODE = 3  # 1 is a bug, 2 bad input


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
        return (images.to(self.device, non_blocking=True, memory_format=layout),
                targets.to(self.device, non_blocking=True))


Mix = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]  # (images, labels) -> (mixed images, soft targets)


@dataclass(frozen=True)
class TrainStep:
    """One optimizer step, over one batch or (train.accumulate_steps) the gradients of several: what a step
    needs, and nothing the run does around it."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler  # stepped every optimizer step
    scaler: torch.amp.GradScaler  # a no-op unless float16 on CUDA
    criterion: Criterion
    compute: Compute
    aux_weight: float = AUX_WEIGHT
    grad_clip: float | None = None  # max global gradient norm
    accumulate_steps: int = 1  # batches per optimizer step
    mix: Mix | None = None  # Mixup/CutMix (zoo.data.transforms.batch_mixing): the loss takes its soft targets
    task: Task = Classification()  # what the epoch's sums count (zoo.tasks)
    # the network's constraints on its weights, after every optimizer step (Classifier.apply_constraints: TextCNN's
    # max-norm); None: none
    constrain: Callable[[], None] | None = None

    def __call__(self, model: nn.Module, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """(loss, logits) of one batch, after an optimizer step on it alone; both still attached to the graph."""
        loss, logits = self.backward(model, images, targets)
        self.update(model)
        return loss, logits

    def backward(self, model: nn.Module, images: Tensor, targets: Tensor, share: float = 1.0,
                 first: bool = True) -> tuple[Tensor, Tensor]:
        """Forward and backward of one batch, its gradients scaled by `share` (its part of the optimizer step's
        batches); `first`: the step's first batch, which clears the last step's gradients. Returns the batch's
        own (loss, logits): the loss against the mixed targets when batches are mixed."""
        if self.mix is not None:
            images, soft = self.mix(images, targets)
        with autocast(self.compute.device, self.compute.precision):
            loss, logits = aux_loss(model, images, soft if self.mix is not None else targets, self.criterion,
                                    self.aux_weight)
        if first:
            self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss if share == 1.0 else loss * share).backward()
        return loss, logits

    def update(self, model: nn.Module) -> None:
        """The optimizer step on the gradients gathered since the step's first batch, the network's constraints on
        the weights it gave, then the schedule's step."""
        if self.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), self.grad_clip)
        self.scaler.step(self.optimizer)
        if self.constrain is not None:
            self.constrain()
        self.scaler.update()
        self.scheduler.step()


@dataclass(frozen=True)
class Stop:
    """Why a StepHook (the run's guard) stops an epoch: a signal (its number), or a non-finite loss first seen at
    `nonfinite_step`; the exit code the run then ends with."""

    signal: int | None = None
    nonfinite_step: int | None = None

    @property
    def exit_code(self) -> int:
        return NONFINITE_EXIT_CODE if self.nonfinite_step is not None else EXIT_CODES.get(self.signal, 130)

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signal).name if self.signal else ""


class StepHook(Protocol):
    def __call__(self, step: int, batches: int, loss: Tensor, meter: MetricAccumulator) -> Stop | None:
        """After optimizer step `step` of the run, `batches` batches into this epoch, `loss` the step's (the mean
        of its batches'): whether to stop the epoch."""


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
                start_batch: int = 0, epoch_batches: int | None = None, meter: MetricAccumulator | None = None,
                hook: StepHook | None = None, progress: tqdm | None = None) -> EpochResult:
    """One epoch, or its rest, of (N x C x H x W images, N labels) batches; the run has taken `first_step`
    optimizer steps before it. A resumed run passes the loader positioned at `start_batch` (resume_at) and the
    epoch's sums so far in `meter`. `epoch_batches`: the epoch's length in batches (None: the loader's), which
    train.max_steps_per_epoch may cut short.

    Every step.accumulate_steps batches make one optimizer step: the gradients of each are scaled by 1 / (the
    step's batches), so that k equal batches step as one k times larger batch would (the epoch's last step may
    have fewer); under DDP the gradients are all-reduced only at each step's last batch (no_sync before it).
    The hook is called after each optimizer step, so a checkpoint is never taken halfway through one."""
    model.train()
    meter = meter or step.task.meter(num_classes, step.compute.device)
    total = epoch_batches if epoch_batches is not None else len(loader)  # type: ignore[arg-type]
    per_step = step.accumulate_steps
    no_sync = getattr(model, "no_sync", None) if per_step > 1 else None  # DDP's; a plain module has none
    start, images_seen, batches, count, stop = time.perf_counter(), 0, start_batch, first_step, None
    step_loss = None
    for images, targets in islice(loader, max(total - start_batch, 0)):
        images, targets = step.task.pair(*step.compute.batch(images, targets))  # a reconstruction's: the pictures
        within = batches % per_step  # start_batch is at a step boundary: checkpoints are taken only there
        group = min(per_step, total - (batches - within))  # batches in this optimizer step
        last = within == group - 1
        with no_sync() if no_sync is not None and not last else nullcontext():
            loss, logits = step.backward(model, images, targets, 1.0 / group, first=within == 0)
        batches += 1
        loss = loss.detach()
        meter.update(logits.detach().float(), targets, loss)
        images_seen += len(targets)
        step_loss = loss if group == 1 else (loss / group if within == 0 else step_loss + loss / group)
        if progress is not None:
            progress.update(1)
            if batches % 10 == 1:  # .item() waits for the device: not every step
                elapsed = time.perf_counter() - start
                progress.set_postfix(loss=f"{loss.item():.4f}", img_s=f"{images_seen / max(elapsed, 1e-9):,.0f}")
        if not last:
            continue
        step.update(model)
        count += 1
        if hook is not None and (stop := hook(count, batches, step_loss, meter)) is not None:
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
                    progress: tqdm | None = None, logits: list[Tensor] | None = None,
                    targets: list[Tensor] | None = None, task: Task = Classification(),
                    scores: list[Tensor] | None = None, features: list[Tensor] | None = None) -> EpochResult:
    """Loss and `task`'s figures (top-1/top-5 and the confusion matrix; multi-label: exact match, per-class
    counts ...; reconstruction: MSE and PSNR, of the output and of the noisy input) over every sample of `loader`,
    counted once (summed over ranks when `compute.distributed`).
    `logits`, when given, gets each batch's (N x num_classes, on the CPU), `targets` its labels (N, or N x
    num_classes for multi-label, on the CPU): this rank's share of them when distributed. `scores`, when given, gets
    a reconstruction's per-picture errors (N, float64, on the CPU: Reconstruction.scores). `features`, when given,
    gets the inputs' pixel statistics (zoo.metrics.familiarity.pixel_features: N x D float64, on the CPU)."""
    model.eval()
    meter = task.meter(num_classes, compute.device)
    generator = task.generator(compute.device)  # a reconstruction's noise: the same every pass
    start = time.perf_counter()
    for images, labels in loader:
        images, labels = task.pair(*compute.batch(images, labels), generator)
        with autocast(compute.device, compute.precision):
            outputs = model(images)
        outputs = outputs.float()
        meter.update(outputs, labels, criterion(outputs, labels), inputs=images)
        if logits is not None:
            logits.append(outputs.cpu())
        if targets is not None:
            targets.append(labels.cpu())
        if scores is not None:
            scores.append(task.scores(outputs, labels).cpu())
        if features is not None:
            features.append(pixel_features(images))
        if progress is not None:
            progress.update(1)
    if compute.distributed:
        meter.all_reduce()
    metrics = meter.compute()
    return EpochResult(metrics, time.perf_counter() - start, metrics.count)
