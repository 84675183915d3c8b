"""One class per image: softmax outputs, cross-entropy, top-1 and top-5, the arg max decides."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from zoo.metrics import MetricAccumulator
from zoo.metrics.trust import Trust, compute_trust
from zoo.tasks.base import ClassLabels


class Classification(ClassLabels):
    """Single-label classification, zoo's task since LeNet-5: targets are class indices (N, int64)."""

    name = "classification"
    accuracy_name = "acc"
    label_sets = False

    def meter(self, num_classes: int, device: torch.device | str = "cpu") -> MetricAccumulator:
        return MetricAccumulator(num_classes, device)

    def criterion(self, weights: Tensor | None, label_smoothing: float) -> nn.Module:
        return nn.CrossEntropyLoss(weight=None if weights is None else weights.float(), label_smoothing=label_smoothing)

    def eval_criterion(self) -> nn.Module:
        return nn.CrossEntropyLoss()

    def probabilities(self, logits: Tensor) -> Tensor:
        return logits.float().softmax(dim=1)

    def positives(self, targets: Tensor, num_classes: int) -> Tensor:
        return targets[:, None] == torch.arange(num_classes, device=targets.device)

    def class_counts(self, labels: Tensor, num_classes: int) -> Tensor:
        return torch.bincount(labels, minlength=num_classes)

    def balanced_weights(self, counts: Tensor, images: int) -> Tensor:
        """scikit-learn's 'balanced' (compute_class_weight): N / (K x n_c), averaging 1 over the training images."""
        return images / (len(counts) * counts.double())

    def empty_targets(self, num_classes: int) -> Tensor:
        return torch.empty(0, dtype=torch.long)

    def decide(self, probabilities: Tensor, classes: list[str]) -> list[list[str]]:
        return [[classes[index]] for index in probabilities.argmax(dim=1).tolist()]

    def trust(self, logits: Tensor, targets: Tensor, classes: list[str], paths: list[str] | None) -> Trust:
        return compute_trust(logits, targets, classes, paths)

    def relabel(self, targets: Tensor, lookup: Tensor, num_classes: int) -> Tensor:
        return lookup.to(targets.device)[targets]
