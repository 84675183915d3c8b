"""The task seam's interface: what every task answers, so that training, evaluation, prediction and export ask
the task instead of testing its name."""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import Tensor, nn


class Task(Protocol):
    name: str  # config.task's value
    accuracy_name: str  # what `accuracy` measures, as lines print it: "acc" (top-1), "exact" (exact match)
    label_sets: bool  # targets and decisions are sets of labels (multi-hot rows, per-class thresholds)
    has_classes: bool  # the network predicts the data's classes (False: reconstruction, whose target is the picture)

    def pair(self, images: Tensor, targets: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """(the network's inputs, its targets) of a batch of (images, the data's targets): both as they are, or
        (reconstruction) the pictures as targets and, with data.noise, noisy pictures as inputs (drawn from
        `generator`, or torch's random state when None)."""

    def generator(self, device: torch.device) -> torch.Generator | None:
        """One evaluation pass's own random numbers (the same noise every pass), or None where nothing is drawn."""

    def shown(self, value: float) -> str:
        """The figure an epoch is judged by (`accuracy`), as lines print it: a percentage, or a PSNR in dB."""

    def meter(self, num_classes: int, device: torch.device | str = "cpu") -> Any:
        """A fresh accumulator of one pass's sums (zoo.metrics): update(logits, targets, loss), compute(), ..."""

    def criterion(self, weights: Tensor | None, label_smoothing: float) -> nn.Module:
        """The training loss on (N x K logits, targets); `weights`: loss.class_weights, K (float)."""

    def eval_criterion(self) -> nn.Module:
        """The validation and test loss: unweighted, unsmoothed, as timm validates."""

    def probabilities(self, logits: Tensor) -> Tensor:
        """N x K probabilities (fractions) of N x K logits, in float32."""

    def positives(self, targets: Tensor, num_classes: int) -> Tensor:
        """N x K bool: which classes each sample has (a class index becomes one True)."""

    def class_counts(self, labels: Tensor, num_classes: int) -> Tensor:
        """Training images per class (int64, K): those of the class, or those carrying it."""

    def balanced_weights(self, counts: Tensor, images: int) -> Tensor:
        """loss.class_weights auto from the training counts (float64, K): every count is above 0."""

    def empty_targets(self, num_classes: int) -> Tensor:
        """No targets, shaped as a batch's: to stand for a rank's empty share of a split."""

    def decide(self, probabilities: Tensor, classes: list[str]) -> list[list[str]]:
        """Each picture's labels, decided from N x K probabilities: a single-label model's one class, a multi-label
        model's any number (none included), as class names."""

    def trust(self, logits: Tensor, targets: Tensor, classes: list[str], paths: list[str] | None) -> Any:
        """zoo.metrics.trust's figures (a Trust) of N x K logits against the targets."""

    def relabel(self, targets: Tensor, lookup: Tensor, num_classes: int) -> Tensor:
        """Targets in the data's class numbering as the model's: data class i is model class lookup[i]."""


class ClassLabels:
    """What the classification tasks share: the data's labels are the targets, the pictures the inputs as they
    are, and the figure an epoch is judged by is a fraction."""

    has_classes = True

    def pair(self, images: Tensor, targets: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        return images, targets

    def generator(self, device: torch.device) -> torch.Generator | None:
        return None

    def shown(self, value: float) -> str:
        return f"{value:6.2%}"
