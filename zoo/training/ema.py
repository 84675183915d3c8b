"""train.ema: an exponential moving average of the weights, updated after every optimizer step, evaluated each
epoch beside the raw weights; the better of the two goes into best.pt.

The average is torch.optim.swa_utils.AveragedModel's, over parameters and buffers (`use_buffers=True`, as
torchvision's reference recipes do, so batch norm's running statistics are averaged too and need no extra pass).
Its decay rises linearly from 0 to train.ema.decay over train.ema.warmup_steps, so an early average is not
dominated by the random initial weights. Every rank holds the same average: DDP keeps the raw weights equal.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from zoo.config import EmaConfig


class WeightAverage:
    """The EMA of `model`'s weights: avg <- decay_t x avg + (1 - decay_t) x weights after each optimizer step."""

    def __init__(self, model: nn.Module, config: EmaConfig) -> None:
        self.config = config
        self.decay_now = 0.0
        self.updates = 0  # AveragedModel's n_averaged, kept here too: reading that buffer waits for the device
        self.averaged = AveragedModel(model, multi_avg_fn=self._average, use_buffers=True)
        self.averaged.eval()  # only ever evaluated; update_parameters works in any mode

    @property
    def module(self) -> nn.Module:
        """The averaged network, for evaluation and for best.pt (the network's own state_dict keys)."""
        return self.averaged.module

    def decay(self, update: int) -> float:
        """The decay of update number `update` (1-based): linear from 0 over warmup_steps, then config.decay."""
        warmup = self.config.warmup_steps
        return self.config.decay * min(1.0, update / warmup) if warmup else self.config.decay

    def update(self, model: nn.Module) -> None:
        """Average in `model`'s weights after an optimizer step (the first call copies them)."""
        self.updates += 1
        self.decay_now = self.decay(self.updates)
        self.averaged.update_parameters(model)

    def _average(self, averaged: list[Tensor], current: list[Tensor], num_averaged: Any) -> None:
        floats = [(a, c) for a, c in zip(averaged, current) if a.is_floating_point()]
        if floats:
            weight = 1.0 - self.decay_now
            torch._foreach_lerp_([a for a, _ in floats], [c for _, c in floats], weight)
        for a, c in zip(averaged, current):
            if not a.is_floating_point():
                a.copy_(c)  # batch norm's num_batches_tracked: a count, not a quantity to average

    def state_dict(self) -> dict[str, Tensor]:
        return self.averaged.state_dict()  # module.* and n_averaged: exact on resume

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.averaged.load_state_dict(state)
        self.updates = int(state["n_averaged"])


def horizon_note(config: EmaConfig, total_steps: int) -> str | None:
    """A note when the average remembers over more steps (1 / (1 - decay)) than half the run has: it would still
    be mostly the early weights at the end, and lose to the raw ones every epoch. Or when the decay's warmup
    lasts over half the run: the decay then ends far below train.ema.decay (0.9998 x 82 / 2000 = 0.041), and the
    average is the raw weights of the last few steps, so that neither the note above nor any decay would help."""
    if config.warmup_steps > total_steps / 2:
        reached = config.decay * min(1.0, total_steps / config.warmup_steps)
        return (f"note: train.ema.warmup_steps {config.warmup_steps:,} is over half this run's {total_steps:,} "
                f"optimizer steps: the decay reaches {reached:.2g} of {config.decay:g} by the end, and the average "
                f"stays next to the raw weights; consider --set train.ema.warmup_steps={total_steps // 10}")
    horizon = 1.0 / (1.0 - config.decay)
    if horizon <= total_steps / 2:
        return None
    suggested = max(0.9, 1.0 - 10.0 / max(total_steps, 1))
    return (f"note: train.ema.decay {config.decay:g} averages over about {horizon:,.0f} optimizer steps and this run "
            f"has {total_steps:,}; the average will lag the weights; consider --set train.ema.decay={suggested:.4g}")
