"""zoo.metrics.paired against the textbook formulas and scipy's tests: McNemar's exact test (the binomial sums
written out), the paired t-test (scipy.stats.ttest_rel) and its interval, the mean and standard error."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from zoo.metrics.paired import exact_p, mcnemar, mean_se, paired_difference


def _binomial_two_sided(k: int, n: int) -> float:
    """McNemar's exact p as statsmodels computes it: twice the smaller tail of Binomial(n, 1/2), at most 1."""
    tail = sum(math.comb(n, i) for i in range(min(k, n - k) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


@pytest.mark.parametrize("to_right, to_wrong", [(2, 10), (10, 2), (0, 7), (5, 5), (1, 0), (40, 12), (3, 31)])
def test_mcnemar_exact_p_is_twice_the_binomial_tail(to_right, to_wrong):
    assert exact_p(to_right, to_wrong) == pytest.approx(_binomial_two_sided(to_right, to_right + to_wrong), rel=1e-12)


def test_mcnemar_counts_the_discordant_images_each_way():
    right_a = np.array([1, 1, 1, 0, 0, 1, 0, 1, 1, 1], dtype=bool)
    right_b = np.array([1, 0, 0, 1, 0, 1, 1, 1, 0, 1], dtype=bool)
    test = mcnemar(right_a, right_b)
    assert (test.to_right, test.to_wrong, test.both_right, test.both_wrong) == (2, 3, 4, 1)
    assert test.images == 10
    assert test.p_value == pytest.approx(_binomial_two_sided(2, 5))  # 1.0: five flips say nothing
    assert mcnemar(right_a, right_a).p_value == 1.0  # no flip: no evidence either way


def test_mcnemar_refuses_answers_of_different_lengths():
    with pytest.raises(ValueError, match="two answers per image"):
        mcnemar([True, False], [True])


def test_paired_difference_matches_scipys_paired_t_test_and_its_interval():
    a = [0.91, 0.93, 0.90, 0.94, 0.92]
    b = [0.95, 0.96, 0.93, 0.97, 0.97]
    difference = paired_difference(b, a)
    d = np.subtract(b, a)
    se = d.std(ddof=1) / math.sqrt(len(d))
    assert difference.mean == pytest.approx(d.mean())
    assert difference.se == pytest.approx(se)
    assert difference.p_value == pytest.approx(stats.ttest_rel(b, a).pvalue, rel=1e-9)
    half = stats.t.ppf(0.975, len(d) - 1) * se
    assert (difference.low, difference.high) == pytest.approx((d.mean() - half, d.mean() + half))
    assert difference.pairs == 5 and difference.low > 0  # every seed gained: the interval excludes 0


def test_paired_difference_of_one_seed_has_no_interval_and_of_equal_differences_no_p():
    one = paired_difference([0.9], [0.8])
    assert one.mean == pytest.approx(0.1) and one.se is None and one.p_value is None
    same = paired_difference([0.9, 0.8, 0.7], [0.8, 0.7, 0.6])  # float rounding apart, the same 0.1 three times
    assert same.se == 0 and same.p_value is None and same.low == same.high == pytest.approx(0.1)
    with pytest.raises(ValueError, match="needs pairs"):
        paired_difference([0.9, 0.8], [0.8])


def test_mean_and_standard_error():
    values = [0.97, 0.98, 0.975, 0.99]
    mean, se = mean_se(values)
    assert mean == pytest.approx(np.mean(values))
    assert se == pytest.approx(np.std(values, ddof=1) / 2)
    assert mean_se([0.5]) == (0.5, None)
    with pytest.raises(ValueError):
        mean_se([])
