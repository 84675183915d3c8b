"""The one preprocessing from a picture to a trained network's input: `zoo predict`, `zoo.load` and the export
checks use it, and on the data set's own stored images it is exactly evaluation's transform.

    preprocessing = Preprocessing.of_checkpoint(state, config)
    batch = torch.stack([preprocessing.transform(open_image(path)) for path in paths])  # N x C x H x W

A picture (8-bit RGB as zoo.data.images.open_image reads it: EXIF orientation applied, any mode converted) is
first brought to the form the training data was stored in, then goes through the very steps evaluation builds
(zoo.data.transforms.fit and evaluation_steps), in the same order:

    stored form  gray (PIL's exact ITU-R 601 luma) for the 1-channel sets (MNIST, Fashion-MNIST, digits); the
                 stored side for sets of one side (MNIST 28, CIFAR 32, digits 8): shorter side resized to it
                 (bilinear, antialiased), then the centre square. A picture already in that form is untouched.
    then         as evaluation: channels fitted, padded or resized to the model's side, scaled to [0, 1],
                 normalized by the run's mean and std. (ImageFolder: shorter side to the model's, centre crop.)

digits are held as floats (pixel / 16) and fitted after scaling, so their pictures are scaled first here too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zoo.datasets import SPECS
from zoo.errors import ZooError

if TYPE_CHECKING:
    from PIL import Image
    from torch import Tensor

    from zoo.checkpoint import TrainingState
    from zoo.config import Config


@dataclass(frozen=True)
class Preprocessing:
    """How a run's network takes pictures: the data set it trained on (data.name, which says how its images were
    stored), the per-channel mean and std of values in [0, 1], and the input side (pixels) and channels."""

    data: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: int
    in_channels: int

    @classmethod
    def of_checkpoint(cls, state: TrainingState, config: Config) -> Preprocessing:
        """A checkpoint's preprocessing; its side and channels are the config's or the model's where a checkpoint
        from before they were saved has none."""
        normalization = state.normalization
        in_channels, input_size = config.geometry()
        return cls(config.data.name, tuple(normalization.mean), tuple(normalization.std),
                   normalization.input_size or input_size, normalization.in_channels or in_channels)

    def to_dict(self) -> dict[str, Any]:
        return {"data": self.data, "mean": list(self.mean), "std": list(self.std), "input_size": self.input_size,
                "in_channels": self.in_channels}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        return cls(data["data"], tuple(data["mean"]), tuple(data["std"]), int(data["input_size"]),
                   int(data["in_channels"]))

    @property
    def shape(self) -> tuple[int, int, int]:
        """C x H x W of one preprocessed picture."""
        return self.in_channels, self.input_size, self.input_size

    @property
    def takes_pictures(self) -> bool:
        return self.data not in SPECS or SPECS[self.data].pictures  # not xor's 2 features, nor text's token ids

    def check_pictures(self) -> None:
        """Raises ZooError for a network that takes no pictures."""
        if not self.takes_pictures:
            raise self.no_pictures()

    def no_pictures(self) -> ZooError:
        if self.data == "text":
            return ZooError("this network was trained on sentences (data.name text), not on pictures; give it "
                            "sentences: zoo predict SOURCE --text 'a sentence' (or --text-file)")
        return ZooError(f"this network was trained on {self.data}'s {self.in_channels} features, not on pictures; "
                        f"give it a float tensor N x {self.in_channels}")

    def transform(self) -> Callable[[Image.Image], Tensor]:
        """PIL image (RGB, as open_image gives) -> float tensor in_channels x input_size x input_size. For a
        network that takes no pictures, a transform that raises ZooError."""
        import torch
        from torchvision.transforms import v2

        from zoo.data.transforms import evaluation_steps, fit

        if not self.takes_pictures:
            return _NoPictures(self)
        spec = SPECS[self.data]
        channels, size = spec.channels or self.in_channels, spec.size  # synthetic: stored at the model's shape
        steps = fit(channels, size, self.in_channels, self.input_size, self.data)
        stored = _Stored(channels, size)
        stats = (self.mean, self.std)
        if self.data == "digits":  # held as floats in [0, 1], fitted after scaling (zoo.data.sets._digits)
            return v2.Compose([stored, v2.ToImage(), v2.ToDtype(torch.float32, scale=True), *steps,
                               v2.Normalize(*stats), v2.ToPureTensor()])
        return v2.Compose([stored, *evaluation_steps(steps, stats)])


class _Stored:
    """A PIL RGB picture in a data set's stored form: gray for 1 channel; for a stored side, the shorter side
    resized to it and the centre square. Pictures already so are returned as they are."""

    def __init__(self, channels: int, size: int | None) -> None:
        self.channels, self.size = channels, size

    def __call__(self, image: Image.Image) -> Image.Image:
        from torchvision.transforms import v2

        if self.channels == 1 and image.mode != "L":
            # Pillow's integer luma: gray pixels stay exact (torchvision's tensor one rounds down)
            image = image.convert("L")
        if self.size is not None and image.size != (self.size, self.size):
            image = v2.CenterCrop(self.size)(v2.Resize(self.size, antialias=True)(image))
        return image

    def __repr__(self) -> str:
        return f"StoredForm(channels={self.channels}, size={self.size})"


class _NoPictures:
    def __init__(self, preprocessing: Preprocessing) -> None:
        self.preprocessing = preprocessing

    def __call__(self, image: Image.Image) -> Tensor:
        raise self.preprocessing.no_pictures()
