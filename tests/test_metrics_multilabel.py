"""zoo.metrics.multilabel: every figure against scikit-learn on random N x K data, the edge cases (a class with no
positive, a class never predicted, all correct, K = 2), batching, checkpoints, thresholds, AP and best thresholds."""

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    hamming_loss,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
)

from zoo.metrics.classification import FLUSH_BATCHES
from zoo.metrics.multilabel import (
    MultilabelAccumulator,
    average_precision,
    best_thresholds,
    predicted_sets,
)

SHAPES = [(1, 2), (37, 2), (103, 5), (64, 13)]  # (N, K)


def _data(n: int, k: int, seed: int, integer_targets: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and 0/1 targets with the edge cases built in: class 0 has no positive (K > 2: K = 2 keeps both
    classes live), the last class is never predicted."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, generator=generator) * 2
    targets = (torch.rand(n, k, generator=generator) < torch.linspace(0.2, 0.7, k)).float()
    if k > 2:
        targets[:, 0] = 0
    logits[:, -1] = -5.0
    return logits, targets.long() if integer_targets else targets


def _accumulate(logits, targets, batch: int, meter: MultilabelAccumulator | None = None) -> MultilabelAccumulator:
    meter = meter or MultilabelAccumulator(logits.shape[1])
    for start in range(0, len(logits), batch):
        chunk = slice(start, start + batch)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits[chunk], targets[chunk].float())
        meter.update(logits[chunk], targets[chunk], loss)
    return meter


def _assert_like_scikit_learn(metrics, truth: np.ndarray, predicted: np.ndarray) -> None:
    assert np.array_equal(metrics.counts.numpy(), multilabel_confusion_matrix(truth, predicted))
    assert metrics.accuracy == metrics.exact_match == pytest.approx(accuracy_score(truth, predicted))
    assert metrics.hamming_loss == pytest.approx(hamming_loss(truth, predicted))
    expected = precision_recall_fscore_support(truth, predicted, zero_division=0)
    for ours, theirs in zip(metrics.per_class(), expected):
        assert np.allclose(ours.numpy(), theirs)
    assert metrics.per_class()[3].dtype == torch.int64
    for average in ("macro", "micro"):
        ours = getattr(metrics, average)()
        theirs = precision_recall_fscore_support(truth, predicted, average=average, zero_division=0)
        assert (ours["precision"], ours["recall"], ours["f1"]) == pytest.approx(theirs[:3])
    assert metrics.summary()["f1_micro"] == pytest.approx(f1_score(truth, predicted, average="micro", zero_division=0))
    assert metrics.summary()["f1_macro"] == pytest.approx(f1_score(truth, predicted, average="macro", zero_division=0))


@pytest.mark.parametrize("n, k", SHAPES)
@pytest.mark.parametrize("integer_targets", [False, True])
def test_accumulator_matches_scikit_learn_over_uneven_batches(n, k, integer_targets):
    logits, targets = _data(n, k, seed=n * k, integer_targets=integer_targets)
    metrics = _accumulate(logits, targets, batch=10).compute()
    predicted = (logits.sigmoid() >= 0.5).numpy()
    assert not predicted[:, -1].any()  # the edge cases are there
    assert metrics.count == n
    assert metrics.loss == pytest.approx(
        torch.nn.functional.binary_cross_entropy_with_logits(logits, targets.float()).item(), rel=1e-6)
    _assert_like_scikit_learn(metrics, targets.numpy().astype(int), predicted.astype(int))
    assert metrics.macro()["classes"] == k and metrics.present().all() and len(metrics.present()) == k
    assert metrics.top5_accuracy is None and metrics.summary()["top5_accuracy"] is None


@pytest.mark.parametrize("k", [2, 6])
def test_all_correct_with_an_empty_class_is_averaged_in_as_zero(k):
    # sklearn's macro on multilabel input averages every label: a class neither present nor predicted is a 0.
    targets = torch.zeros(20, k)
    targets[::2, 1:] = 1
    logits = (targets * 2 - 1) * 4
    metrics = _accumulate(logits, targets, batch=7).compute()
    truth = targets.numpy().astype(int)
    _assert_like_scikit_learn(metrics, truth, truth)
    assert metrics.accuracy == 1 and metrics.hamming_loss == 0 and metrics.micro()["f1"] == 1
    assert metrics.macro()["f1"] == pytest.approx((k - 1) / k)


def test_several_batches_count_as_one():
    logits, targets = _data(150, 7, seed=3)
    whole = _accumulate(logits, targets, batch=150).compute()
    for batch in (1, 13):  # 150 batches of one flush on FLUSH_BATCHES twice before compute
        split = _accumulate(logits, targets, batch=batch)
        if batch == 1:
            assert len(split.pending) == 150 - 2 * FLUSH_BATCHES
        metrics = split.compute()
        assert torch.equal(metrics.counts, whole.counts) and metrics.accuracy == whole.accuracy
        assert metrics.loss == pytest.approx(whole.loss, rel=1e-6)  # float32 batch means


def test_state_dict_round_trip_resumes_mid_epoch():
    logits, targets = _data(90, 4, seed=5)
    first = _accumulate(logits[:40], targets[:40], batch=8)
    state = first.state_dict()
    assert all(tensor.device.type == "cpu" for tensor in state.values())
    resumed = MultilabelAccumulator(4)
    resumed.update(logits[:5], targets[:5], torch.tensor(9.0))  # dropped by the load, like a half-finished batch
    resumed.load_state_dict(state)
    metrics = _accumulate(logits[40:], targets[40:], batch=8, meter=resumed).compute()
    whole = _accumulate(logits, targets, batch=8).compute()
    assert metrics.count == 90 and torch.equal(metrics.counts, whole.counts)
    assert metrics.accuracy == whole.accuracy and metrics.loss == pytest.approx(whole.loss, rel=1e-6)


def test_thresholds_move_the_counts():
    probabilities = torch.tensor([[0.3, 0.95], [0.6, 0.7], [0.1, 0.5], [0.25, 0.2]])
    targets = torch.tensor([[1, 1], [0, 1], [0, 0], [1, 0]])
    logits = torch.logit(probabilities)
    default = _accumulate(logits, targets, batch=4).compute()
    thresholds = torch.tensor([0.2, 0.8])
    moved = _accumulate(logits, targets, batch=4, meter=MultilabelAccumulator(2, thresholds=thresholds)).compute()
    # class 0 at 0.2: 0.3 and 0.25 (both positive) join 0.6, a false positive; class 1 at 0.8: only 0.95 stays
    assert moved.counts.tolist() == [[[1, 1], [0, 2]], [[2, 0], [1, 1]]]
    assert default.counts.tolist() == [[[1, 1], [2, 0]], [[1, 1], [0, 2]]]  # 0.5 on the threshold is predicted
    expected = (logits.sigmoid() >= thresholds).numpy()
    assert np.array_equal(moved.counts.numpy(), multilabel_confusion_matrix(targets.numpy(), expected))
    assert moved.accuracy == 0.75 and default.accuracy == 0


def test_bad_use_is_an_error():
    with pytest.raises(ValueError, match="no samples were evaluated"):
        MultilabelAccumulator(3).compute()
    with pytest.raises(ValueError, match="thresholds"):
        MultilabelAccumulator(3, thresholds=torch.full((2,), 0.5))
    with pytest.raises(ValueError, match="thresholds"):
        predicted_sets(torch.rand(4, 3), torch.full((4,), 0.5))
    with pytest.raises(ValueError, match="0 or 1"):
        average_precision(torch.rand(4, 3), torch.full((4, 3), 2))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        best_thresholds(torch.randn(4, 3) * 5, torch.ones(4, 3))


def test_predicted_sets_counts_a_score_on_the_threshold_as_positive():
    probabilities = torch.tensor([[0.5, 0.3], [0.49, 0.3000001]])
    assert predicted_sets(probabilities, torch.tensor([0.5, 0.3])).tolist() == [[True, True], [False, True]]


@pytest.mark.parametrize("n, k", SHAPES + [(200, 9)])
@pytest.mark.parametrize("ties", [False, True])
def test_average_precision_matches_scikit_learn_per_class(n, k, ties):
    logits, targets = _data(n, k, seed=n + k)
    scores = logits.sigmoid().double()
    if ties:  # sklearn takes equal scores as one threshold, whatever their order
        scores = (scores * 4).round() / 4
    ap, mean_ap = average_precision(scores, targets)
    expected = [average_precision_score(targets[:, c].numpy(), scores[:, c].numpy()) if targets[:, c].any()
                else np.nan for c in range(k)]
    assert ap.shape == (k,) and ap.dtype == torch.float64
    assert np.allclose(ap.numpy(), expected, equal_nan=True, rtol=1e-12, atol=0)
    defined = [value for value in expected if not np.isnan(value)]
    assert mean_ap == pytest.approx(np.mean(defined)) if defined else mean_ap is None
    if not ties:  # any monotone score: the logits rank the samples as the probabilities do
        assert torch.allclose(average_precision(logits.double(), targets)[0], ap, equal_nan=True)


def test_average_precision_without_positives_is_none():
    ap, mean_ap = average_precision(torch.rand(6, 3), torch.zeros(6, 3))
    assert ap.isnan().all() and mean_ap is None


def _best_f1(truth: np.ndarray, probability: np.ndarray) -> float:
    """The highest F1 over every threshold, brute force: one column per distinct probability, one f1_score call."""
    predicted = probability[:, None] >= np.unique(probability)[None, :]
    truths = np.repeat(truth[:, None], predicted.shape[1], axis=1)
    return f1_score(truths, predicted.astype(int), average=None, zero_division=0).max()


@pytest.mark.parametrize("n, k", SHAPES + [(300, 6)])
@pytest.mark.parametrize("ties", [False, True])
def test_best_thresholds_reach_the_highest_f1_and_sit_between_samples(n, k, ties):
    logits, targets = _data(n, k, seed=2 * n + k)
    probabilities = logits.sigmoid()
    if ties:
        probabilities = (probabilities * 10).round() / 10
    thresholds = best_thresholds(probabilities, targets, default=0.7)
    assert thresholds.dtype == torch.float32 and thresholds.shape == (k,)
    p, truth = probabilities.numpy(), targets.numpy().astype(int)
    for c in range(k):
        if not truth[:, c].any():
            assert thresholds[c] == pytest.approx(0.7)
            continue
        t = thresholds[c].numpy()
        assert t == 0 or not (p[:, c] == t).any()  # nothing lies below a probability of 0: any runtime keeps it
        assert f1_score(truth[:, c], p[:, c] >= t, zero_division=0) == pytest.approx(_best_f1(truth[:, c], p[:, c]))


def test_best_thresholds_break_ties_towards_one_half():
    # positive, negative, negative, positive: the top one and all four both give F1 2/3
    targets = torch.tensor([[1.0], [0.0], [0.0], [1.0]])
    high = best_thresholds(torch.tensor([[0.9], [0.8], [0.7], [0.6]]), targets)
    low = best_thresholds(torch.tensor([[0.95], [0.3], [0.2], [0.1]]), targets)
    assert high.item() == pytest.approx(0.3)  # half the lowest, 0.2 from 0.5; the top one's 0.85 is 0.35 away
    assert low.item() == pytest.approx(0.625)  # halfway from 0.95 to 0.3; all four's 0.05 is 0.45 away


@pytest.mark.parametrize("odd", [False, True])
def test_best_thresholds_between_adjacent_floats_still_decide_right(odd):
    # No float32 lies strictly between them: the threshold sits on the positive one, which p >= t keeps. Their
    # midpoint rounds to the even one of the two: with an odd top it lands on the negative, and must be moved up.
    top = torch.nextafter(torch.tensor(0.6), torch.tensor(1.0)) if odd else torch.tensor(0.6)
    assert top.view(torch.int32).item() % 2 == odd
    below = torch.nextafter(top, torch.tensor(0.0))
    probabilities = torch.stack([top, below, torch.tensor(0.1)])[:, None]
    threshold = best_thresholds(probabilities, torch.tensor([[1], [0], [0]]))
    assert threshold.item() == top.item()
    assert predicted_sets(probabilities, threshold)[:, 0].tolist() == [True, False, False]
