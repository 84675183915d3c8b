"""Probabilities a user can act on: temperature scaling, and prediction sets with a coverage guarantee.

    temperature = fit_temperature(val_logits, val_labels)           # Guo et al. 2017
    scores = conformity_scores(softmax(val_logits / T), val_labels)  # the validation split's, sorted
    tau = conformal_threshold(scores, coverage=0.9)
    sets = prediction_sets(softmax(logits / T), tau)                 # N lists of class indices, best first

- **Temperature scaling** (Guo et al. 2017, arXiv:1706.04599, section 4.2): one scalar T > 0 divides the logits,
  chosen to minimise the negative log-likelihood of the validation split. The arg max never changes, so neither does
  any top-1 prediction; only the confidence does. T is searched on log T in [log MIN_T, log MAX_T]. A validation
  split the model classifies perfectly would push T to 0 (every sharpening lowers its NLL): there T stays 1.
- **Split conformal prediction sets** with the regularised adaptive score of Angelopoulos et al. 2021 (RAPS,
  arXiv:2009.14193; with `penalty` 0 it is the adaptive sets of Romano et al. 2020, arXiv:2006.02544), not
  randomised: a class is in a picture's set when the probability mass of the classes ranked above it and its own (plus
  `penalty` for each rank past `k_reg`) stays within the threshold tau, and the top-1 class always is, so that a
  set is never empty (RAPS' allow_zero_sets=False). tau is the ceil((n + 1) x coverage)-th smallest of the n
  validation pictures' scores of their true class. If the test pictures are exchangeable with the validation ones,
  the set holds the true class with probability at least the coverage asked for (Theorem 1 of either paper).
  Keeping the top-1 class in every set can only add coverage: a model right more often than the target covers as
  often as it is right, with sets of mostly one class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

MIN_T, MAX_T = 0.05, 20.0  # temperature scaling's search bounds
PENALTY, K_REG = 0.01, 1  # RAPS' lambda and k_reg: every class past the first costs 0.01 of probability mass


def fit_temperature(logits: Tensor, labels: Tensor) -> float:
    """The temperature T (MIN_T to MAX_T) minimising the mean NLL of softmax(logits / T) against `labels` (N x K
    logits, N class indices), in float64; 1 where every top-1 is right (the split says nothing of how sure the model
    may be: its NLL only falls as T shrinks). Raises ValueError for no samples or shapes that disagree.

    A golden-section search on log T to 1e-6: the NLL is convex in 1/T, so it has one minimum on the interval.
    (scipy.optimize's bounded Brent finds the same T, but importing it costs 0.5 s: 3% of the main job.)"""
    if logits.dim() != 2 or len(logits) == 0 or labels.shape != (len(logits),):
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)}: no samples to fit on")
    z = logits.detach().double().cpu()
    y = labels.detach().long().cpu()
    if bool((z.argmax(dim=1) == y).all()):
        return 1.0  # no wrong prediction: the NLL falls as T goes to 0, and nothing says how sure to be

    def nll(log_t: float) -> float:
        return float(torch.nn.functional.cross_entropy(z / math.exp(log_t), y))

    low, high = math.log(MIN_T), math.log(MAX_T)
    ratio = (math.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = nll(a), nll(b)
    while high - low > 1e-6:
        if fa <= fb:  # the minimum is in [low, b]
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = nll(a)
        else:  # in [a, high]
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = nll(b)
    return float(math.exp((low + high) / 2))


def top1_ece(probabilities: Tensor, labels: Tensor, bins: int = 15) -> float:
    """Expected calibration error (a fraction) of the top-1 confidence of N x K probabilities against N labels, in
    `bins` equal-width bins: zoo.metrics.trust's (Guo et al. 2017, eq. 3)."""
    from zoo.metrics.trust import _reliability, expected_calibration_error

    p = probabilities.detach().double().cpu().numpy()
    confidence, correct = p.max(axis=1), p.argmax(axis=1) == labels.detach().cpu().numpy()
    return expected_calibration_error(_reliability(confidence, correct, bins), len(p))


def _ranked(probabilities: Tensor, penalty: float, k_reg: int) -> tuple[Tensor, Tensor]:
    """(N x K class indices by probability, best first (ties: the lower index), N x K penalised cumulative mass of
    that order: S_k = p_(1) + ... + p_(k) + penalty x max(0, k - k_reg))."""
    p = probabilities.detach().double().cpu()
    order = torch.sort(p, dim=1, descending=True, stable=True).indices
    ranks = torch.arange(1, p.shape[1] + 1, dtype=torch.float64)
    mass = p.gather(1, order).cumsum(dim=1) + penalty * (ranks - k_reg).clamp(min=0)
    return order, mass


def conformity_scores(probabilities: Tensor, labels: Tensor, penalty: float = PENALTY,
                      k_reg: int = K_REG) -> list[float]:
    """Each calibration picture's RAPS score, sorted: S_r of the rank r its true class holds in its N x K
    probabilities (the mass a set must pass before it reaches the true class)."""
    order, mass = _ranked(probabilities, penalty, k_reg)
    rank = (order == labels.detach().long().cpu()[:, None]).long().argmax(dim=1)
    return sorted(mass.gather(1, rank[:, None]).squeeze(1).tolist())


def conformal_threshold(scores: list[float], coverage: float) -> float:
    """The threshold tau of split conformal prediction for `coverage` (a fraction, 0 to 1 exclusive): the
    ceil((n + 1) x coverage)-th smallest of the n calibration `scores`; infinity where that exceeds n (a coverage
    above n / (n + 1) that n pictures cannot promise: every class is in every set)."""
    n = len(scores)
    k = math.ceil((n + 1) * coverage - 1e-9)  # the tolerance: 0.9 x 10 is 9, not 9.000000000000002
    return math.inf if k > n else float(sorted(scores)[max(k, 1) - 1])


def prediction_sets(probabilities: Tensor, tau: float, penalty: float = PENALTY, k_reg: int = K_REG
                    ) -> list[list[int]]:
    """Each picture's prediction set at threshold `tau` (conformal_threshold): its classes best first while their
    S_k <= tau, and at least the top-1 class (never empty; at most K)."""
    order, mass = _ranked(probabilities, penalty, k_reg)
    sizes = (mass <= tau).sum(dim=1).clamp(min=1)
    return [row[:size] for row, size in zip(order.tolist(), sizes.tolist())]


def coverage_and_size(sets: list[list[int]], labels: Tensor) -> tuple[float, float]:
    """(the share of sets that hold their true label, the mean set size)."""
    truth = labels.detach().long().cpu().tolist()
    held = sum(label in chosen for chosen, label in zip(sets, truth))
    return held / max(len(sets), 1), sum(map(len, sets)) / max(len(sets), 1)


@dataclass(frozen=True)
class Conformal:
    """What prediction sets need at any coverage: the validation split's sorted conformity scores (RAPS, on the
    temperature-scaled probabilities) and the score's parameters."""

    scores: list[float]
    penalty: float = PENALTY
    k_reg: int = K_REG

    @property
    def count(self) -> int:
        return len(self.scores)

    @property
    def highest_coverage(self) -> float:
        """The highest coverage these n scores can promise with sets smaller than every class: n / (n + 1)."""
        return self.count / (self.count + 1)

    def sets(self, probabilities: Tensor, coverage: float) -> list[list[int]]:
        return prediction_sets(probabilities, conformal_threshold(self.scores, coverage), self.penalty, self.k_reg)

    def to_dict(self) -> dict[str, Any]:
        return {"scores": list(self.scores), "penalty": self.penalty, "k_reg": self.k_reg}

    @classmethod
    def fit(cls, probabilities: Tensor, labels: Tensor) -> Conformal:
        return cls(conformity_scores(probabilities, labels))


@dataclass(frozen=True)
class Calibration:
    """What a classifier's predictions are made trustworthy with, fitted once on the validation split at the end of
    training (or by `zoo calibrate`) and kept in best.pt and every export: the temperature, the conformity scores of
    prediction sets, and the unfamiliar score (zoo.metrics.familiarity). None of the parts changes a top-1 class."""

    temperature: float
    conformal: Conformal
    familiarity: Any | None  # a Familiarity; None where the training split gave no pixel statistics

    def probabilities(self, logits: Tensor) -> Tensor:
        """N x K calibrated probabilities: softmax(logits / T), float32."""
        return (logits.float() / self.temperature).softmax(dim=1)

    def unfamiliar(self, logits: Tensor, features: Tensor) -> Tensor | None:
        """N unfamiliar scores (Familiarity.scores); None without a fitted familiarity."""
        return None if self.familiarity is None else self.familiarity.scores(logits, features)

    def figures(self, logits: Tensor, labels: Tensor, features: Tensor, coverage: float | None = None
                ) -> dict[str, Any]:
        """A labelled split's figures, as `zoo evaluate -f json` gives them: `calibration` (the temperature, the top-1
        ECE before and after it), with `coverage` `conformal` (target, empirical coverage, mean set size), and
        `unfamiliar` (threshold, the share flagged, as `test_flagged`)."""
        before, after = logits.float().softmax(dim=1), self.probabilities(logits)
        figures: dict[str, Any] = {"calibration": {"temperature": self.temperature,
                                                   "ece_before": top1_ece(before, labels),
                                                   "ece_after": top1_ece(after, labels)}}
        if coverage is not None:
            covered, size = coverage_and_size(self.conformal.sets(after, coverage), labels)
            figures["conformal"] = {"target": coverage, "coverage": covered, "mean_set_size": size,
                                    "calibration_images": self.conformal.count}
        scores = self.unfamiliar(logits, features)
        if scores is not None:
            figures["unfamiliar"] = {"threshold": self.familiarity.threshold,
                                     "familiar_share": self.familiarity.familiar_share,
                                     "test_flagged": float((scores > self.familiarity.threshold).double().mean())}
        return figures

    @classmethod
    def fit(cls, logits: Tensor, labels: Tensor, features: Tensor, train_features: Tensor | None,
            familiar_share: float) -> Calibration:
        """Fitted on the validation split's N x K logits, labels and pixel_features, and the training images'
        pixel_features (None, or fewer than 2: no unfamiliar score). Raises ValueError for no validation sample."""
        from zoo.metrics.familiarity import Familiarity

        temperature = fit_temperature(logits, labels)
        conformal = Conformal.fit((logits.float() / temperature).softmax(dim=1), labels)
        familiarity = (Familiarity.fit(train_features, logits, features, familiar_share)
                       if train_features is not None and len(train_features) >= 2 else None)
        return cls(temperature, conformal, familiarity)

    def to_dict(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "conformal": self.conformal.to_dict(),
                "familiarity": None if self.familiarity is None else self.familiarity.to_dict()}

    @classmethod
    def from_dict(cls, data: Any, features: int | None = None) -> Calibration:
        """A stored calibration, each part checked: a finite temperature within the search's bounds, sorted finite
        scores, a Familiarity of `features` pixel statistics (None: not checked). Raises ValueError naming the part
        that is wrong."""
        from zoo.metrics.familiarity import Familiarity

        if not isinstance(data, dict) or not isinstance(data.get("conformal"), dict):
            raise ValueError("is not a mapping of temperature, conformal and familiarity")
        temperature = _finite(data.get("temperature"), "temperature")
        if not MIN_T <= temperature <= MAX_T:
            raise ValueError(f"temperature is {temperature}, outside {MIN_T} to {MAX_T}")
        stored = data["conformal"]
        scores = [_finite(value, "conformal.scores") for value in _list(stored.get("scores"), "conformal.scores")]
        if not scores or scores != sorted(scores):
            raise ValueError("conformal.scores are empty or not sorted")
        conformal = Conformal(scores, _finite(stored.get("penalty", PENALTY), "conformal.penalty"),
                              int(_finite(stored.get("k_reg", K_REG), "conformal.k_reg")))
        familiar = data.get("familiarity")
        if familiar is None:
            return cls(temperature, conformal, None)
        if not isinstance(familiar, dict):
            raise ValueError("familiarity is not a mapping")
        mean = [_finite(v, "familiarity.mean") for v in _list(familiar.get("mean"), "familiarity.mean")]
        precision = [[_finite(v, "familiarity.precision") for v in _list(row, "familiarity.precision")]
                     for row in _list(familiar.get("precision"), "familiarity.precision")]
        if (features is not None and len(mean) != features) or any(len(row) != len(mean) for row in precision) \
                or len(precision) != len(mean):
            raise ValueError(f"familiarity holds {len(mean)} pixel statistics, not the "
                             f"{features if features is not None else len(mean)} (in a square matrix) this "
                             "network's input gives")
        pair = [[_finite(v, f"familiarity.{key}") for v in _list(familiar.get(key), f"familiarity.{key}")]
                for key in ("centre", "scale")]
        share = _finite(familiar.get("familiar_share", 0.95), "familiarity.familiar_share")
        if any(len(values) != 2 for values in pair) or min(pair[1]) <= 0 or not 0 < share < 1:
            raise ValueError("familiarity's centre, scale or familiar_share is out of range")
        return cls(temperature, conformal, Familiarity(mean, precision, *pair,
                                                       _finite(familiar.get("threshold"), "familiarity.threshold"),
                                                       share))


def _finite(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} holds {value!r}, not a finite number")
    return float(value)


def _list(value: Any, name: str) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{name} is not a list")
    return list(value)
