"""What a network is trained to do, in one place per task: the seam every stage asks instead of branching.

    task = get_task(config.task)                      # "classification" or "multilabel" (config.TASKS)
    criterion = task.criterion(weights, smoothing)    # the training loss; task.eval_criterion() validates
    meter = task.meter(num_classes, device)           # the epoch's sums: top-1 ... or exact match, Hamming ...
    probabilities = task.probabilities(logits)        # softmax over the classes, or a sigmoid per class

What differs between the tasks is only here: the outputs' activation, the loss and its class weights, how
targets are encoded (a class index, a multi-hot row, the picture), the figures an epoch reports and the decision rule.
The data sets yield the targets (zoo.data), the figures are zoo.metrics', the pictures zoo.present's.

    base.py            Task: the interface every task implements
    classification.py  one class per image: softmax, cross-entropy, top-1/top-5, the arg max
    multilabel.py      a set of labels per image: sigmoid, binary cross-entropy with per-class positive weights,
                       mAP, F1 and Hamming loss, per-class thresholds
    reconstruction.py  the picture itself (autoencoders): noisy inputs for denoising, binary cross-entropy or MSE,
                       PSNR, the reconstruction error as an anomaly score and its threshold
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

from zoo.tasks.base import Task
from zoo.tasks.classification import Classification
from zoo.tasks.multilabel import Multilabel
from zoo.tasks.reconstruction import Reconstruction

if TYPE_CHECKING:
    from zoo.config import Config

__all__ = ["Classification", "Multilabel", "Reconstruction", "Task", "get_task", "task_of"]


def get_task(name: str, thresholds: Tensor | list[float] | None = None, *, noise: float = 0.0, loss: str = "bce",
             anomaly_threshold: float | None = None, colorize: bool = False) -> Task:
    """The task called `name` (config.task); `thresholds`: a multilabel model's per-class decision thresholds
    (None: 0.5 each); `noise`, `loss`, `anomaly_threshold`, `colorize`: a reconstruction's (data.noise,
    reconstruction.loss, the threshold on a picture's error chosen at the end of its run, reconstruction.colorize).
    Raises ValueError for a name zoo does not know (the config's schema refuses it first)."""
    if name == "classification":
        return Classification()
    if name == "multilabel":
        return Multilabel(thresholds)
    if name == "reconstruction":
        return Reconstruction(noise, loss, anomaly_threshold, colorize)
    raise ValueError(f"unknown task {name!r}")


def task_of(config: Config, thresholds: Tensor | list[float] | None = None,
            anomaly_threshold: float | None = None) -> Task:
    """The task `config` trains (config.task, with data.noise and reconstruction.loss), with a checkpoint's decision
    thresholds where it has them."""
    section = config.reconstruction
    return get_task(config.task, thresholds, noise=config.data.noise, loss=section.loss,
                    anomaly_threshold=anomaly_threshold, colorize=section.colorize)
