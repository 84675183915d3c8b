"""Class imbalance in the training split: its class counts, the loss weights of loss.class_weights, and the note
`zoo train` prints when the largest class has IMBALANCE times the smallest's images."""

from __future__ import annotations

import torch
from torch import Tensor

from zoo.config import Config
from zoo.errors import ZooError

IMBALANCE = 5  # largest / smallest class count from which the run suggests the two keys


def class_counts(labels: Tensor, num_classes: int) -> Tensor:
    """Images per class (int64, num_classes long) of a split's labels."""
    return torch.bincount(labels, minlength=num_classes)


def class_weights(config: Config, counts: Tensor, classes: list[str]) -> Tensor | None:
    """loss.class_weights as a float tensor, one weight per class, or None (unweighted). auto is scikit-learn's
    'balanced' (compute_class_weight): N / (K x n_c), so that the weights average 1 over the training images.
    Raises ZooError for a list of another length than the classes, or auto with a class without images."""
    given = config.loss.class_weights
    if given is None:
        return None
    if given == "auto":
        if (counts == 0).any():
            empty = classes[int((counts == 0).nonzero()[0])]
            raise ZooError(f"loss.class_weights auto: class {empty!r} has no training images, so no weight; "
                           "give the weights as a list, or add images of it")
        return counts.sum() / (len(counts) * counts.double())
    if len(given) != len(counts):
        raise ZooError(f"loss.class_weights has {len(given)} weights but the data has {len(counts)} classes "
                       f"({', '.join(classes[:5])}{' ...' if len(classes) > 5 else ''}); give one per class, or auto")
    return torch.tensor(given, dtype=torch.float64)


def imbalance_note(config: Config, counts: Tensor, classes: list[str]) -> str | None:
    """One line naming the training split's largest and smallest classes when the first has IMBALANCE times the
    second's images and neither remedy is set; None otherwise."""
    if config.loss.class_weights is not None or config.data.sampler == "balanced" or len(counts) < 2:
        return None
    largest, smallest = int(counts.argmax()), int(counts.argmin())
    if counts[largest] < IMBALANCE * max(int(counts[smallest]), 1):
        return None
    listed = ", ".join(f"{name} {int(count):,}" for name, count in zip(classes, counts.tolist()))
    if len(classes) > 10:
        listed = f"{classes[largest]} {int(counts[largest]):,} ... {classes[smallest]} {int(counts[smallest]):,}"
    return (f"note: the training split is imbalanced ({listed} images; "
            f"{counts[largest] / max(counts[smallest], 1):.0f}x between the largest and smallest class); "
            "consider --set loss.class_weights=auto or --set data.sampler=balanced")
