"""The statistics of a comparison: a group of seeds' mean and standard error, the paired difference of two groups
over the seeds they share, and McNemar's exact test on two models' answers to the same test images.

    mean, se = mean_se([0.97, 0.98, 0.975])                       # se: None for one value
    diff = paired_difference([0.97, 0.98], [0.91, 0.93])          # a - b: mean, se, 95% CI, p (paired t-test)
    test = mcnemar(right_a, right_b)                              # N booleans each: the same images, in one order

scipy gives the distributions (scipy.stats.t, scipy.stats.binomtest), imported when a test is computed. The
conventions are statsmodels' (`statsmodels.stats.contingency_tables.mcnemar(exact=True)`: the two-sided binomial
test of the discordant pairs at 1/2) and the textbook paired t-test's (scipy.stats.ttest_rel).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95  # the confidence intervals' level


def mean_se(values: Sequence[float]) -> tuple[float, float | None]:
    """The mean of `values` and its standard error (the sample standard deviation, n - 1 in the denominator, over
    the square root of n); the error is None for a single value. Raises ValueError for no values."""
    if not len(values):
        raise ValueError("mean_se of no values")
    array = np.asarray(values, dtype=np.float64)
    if len(array) == 1:
        return float(array[0]), None
    return float(array.mean()), float(array.std(ddof=1) / math.sqrt(len(array)))


@dataclass(frozen=True)
class PairedDifference:
    """a - b over n pairs (the seeds two groups share): the mean difference, its standard error, the
    `confidence` interval from Student's t with n - 1 degrees of freedom, and the paired t-test's two-sided p-value.
    With one pair: the difference alone (se, interval and p None). All differences equal (to 1e-12: accuracies
    over one test split that moved by the same images): se 0, the interval the point, and no p-value, since a
    t-test without spread is undefined."""

    mean: float
    se: float | None
    low: float | None
    high: float | None
    p_value: float | None
    pairs: int
    confidence: float = CONFIDENCE


def paired_difference(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> PairedDifference:
    """a[i] - b[i] summarised (PairedDifference). Raises ValueError for sequences of different lengths or none."""
    if len(a) != len(b) or not len(a):
        raise ValueError(f"paired_difference needs pairs: got {len(a)} and {len(b)} values")
    differences = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    mean, se = mean_se(differences)
    if se is None:
        return PairedDifference(mean, None, None, None, None, 1, confidence)
    if np.ptp(differences) <= 1e-12:  # float rounding apart, one value: no spread
        return PairedDifference(mean, 0.0, mean, mean, None, len(differences), confidence)
    from scipy import stats

    freedom = len(differences) - 1
    half = float(stats.t.ppf(0.5 + confidence / 2, freedom)) * se
    p_value = float(2 * stats.t.sf(abs(mean / se), freedom))
    return PairedDifference(mean, se, mean - half, mean + half, p_value, len(differences), confidence)


@dataclass(frozen=True)
class McNemar:
    """Two models on the same N images: `to_wrong` images the first got right and the second wrong, `to_right` the
    reverse, `both_right` and `both_wrong`; `p_value`, McNemar's exact test (McNemar 1947, doi:10.1007/BF02295996):
    the two-sided binomial test of to_right among the to_right + to_wrong discordant images at 1/2 (1 when there
    are none). Small p: the two models' error rates differ beyond what chance would flip."""

    to_right: int
    to_wrong: int
    both_right: int
    both_wrong: int
    p_value: float

    @property
    def images(self) -> int:
        return self.to_right + self.to_wrong + self.both_right + self.both_wrong


def mcnemar(right_a: Sequence[bool] | np.ndarray, right_b: Sequence[bool] | np.ndarray) -> McNemar:
    """McNemar's exact test of N booleans each (image i answered right by model a, by model b). Raises ValueError
    for arrays of different lengths."""
    right_a, right_b = np.asarray(right_a, dtype=bool), np.asarray(right_b, dtype=bool)
    if right_a.shape != right_b.shape or right_a.ndim != 1:
        raise ValueError(f"mcnemar needs two answers per image: got {right_a.shape} and {right_b.shape}")
    to_right, to_wrong = int((~right_a & right_b).sum()), int((right_a & ~right_b).sum())
    return McNemar(to_right, to_wrong, int((right_a & right_b).sum()), int((~right_a & ~right_b).sum()),
                   exact_p(to_right, to_wrong))


def exact_p(to_right: int, to_wrong: int) -> float:
    """McNemar's exact two-sided p-value for these discordant counts (scipy.stats.binomtest at 1/2): pooled counts
    over several seeds' pairs are tested the same way."""
    if to_right + to_wrong == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(min(1.0, binomtest(to_right, to_right + to_wrong, 0.5).pvalue))
