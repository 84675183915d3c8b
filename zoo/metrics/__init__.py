"""What a classifier's outputs measure: the figures every split reports, and how far its probabilities can be trusted.

    meter = MetricAccumulator(num_classes); meter.update(logits, targets, loss); metrics = meter.compute()
    trust = compute_trust(logits, targets, classes)             # ROC AUC, average precision, ECE, surest mistakes

Both follow scikit-learn's definitions and are tested against it. No plotting here: the pictures of these
figures are zoo.present.figures'.

    classification.py  loss, top-1/top-5, the confusion matrix and per-class precision/recall/F1, as sums over
                       batches, so that a DDP all-reduce is exact
    multilabel.py      sigmoid outputs, a threshold per class: exact match, Hamming loss, per-class F1, mAP, best F1
    reconstruction.py  an autoencoder's MSE and PSNR (per picture, peak 1), and the anomaly ROC AUC, average precision
                       and threshold of its reconstruction errors
    trust.py           ROC AUC and average precision per class, ECE and the reliability bins, confidently wrong
    calibration.py     what makes predictions usable: temperature scaling, conformal prediction sets (RAPS), and the
                       Calibration a checkpoint keeps
    familiarity.py     the unfamiliar score: energy and the pixel statistics' Mahalanobis distance, with its threshold
    paired.py          two models compared: mean ± standard error, the paired t-test over seeds, McNemar's exact test
"""

from zoo.metrics.classification import TOP_K, MetricAccumulator, Metrics

__all__ = ["TOP_K", "MetricAccumulator", "Metrics"]
