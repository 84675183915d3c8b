"""How unlike the training data a picture is: the "unfamiliar" score and its threshold.

    familiarity = Familiarity.fit(train_features, val_logits, val_features, familiar_share=0.95)
    scores = familiarity.scores(logits, pixel_features(images))    # N, higher: less familiar
    flagged = scores > familiarity.threshold

Two published, cheap signals, each standardised on the validation split and combined by their maximum:
- **energy** of the logits, -logsumexp(f(x)) (Liu et al. 2020, arXiv:2010.03759, with T = 1): what the network
  thinks of the picture. It is low for a picture like those it learnt, and unlike the top-1 probability it does not
  saturate. But a network can be sure of a picture it never saw (Nguyen et al. 2015): dark-on-white digits get a
  mean top-1 probability of 0.71 from a model of light-on-dark ones.
- **pixel statistics**: the Mahalanobis distance of a picture's pixel statistics from the training images' (the
  features below, with the Ledoit-Wolf shrunk covariance, so that a few hundred images estimate it). What
  the network never sees as a question: an inverted, blank, noisy or coloured picture is far from the training
  images in these figures, however sure the network is.

Each signal s becomes z = (s - its validation median) / (its validation 95th percentile - that median), so that
both are on one scale; the score is max(z_energy, z_pixels), and the threshold is the validation split's
`familiar_share` quantile (NumPy's "higher") of it: that share of familiar pictures passes. The pixel statistics
are read from the network's input (the preprocessed, normalized picture): per channel its mean, standard deviation,
mean absolute difference of horizontal and vertical neighbours, and a 4 x 4 thumbnail (adaptive average pooling).

A sentence (a text network's input, token ids) has no pixel statistics: it gives none (D = 0), its distance is 0,
and the score is the energy's alone (max(z_energy, 0): a sentence the network knows better than the validation
median scores 0); the threshold is then the energy's own familiar_share quantile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

FAMILIAR_SHARE = 0.95  # the share of familiar (validation) pictures under the threshold
THUMBNAIL = 4  # the thumbnail's side
FEATURES_PER_CHANNEL = 4 + THUMBNAIL * THUMBNAIL


def feature_count(in_channels: Any, input_size: Any) -> int | None:
    """How many pixel_features a network's input of `in_channels` x `input_size` x `input_size` gives (None: not
    known)."""
    if not isinstance(in_channels, int) or not isinstance(input_size, int):
        return None
    return in_channels if input_size == 1 else in_channels * FEATURES_PER_CHANNEL


def pixel_features(images: Tensor) -> Tensor:
    """N x C x H x W pictures (the network's input) -> N x (C x FEATURES_PER_CHANNEL) float64 statistics; N x D
    inputs that are no pictures (xor's points) -> themselves, in float64; token ids (integers) -> none, N x 0."""
    if not images.is_floating_point():
        return torch.empty(len(images), 0, dtype=torch.float64)
    x = images.detach().float()
    if x.dim() != 4:
        return x.flatten(1).double().cpu()
    n, c = x.shape[:2]
    flat = x.flatten(2)
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(2).mean(2) if x.shape[3] > 1 else flat.new_zeros(n, c)
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(2).mean(2) if x.shape[2] > 1 else flat.new_zeros(n, c)
    thumbnail = torch.nn.functional.adaptive_avg_pool2d(x, THUMBNAIL).flatten(2)
    per_channel = torch.cat([flat.mean(2, keepdim=True), flat.std(2, keepdim=True, correction=0), dx[..., None],
                             dy[..., None], thumbnail], dim=2)
    return per_channel.flatten(1).double().cpu()


def energy(logits: Tensor) -> Tensor:
    """-logsumexp of N x K logits (N, float64): Liu et al.'s energy score at T = 1; higher is less familiar."""
    return -torch.logsumexp(logits.detach().double().cpu(), dim=1)


@dataclass(frozen=True)
class Familiarity:
    """The fitted unfamiliar score: the training images' pixel statistics (mean, shrunk precision matrix), each
    signal's validation median and scale, and the threshold."""

    mean: list[float]  # D: the training images' pixel statistics
    precision: list[list[float]]  # D x D: the inverse of their Ledoit-Wolf covariance
    centre: list[float]  # [energy, pixel distance]: validation medians
    scale: list[float]  # their validation 95th percentiles less the medians
    threshold: float  # on the combined score: above it, a picture is unfamiliar
    familiar_share: float = FAMILIAR_SHARE

    @classmethod
    def fit(cls, train_features: Tensor, val_logits: Tensor, val_features: Tensor,
            familiar_share: float = FAMILIAR_SHARE) -> Familiarity:
        """Fitted on the training images' pixel_features (N x D; 2 or more images) and the validation split's N x K
        logits and pixel_features. Raises ValueError for fewer than 2 training images or no validation one."""
        if len(train_features) < 2 or len(val_logits) == 0:
            raise ValueError("the unfamiliar score needs 2 or more training images and a validation split")
        train = train_features.double().numpy()
        location = train.mean(axis=0)
        # no pixel statistics (token ids): no covariance to estimate, a distance of 0
        precision = np.linalg.pinv(ledoit_wolf(train), hermitian=True) if train.shape[1] else np.zeros((0, 0))
        signals = np.stack([energy(val_logits).numpy(),
                            _distance(val_features.double().numpy(), location, precision)])
        centre = np.median(signals, axis=1)
        top = np.array([quantile_higher(row, FAMILIAR_SHARE) for row in signals])
        scale = np.maximum(top - centre, 1e-6 * (np.abs(centre) + 1))  # a signal constant on the split: any rise counts
        combined = ((signals - centre[:, None]) / scale[:, None]).max(axis=0)
        return cls(location.tolist(), precision.tolist(), centre.tolist(), scale.tolist(),
                   quantile_higher(combined, familiar_share), familiar_share)

    def signals(self, logits: Tensor, features: Tensor) -> Tensor:
        """2 x N: each picture's energy and pixel distance, standardised."""
        raw = np.stack([energy(logits).numpy(),
                        _distance(features.double().numpy(), np.asarray(self.mean), np.asarray(self.precision))])
        centre, scale = np.asarray(self.centre)[:, None], np.asarray(self.scale)[:, None]
        return torch.from_numpy((raw - centre) / scale)

    def scores(self, logits: Tensor, features: Tensor) -> Tensor:
        """N unfamiliar scores (float64) of N x K logits and the pictures' N x D pixel_features; above `threshold`,
        a picture is unlike the training data."""
        return self.signals(logits, features).max(dim=0).values

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "precision": self.precision, "centre": self.centre, "scale": self.scale,
                "threshold": self.threshold, "familiar_share": self.familiar_share}


def quantile_higher(values: np.ndarray, share: float) -> float:
    """NumPy's "higher" quantile: the smallest value with at least `share` of `values` at or below it."""
    return float(np.quantile(np.asarray(values, dtype=np.float64), share, method="higher"))


def ledoit_wolf(x: np.ndarray) -> np.ndarray:
    """The Ledoit-Wolf shrunk covariance (D x D) of the rows of N x D `x`: (1 - s) S + s mu I, with S the sample
    covariance (divided by N), mu its mean variance and s the shrinkage that minimises the expected squared error
    (Ledoit and Wolf 2004, "A well-conditioned estimator for large-dimensional covariance matrices", Lemma 3.1-3.4).
    scikit-learn's LedoitWolf().fit(x).covariance_, to rounding (tested); written here because importing
    sklearn.covariance costs a second, 6% of the main job."""
    n = len(x)
    centred = x - x.mean(axis=0)
    sample = centred.T @ centred / n
    mu = np.trace(sample) / len(sample)
    target = sample - mu * np.eye(len(sample))
    delta = (target ** 2).sum() / len(sample)  # the distance of S from mu I
    # beta: how far each observation's outer product scatters around S, averaged
    beta = ((centred ** 2).T @ (centred ** 2)).sum() / n - (sample ** 2).sum()
    beta = min(beta / (n * len(sample)), delta)
    shrinkage = 0.0 if delta == 0 else beta / delta
    return (1 - shrinkage) * sample + shrinkage * mu * np.eye(len(sample))


def _distance(features: np.ndarray, mean: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """The Mahalanobis distance of each row of N x D `features` from `mean` under `precision`."""
    centred = features - mean
    precision = precision.reshape(len(mean), len(mean))  # a stored 0 x 0 matrix reads back as [] (no statistics)
    return np.sqrt(np.maximum(np.einsum("nd,de,ne->n", centred, precision, centred), 0.0))


def separation(familiar: Tensor, unfamiliar: Tensor) -> float | None:
    """ROC AUC of the unfamiliar scores telling `unfamiliar` pictures (positives) from `familiar` ones
    (scikit-learn's roc_auc_score); None where either is empty."""
    from sklearn.metrics import roc_auc_score

    if len(familiar) == 0 or len(unfamiliar) == 0:
        return None
    truth = np.r_[np.zeros(len(familiar)), np.ones(len(unfamiliar))]
    return float(roc_auc_score(truth, np.r_[familiar.numpy(), unfamiliar.numpy()]))
