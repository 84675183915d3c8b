"""zoo.metrics.classification: accuracy, top-5, loss and macro averages from summed counts, as scikit-learn."""

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, top_k_accuracy_score

from zoo.metrics import MetricAccumulator


def test_metrics_match_scikit_learn_over_uneven_batches():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(103, 7, generator=generator)
    targets = torch.randint(0, 7, (103,), generator=generator)
    targets[:3] = 6  # make sure class 6 exists; class predictions may still miss some classes
    meter = MetricAccumulator(7)
    for start in range(0, 103, 25):  # batches of 25, 25, 25, 25, 3
        chunk = slice(start, start + 25)
        loss = torch.nn.functional.cross_entropy(logits[chunk], targets[chunk])
        meter.update(logits[chunk], targets[chunk], loss)
    metrics = meter.compute()
    predictions = logits.argmax(1).numpy()
    assert metrics.count == 103
    assert metrics.accuracy == pytest.approx((predictions == targets.numpy()).mean())
    assert metrics.top5_accuracy == pytest.approx(
        top_k_accuracy_score(targets.numpy(), logits.numpy(), k=5, labels=range(7)))
    assert metrics.loss == pytest.approx(torch.nn.functional.cross_entropy(logits, targets).item(), rel=1e-6)
    assert np.array_equal(metrics.confusion.numpy(), confusion_matrix(targets.numpy(), predictions, labels=range(7)))
    precision, recall, f1, support = metrics.per_class()
    expected = precision_recall_fscore_support(targets.numpy(), predictions, labels=range(7), zero_division=0)
    for ours, theirs in zip((precision, recall, f1, support), expected):
        assert np.allclose(ours.numpy(), theirs)
    assert metrics.macro()["f1"] == pytest.approx(expected[2].mean())


@pytest.mark.parametrize("classes", [2, 5])
def test_top5_with_five_classes_or_fewer_is_not_reported(classes):
    # It would be 1 whatever the model does (it used to be reported as 100%): n/a, None in JSON.
    meter = MetricAccumulator(classes)
    logits = torch.zeros(2, classes)
    logits[0, 0], logits[1, 1] = 2.0, 3.0
    meter.update(logits, torch.tensor([1, 1]), torch.tensor(0.5))
    metrics = meter.compute()
    assert metrics.accuracy == 0.5 and metrics.top5_accuracy is None and metrics.summary()["top5_accuracy"] is None


def test_top5_with_six_classes_is_reported():
    meter = MetricAccumulator(6)
    logits = torch.arange(6.0).repeat(2, 1)  # class 5 first, class 0 last
    meter.update(logits, torch.tensor([0, 1]), torch.tensor(0.5))
    assert meter.compute().top5_accuracy == 0.5


@pytest.mark.parametrize("num_classes", [3, 12])
def test_macro_averages_run_over_the_classes_present_as_in_scikit_learn(num_classes):
    # A class with no sample that is never predicted (a rare class with nothing in the test split, or a head
    # wider than the data) is not averaged in as 0: a perfect model's macro figures are 1.
    targets = torch.tensor([0] * 6 + [1] * 6)
    for predictions in (targets, torch.tensor([0] * 5 + [1] * 6 + [2])):  # perfect; then one image called class 2
        meter = MetricAccumulator(num_classes)
        meter.update(torch.nn.functional.one_hot(predictions, num_classes).float(), targets, torch.tensor(0.1))
        macro = meter.compute().macro()
        expected = precision_recall_fscore_support(targets.numpy(), predictions.numpy(), average="macro",
                                                   zero_division=0)
        assert (macro["precision"], macro["recall"], macro["f1"]) == pytest.approx(expected[:3])
        assert macro["classes"] == len(set(targets.tolist()) | set(predictions.tolist()))
    assert macro["precision"] == pytest.approx((5 / 5 + 5 / 6 + 0) / 3)  # class 2 is present: predicted once


def test_no_samples_is_an_error():
    with pytest.raises(ValueError, match="no samples"):
        MetricAccumulator(3).compute()
