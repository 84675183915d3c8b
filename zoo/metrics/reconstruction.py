"""An autoencoder's figures: how well it rebuilds the picture (MSE, PSNR), and how well its reconstruction error tells
abnormal pictures from normal ones (ROC AUC, average precision, the threshold at a false-positive rate).

Pixels are in [0, 1], so PSNR's peak is 1: PSNR = 10 log10(1 / MSE) dB, per picture, then averaged over the pictures
(scikit-image's peak_signal_noise_ratio with data_range=1, averaged as denoising papers report it). A picture rebuilt
exactly would be infinite: its MSE is floored at 1e-10 (100 dB). A picture's anomaly score is its reconstruction
error, the MSE of its pixels (the course's rule: what the autoencoder never saw, it rebuilds badly). ROC AUC and
average precision are scikit-learn's, abnormal the positive class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from zoo.metrics.classification import Accumulator

MIN_MSE = 1e-10  # 100 dB: the PSNR of a picture rebuilt exactly, which would otherwise be infinite


def per_image_mse(reconstructions: Tensor, targets: Tensor) -> Tensor:
    """Each picture's mean squared error (N, float64) of N x C x H x W reconstructions against the targets."""
    difference = reconstructions.double() - targets.double()
    return difference.square().flatten(1).mean(dim=1)


def psnr(mse: Tensor) -> Tensor:
    """PSNR in dB of per-picture MSEs of [0, 1] pixels (peak 1), floored at MIN_MSE."""
    return -10.0 * torch.log10(mse.clamp(min=MIN_MSE))


class ReconstructionAccumulator(Accumulator):
    """A reconstruction's sums: the loss, the squared errors and the pictures' PSNRs; `update` takes N x C x H x W
    logits (the reconstruction is their sigmoid) and the N x C x H x W target pictures, and (evaluation) the
    inputs the network was given, for the PSNR of the noisy input against the clean picture."""

    sums = ("loss_sum", "squared_error", "psnr_sum", "input_psnr_sum", "images", "values", "inputs_seen")

    def __init__(self, device: torch.device | str = "cpu", noisy: bool = False) -> None:
        super().__init__(device)
        self.noisy = noisy  # the inputs are noisy pictures (data.noise): their PSNR is measured too
        for name in ("squared_error", "psnr_sum", "input_psnr_sum"):
            setattr(self, name, torch.zeros((), dtype=torch.float64, device=device))
        for name in ("images", "values", "inputs_seen"):
            setattr(self, name, torch.zeros((), dtype=torch.int64, device=device))

    def update(self, logits: Tensor, targets: Tensor, loss: Tensor, inputs: Tensor | None = None) -> None:
        if inputs is not None and self.noisy:  # counted at once: evaluation only, where the step's time is not at stake
            self.input_psnr_sum += psnr(per_image_mse(inputs, targets)).sum()
            self.inputs_seen += len(inputs)
        super().update(logits, targets, loss)

    def count(self, logits: Tensor, targets: Tensor) -> None:
        errors = per_image_mse(logits.float().sigmoid(), targets)
        self.squared_error += errors.sum() * targets[0].numel()
        self.psnr_sum += psnr(errors).sum()
        self.images += len(errors)
        self.values += targets.numel()

    def compute(self) -> ReconstructionMetrics:
        self.flush()
        count = int(self.images)
        if count == 0:
            raise ValueError("no samples were evaluated")
        seen = int(self.inputs_seen)
        return ReconstructionMetrics(count=count, loss=float(self.loss_sum) / count,
                                     mse=float(self.squared_error) / int(self.values),
                                     psnr=float(self.psnr_sum) / count,
                                     input_psnr=float(self.input_psnr_sum) / seen if seen else None)


@dataclass(frozen=True)
class ReconstructionMetrics:
    count: int  # pictures
    loss: float  # the task's loss (binary cross-entropy or MSE), per picture
    mse: float  # mean squared error per pixel, [0, 1] pixels
    psnr: float  # dB, the mean of the pictures' PSNR against the clean picture
    input_psnr: float | None  # dB, the network's noisy inputs' PSNR against the clean picture; None in training and
    # without data.noise
    top5_accuracy: None = None  # no classes: what the classifiers' lines print where they have it

    @property
    def accuracy(self) -> float:
        """The figure the best epoch, early stopping's val_accuracy and a sweep are judged by, higher better: PSNR
        (dB)."""
        return self.psnr

    def summary(self) -> dict[str, float | None]:
        """The figures metrics.json records for a split."""
        return {"loss": self.loss, "mse": self.mse, "psnr": self.psnr, "input_psnr": self.input_psnr,
                "count": self.count}


@dataclass(frozen=True)
class Detection:
    """How well a score (the reconstruction error) flags the abnormal pictures: scikit-learn's ROC AUC and average
    precision (abnormal positive), and the confusion at `threshold` (abnormal when score > threshold; None: no
    threshold was chosen, the run had no validation split)."""

    auc: float
    average_precision: float
    threshold: float | None
    true_positives: int = 0  # abnormal pictures flagged
    false_negatives: int = 0
    false_positives: int = 0  # normal pictures flagged
    true_negatives: int = 0

    def summary(self) -> dict[str, Any]:
        figures: dict[str, Any] = {"auc": self.auc, "average_precision": self.average_precision,
                                   "threshold": self.threshold}
        if self.threshold is not None:
            abnormal, normal = self.true_positives + self.false_negatives, self.false_positives + self.true_negatives
            figures |= {"true_positive_rate": self.true_positives / max(abnormal, 1),
                        "false_positive_rate": self.false_positives / max(normal, 1),
                        "confusion": {"abnormal_flagged": self.true_positives, "abnormal_missed": self.false_negatives,
                                      "normal_flagged": self.false_positives, "normal_passed": self.true_negatives}}
        return figures


def detection(normal: np.ndarray, abnormal: np.ndarray, threshold: float | None) -> Detection:
    """ROC AUC, average precision and the confusion of per-picture scores: `normal`'s should be low, `abnormal`'s
    high. Raises ValueError when either set is empty (neither figure is defined)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    if len(normal) == 0 or len(abnormal) == 0:
        raise ValueError("ROC AUC needs both normal and abnormal pictures")
    truth = np.concatenate([np.zeros(len(normal)), np.ones(len(abnormal))])
    scores = np.concatenate([normal, abnormal]).astype(np.float64)
    auc, average_precision = float(roc_auc_score(truth, scores)), float(average_precision_score(truth, scores))
    if threshold is None:
        return Detection(auc, average_precision, None)
    flagged_abnormal, flagged_normal = int((abnormal > threshold).sum()), int((normal > threshold).sum())
    return Detection(auc, average_precision, float(threshold), flagged_abnormal, len(abnormal) - flagged_abnormal,
                     flagged_normal, len(normal) - flagged_normal)


def threshold_at(normal_scores: np.ndarray, false_positive_rate: float) -> float:
    """The score above which `false_positive_rate` of the normal pictures lie: their (1 - rate) quantile (NumPy's
    'higher' method, so that at most that share are flagged). Raises ValueError with no normal score."""
    if len(normal_scores) == 0:
        raise ValueError("no normal pictures to choose the threshold on")
    value = float(np.quantile(np.asarray(normal_scores, dtype=np.float64), 1.0 - false_positive_rate,
                              method="higher"))
    return value if math.isfinite(value) else float("inf")
