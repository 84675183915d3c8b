"""The picture itself as the target: an autoencoder rebuilds its input (the course's 004: noise reduction, anomaly
detection), through a code smaller than the picture.

The network outputs N x C x H x W logits; their sigmoid is the reconstruction, in [0, 1] as the pixels are (the data
are not normalized for this task: zoo.config). The loss is binary cross-entropy on those logits (torch's
BCEWithLogitsLoss, stable where a sigmoid then a log would not be; Keras's autoencoder blog and the course use
binary_crossentropy), or the squared error of the sigmoid. With data.noise, Gaussian noise of that standard deviation is
added to the inputs alone and clipped to [0, 1], and the target stays the clean picture (a denoising autoencoder,
Vincent et al. 2008, doi:10.1145/1390156.1390294). Training draws the noise from torch's random state, which a
checkpoint keeps, so a resumed run draws the same; validation and test draw it from a generator seeded afresh for each
pass, so every epoch and zoo evaluate see the same noisy pictures.

A picture's anomaly score is its reconstruction error, the MSE of its pixels; it is abnormal above the threshold chosen
on the validation split's normal pictures (config.reconstruction.false_positive_rate).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from zoo.metrics.reconstruction import ReconstructionAccumulator, per_image_mse
from zoo.metrics.trust import Trust

EVAL_NOISE_SEED = 0  # validation's and test's noise: the same pictures every pass


LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, Pillow's convert("L"): the gray a colourisation network is given


def gray(images: Tensor) -> Tensor:
    """N x 3 x H x W colour pictures as N x 1 x H x W gray ones (LUMA)."""
    weights = torch.tensor(LUMA, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


class SigmoidMSELoss(nn.Module):
    """The mean squared error of sigmoid(logits) against [0, 1] targets."""

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        return nn.functional.mse_loss(logits.float().sigmoid(), targets.float())


class Reconstruction:
    """Reconstruction: targets are the pictures (N x C x H x W, [0, 1]); the data's labels are not used."""

    name = "reconstruction"
    accuracy_name = "psnr"
    label_sets = False
    has_classes = False  # the data's classes say which pictures are normal; the network predicts none

    def __init__(self, noise: float = 0.0, loss: str = "bce", threshold: float | None = None,
                 colorize: bool = False) -> None:
        self.noise = float(noise)  # the standard deviation of the inputs' Gaussian noise, on [0, 1] pixels
        self.loss = loss  # "bce" or "mse"
        self.threshold = threshold  # anomaly threshold on a picture's MSE; None: not chosen (no validation split)
        self.colorize = colorize  # the inputs are the colour pictures' gray versions (N x 1 x H x W)

    def pair(self, images: Tensor, targets: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """(the network's inputs, its targets) of a batch: the pictures, with data.noise added to the inputs (from
        `generator`, or torch's random state when None); colourisation's inputs are their gray versions."""
        inputs = gray(images) if self.colorize else images
        if not self.noise:
            return inputs, images
        noise = torch.randn(inputs.shape, generator=generator, device=inputs.device, dtype=inputs.dtype)
        return (inputs + self.noise * noise).clamp_(0.0, 1.0), images

    def generator(self, device: torch.device) -> torch.Generator | None:
        """A fresh generator for one evaluation pass's noise (None without noise)."""
        return torch.Generator(device).manual_seed(EVAL_NOISE_SEED) if self.noise else None

    def shown(self, value: float) -> str:
        return f"{value:5.2f} dB"

    def meter(self, num_classes: int, device: torch.device | str = "cpu") -> ReconstructionAccumulator:
        return ReconstructionAccumulator(device, noisy=self.noise > 0 or self.colorize)

    def criterion(self, weights: Tensor | None, label_smoothing: float) -> nn.Module:
        return self.eval_criterion()

    def eval_criterion(self) -> nn.Module:
        return nn.BCEWithLogitsLoss() if self.loss == "bce" else SigmoidMSELoss()

    def probabilities(self, logits: Tensor) -> Tensor:
        """The reconstruction: N x C x H x W pixels in [0, 1]."""
        return logits.float().sigmoid()

    def scores(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Each picture's anomaly score: its reconstruction error, the MSE of its pixels (N, float64)."""
        return per_image_mse(self.probabilities(logits), targets)

    def verdicts(self, scores: Tensor) -> list[str]:
        """"abnormal" above the threshold, else "normal" (every picture "normal" without a threshold)."""
        if self.threshold is None:
            return ["normal"] * len(scores)
        return ["abnormal" if score > self.threshold else "normal" for score in scores.tolist()]

    def positives(self, targets: Tensor, num_classes: int) -> Tensor:
        raise TypeError("reconstruction has no classes")

    def class_counts(self, labels: Tensor, num_classes: int) -> Tensor:
        """The normal pictures per class of the data (the network predicts none)."""
        return torch.bincount(labels, minlength=num_classes)

    def balanced_weights(self, counts: Tensor, images: int) -> Tensor:
        raise TypeError("reconstruction has no classes to weigh (the config refuses loss.class_weights)")

    def empty_targets(self, num_classes: int) -> Tensor:
        return torch.empty(0)

    def decide(self, probabilities: Tensor, classes: list[str]) -> list[list[str]]:
        raise TypeError("reconstruction decides by score: Reconstruction.verdicts")

    def trust(self, logits: Tensor, targets: Tensor, classes: list[str], paths: list[str] | None) -> Trust:
        raise TypeError("reconstruction has no class probabilities to calibrate")

    def relabel(self, targets: Tensor, lookup: Tensor, num_classes: int) -> Tensor:
        return targets
