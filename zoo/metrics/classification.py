"""Classification metrics accumulated over batches: loss, top-1, top-5, the confusion matrix, and
per-class precision, recall and F1. Sums, not means, so distributed ranks can all-reduce them exactly.

The definitions are scikit-learn's, and tested against it: per-class figures are 0 where undefined
(zero_division=0); macro averages run over the classes in the truth or the predictions (its default labels),
so a class with no sample that is never predicted does not count as 0. Top-5 is defined only with more than 5
classes: with 5 or fewer it is always 1, a figure that says nothing, and it is None (n/a) instead."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

# Batches are held and counted together, a few dozen at a time: a small model's training step then pays an
# append instead of a dozen small tensor operations (4% of LeNet-5's step on a CPU).
FLUSH_BATCHES = 64
FLUSH_ELEMENTS = 2**22  # logits held at most (16 MiB of float32), for large batches and class counts
TOP_K = 5


class Accumulator:
    """Batches' figures kept as sums (so that a DDP all-reduce is exact), counted FLUSH_BATCHES at a time: the loss
    here; a subclass counts its own figures in `count` and names every sum tensor in `sums`, which a mid-epoch
    checkpoint keeps (state_dict) and ranks add up (all_reduce)."""

    sums: tuple[str, ...] = ("loss_sum",)

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.pending: list[tuple[Tensor, Tensor, Tensor]] = []
        self.pending_elements = 0

    def update(self, logits: Tensor, targets: Tensor, loss: Tensor, inputs: Tensor | None = None) -> None:
        """`loss` is the batch mean; it is weighted by the batch size so the total is a true mean. Batches are
        counted together (see FLUSH_BATCHES, and at compute), so `logits` are kept until then: pass detached ones.
        `inputs`: the network's inputs, which a reconstruction's figures measure too (the others ignore them)."""
        self.pending.append((logits, targets, loss))
        self.pending_elements += logits.numel()
        if len(self.pending) >= FLUSH_BATCHES or self.pending_elements >= FLUSH_ELEMENTS:
            self.flush()

    @torch.no_grad()
    def flush(self) -> None:
        if not self.pending:
            return
        logits_list, targets_list, losses = zip(*self.pending)
        self.pending, self.pending_elements = [], 0
        sizes = torch.tensor([len(t) for t in targets_list],
                             dtype=torch.float64).to(self.loss_sum.device, non_blocking=True)
        self.loss_sum += (torch.stack(losses).double() * sizes).sum()
        self.count(torch.cat(logits_list), torch.cat(targets_list))

    def count(self, logits: Tensor, targets: Tensor) -> None:
        """Add a group of batches' figures (N x K logits) to the subclass's sums."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Tensor]:
        """The sums so far (a checkpoint taken mid-epoch keeps them, so the resumed epoch reports all of it)."""
        self.flush()
        return {name: getattr(self, name).cpu() for name in self.sums}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.pending, self.pending_elements = [], 0
        for name in self.sums:
            getattr(self, name).copy_(state[name])

    def all_reduce(self) -> None:
        """Sum over distributed ranks (each sample counted by exactly one rank)."""
        import torch.distributed as dist

        self.flush()
        if dist.is_available() and dist.is_initialized():
            for name in self.sums:
                dist.all_reduce(getattr(self, name))


class MetricAccumulator(Accumulator):
    """A single-label classifier's sums: the loss, the confusion matrix (rows: the true class) and the top-5 hits;
    `update` takes N x K logits and N class indices."""

    sums = ("confusion", "loss_sum", "top5_correct")

    def __init__(self, num_classes: int, device: torch.device | str = "cpu") -> None:
        super().__init__(device)
        self.num_classes = num_classes
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)  # rows: truth
        self.top5_correct = torch.zeros((), dtype=torch.int64, device=device)

    def count(self, logits: Tensor, targets: Tensor) -> None:
        predictions = logits.argmax(dim=1)
        index = targets * self.num_classes + predictions
        self.confusion += torch.bincount(index, minlength=self.num_classes**2).view(self.num_classes, self.num_classes)
        if self.num_classes > TOP_K:
            self.top5_correct += (logits.topk(TOP_K, dim=1).indices == targets[:, None]).any(dim=1).sum()

    def compute(self) -> Metrics:
        self.flush()
        confusion = self.confusion.cpu()
        count = int(confusion.sum())
        if count == 0:
            raise ValueError("no samples were evaluated")
        return Metrics(
            count=count,
            loss=float(self.loss_sum) / count,
            accuracy=int(confusion.trace()) / count,
            top5_accuracy=int(self.top5_correct) / count if self.num_classes > TOP_K else None,
            confusion=confusion,
        )


@dataclass(frozen=True)
class Metrics:
    count: int
    loss: float
    accuracy: float  # fractions, not percentages
    top5_accuracy: float | None  # None (n/a) with TOP_K classes or fewer
    confusion: Tensor  # num_classes x num_classes, rows are the true classes

    def per_class(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Precision, recall, F1 and support per class; 0 where a class is never predicted or present."""
        confusion = self.confusion.double()
        true_positive = confusion.diagonal()
        predicted, actual = confusion.sum(dim=0), confusion.sum(dim=1)
        precision = torch.where(predicted > 0, true_positive / predicted.clamp(min=1), 0.0)
        recall = torch.where(actual > 0, true_positive / actual.clamp(min=1), 0.0)
        denominator = precision + recall
        f1 = torch.where(denominator > 0, 2 * precision * recall / denominator.clamp(min=1e-12), 0.0)
        return precision, recall, f1, actual.long()

    def summary(self) -> dict[str, float]:
        """The figures metrics.json records for a split."""
        return {"loss": self.loss, "accuracy": self.accuracy, "top5_accuracy": self.top5_accuracy, "count": self.count}

    def present(self) -> Tensor:
        """Which classes are in the truth or the predictions: those a macro average runs over (scikit-learn's)."""
        return (self.confusion.sum(dim=0) > 0) | (self.confusion.sum(dim=1) > 0)

    def macro(self) -> dict[str, float]:
        """Unweighted means of precision, recall and F1 over the present classes (scikit-learn's average='macro')."""
        present = self.present()
        precision, recall, f1, _ = (values[present] for values in self.per_class())
        return {"precision": precision.mean().item(), "recall": recall.mean().item(), "f1": f1.mean().item(),
                "classes": int(present.sum())}
