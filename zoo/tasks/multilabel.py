"""A set of labels per image: a sigmoid per class, binary cross-entropy, and a decision threshold per class.

The loss is torch's BCEWithLogitsLoss (the sigmoid and the log in one, stable for large logits); its
`pos_weight` is loss.class_weights: auto gives each class (negatives / positives) of the training split, the
ratio torch's documentation suggests, so that a rare label's few positives weigh as much as its negatives.
A class is predicted when its probability is at least its threshold (0.5, or chosen on the validation split to
maximise its F1: zoo.metrics.multilabel.best_thresholds), the rule scikit-learn's precision_recall_curve counts by.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from zoo.metrics.multilabel import MultilabelAccumulator, predicted_sets
from zoo.metrics.trust import Trust, compute_multilabel_trust
from zoo.tasks.base import ClassLabels

DEFAULT_THRESHOLD = 0.5


class Multilabel(ClassLabels):
    """Multi-label classification: targets are multi-hot rows (N x K, float32 0/1); any number of labels per image."""

    name = "multilabel"
    accuracy_name = "exact"  # scikit-learn's accuracy_score on label sets: the share of images whose set is exact
    label_sets = True

    def __init__(self, thresholds: Tensor | list[float] | None = None) -> None:
        self.thresholds = None if thresholds is None else torch.as_tensor(thresholds, dtype=torch.float32)

    def threshold_tensor(self, num_classes: int) -> Tensor:
        """The K thresholds the decisions use (0.5 each when none were chosen)."""
        if self.thresholds is None:
            return torch.full((num_classes,), DEFAULT_THRESHOLD)
        return self.thresholds

    def meter(self, num_classes: int, device: torch.device | str = "cpu") -> MultilabelAccumulator:
        return MultilabelAccumulator(num_classes, device, self.threshold_tensor(num_classes).to(device))

    def criterion(self, weights: Tensor | None, label_smoothing: float) -> nn.Module:
        return nn.BCEWithLogitsLoss(pos_weight=None if weights is None else weights.float())

    def eval_criterion(self) -> nn.Module:
        return nn.BCEWithLogitsLoss()

    def probabilities(self, logits: Tensor) -> Tensor:
        return logits.float().sigmoid()

    def positives(self, targets: Tensor, num_classes: int) -> Tensor:
        return targets > 0.5

    def class_counts(self, labels: Tensor, num_classes: int) -> Tensor:
        return (labels > 0.5).sum(dim=0).long()

    def balanced_weights(self, counts: Tensor, images: int) -> Tensor:
        """Each class's negatives / positives in the training split (BCEWithLogitsLoss's pos_weight)."""
        return (images - counts).double() / counts.double()

    def empty_targets(self, num_classes: int) -> Tensor:
        return torch.empty(0, num_classes)

    def decide(self, probabilities: Tensor, classes: list[str]) -> list[list[str]]:
        chosen = predicted_sets(probabilities, self.threshold_tensor(len(classes)))
        return [[name for name, yes in zip(classes, row) if yes] for row in chosen.tolist()]

    def trust(self, logits: Tensor, targets: Tensor, classes: list[str], paths: list[str] | None) -> Trust:
        return compute_multilabel_trust(logits, targets, classes, self.threshold_tensor(len(classes)))

    def relabel(self, targets: Tensor, lookup: Tensor, num_classes: int) -> Tensor:
        relabelled = targets.new_zeros(len(targets), num_classes)
        relabelled[:, lookup.to(targets.device)] = targets
        return relabelled
