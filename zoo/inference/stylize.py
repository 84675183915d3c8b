"""zoo stylize: neural style transfer. Gatys, Ecker and Bethge (2016), "Image Style Transfer Using Convolutional
Neural Networks", CVPR 2016; its preprint is "A Neural Algorithm of Artistic Style", arXiv:1508.06576.

    result = stylize("photo.jpg", "starry_night.jpg", "photo-starry.png")  # ImageNet VGG-19, 100 L-BFGS steps
    result.picture                  # a PIL image: the content picture's H x W at `size` (its longer side)
    result.losses[-1].total         # the losses of the picture after each step; losses[0]: the starting picture
    stylize(content, style, weights=None, size=48, steps=20)    # random VGG-19 weights, no download: tests

A picture is optimised, pixel by pixel, so that zoo's VGG-19 (features, torchvision's ImageNet weights) sees in it
the content picture's arrangement and the style picture's textures, as the paper does:
- content: L_content = 1/2 sum (F - P)^2 over conv4_2's responses (F: the picture's, P: the content picture's);
- style: at conv1_1, conv2_1, conv3_1, conv4_1 and conv5_1 (style_layers: the paper's Figure 2 takes subsets),
  each weighted equally (1/5), E_l = 1/(4 N^2 M^2) sum (G - A)^2, G and A the Gram matrices (N x N, N channels,
  M = H x W positions) of the picture's and the style picture's responses: which features occur together, wherever
  they are. The style's arrangement is lost above the deepest style layer's receptive field (conv3_1's: 24 px,
  conv4_1's: 68, conv5_1's: 156) and kept below it: a 64 px picture's quadrants survive all five layers, not the
  first three (tests/test_stylize.py);
- the total: content_weight * L_content + style_weight * L_style (alpha and beta; alpha/beta = 1e-3 by default,
  within the paper's Figure 3 range) + tv_weight * the total variation (the sum of squared differences of
  neighbouring pixels, in [0, 1] pixel units), which the paper does not have and most implementations add: it
  smooths the high-frequency noise the optimisation leaves;
- the responses are the layers' outputs after their ReLU, as the paper takes them; the max-pooling layers are
  average pooling by default (pool="avg", the paper's "improves the gradient flow"), pool="max" keeps VGG's;
- the paper's network is VGG-19 normalised so that each filter's mean response over ImageNet is 1 (its weights
  scaled, which changes nothing else: ReLU is positively homogeneous). Without ImageNet at hand, the responses here
  are divided by each filter's mean over the content and the style picture (CHANNEL_FLOOR for a filter nearly
  silent on both): the same loss units as the paper's, so its alpha/beta ratios mean here what they meant there;
- L-BFGS (the paper's) by default, scipy's L-BFGS-B with every pixel bounded to [0, 1], a step one of its
  iterations; or Adam, the picture clamped to [0, 1] after every step. The picture starts as the content picture
  (init="content"), or the paper's white noise (init="noise", uniform in [0, 1]); it is ImageNet-normalised on
  its way into the network.
The style picture is scaled to cover the content picture's H x W and centre-cropped to it (never stretched).
The result is written atomically (zoo.rundir.atomic_write) as the output's suffix says (PNG, JPEG, any format
Pillow writes), the losses of every step beside it as JSON (OUTPUT with the suffix .losses.json).
"""

from __future__ import annotations

import io
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageOps
from torch import Tensor, nn

from zoo.errors import ZooError

IMAGENET_WEIGHTS = "VGG19_Weights.IMAGENET1K_V1"  # torchvision's, downloaded once into torch.hub's cache
# Indices of zoo's vgg19 `features` (torchvision's): the ReLU after each named convolution.
LAYERS = {"conv1_1": 1, "conv2_1": 6, "conv3_1": 11, "conv4_1": 20, "conv4_2": 22, "conv5_1": 29}
CONTENT_LAYER = "conv4_2"
STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")  # w_l = 1/5 each
# A filter whose mean response on both pictures is under this share of its layer's mean is scaled as if at it:
# dividing by a mean near 0 would make noise in a filter the pictures do not use outweigh the rest.
CHANNEL_FLOOR = 0.1
MIN_SIZE, MAX_SIZE = 16, 4096  # 16: conv5_1 comes after four 2x2 poolings; 4096: 20 GB of responses kept for backward
INITS, POOLS, OPTIMIZERS = ("content", "noise"), ("avg", "max"), ("lbfgs", "adam")
ADAM_LR = 0.02  # Adam moves each pixel about lr a step, in [0, 1] pixel units


@dataclass(frozen=True)
class Settings:
    """stylize's options, checked (`check`) before any picture is read or weights are loaded."""

    size: int = 256  # pixels, the content picture's longer side
    steps: int = 100  # about 6 minutes at 256 px on 2 CPU cores (docs/stylize.md); 300 for a finer picture
    init: str = "content"  # or "noise"
    pool: str = "avg"  # or "max"
    optimizer: str = "lbfgs"  # or "adam"
    lr: float | None = None  # Adam's; None: ADAM_LR. L-BFGS's line search finds its own step.
    content_weight: float = 1.0  # alpha
    style_weight: float = 1e3  # beta: alpha/beta = 1e-3
    tv_weight: float = 1e-2
    style_layers: tuple[str, ...] = STYLE_LAYERS  # the paper's Figure 2 rows: conv1_1 alone, ..., all five
    seed: int = 0  # the noise start, and the random weights of weights=None
    log_every: int = 10  # steps between progress lines on stderr

    def check(self) -> None:
        """Raise ZooError, one line naming the option, for a value outside what stylize can do."""
        for name, value, choices in (("init", self.init, INITS), ("pool", self.pool, POOLS),
                                     ("optimizer", self.optimizer, OPTIMIZERS)):
            if value not in choices:
                raise ZooError(f"unknown --{name} {value!r}; choose {' or '.join(choices)}")
        if not MIN_SIZE <= self.size <= MAX_SIZE:
            raise ZooError(f"--size {self.size}: give the longer side in pixels, {MIN_SIZE} to {MAX_SIZE}")
        if self.steps < 1:
            raise ZooError(f"--steps {self.steps}: give 1 or more optimizer steps")
        if self.log_every < 1:
            raise ZooError(f"--log-every {self.log_every}: give 1 or more steps")
        for name in ("content_weight", "style_weight", "tv_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ZooError(f"--{name.replace('_', '-')} {value}: give a weight of 0 or more")
        unknown = [name for name in self.style_layers if name not in STYLE_LAYERS]
        if unknown or not self.style_layers or len(set(self.style_layers)) < len(self.style_layers):
            raise ZooError(f"--style-layers {','.join(self.style_layers)}: give one or more of "
                           f"{', '.join(STYLE_LAYERS)}, each once")
        if self.content_weight == 0 and self.style_weight == 0:
            raise ZooError("--content-weight and --style-weight are both 0: give one of them above 0")
        if self.lr is not None and self.optimizer != "adam":
            raise ZooError(f"--lr {self.lr} is Adam's step size; L-BFGS's line search finds its own: remove --lr, "
                           "or give --optimizer adam")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise ZooError(f"--lr {self.lr}: give a step size above 0")


@dataclass(frozen=True)
class Losses:
    """The losses of one picture, each term times its weight, so that content + style + tv = total."""

    step: int  # optimizer steps taken before this picture (0: the starting picture)
    total: float
    content: float
    style: float
    tv: float


@dataclass
class StylizeResult:
    """What stylize made: the picture, the losses on the way, and where they were written."""

    picture: Image.Image  # RGB, the content picture's H x W at `size`
    losses: list[Losses]  # the start, then the picture after each step: steps + 1, fewer if L-BFGS converged
    seconds: float  # the optimisation's wall time
    evaluations: int  # the network's forward and backward passes, the line search's included
    output: Path | None = None  # where the picture was written, and the losses beside it
    losses_file: Path | None = None
    settings: Settings = field(default_factory=Settings)

    def summary(self) -> str:
        """One line: what was written, and the loss from the start to the end."""
        first, last = self.losses[0], self.losses[-1]
        where = (f"wrote {self.output} ({self.picture.width} x {self.picture.height}) and {self.losses_file}"
                 if self.output is not None else f"{self.picture.width} x {self.picture.height}")
        return (f"{where}: loss {first.total:.4g} -> {last.total:.4g} (content {last.content:.4g}, style "
                f"{last.style:.4g}, tv {last.tv:.4g}) after {last.step} steps in {self.seconds:.1f} s")


def default_output(content: str | Path, style: str | Path) -> Path:
    """CONTENT-STYLE.png in the working folder: photo.jpg and starry.jpg give photo-starry.png."""
    return Path(f"{Path(content).stem}-{Path(style).stem}.png")


def stylize(content: str | Path | Image.Image, style: str | Path | Image.Image, output: str | Path | None = None, *,
            weights: str | Path | None = "imagenet", device: str = "auto", quiet: bool = False,
            **options: Any) -> StylizeResult:
    """Paint `content` (a picture file or a PIL image) in the style of `style`; see the module docstring.

    `options` are Settings' fields (size, steps, init, pool, optimizer, lr, content_weight, style_weight,
    tv_weight, style_layers, seed, log_every). `weights`: "imagenet" (torchvision's VGG19_Weights.IMAGENET1K_V1,
    read from torch.hub's cache and downloaded into it when missing), a file holding VGG-19's state_dict
    (torchvision's .pth, a zoo checkpoint of a vgg19), or None: random weights (He et al.'s normal initialisation,
    seeded by `seed`), which need nothing downloaded and are what tests use. `output`: the picture file to write
    (its suffix chooses the format), with OUTPUT.losses.json beside it; None writes nothing. Progress goes to
    stderr unless `quiet`.
    Raises ZooError, one line and nothing written, for an option out of range, a picture missing or unreadable, an
    output whose folder does not exist or whose suffix Pillow cannot write, weights that are not VGG-19's or
    cannot be downloaded (naming where to place the file), and a loss that stops being finite."""
    from zoo.runtime import resolve_device

    settings = Settings(**options)
    settings.check()
    target = check_output(Path(output), content, style) if output is not None else None
    content_picture, style_picture = pictures(content, style, settings.size)
    where = resolve_device(device, key="--device")
    with torch.random.fork_rng(devices=[]):  # the seed's weights and noise, the caller's random state untouched
        torch.manual_seed(settings.seed)
        network = vgg19_features(weights, settings.pool).to(where)
        start = torch.rand_like(content_picture) if settings.init == "noise" else content_picture
    objective = Objective(network, content_picture.to(where), style_picture.to(where), settings)
    began = time.perf_counter()
    picture, record = optimize(objective, start.to(where), settings, None if quiet else progress_line)
    result = StylizeResult(to_pil(picture), record.losses, time.perf_counter() - began, record.evaluations,
                           settings=settings)
    if target is not None:
        result.output, result.losses_file = save(result, target, content, style)
    return result


# ---- the pictures ------------------------------------------------------------------------------------

def pictures(content: str | Path | Image.Image, style: str | Path | Image.Image, size: int) -> tuple[Tensor, Tensor]:
    """The content picture with its longer side at `size`, and the style picture covering it, centre-cropped:
    1 x 3 x H x W each, in [0, 1]. Raises ZooError for a missing or unreadable file, or a content picture so
    narrow that its shorter side would fall under MIN_SIZE."""
    first, second = _open(content, "content"), _open(style, "style")
    scale = size / max(first.size)
    width, height = (max(1, round(side * scale)) for side in first.size)
    if min(width, height) < MIN_SIZE:
        raise ZooError(f"the content picture is {first.width} x {first.height}: at --size {size} its shorter side "
                       f"would be {min(width, height)} px, under the {MIN_SIZE} VGG-19 needs; give a larger --size")
    first = first.resize((width, height), Image.Resampling.LANCZOS)
    second = ImageOps.fit(second, (width, height), Image.Resampling.LANCZOS)
    return _tensor(first), _tensor(second)


def _open(picture: str | Path | Image.Image, role: str) -> Image.Image:
    from zoo.data.images import display_rgb, open_image

    if isinstance(picture, Image.Image):
        return display_rgb(picture)
    path = Path(picture)
    if not path.exists():
        raise ZooError(f"{path} not found; give the {role} picture's file")
    if not path.is_file():
        raise ZooError(f"{path} is a folder; give the {role} picture's file")
    return open_image(path)


def _tensor(picture: Image.Image) -> Tensor:
    pixels = torch.frombuffer(bytearray(picture.tobytes()), dtype=torch.uint8)
    return pixels.view(picture.height, picture.width, 3).permute(2, 0, 1)[None].float().contiguous() / 255


def to_pil(picture: Tensor) -> Image.Image:
    """A 1 x 3 x H x W tensor in [0, 1] as an 8-bit RGB picture."""
    pixels = (picture[0].detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().contiguous()
    return Image.fromarray(pixels.numpy(), "RGB")


# ---- the network -------------------------------------------------------------------------------------

def vgg19_features(weights: str | Path | None = "imagenet", pool: str = "avg") -> nn.Sequential:
    """zoo's vgg19 `features` up to conv5_1's ReLU (indices 0-29, torchvision's), frozen, in eval mode, its
    max-pooling layers average pooling for pool="avg". `weights` as stylize takes them. Raises ZooError for
    weights that cannot be had or are not VGG-19's features."""
    from zoo.models.registry import create_model
    from zoo.models.weight_init import init_weights

    with torch.device("meta"):  # the 120 M parameters of the classifier are never made
        model = create_model("vgg19")
    features = model.features[:LAYERS["conv5_1"] + 1].to_empty(device="cpu")
    if weights is None:
        init_weights(features, "he_normal")
    else:
        features.load_state_dict(features_state(weights, features.state_dict()))
    if pool == "avg":
        for index, layer in enumerate(features):
            if isinstance(layer, nn.MaxPool2d):
                features[index] = nn.AvgPool2d(kernel_size=2, stride=2)
    return features.eval().requires_grad_(False)


def features_state(weights: str | Path, expected: dict[str, Tensor]) -> dict[str, Tensor]:
    """The `features.*` tensors of a VGG-19 state_dict, keyed as `expected` (the features' own keys)."""
    from zoo.checkpoint import TrainingState, load_checkpoint
    from zoo.training.finetune import read_source, unwrap

    if weights == "imagenet":  # "cannot download URL (offline?); ... place it at PATH" when offline
        state = read_source(f"torchvision:{IMAGENET_WEIGHTS}", "vgg19").state
    else:
        path = Path(weights)
        if not path.is_file():
            raise ZooError(f"--weights {path} not found; give imagenet, random or a file holding VGG-19's weights")
        state = load_checkpoint(path)
        state = state["model"] if TrainingState.holds(state, "weights") else state
        if not (isinstance(state, dict) and state and all(isinstance(v, Tensor) for v in state.values())):
            raise ZooError(f"--weights {path} holds no state_dict of tensors; give VGG-19's (torchvision's vgg19 "
                           ".pth, or a zoo checkpoint of a vgg19)")
        state, _ = unwrap(state, [f"features.{key}" for key in expected])
    picked = {key: state.get(f"features.{key}") for key in expected}
    wrong = [f"features.{key} is missing" if value is None else
             f"features.{key} is {tuple(value.shape)}, not {tuple(expected[key].shape)}"
             for key, value in picked.items() if value is None or value.shape != expected[key].shape]
    if wrong:
        raise ZooError(f"--weights {weights} does not hold VGG-19's features: {'; '.join(wrong[:2])}")
    return picked


def responses(network: nn.Sequential, picture: Tensor, layers: tuple[str, ...]) -> dict[str, Tensor]:
    """The ReLU outputs (1 x N x H' x W') at `layers` for a 1 x 3 x H x W picture in [0, 1], ImageNet-normalised on
    the way in; the network is run only as deep as the deepest of them."""
    from zoo.datasets import SPECS  # imagefolder's statistics are ImageNet's, which VGG-19's weights were trained on

    imagenet = SPECS["imagefolder"]
    mean = picture.new_tensor(imagenet.mean).view(1, 3, 1, 1)
    std = picture.new_tensor(imagenet.std).view(1, 3, 1, 1)
    wanted = {LAYERS[name]: name for name in layers}
    found, x = {}, (picture - mean) / std
    for index, layer in enumerate(network[:max(wanted) + 1]):
        x = layer(x)
        if index in wanted:
            found[wanted[index]] = x
    return found


# ---- the losses --------------------------------------------------------------------------------------

def gram(response: Tensor) -> Tensor:
    """G = F F^T (N x N) of a 1 x N x H x W response, F its N x M matrix (M = H x W positions)."""
    flat = response.flatten(start_dim=2)[0]
    return flat @ flat.T


def style_error(response: Tensor, target: Tensor) -> Tensor:
    """The paper's E_l = 1/(4 N^2 M^2) sum (G - A)^2 for a 1 x N x H x W response and the style's Gram A."""
    channels, positions = response.shape[1], response.shape[2] * response.shape[3]
    return ((gram(response) - target) ** 2).sum() / (4 * channels ** 2 * positions ** 2)


def total_variation(picture: Tensor) -> Tensor:
    """The sum of squared differences of vertically and horizontally neighbouring pixels, N x C x H x W."""
    return (((picture[..., 1:, :] - picture[..., :-1, :]) ** 2).sum()
            + ((picture[..., :, 1:] - picture[..., :, :-1]) ** 2).sum())


def channel_scales(first: dict[str, Tensor], second: dict[str, Tensor]) -> dict[str, Tensor]:
    """1 / each filter's mean response over two pictures (1 x N x 1 x 1 a layer), a filter's mean floored at
    CHANNEL_FLOOR of its layer's: the paper's normalised network, measured on these pictures."""
    scales = {}
    for name in first:
        mean = (first[name].mean(dim=(2, 3), keepdim=True) + second[name].mean(dim=(2, 3), keepdim=True)) / 2
        scales[name] = 1 / mean.clamp(min=max(CHANNEL_FLOOR * mean.mean().item(), 1e-12))
    return scales


class Objective:
    """The loss of a picture: the content picture's conv4_2 responses and the style picture's Grams, held. The
    network runs only as deep as the layers of the terms whose weight is above 0."""

    def __init__(self, network: nn.Sequential, content: Tensor, style: Tensor, settings: Settings) -> None:
        self.network, self.settings = network, settings
        self.styles = settings.style_layers if settings.style_weight > 0 else ()
        self.layers = tuple(name for name in LAYERS if name in self.styles
                            or name == CONTENT_LAYER and settings.content_weight > 0)
        with torch.no_grad():
            content_responses = responses(network, content, self.layers)
            style_responses = responses(network, style, self.layers)
            self.scales = channel_scales(content_responses, style_responses)
            self.content = content_responses.get(CONTENT_LAYER)
            if self.content is not None:
                self.content = self.content * self.scales[CONTENT_LAYER]
            self.grams = {name: gram(style_responses[name] * self.scales[name]) for name in self.styles}

    def __call__(self, picture: Tensor) -> tuple[Tensor, Losses]:
        """(the weighted total, to minimise; its terms as floats) for a 1 x 3 x H x W picture in [0, 1]."""
        found = responses(self.network, picture, self.layers)
        scaled = {name: response * self.scales[name] for name, response in found.items()}
        content = style = picture.new_zeros(())
        if self.content is not None:
            content = ((scaled[CONTENT_LAYER] - self.content) ** 2).sum() / 2
        if self.styles:
            style = sum(style_error(scaled[name], self.grams[name]) for name in self.styles) / len(self.styles)
        terms = (self.settings.content_weight * content, self.settings.style_weight * style,
                 self.settings.tv_weight * total_variation(picture))
        total = terms[0] + terms[1] + terms[2]
        return total, Losses(0, *(float(value.detach()) for value in (total, *terms)))


# ---- the optimisation --------------------------------------------------------------------------------

class Record:
    """The losses of each picture on the way (Losses.step: the steps taken), and a progress line every
    settings.log_every steps through `report` (the losses, the settings, the seconds so far)."""

    def __init__(self, settings: Settings, report: Callable[[Losses, Settings, float], None] | None) -> None:
        self.settings, self.report = settings, report
        self.losses: list[Losses] = []
        self.latest: Losses | None = None  # the last evaluation's
        self.evaluations = 0  # forward and backward passes: L-BFGS's line search may take more than one a step
        self.began = time.perf_counter()

    def evaluated(self, terms: Losses) -> None:
        """Raises ZooError for a loss that is not finite."""
        if not math.isfinite(terms.total):
            if not self.losses:  # the starting picture's loss: the weights, not the optimiser
                raise ZooError(f"the starting picture's loss is {terms.total}: a loss weight is too large for "
                               "float32; lower --style-weight (or --content-weight, --tv-weight)")
            fix = "lower --lr" if self.settings.optimizer == "adam" else "try --optimizer adam"
            steps = len(self.losses)
            raise ZooError(f"the loss became {terms.total} after {steps} step{'' if steps == 1 else 's'} (the "
                           f"optimisation diverged); {fix}, or lower --style-weight")
        self.latest, self.evaluations = terms, self.evaluations + 1
        if not self.losses:  # the starting picture's
            self.losses.append(terms)

    def stepped(self) -> None:
        """A step ended at the picture last evaluated."""
        assert self.latest is not None
        step = len(self.losses)
        self.losses.append(Losses(step, self.latest.total, self.latest.content, self.latest.style, self.latest.tv))
        if self.report is not None and (step == 1 or step % self.settings.log_every == 0
                                        or step == self.settings.steps):
            self.report(self.losses[-1], self.settings, time.perf_counter() - self.began)


def optimize(objective: Objective, start: Tensor, settings: Settings,
             report: Callable[[Losses, Settings, float], None] | None = None) -> tuple[Tensor, Record]:
    """The picture after settings.steps steps from `start` (1 x 3 x H x W, in [0, 1]), kept in [0, 1], and the
    record of the way: the losses of the start, then of each step (fewer when L-BFGS converged before), and the
    evaluations they took. Raises ZooError when the loss stops being finite."""
    record = Record(settings, report)
    picture = (_lbfgs if settings.optimizer == "lbfgs" else _adam)(objective, start, settings, record)
    return picture, record


def _lbfgs(objective: Objective, start: Tensor, settings: Settings, record: Record) -> Tensor:
    """scipy's L-BFGS-B, its bounds [0, 1] for every pixel: the clamp as a constraint the line search and the
    curvature pairs know of. (torch's L-BFGS with a clamp after every step left the content loss 7x higher after
    50 steps, measured from noise at 40 px.) A step is one iteration: 1.04 evaluations on average, measured."""
    import numpy as np
    from scipy.optimize import minimize

    shape, device = start.shape, start.device

    def loss_and_gradient(flat: np.ndarray) -> tuple[float, np.ndarray]:
        picture = torch.from_numpy(flat).to(device, torch.float32).view(shape).requires_grad_(True)
        total, terms = objective(picture)
        record.evaluated(terms)
        (gradient,) = torch.autograd.grad(total, picture)
        return terms.total, gradient.double().flatten().cpu().numpy()

    found = minimize(loss_and_gradient, start.double().flatten().cpu().numpy(), jac=True, method="L-BFGS-B",
                     bounds=[(0.0, 1.0)] * start.numel(), callback=lambda xk: record.stepped(),
                     options={"maxiter": settings.steps, "maxfun": 2 * settings.steps + 10, "maxcor": 100})
    return torch.from_numpy(found.x).to(device, torch.float32).view(shape)


def _adam(objective: Objective, start: Tensor, settings: Settings, record: Record) -> Tensor:
    """Adam on the pixels, clamped to [0, 1] after every step."""
    picture = start.detach().clone().contiguous().requires_grad_(True)
    optimizer = torch.optim.Adam([picture], lr=settings.lr if settings.lr is not None else ADAM_LR)
    for step in range(settings.steps + 1):
        optimizer.zero_grad(set_to_none=True)
        total, terms = objective(picture)  # the picture after `step` steps
        record.evaluated(terms)
        if step > 0:
            record.stepped()
        if step == settings.steps:
            break
        total.backward()
        optimizer.step()
        with torch.no_grad():
            picture.clamp_(0, 1)
    return picture.detach()


def progress_line(losses: Losses, settings: Settings, seconds: float) -> None:
    """One line on stderr: the step, the weighted losses and the time so far."""
    from zoo.present.console import say

    say(f"step {losses.step}/{settings.steps}  loss {losses.total:.4g} (content {losses.content:.4g}, "
        f"style {losses.style:.4g}, tv {losses.tv:.4g})  {seconds:.1f} s", sys.stderr)


# ---- the files ---------------------------------------------------------------------------------------

def check_output(output: Path, *inputs: Any) -> Path:
    """`output` when a picture can be written there: its folder exists, Pillow writes its suffix in RGB, and it is
    neither a folder nor one of the `inputs`. Raises ZooError, one line, otherwise."""
    if output.is_dir():
        raise ZooError(f"--output {output} is a folder; give a picture file, e.g. {output / 'stylized.png'}")
    if not output.parent.is_dir():
        raise ZooError(f"--output {output}: the folder {output.parent} does not exist; create it, or give another")
    for picture in inputs:
        if isinstance(picture, (str, Path)) and Path(picture).exists() and output.resolve() == Path(picture).resolve():
            raise ZooError(f"--output {output} is an input picture; give another file name")
    try:
        encode(Image.new("RGB", (1, 1)), output.suffix)
    except (KeyError, ValueError, OSError):
        kind = f"{output.suffix} pictures" if output.suffix else "a picture whose name has no suffix"
        raise ZooError(f"--output {output}: Pillow cannot write {kind}; name it *.png or *.jpg") from None
    return output


def encode(picture: Image.Image, suffix: str) -> bytes:
    """`picture` in the format of a file suffix: PNG through zoo.present.figures.png, JPEG at quality 95, else as
    Pillow writes it. Raises KeyError for a suffix Pillow does not know, and Pillow's errors for one it cannot
    write."""
    from zoo.present.figures import png

    name = Image.registered_extensions()[suffix.lower()]
    if name == "PNG":
        return png(picture)
    if name not in Image.SAVE:
        raise KeyError(suffix)
    buffer = io.BytesIO()
    picture.save(buffer, format=name, **({"quality": 95} if name == "JPEG" else {}))
    return buffer.getvalue()


def save(result: StylizeResult, output: Path, content: Any, style: Any) -> tuple[Path, Path]:
    """Write the picture to `output` and its losses to OUTPUT.losses.json, each atomically; when the second write
    fails, the first is removed too. Raises ZooError (zoo.rundir.WriteError) for a write that fails."""
    from zoo.rundir import atomic_write, json_text

    losses_file = output.with_suffix(".losses.json")
    record = {"content": str(content) if isinstance(content, (str, Path)) else "a PIL image",
              "style": str(style) if isinstance(style, (str, Path)) else "a PIL image",
              "size": list(result.picture.size), "seconds": round(result.seconds, 3),
              "evaluations": result.evaluations,
              "settings": asdict(result.settings),
              "losses": "each term times its weight: content + style + tv = total; step 0 is the starting picture",
              "steps": [asdict(losses) for losses in result.losses]}
    fix = "give --output a writable folder"
    atomic_write(output, encode(result.picture, output.suffix), fix=fix)
    try:
        atomic_write(losses_file, (json_text(record) + "\n").encode(), fix=fix)
    except ZooError:
        output.unlink(missing_ok=True)
        raise
    return output, losses_file
