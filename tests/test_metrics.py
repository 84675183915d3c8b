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
    assert metrics.top5_accuracy == pytest.approx(top_k_accuracy_score(targets.numpy(), logits.numpy(), k=5, labels=range(7)))
    assert metrics.loss == pytest.approx(torch.nn.functional.cross_entropy(logits, targets).item(), rel=1e-6)
    assert np.array_equal(metrics.confusion.numpy(), confusion_matrix(targets.numpy(), predictions, labels=range(7)))
    precision, recall, f1, support = metrics.per_class()
    expected = precision_recall_fscore_support(targets.numpy(), predictions, labels=range(7), zero_division=0)
    for ours, theirs in zip((precision, recall, f1, support), expected):
        assert np.allclose(ours.numpy(), theirs)
    assert metrics.macro()["f1"] == pytest.approx(expected[2].mean())


def test_top5_with_fewer_than_five_classes_is_certain():
    meter = MetricAccumulator(2)
    meter.update(torch.tensor([[2.0, 1.0], [0.0, 3.0]]), torch.tensor([1, 1]), torch.tensor(0.5))
    metrics = meter.compute()
    assert metrics.accuracy == 0.5 and metrics.top5_accuracy == 1.0


def test_no_samples_is_an_error():
    with pytest.raises(ValueError, match="no samples"):
        MetricAccumulator(3).compute()
