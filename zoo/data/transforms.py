"""Transforms: fit images to the model's channels and side, augment training data, normalize.

Built from torchvision's transforms v2, which work on a PIL image, one tensor or a whole N x C x H x W batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from zoo.config import AugmentConfig, DataConfig
from zoo.errors import ZooError

PAD_LIMIT = 4  # pad, not resize, when the model's side is at most this many pixels longer
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, the weights of torchvision's Grayscale
Stats = tuple[tuple[float, ...], tuple[float, ...]]  # (mean, std), per channel; a data set's own: zoo.datasets


def fit(channels: int, size: int | None, in_channels: int, input_size: int, name: str) -> list:
    """Steps from channels x size x size images (size None: any shape) to in_channels x input_size^2."""
    from torchvision.transforms import v2

    steps: list = []
    if (channels, in_channels) == (1, 3):
        steps.append(v2.RGB())
    elif (channels, in_channels) == (3, 1):
        steps.append(v2.Grayscale(1))
    elif channels != in_channels:
        raise ZooError(f"{name} images have {channels} channel(s) and convert to 1 or 3, not {in_channels}; "
                       "set model.in_channels to 1 or 3")
    if size is None:  # ImageFolder: shorter side to input_size, then the centre square
        steps += [v2.Resize(input_size, antialias=True), v2.CenterCrop(input_size)]
    elif 0 < input_size - size <= PAD_LIMIT:
        before = (input_size - size) // 2
        after = input_size - size - before
        steps.append(v2.Pad([before, before, after, after]))
    elif input_size != size:
        steps.append(v2.Resize([input_size, input_size], antialias=True))
    return steps


def augmentation(cfg: DataConfig, input_size: int, fill: float | tuple[float, ...] = 0) -> tuple[list, list, list]:
    """The training images' random steps, torchvision v2 transforms in three stages: (crop and flip, the rest
    before scaling, after normalization). Crop: after padding by cfg.crop_padding (with `fill`); flip: if
    cfg.hflip; then color jitter, rotation and the policy, on the image as stored (uint8; digits: float in
    [0, 1]); random erasing last, on the normalized image (erased to 0, the mean), as torchvision's reference
    recipes order them. Empty lists when nothing augments. The in-memory path runs the first stage batched
    and the others image by image (zoo.data.memory), drawing from the same generators."""
    from torchvision.transforms import v2

    aug = cfg.augmentation
    if aug is None:
        return [], [], []
    crop_flip: list = [v2.RandomCrop(input_size, padding=cfg.crop_padding, fill=fill)] if cfg.crop_padding else []
    crop_flip += [v2.RandomHorizontalFlip()] if cfg.hflip else []
    stored: list = []
    if aug.color_jitter:
        stored.append(v2.ColorJitter(brightness=aug.color_jitter, contrast=aug.color_jitter,
                                     saturation=aug.color_jitter))
    if aug.rotation:
        stored.append(v2.RandomRotation(aug.rotation, fill=fill))
    if aug.policy != "none":
        stored.append(policy(aug))
    erasing = [v2.RandomErasing(aug.random_erasing)] if aug.random_erasing else []
    return crop_flip, stored, erasing


def policy(aug: AugmentConfig) -> Callable:
    """data.augment.policy as its torchvision v2 transform, with its settings (each class's defaults otherwise)."""
    from torchvision.transforms import v2

    if aug.policy == "randaugment":
        return v2.RandAugment(num_ops=aug.num_ops, magnitude=aug.magnitude)
    if aug.policy == "trivialaugment":
        return v2.TrivialAugmentWide()
    if aug.policy == "autoaugment":
        return v2.AutoAugment(v2.AutoAugmentPolicy(aug.autoaugment_policy))
    if aug.policy == "augmix":
        return v2.AugMix(severity=aug.severity)
    raise ValueError(f"no transform for policy {aug.policy!r}")


def batch_mixing(aug: AugmentConfig | None,
                 num_classes: int) -> Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None:
    """Mixup and/or CutMix of a training batch, torchvision v2's: (N x C x H x W images, N labels) -> (mixed
    images, N x num_classes soft targets), drawn from torch's global generator; with both, CutMix on a share
    switch_prob of the batches (timm's rule). None when neither alpha is set."""
    if aug is None or not aug.mixes:
        return None
    from torchvision.transforms import v2

    mixes = [(mix(alpha=alpha, num_classes=num_classes), share) for mix, alpha, share in (
        (v2.MixUp, aug.mixup_alpha, 1 - aug.switch_prob), (v2.CutMix, aug.cutmix_alpha, aug.switch_prob)) if alpha]
    if len(mixes) == 1:
        return mixes[0][0]
    return v2.RandomChoice([mix for mix, _ in mixes], p=[share for _, share in mixes])


def _per_channel(values: Sequence[float], channels: int, key: str | None = None) -> tuple[float, ...]:
    """Values for `channels` output channels: one value repeated, or (a data set's own, key None) RGB
    values folded into gray by luma, exact for the mean and close for the std."""
    values = tuple(float(v) for v in values)
    if len(values) == channels:
        return values
    if len(values) == 1:
        return values * channels
    if len(values) == 3 and channels == 1 and key is None:
        return (sum(w * v for w, v in zip(LUMA, values)),)
    raise ZooError(f"data.{key}: {len(values)} values for {channels} input channel(s); give 1 or {channels}")


def normalization(cfg: DataConfig, stats: tuple[Sequence[float], Sequence[float]], channels: int) -> Stats:
    """(mean, std) per output channel: data.mean/std, else `stats` (the data set's own, per stored channel: its
    SPECS entry's, or digits' computed); 0s and 1s when off."""
    if not cfg.normalize:
        return (0.0,) * channels, (1.0,) * channels
    if cfg.mean is not None:
        return _per_channel(cfg.mean, channels, "mean"), _per_channel(cfg.std, channels, "std")
    return _per_channel(stats[0], channels), _per_channel(stats[1], channels)


def evaluation_steps(steps: list, stats: Stats, normalize: bool = True) -> list:
    """From a PIL image (or uint8 tensor) to the network's input: fit `steps` (on uint8), scaling to [0, 1],
    normalization by `stats`. Evaluation's transform, and through zoo.data.preprocess prediction's."""
    from torchvision.transforms import v2

    return [v2.ToImage(), *steps, v2.ToDtype(torch.float32, scale=True), *([v2.Normalize(*stats)] if normalize else []),
            v2.ToPureTensor()]


def image_transforms(steps: list, cfg: DataConfig, input_size: int, stats: Stats) -> tuple[Callable, Callable]:
    """(train, eval) transforms from a PIL image: fit `steps`, augmentation (train only: on uint8, so the
    padding is black; random erasing after normalization), scaling to [0, 1], normalization."""
    from torchvision.transforms import v2

    evaluation = evaluation_steps(steps, stats, cfg.normalize)
    crop_flip, stored, erasing = augmentation(cfg, input_size)
    fitted, rest = evaluation[:1 + len(steps)], evaluation[1 + len(steps):-1]  # the last: ToPureTensor
    return v2.Compose([*fitted, *crop_flip, *stored, *rest, *erasing, v2.ToPureTensor()]), v2.Compose(evaluation)
