"""Trust metrics: how far a classifier's probabilities can be believed, beyond its accuracy.

    trust = compute_trust(logits, targets, classes, paths)   softmax scores -> the figures below
    trust.to_dict()                                          `zoo evaluate -f json`'s auc, average_precision, ece,
                                                             reliability and confidently_wrong fields

- ROC AUC and average precision per class, one class against the rest, on its softmax probability;
  scikit-learn's roc_auc_score / roc_curve and average_precision_score / precision_recall_curve, class by class,
  with the macro (unweighted) and support-weighted means of sklearn's multi_class="ovr" (Fawcett 2006).
- Expected calibration error of the top-1 confidence in 15 equal-width bins, and the reliability diagram's
  per-bin accuracy, confidence and count (Guo et al. 2017, arXiv:1706.04599, eq. 3 and Figure 1).
- The most confidently wrong samples: where the model is sure and mistaken, the images worth looking at.

The pictures are zoo.present.figures'. This module imports no plotting library.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from zoo.metrics.multilabel import predicted_sets

ECE_BINS = 15  # Guo et al. 2017 use M = 15 bins
WRONG_SHOWN = 16  # the gallery's images: a 4 x 4 grid


@dataclass(frozen=True)
class Bin:
    """One confidence bin of the reliability diagram, (lower, upper] as fractions."""

    lower: float
    upper: float
    count: int
    accuracy: float | None  # top-1 accuracy of the bin's samples; None for an empty bin
    confidence: float | None  # their mean top-1 probability

    def to_dict(self) -> dict[str, Any]:
        return {"lower": self.lower, "upper": self.upper, "count": self.count, "accuracy": self.accuracy,
                "confidence": self.confidence}


@dataclass(frozen=True)
class Wrong:
    """A wrong prediction: the sample's position in the split, its file (None where the data reads no files),
    its true and predicted class indices and the predicted class's probability (a fraction)."""

    index: int
    path: str | None
    true: int
    predicted: int
    probability: float


@dataclass(frozen=True)
class Trust:
    """The figures of compute_trust. Per-class lists follow `classes`; a None is a figure that is undefined."""

    classes: list[str]
    count: int  # samples
    support: list[int]  # each class's samples (positives)
    auc: list[float | None]
    average_precision: list[float | None]
    roc: list[tuple[np.ndarray, np.ndarray] | None]  # (false positive rate, true positive rate) per class
    pr: list[tuple[np.ndarray, np.ndarray] | None]  # (recall, precision) per class, recall decreasing
    ece: float  # a fraction
    reliability: list[Bin]
    wrong: list[Wrong]  # the most confident first, at most compute_trust's `shown`
    wrong_count: int  # every wrong prediction of the split

    @property
    def auc_macro(self) -> float | None:
        return _mean(self.auc, None)

    @property
    def auc_weighted(self) -> float | None:
        return _mean(self.auc, self.support)

    @property
    def ap_macro(self) -> float | None:
        return _mean(self.average_precision, None)

    @property
    def ap_weighted(self) -> float | None:
        return _mean(self.average_precision, self.support)

    def to_dict(self) -> dict[str, Any]:
        """JSON fields; class names as the keys of the per-class figures and in the wrong predictions."""
        return {
            "auc": {"macro": self.auc_macro, "weighted": self.auc_weighted,
                    "per_class": dict(zip(self.classes, self.auc))},
            "average_precision": {"macro": self.ap_macro, "weighted": self.ap_weighted,
                                  "per_class": dict(zip(self.classes, self.average_precision))},
            "ece": self.ece,
            "ece_bins": len(self.reliability),
            "reliability": [b.to_dict() for b in self.reliability],
            "wrong_count": self.wrong_count,
            "confidently_wrong": [{"index": w.index, "path": w.path, "true": self.classes[w.true],
                                   "predicted": self.classes[w.predicted], "probability": w.probability}
                                  for w in self.wrong],
        }


def _mean(values: list[float | None], weights: list[int] | None) -> float | None:
    """The mean of the defined values (weighted by `weights`), None when none is defined."""
    kept = [(v, 1 if weights is None else weights[i]) for i, v in enumerate(values) if v is not None]
    total = sum(w for _, w in kept)
    return None if not kept or total == 0 else sum(v * w for v, w in kept) / total


def compute_trust(logits: torch.Tensor, targets: torch.Tensor, classes: list[str], paths: list[str] | None = None,
                  bins: int = ECE_BINS, shown: int = WRONG_SHOWN) -> Trust:
    """The trust figures of N x K `logits` (K = len(classes)) against N class indices `targets`, on the
    softmax probabilities (float64).

    A class's AUC needs positives and negatives, its AP positives: a class absent from the data (or, for AUC,
    a split of that class alone) has None (n/a), and the macro and weighted means leave it out, as zoo.metrics'
    macro F1 leaves out a class neither present nor predicted. The weighted means weigh each class by its
    support (sklearn's average="weighted"). ECE (a fraction) = sum over `bins` equal-width bins (l, u] of the
    top-1 confidence of |accuracy - mean confidence| x bin count / N (Guo et al. 2017, eq. 3). `shown`: how many
    wrong predictions to keep, the highest predicted probability first (ties: the earlier sample), each with its
    file from `paths` (the split's files in order, where it reads files). Raises ValueError for shapes that
    disagree or no samples."""
    if logits.dim() != 2 or logits.shape[1] != len(classes) or targets.shape != (logits.shape[0],):
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} "
                         f"do not match {len(classes)} classes")
    if logits.shape[0] == 0:
        raise ValueError("no samples to measure")
    probabilities = torch.softmax(logits.detach().double().cpu(), dim=1).numpy()
    truth = targets.detach().cpu().long().numpy()
    count = len(truth)
    support, auc, ap, roc, pr = class_curves(probabilities, truth[:, None] == np.arange(len(classes)))
    confidence, predicted = probabilities.max(axis=1), probabilities.argmax(axis=1)
    correct = predicted == truth
    reliability = _reliability(confidence, correct, bins)
    ece = expected_calibration_error(reliability, count)
    order = confidently_wrong(probabilities, truth, shown)
    kept = [Wrong(int(i), paths[i] if paths is not None else None, int(truth[i]), int(predicted[i]),
                  float(confidence[i]))
            for i in order]
    return Trust(list(classes), count, support, auc, ap, roc, pr, float(ece), reliability, kept, int((~correct).sum()))


def class_curves(probabilities: np.ndarray, positives: np.ndarray) -> tuple[list[int], list, list, list, list]:
    """Each class against the rest, on its column of N x K `probabilities` and N x K bool `positives`: (support,
    ROC AUC, average precision, ROC curve, PR curve) per class, scikit-learn's, None where undefined (see
    compute_trust). One class per sample or several (multi-label) alike."""
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    count = len(positives)
    support = positives.sum(axis=0).astype(int).tolist()
    auc, ap, roc, pr = [], [], [], []
    for k in range(positives.shape[1]):
        positive, score = positives[:, k], probabilities[:, k]
        both = 0 < support[k] < count
        auc.append(float(roc_auc_score(positive, score)) if both else None)
        roc.append(roc_curve(positive, score)[:2] if both else None)
        ap.append(float(average_precision_score(positive, score)) if support[k] else None)
        precision, recall, _ = precision_recall_curve(positive, score) if support[k] else (None, None, None)
        pr.append((recall, precision) if support[k] else None)
    return support, auc, ap, roc, pr


def compute_multilabel_trust(logits: torch.Tensor, targets: torch.Tensor, classes: list[str],
                             thresholds: torch.Tensor, bins: int = ECE_BINS) -> Trust:
    """compute_trust's figures for a multi-label model: N x K `logits` against N x K multi-hot `targets`, on each
    class's sigmoid probability (float64). ROC AUC and average precision per class as compute_trust's (the macro
    average precision is the mAP). Calibration is over every (image, class) pair as one binary decision at the
    class's threshold: the confidence is the probability of what was decided (p, or 1 - p for a class left out),
    and a pair is right when the decision matches the label; ECE over `bins` bins as Guo et al.'s. No gallery of
    wrong images: an image is rarely wholly right or wrong (its wrong_count: the images whose set is not exact).
    Raises ValueError for shapes that disagree or no samples."""
    if logits.dim() != 2 or logits.shape[1] != len(classes) or targets.shape != logits.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} "
                         f"do not match {len(classes)} classes")
    if logits.shape[0] == 0:
        raise ValueError("no samples to measure")
    probabilities = torch.sigmoid(logits.detach().double().cpu()).numpy()
    positives = targets.detach().cpu().numpy() > 0.5
    support, auc, ap, roc, pr = class_curves(probabilities, positives)
    # decided in float32, as training, evaluation and prediction decide (zoo.metrics.multilabel.predicted_sets)
    decided = predicted_sets(logits.detach().float().cpu().sigmoid(), thresholds.float().cpu()).numpy()
    confidence = np.where(decided, probabilities, 1 - probabilities).ravel()
    correct = (decided == positives).ravel()
    reliability = _reliability(confidence, correct, bins)
    ece = expected_calibration_error(reliability, len(confidence))
    wrong = int((decided != positives).any(axis=1).sum())
    return Trust(list(classes), len(positives), support, auc, ap, roc, pr, float(ece), reliability, [], wrong)


def output_names(classes: list[str], outputs: int) -> list[str]:
    """A name for each of a model's `outputs`: the data's `classes`, then the outputs beyond them by index (a head
    wider than the data, model.num_classes 12 on the 10 digits), which no sample has: n/a in every figure."""
    return [*classes, *(str(index) for index in range(len(classes), outputs))][:outputs]


def confidently_wrong(probabilities: np.ndarray, truth: np.ndarray, shown: int = WRONG_SHOWN) -> np.ndarray:
    """Indices of the wrong top-1 predictions of N x K `probabilities` against N `truth`, the highest predicted
    probability first (ties: the earlier sample), at most `shown`: the gallery's, in its order."""
    confidence, predicted = probabilities.max(axis=1), probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != truth)
    return wrong[np.argsort(-confidence[wrong], kind="stable")][:shown]


def expected_calibration_error(reliability: list[Bin], count: int) -> float:
    """Guo et al.'s ECE (a fraction) of `count` samples' reliability bins: sum of |accuracy - confidence| x bin count
    / count."""
    return float(sum(abs(b.accuracy - b.confidence) * b.count for b in reliability if b.count) / max(count, 1))


def _reliability(confidence: np.ndarray, correct: np.ndarray, bins: int) -> list[Bin]:
    """`bins` equal-width bins (l, u] of the confidences, as Guo et al. (and sklearn's calibration_curve) cut them."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges[1:-1], confidence, side="left"), 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    hits = np.bincount(index, weights=correct.astype(np.float64), minlength=bins)
    sure = np.bincount(index, weights=confidence, minlength=bins)
    return [Bin(float(edges[m]), float(edges[m + 1]), int(counts[m]),
                float(hits[m] / counts[m]) if counts[m] else None, float(sure[m] / counts[m]) if counts[m] else None)
            for m in range(bins)]
