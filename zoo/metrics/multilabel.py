"""Multi-label metrics: each image has any number of K classes, the model gives K logits, and class k is predicted
when sigmoid(logit k) >= thresholds[k] (predicted_sets, the one place the rule is written).

    meter = MultilabelAccumulator(K, thresholds=t); meter.update(logits, targets, loss); metrics = meter.compute()
    ap, mean_ap = average_precision(scores, targets)      per class, and their mean over the classes with positives
    thresholds = best_thresholds(probabilities, targets)  per class, the threshold of the highest F1

The definitions are scikit-learn's, and tested against it: accuracy is the exact-match ratio (accuracy_score on
multilabel input), the per-class counts are multilabel_confusion_matrix's, per-class figures are 0 where undefined
(zero_division=0), and the macro averages run over all K classes, as sklearn's average='macro' does on multilabel
input (unlike classification.py's, which leave out a class neither present nor predicted). The accumulator keeps
sums, not means, so a DDP all-reduce is exact. Fractions throughout, never percentages.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from zoo.metrics.classification import Accumulator

DEFAULT_THRESHOLD = 0.5


def predicted_sets(probabilities: Tensor, thresholds: Tensor) -> Tensor:
    """N x K bool: class k is predicted where probabilities[:, k] >= thresholds[k] (a score on the threshold is
    positive, as precision_recall_curve counts it). Compared in float32, as the accumulator and an exported model
    compare them. Raises ValueError when `thresholds` is not K values."""
    if thresholds.shape != probabilities.shape[-1:]:
        raise ValueError(f"{tuple(thresholds.shape)} thresholds for {tuple(probabilities.shape)} probabilities")
    return probabilities.float() >= thresholds.to(probabilities.device, torch.float32)


def _positive(targets: Tensor) -> Tensor:
    # 0/1 targets read the same under any rule; > 0.5 also reads label-smoothed ones (0.05/0.95) as their labels.
    return targets > 0.5


def _check(scores: Tensor, targets: Tensor) -> None:
    if scores.dim() != 2 or targets.shape != scores.shape:
        raise ValueError(f"scores {tuple(scores.shape)} and targets {tuple(targets.shape)} are not both N x K")
    if scores.shape[0] == 0:
        raise ValueError("no samples to measure")
    if torch.isnan(scores).any():
        raise ValueError("scores contain NaN")
    if ((targets != 0) & (targets != 1)).any():
        raise ValueError("targets must be 0 or 1")


class MultilabelAccumulator(Accumulator):
    """classification.MetricAccumulator's interface for multi-label outputs. It keeps the summed loss, the per-class
    counts K x 2 x 2 in multilabel_confusion_matrix's layout ([[tn, fp], [fn, tp]] per class) and the number of
    images whose predicted set is exactly their true set. `update` takes N x K `logits` and N x K `targets` (0/1,
    float or int)."""

    sums = ("counts", "loss_sum", "exact")

    def __init__(self, num_classes: int, device: torch.device | str = "cpu", thresholds: Tensor | None = None) -> None:
        if thresholds is None:
            thresholds = torch.full((num_classes,), DEFAULT_THRESHOLD)
        if thresholds.shape != (num_classes,):
            raise ValueError(f"{tuple(thresholds.shape)} thresholds for {num_classes} classes")
        super().__init__(device)
        self.num_classes = num_classes
        self.thresholds = thresholds.to(device, torch.float32)
        self.counts = torch.zeros(num_classes, 2, 2, dtype=torch.int64, device=device)
        self.exact = torch.zeros((), dtype=torch.int64, device=device)

    def count(self, logits: Tensor, targets: Tensor) -> None:
        predicted = predicted_sets(logits.float().sigmoid(), self.thresholds)
        truth = _positive(targets)
        # One bincount for all classes: class k's cell (truth, predicted) is 4k + 2 truth + predicted.
        offsets = torch.arange(0, 4 * self.num_classes, 4, device=logits.device)
        index = offsets + 2 * truth.long() + predicted.long()
        self.counts += torch.bincount(index.flatten(), minlength=4 * self.num_classes).view(self.num_classes, 2, 2)
        self.exact += (predicted == truth).all(dim=1).sum()

    def compute(self) -> MultilabelMetrics:
        """The figures so far; raises ValueError when no sample was counted."""
        self.flush()
        counts = self.counts.cpu()
        count = int(counts[0].sum()) if self.num_classes else 0  # every class counts every image once
        if count == 0:
            raise ValueError("no samples were evaluated")
        return MultilabelMetrics(count=count, loss=float(self.loss_sum) / count, accuracy=int(self.exact) / count,
                                 top5_accuracy=None, counts=counts)


@dataclass(frozen=True)
class MultilabelMetrics:
    count: int  # images
    loss: float
    accuracy: float  # the exact-match ratio (sklearn's accuracy_score on multilabel input), a fraction
    top5_accuracy: None  # always None: no top-5 for sets; here so code that reads Metrics reads this too
    counts: Tensor  # K x 2 x 2, [[tn, fp], [fn, tp]] per class (sklearn's multilabel_confusion_matrix)

    @property
    def exact_match(self) -> float:
        """The fraction of images whose predicted set equals their true set (= accuracy)."""
        return self.accuracy

    @property
    def hamming_loss(self) -> float:
        """The fraction of the N x K decisions that are wrong (sklearn's hamming_loss)."""
        wrong = self.counts[:, 0, 1].sum() + self.counts[:, 1, 0].sum()
        return int(wrong) / (self.count * len(self.counts))

    def per_class(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Precision, recall, F1 (float64) and support (long, the true positives' count) per class, K each; 0 where
        a class is never predicted or never present (sklearn's precision_recall_fscore_support, zero_division=0)."""
        return _scores(self.counts[:, 1, 1], self.counts[:, 0, 1], self.counts[:, 1, 0])

    def macro(self) -> dict[str, float]:
        """Unweighted means of precision, recall and F1 over all K classes (sklearn's average='macro' on
        multilabel input counts a class neither present nor predicted as 0)."""
        precision, recall, f1, _ = self.per_class()
        return {"precision": precision.mean().item(), "recall": recall.mean().item(), "f1": f1.mean().item(),
                "classes": len(self.counts)}

    def micro(self) -> dict[str, float]:
        """Precision, recall and F1 of the counts summed over classes (sklearn's average='micro')."""
        total = self.counts.sum(dim=0)
        precision, recall, f1, _ = _scores(total[1, 1], total[0, 1], total[1, 0])
        return {"precision": precision.item(), "recall": recall.item(), "f1": f1.item()}

    def summary(self) -> dict[str, float | int | None]:
        """The figures metrics.json records for a split."""
        return {"loss": self.loss, "accuracy": self.accuracy, "top5_accuracy": None, "count": self.count,
                "exact_match": self.exact_match, "hamming_loss": self.hamming_loss, "f1_micro": self.micro()["f1"],
                "f1_macro": self.macro()["f1"]}

    def present(self) -> Tensor:
        """K True: the macro averages run over every class (classification.Metrics' callers read this)."""
        return torch.ones(len(self.counts), dtype=torch.bool)


def _scores(tp: Tensor, fp: Tensor, fn: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    tp, fp, fn = tp.double(), fp.double(), fn.double()
    precision = torch.where(tp + fp > 0, tp / (tp + fp).clamp(min=1), 0.0)
    recall = torch.where(tp + fn > 0, tp / (tp + fn).clamp(min=1), 0.0)
    # sklearn's F1 from the counts, 2 tp / (2 tp + fp + fn), not from the rounded precision and recall.
    f1 = torch.where(tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn).clamp(min=1), 0.0)
    return precision, recall, f1, (tp + fn).long()


def _ranked(scores: Tensor, targets: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Each column ranked by score, highest first: the sorted scores, the true positives above each rank (its
    own included), a mask of the last rank of each group of equal scores (sklearn's thresholds), and the positives
    per class. Ties are one threshold, so their order within the group does not matter."""
    scores, order = scores.sort(dim=0, descending=True)
    true_positives = _positive(targets).gather(0, order).long().cumsum(dim=0)
    last = torch.ones_like(scores, dtype=torch.bool)
    last[:-1] = scores[:-1] != scores[1:]
    return scores, true_positives, last, true_positives[-1]


def average_precision(scores: Tensor, targets: Tensor) -> tuple[Tensor, float | None]:
    """Per-class average precision of N x K `scores` (probabilities, logits or any monotone score) against N x K
    0/1 `targets`: sum over the thresholds of (R_n - R_{n-1}) P_n, step-wise, not interpolated, with equal scores
    one threshold (sklearn's average_precision_score, column by column). Returns K float64 values, a fraction each,
    NaN for a class with no positive (sklearn warns and gives 0), and their mean over the classes with positives
    (the mAP), None when no class has one. Raises ValueError for shapes that disagree, no samples, NaN scores or
    targets other than 0/1."""
    _check(scores, targets)
    _, true_positives, last, positives = _ranked(scores.detach().double(), targets.detach())
    # The true positives at the previous threshold: the running maximum over the thresholds above this one.
    at_thresholds = torch.where(last, true_positives, 0)
    previous = torch.cat([torch.zeros_like(at_thresholds[:1]), at_thresholds.cummax(dim=0).values[:-1]])
    ranks = torch.arange(1, len(scores) + 1, dtype=torch.float64, device=scores.device)[:, None]
    precision = true_positives / ranks
    gained = torch.where(last, true_positives - previous, 0)
    ap = (gained * precision).sum(dim=0) / positives.clamp(min=1)
    ap = torch.where(positives > 0, ap, torch.nan).cpu()
    defined = ap[~ap.isnan()]
    return ap, defined.mean().item() if len(defined) else None


def best_thresholds(probabilities: Tensor, targets: Tensor, default: float = DEFAULT_THRESHOLD) -> Tensor:
    """Per class, the threshold t of the highest F1 on these N x K `probabilities` (fractions) against N x K 0/1
    `targets`, under the rule p >= t in float32 (sklearn's f1_score of predicted_sets). t lies strictly between
    sample probabilities: halfway from the chosen probability to the next lower distinct one (half the chosen one
    when it is the lowest), so a float that another runtime (ONNX Runtime) rounds differently cannot cross it;
    where two probabilities are adjacent floats nothing lies between and t is the chosen one (and half of a lowest
    probability of 0 is 0, which no runtime's sigmoid goes below). Ties in F1: the t closest to 0.5, then the
    higher. A class with no positive keeps `default`. Returns K float32 on the CPU. Memory is O(N x K). Raises
    ValueError as average_precision does, and for probabilities outside [0, 1]."""
    _check(probabilities, targets)
    if ((probabilities < 0) | (probabilities > 1)).any():
        raise ValueError("probabilities must lie in [0, 1]")
    scores, true_positives, last, positives = _ranked(probabilities.detach().float().cpu(), targets.detach().cpu())
    ranks = torch.arange(1, len(scores) + 1, dtype=torch.float64)[:, None]
    # Predicting the top r: fp = r - tp and fn = P - tp, so F1 = 2 tp / (2 tp + fp + fn) = 2 tp / (r + P).
    f1 = torch.where(last, 2 * true_positives / (ranks + positives), -1.0)
    lower = torch.cat([scores[1:], torch.full_like(scores[:1], -torch.inf)])  # at each group's last: the next score
    candidates = ((scores.double() + lower.double()) / 2).float()
    candidates[-1] = scores[-1] / 2
    # Rounding the midpoint to float32 may land on the lower score, which p >= t would count as positive.
    below = candidates <= lower
    candidates[below] = torch.nextafter(lower, torch.tensor(torch.inf))[below]
    best = f1 == f1.max(dim=0).values
    distance = torch.where(best, (candidates.double() - DEFAULT_THRESHOLD).abs(), torch.inf)
    closest = best & (distance == distance.min(dim=0).values)
    chosen = torch.where(closest, candidates, -torch.inf).max(dim=0).values
    return torch.where(positives > 0, chosen, torch.tensor(default, dtype=torch.float32))
