"""`zoo explain`: what a trained network looks at, and what it has learnt to see.

    report = explain("runs/.../checkpoints/best.pt", ["seven.png"], method="gradcam")   # overlays
    report = explain("runs/.../checkpoints/best.pt", filters=True, feature_maps="seven.png")
    print(zoo.present.text.render_explain(report))                                    # each PNG written

    heat maps      Grad-CAM (Selvaraju et al. 2017, arXiv:1610.02391) on a convolutional stage, by captum's
                   LayerGradCam, upsampled bilinearly to the input; saliency (Simonyan et al. 2013,
                   arXiv:1312.6034: |d logit / d pixel|, the largest over the channels) by captum's Saliency;
                   occlusion (Zeiler and Fergus 2013, arXiv:1311.2901: the logit's fall when a patch is the mean
                   colour) by captum's Occlusion. Each of the target class: --target, else the top-1 prediction.
    the default    the model's registered method (ModelInfo.explain): Grad-CAM, but occlusion for LeNet-5, where
                   Grad-CAM marks the digits' background: on the main job's test digits its heat lies on the ink
                   0.82 times as much as the ink's share of the picture, occlusion's 1.66 times
                   (scripts/explain_ink.py; why in docs/inspecting.md). A map with no positive value (no evidence
                   for the class) is empty: the picture drawn alone, captioned so, and a note on stderr.
    stages         the backbone's top-level children that give 4-D maps (find_stages), found by running
                   forward_features once with hooks: ResNet's conv1 ... layer4, LeNet's features.0 ... features.5.
    filters        the first convolution's weights (zoo.present.grids.filter_grid, which TensorBoard draws too).
    feature maps   each stage's activations for one picture (zoo.present.grids.map_grid).
    autoencoders   (task reconstruction) their one explanation, chosen by the task: the picture, its reconstruction
                   and each pixel's squared error (the mean over the channels) as a heat map over the picture, 1 =
                   the picture's largest error, to <stem>.error.png (error_maps, zoo.present.grids.error_overlay);
                   no gradients are needed, so an .onnx export is explained too. --method, --layer, --target,
                   --filters and --feature-maps are a classifier's and are refused.

Pictures are prepared exactly as zoo predict and zoo evaluate prepare them (Predictor.prepare); overlays show the
input as the network saw it (resized and fitted, before normalization). Everything is read, resolved and drawn
before the first file is written; then each PNG atomically. captum is imported only when heat maps are drawn.
"""

from __future__ import annotations

import difflib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from zoo.data.images import gather
from zoo.errors import ZooError
from zoo.present.grids import PANEL, captioned, error_overlay, filter_grid, heatmap_overlay, map_grid, tile_grid

if TYPE_CHECKING:
    from PIL import Image

    from zoo.inference.load import AnomalyScore, AutoencoderPredictor, Prediction, Predictor

METHODS = ("gradcam", "saliency", "occlusion")  # zoo.cli.ExplainMethod is the same list (no torch in cli.py)
EMPTY = 1e-5  # a map whose largest positive value is below this share of its largest magnitude is empty (rounding)
INK = 0.5  # heat_on_ink: a pixel is ink at half the brightest value or more (8 of the digits' 16 levels)
TOP_K = 3  # classes printed and captioned per picture
MAX_CHANNELS = 64  # feature-map channels drawn per stage
BATCH = 16  # pictures per attribution pass
FILE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg", ".html", ".gif", ".webp")  # an --output named as one file
LISTED = 10  # stage names a bad --layer's message lists before shortening
ERROR_MAP = "error"  # an autoencoder's explanation (its report's method, its PNGs' <stem>.error.png)


# ---- the network's stages ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Stage:
    """A top-level child of the backbone and the shape of its output for one picture (C x h x w)."""

    name: str  # dotted module name: layer4, features.4
    shape: tuple[int, int, int]
    convolutional: bool  # it is or holds an nn.Conv2d


@dataclass(frozen=True)
class Backbone:
    """What forward_features runs, as find_stages saw it for one picture."""

    stages: list[Stage]
    maps: dict[str, tuple[int, ...]]  # every module whose output is a 4-D map: name -> N x C x h x w, in running order
    default: str | None  # Grad-CAM's layer when none is named; None for a network without convolutions

    def resolve(self, layer: str | None, model: nn.Module, model_name: str) -> str:
        """`layer` (a dotted module name) checked, or the default. Raises ZooError for a name that is no module of
        the network, one whose output is no map of the backbone, or a network without convolutional stages."""
        if self.default is None:
            raise ZooError(f"--method gradcam: {model_name} has no convolutional stage "
                           "(its layers are fully connected); use --method saliency or occlusion")
        if layer is None or layer in self.maps:
            return layer or self.default
        names = [stage.name for stage in self.stages if stage.convolutional or stage.name == self.default]
        shown = names if len(names) <= LISTED else [*names[:3], "...", *names[-(LISTED - 4):]]
        example = next((name for name in reversed(self.maps) if isinstance(model.get_submodule(name), nn.Conv2d)), None)
        choose = f"choose a stage: {', '.join(shown)} (default {self.default})" + (
            f", or a module inside one by its dotted name, e.g. {example}" if example else "")
        if layer in dict(model.named_modules()):
            raise ZooError(f"--layer {layer}: its output is not a feature map of {model_name}'s backbone; {choose}")
        close = difflib.get_close_matches(layer, list(self.maps), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ZooError(f"--layer {layer}: {model_name} has no module of that name{hint}; {choose}")

    def single_cell_note(self, layer: str) -> str | None:
        """A note when Grad-CAM's `layer` gives a 1 x 1 map at this input size (a 32-pixel picture through a network
        of stride 32: MobileNet, ResNet-18): upsampled, it tints the whole picture one colour, whatever the network
        looked at. Names the last stage with a larger map. None for a map of more than one cell."""
        if self.maps[layer][-2:] != (1, 1):
            return None
        larger = next((stage for stage in reversed(self.stages) if stage.convolutional and stage.shape[1:] != (1, 1)),
                      None)
        earlier = f"an earlier --layer ({larger.name}: {larger.shape[1]}x{larger.shape[2]}), " if larger else ""
        return (f"note: Grad-CAM at {layer} is a 1x1 map at this input size, so its heat map tints the whole picture "
                f"evenly; give {earlier}a larger input, or --method occlusion")


@torch.no_grad()
def trace(model: nn.Module, batch: Tensor) -> tuple[dict[str, Tensor], Tensor]:
    """({module name: its output}, the output) of model.forward_features(batch), every module's output recorded
    by a forward hook, in the order the modules finished."""
    outputs: dict[str, Tensor] = {}

    def record(name: str):
        def hook(module: nn.Module, inputs: object, output: object) -> None:
            if isinstance(output, Tensor):
                outputs[name] = output
        return hook

    handles = [module.register_forward_hook(record(name)) for name, module in model.named_modules() if name]
    try:
        result = model.forward_features(batch)
    finally:
        for handle in handles:
            handle.remove()
    return outputs, result


def find_stages(model: nn.Module, example: Tensor) -> Backbone:
    """The backbone's stages for `example` (1 x C x H x W, preprocessed).

    The backbone is the module that produces forward_features' output when it also runs everything before
    (LeNet's, AlexNet's and VGG's `features`), else the network itself (ResNet, GoogLeNet); its stages are its
    direct children whose outputs are 4-D maps. The default Grad-CAM layer is the last stage at the spatial size
    of the last stage holding a convolution: that convolution's block with its activation (ResNet's layer4,
    LeNet's features.4, VGG's last ReLU), where the maps are still the convolution's, before the pooling after it.
    """
    outputs, result = trace(model, example)
    maps = {name: tuple(output.shape) for name, output in outputs.items() if output.dim() == 4}
    producers = [name for name, output in outputs.items() if output is result]
    producer = min(producers, key=lambda name: name.count("."), default=None)
    inside = producer is not None and all(name == producer or name.startswith(f"{producer}.") for name in outputs)
    root = model.get_submodule(producer) if inside else model
    prefix = f"{producer}." if inside else ""
    stages = []
    for child, module in root.named_children():
        name = prefix + child
        if name in maps:
            convolutional = any(isinstance(inner, nn.Conv2d) for inner in module.modules())
            stages.append(Stage(name, maps[name][1:], convolutional))  # type: ignore[arg-type]
    order = list(outputs)
    stages.sort(key=lambda stage: order.index(stage.name))
    last_conv = max((index for index, stage in enumerate(stages) if stage.convolutional), default=None)
    default = None
    if last_conv is not None:
        side = stages[last_conv].shape[1:]
        default = next(stage.name for stage in reversed(stages[last_conv:]) if stage.shape[1:] == side)
    return Backbone(stages, maps, default)


# ---- attribution ------------------------------------------------------------------------------------

def heatmaps(model: nn.Module, batch: Tensor, targets: list[int], method: str, layer: str | None = None) -> Tensor:
    """N x C x H x W (preprocessed) -> N x H x W heat maps in [0, 1] of each picture's target class, by `method`
    (see the module docstring; `layer`: Grad-CAM's module, a dotted name): the positive part, divided by its largest
    value; a map with no positive value above EMPTY of its largest magnitude is 0 everywhere (empty). The model is
    in eval mode; its in-place activations are made out-of-place first, since they would overwrite the layer output
    captum's hook keeps."""
    from captum.attr import LayerAttribution, LayerGradCam, Occlusion, Saliency

    for module in model.modules():
        if getattr(module, "inplace", False):
            module.inplace = False
    if method == "gradcam":
        cam = LayerGradCam(model, model.get_submodule(layer or ""))
        maps = cam.attribute(batch, target=targets, relu_attributions=True)  # N x 1 x h x w
        maps = LayerAttribution.interpolate(maps, tuple(batch.shape[-2:]), interpolate_mode="bilinear")[:, 0]
    elif method == "saliency":
        maps = Saliency(model).attribute(batch.clone().requires_grad_(), target=targets, abs=True).amax(dim=1)
    elif method == "occlusion":
        side = max(2, -(-max(batch.shape[-2:]) // 8))  # a patch of an eighth of the side, moved by half a patch
        channels = batch.shape[1]
        maps = Occlusion(model).attribute(batch, sliding_window_shapes=(channels, side, side),
                                          strides=(channels, max(1, side // 2), max(1, side // 2)), baselines=0.0,
                                          target=targets, perturbations_per_eval=16).sum(dim=1)
    else:
        raise ZooError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    maps = maps.detach().float().cpu()
    magnitude = maps.abs().flatten(1).amax(dim=1)
    peak = maps.flatten(1).amax(dim=1)
    empty = peak <= EMPTY * magnitude
    maps = maps.clamp_min(0) / peak.clamp_min(1e-12)[:, None, None]
    return maps.masked_fill(empty[:, None, None], 0.0)


def heat_on_ink(maps: Tensor, pictures: Tensor, threshold: float = INK) -> Tensor:
    """How much a heat map favours the ink of a bright-on-dark picture (digits): the share of the heat on the
    pixels at `threshold` or brighter, divided by their share of the picture; 1 is no preference, above 1 the heat
    favours the ink. `maps`: N x H x W (heatmaps'), `pictures`: N x H x W x C as seen (seen()'s, uint8 or [0, 1]).
    NaN for an empty map or a picture without ink."""
    values = pictures.float() / (255.0 if pictures.dtype == torch.uint8 else 1.0)
    ink = (values.mean(dim=-1) >= threshold).float().flatten(1)
    heat = maps.float().flatten(1)
    ratio = (heat * ink).sum(dim=1) / heat.sum(dim=1) / ink.mean(dim=1)
    return ratio.masked_fill((heat.sum(dim=1) == 0) | (ink.sum(dim=1) == 0), float("nan"))


def seen(predictor: Predictor, picture: Tensor) -> Tensor:
    """A preprocessed picture (C x H x W) as the network saw it: normalization undone, H x W x 3 uint8 (gray
    repeated for 1 channel, the channels' mean for other counts but 3)."""
    mean, std = _statistics(predictor, picture.shape[0])
    values = (picture.float().cpu() * std[:, None, None] + mean[:, None, None]).clamp(0, 1)
    if values.shape[0] != 3:
        values = values.mean(dim=0, keepdim=True).expand(3, -1, -1)
    return (values * 255).round().to(torch.uint8).permute(1, 2, 0)


def _statistics(predictor: Predictor, channels: int) -> tuple[Tensor, Tensor]:
    """The per-channel mean and std the picture was normalized by: the run's, or torchvision weights' transform's."""
    source = predictor.preprocessing or predictor.transform
    mean, std = getattr(source, "mean", None), getattr(source, "std", None)
    if mean is None or std is None:
        return torch.zeros(channels), torch.ones(channels)
    return torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)


def resolve_target(target: str | None, classes: list[str]) -> int | None:
    """--target: a class name, else an index (0 to classes - 1); None stays None (each picture's top-1). Raises
    ZooError naming the classes for another value."""
    if target is None:
        return None
    if target in classes:
        return classes.index(target)
    if target.strip().lstrip("-").isdigit() and 0 <= int(target) < len(classes):
        return int(target)
    number = target.strip().lstrip("-").isdigit()
    close = [] if number else difflib.get_close_matches(target, classes, n=1)
    problem = "no class has that index" if number else "not a class of this network" + (
        f" (did you mean {close[0]}?)" if close else "")
    shown = ", ".join(classes) if len(classes) <= 12 else f"{', '.join(classes[:10])} ... ({len(classes)} classes)"
    raise ZooError(f"--target {target}: {problem}; give a name or an index 0-{len(classes) - 1}: {shown}")


# ---- the command ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Explained:
    """One picture's top-k, the class its heat map is of, and the PNG written."""

    path: Path
    prediction: Prediction
    target: int
    target_class: str
    probability: float  # the target's, softmax of the logits
    written: Path
    empty: bool = False  # the heat map has no positive value: no evidence for the class; the picture drawn alone


@dataclass
class ExplainReport:
    method: str
    layer: str | None  # Grad-CAM's
    rows: list[Explained] = field(default_factory=list)
    filters: Path | None = None
    feature_maps: list[Path] = field(default_factory=list)
    label_sets: bool = False  # a multi-label model's: each picture's predicted set, a map per label


@dataclass(frozen=True)
class ErrorMap:
    """One picture's reconstruction error map: its score and verdict, and the PNG written."""

    path: Path
    anomaly: AnomalyScore
    written: Path


@dataclass
class ErrorMapReport:
    """zoo explain of an autoencoder: a row per picture."""

    threshold: float | None  # the run's anomaly threshold on the score (None: it chose none)
    rows: list[ErrorMap] = field(default_factory=list)
    method: str = ERROR_MAP


def explain(source: str | Path, images: list[str] | tuple[str, ...] = (), *, method: str | None = None,
            layer: str | None = None, target: str | None = None, top_k: int = TOP_K, filters: bool = False,
            feature_maps: str | Path | None = None, output: Path | None = None,
            device: str = "auto") -> ExplainReport | ErrorMapReport:
    """Heat maps of `images` (files, folders, glob patterns, as zoo predict takes them), the first convolution's
    `filters` and the stages' activations for the picture `feature_maps`, as PNGs in `output` (default: beside
    the checkpoint, <checkpoint stem>.explain/): <picture stem>.<method>.png, filters.png and
    <picture stem>.feature_maps.<stage>.png.

    `source`: a checkpoint, a .safetensors export or torchvision:<Weights> (zoo.load; .onnx has no gradients; an
    autoencoder's, .onnx too: error maps, an ErrorMapReport, see error_maps). `method` None: Grad-CAM when a `layer`
    is named, else the model's default (default_method: occlusion for LeNet-5, Grad-CAM for the others). Raises
    ZooError, before anything is written, for nothing asked, an --output that is a file, an unreadable picture, an
    unknown --layer, --target or method, a network without convolutions asked for Grad-CAM, filters or feature
    maps, or an autoencoder given options other than pictures and --output."""
    from zoo.inference.load import load

    check_request(images, method, layer, top_k, filters, feature_maps, output)
    paths = gather(images)[0] if images else []
    if images and not paths:
        raise ZooError(f"no image files in {', '.join(map(str, images))}")
    predictor = load(source, device)
    if not predictor.task.has_classes:  # an autoencoder: its reconstruction error is what it shows
        asked = {"method": method, "layer": layer, "target": target, "filters": filters, "feature_maps": feature_maps}
        return error_maps(predictor, paths, output, **asked)
    model, model_name = network(predictor)
    folder = Path(output) if output is not None else default_output(predictor.source)
    check_output(folder)
    pictures = [predictor.prepare(path) for path in paths]  # an unreadable file: one line, before anything is drawn
    mapped = predictor.prepare(feature_maps) if feature_maps is not None else None
    index = resolve_target(target, predictor.classes)
    method = method or ("gradcam" if layer is not None else default_method(model_name))
    backbone, chosen = _backbone(model, model_name, pictures, mapped, method, layer, predictor.device)
    report = ExplainReport(method, chosen, label_sets=predictor.task.label_sets)
    drawn: list[tuple[Path, Image.Image]] = []
    if filters:  # ZooError for the MLP, before anything is written
        report.filters = folder / "filters.png"
        drawn.append((report.filters, filter_grid(model)))
    for path, picture, row in overlays(predictor, paths, pictures, folder, method, report.layer, index, top_k):
        drawn.append((path, picture))
        report.rows.append(row)
    if mapped is not None and backbone is not None:
        for path, picture in stage_maps(model, backbone, mapped[None].to(predictor.device), folder, Path(feature_maps)):
            drawn.append((path, picture))
            report.feature_maps.append(path)
    write_pictures(drawn)
    for note in notes(report, backbone):
        print(note, file=sys.stderr, flush=True)
    return report


def notes(report: ExplainReport, backbone: Backbone | None) -> list[str]:
    """What explain says on stderr once its pictures are written: each empty map, and a Grad-CAM layer of one cell."""
    said = [empty_note(row, report.method, report.layer) for row in report.rows if row.empty]
    if report.rows and report.layer is not None and backbone is not None:
        said += [note] if (note := backbone.single_cell_note(report.layer)) else []
    return said


def why_not_explained(predictor: Predictor) -> str | None:
    """Why `predictor`'s pictures get no heat map (zoo serve's page asks before it offers one), or None when they do:
    a classifier's PyTorch network trained on pictures (a checkpoint, .safetensors, torchvision weights)."""
    if not predictor.task.has_classes:
        return f"{predictor.source} is an autoencoder: zoo explain draws its error maps"
    try:
        network(predictor)
    except ZooError as error:
        return str(error)
    return None


def explain_picture(predictor: Predictor, picture: Tensor, name: str, layer: str | None = None,
                    top_k: int = TOP_K) -> tuple[Image.Image, str | None]:
    """One preprocessed picture's (C x H x W, Predictor.prepare's) overlay as zoo explain draws it with its defaults:
    the model's default method (default_method) at `layer` (None: found, the default stage), of the top-1 class (a
    multi-label model's first predicted label), captioned with `name`. Returns (picture, the layer used, to pass
    back next time and skip finding it). Raises ZooError as network() does."""
    model, model_name = network(predictor)
    method = default_method(model_name)
    if method == "gradcam" and layer is None:
        _, layer = _backbone(model, model_name, [picture], None, method, None, predictor.device)
    drawn = overlays(predictor, [Path(name)], [picture], Path(), method, layer, None, top_k)
    return drawn[0][1], layer


def _backbone(model: nn.Module, model_name: str, pictures: list[Tensor], mapped: Tensor | None, method: str,
              layer: str | None, device: torch.device) -> tuple[Backbone | None, str | None]:
    """The network's convolutional stages where Grad-CAM or the feature maps need them (else None), and Grad-CAM's
    layer (`layer`, or the default one). Raises ZooError for feature maps of a network without convolutions."""
    if not ((pictures and method == "gradcam") or mapped is not None):
        return None, None
    backbone = find_stages(model, (mapped if mapped is not None else pictures[0])[None].to(device))
    chosen = backbone.resolve(layer, model, model_name) if pictures and method == "gradcam" else None
    if mapped is not None and not backbone.stages:
        raise ZooError(f"--feature-maps: {model_name} has no convolutional stage, so no feature maps; its layers "
                       "are fully connected")
    return backbone, chosen


def check_request(images: list[str] | tuple[str, ...], method: str | None, layer: str | None, top_k: int, filters: bool,
                  feature_maps: str | Path | None, output: Path | None) -> None:
    """Raises ZooError for options that ask for nothing, or that do not go together."""
    if method is not None and method not in METHODS:
        raise ZooError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if not images and not filters and feature_maps is None:
        raise ZooError("nothing to explain; give pictures (zoo explain best.pt seven.png), --filters or --feature-maps "
                       "PICTURE")
    if layer is not None and method not in (None, "gradcam"):
        raise ZooError(f"--layer is Grad-CAM's; remove it, or give --method gradcam (not {method})")
    if top_k < 1:
        raise ZooError("--top-k must be 1 or more")
    if output is not None:
        check_output(Path(output))


def default_method(model_name: str) -> str:
    """zoo explain's method when none is asked: the one registered with the model (ModelInfo.explain: LeNet-5's
    occlusion), Grad-CAM for the others and for networks zoo did not build (torchvision weights)."""
    from zoo.models.registry import get_model_info, list_models

    return get_model_info(model_name).explain if model_name in list_models() else "gradcam"


def network(predictor: Predictor) -> tuple[nn.Module, str]:
    """The predictor's PyTorch network and its name. Raises ZooError for an ONNX file (no gradients) and for a
    network trained on features rather than pictures (xor's MLP: nothing to draw)."""
    model = predictor.model
    if not isinstance(model, nn.Module):
        raise ZooError(f"{predictor.source}: zoo explain needs the PyTorch network's gradients, which an ONNX file has "
                       "not; give the checkpoint (.pt) or its .safetensors export")
    model_name = predictor.config.model.name if predictor.config is not None else type(model).__name__.lower()
    preprocessing = predictor.preprocessing
    if preprocessing is not None and not preprocessing.takes_pictures:
        given = ("sentences (data.name text)" if preprocessing.data == "text" else
                 f"{preprocessing.data}'s {preprocessing.in_channels} features")
        raise ZooError(f"{model_name} was trained on {given}, not on pictures: zoo explain has nothing to draw; it "
                       "explains networks trained on images")
    return model, model_name


def stage_maps(model: nn.Module, backbone: Backbone, batch: Tensor, folder: Path,
               picture: Path) -> list[tuple[Path, Image.Image]]:
    """Each stage's activations for `batch` (1 x C x H x W: `picture`, preprocessed) as a grid of at most
    MAX_CHANNELS tiles, to <picture stem>.feature_maps.<stage>.png in `folder`."""
    outputs, _ = trace(model, batch)
    return [(folder / f"{picture.stem}.feature_maps.{stage.name}.png",
             map_grid(outputs[stage.name][0], stage.name, MAX_CHANNELS)) for stage in backbone.stages]


def overlays(predictor: Predictor, paths: list[Path], pictures: list[Tensor], folder: Path, method: str,
             layer: str | None, target: int | None, top_k: int) -> list[tuple[Path, Image.Image, Explained]]:
    """Each picture's (PNG path, overlay, row): its top_k, and the heat map of `target` (None: its top-1; a
    multi-label model's: one map per predicted label, <stem>.<method>.<label>.png, its top-1 where it predicts
    none), BATCH pictures a pass. An empty map (no positive evidence for the class) is not drawn: the picture alone,
    captioned so (explain says so on stderr once it is written: empty_note)."""
    from zoo.inference.load import top_predictions
    from zoo.metrics.familiarity import pixel_features

    model, classes, task = predictor.model, predictor.classes, predictor.task
    stems, k = unique_stems(paths), min(top_k, len(classes))
    where = f" at {layer}" if method == "gradcam" else ""
    drawn = []
    for start in range(0, len(pictures), BATCH):
        batch = torch.stack(pictures[start:start + BATCH]).to(predictor.device)
        with torch.no_grad():
            logits = model(batch).float().cpu()
        calibration = predictor.calibration  # the probabilities zoo predict gives, and its unfamiliar verdict
        probabilities = task.probabilities(logits) if calibration is None else calibration.probabilities(logits)
        predictions = top_predictions(logits, classes, k, task, calibration,
                                      None if calibration is None else pixel_features(batch))
        jobs = [(offset, chosen, suffix) for offset, prediction in enumerate(predictions)
                for chosen, suffix in map_targets(prediction, classes, target, task.label_sets)]
        maps = heatmaps(model, batch[[offset for offset, _, _ in jobs]], [chosen for _, chosen, _ in jobs], method,
                        layer)
        for (offset, chosen, suffix), heat in zip(jobs, maps):
            number, prediction = start + offset, predictions[offset]
            path = folder / f"{stems[number]}.{method}{suffix}.png"
            name, probability = classes[chosen], probabilities[offset, chosen].item()
            top = ", ".join(f"{c} {p:.1%}" for c, p in zip(prediction.classes, prediction.probabilities))
            decided = f"labels {', '.join(prediction.labels) or 'none'}; " if task.label_sets else ""
            strange = "; unfamiliar: unlike the training data" if prediction.unfamiliar else ""
            caption = [f"{paths[number].name}: {method}{where} of {name} ({probability:.1%})",
                       f"{decided}top-{k}: {top}{strange}"]
            pixels = seen(predictor, pictures[number]).numpy()
            empty = not bool(heat.any())
            if empty:
                picture = captioned(tile_grid(pixels[None], f"{caption[0]}: an empty map,", tile=PANEL),
                                    [f"{empty_map(method, name)}: nothing to draw", caption[1]])
            else:
                picture = heatmap_overlay(pixels, heat.numpy(), caption)
            drawn.append((path, picture, Explained(paths[number], prediction, chosen, name, probability, path, empty)))
    return drawn


def error_maps(predictor: AutoencoderPredictor, paths: list[Path], output: Path | None,
               **asked: object) -> ErrorMapReport:
    """Each picture's error map (see the module docstring) to <stem>.error.png in `output` (default: beside the
    source, as explain's), BATCH pictures a pass, with its AnomalyScore. `asked`: explain's other options (method,
    layer, target, filters, feature_maps), which are a classifier's. Raises ZooError, before anything is written, for
    any of them given, an --output that is a file or a picture that cannot be read."""
    given = next(((name, value) for name, value in asked.items() if value not in (None, False)), None)
    if given is not None:
        option = f"--{given[0].replace('_', '-')}"
        shown = option if given[1] is True else f"{option} {given[1]}"
        raise ZooError(f"{shown}: {predictor.source} is an autoencoder; zoo explain draws its reconstruction error "
                       f"(the picture, its reconstruction and each pixel's squared error) and takes pictures alone: "
                       f"remove {option}")
    folder = Path(output) if output is not None else default_output(predictor.source)
    check_output(folder)
    pictures = [predictor.prepare(path) for path in paths]  # an unreadable file: one line, before anything is drawn
    stems = unique_stems(paths)
    report, drawn = ErrorMapReport(predictor.threshold), []
    for start in range(0, len(pictures), BATCH):
        batch = torch.stack(pictures[start:start + BATCH])
        rebuilt = predictor.outputs(batch)  # N x C x H x W in [0, 1]
        errors = (rebuilt - batch).square().mean(dim=1)  # N x H x W: each pixel's squared error
        for offset, anomaly in enumerate(predictor.judge(batch, rebuilt)):
            number = start + offset
            path = folder / f"{stems[number]}.{ERROR_MAP}.png"
            drawn.append((path, error_picture(predictor, paths[number], batch[offset], rebuilt[offset],
                                              errors[offset], anomaly)))
            report.rows.append(ErrorMap(paths[number], anomaly, path))
    write_pictures(drawn)
    return report


def error_picture(predictor: Predictor, path: Path, picture: Tensor, rebuilt: Tensor, error: Tensor,
                  anomaly: AnomalyScore) -> Image.Image:
    """One picture's error map (zoo.present.grids.error_overlay): the picture (C x H x W, preprocessed), its
    reconstruction (C x H x W, [0, 1]) and its squared error per pixel (H x W) over its largest value, captioned with
    the score and the verdict."""
    largest = error.max().item()
    heat = (error / largest if largest > 0 else error).numpy()
    verdict = (f", {anomaly.verdict} (threshold {anomaly.threshold:.5f})" if anomaly.verdict is not None
               else ", no verdict (the run chose no threshold)")
    caption = [f"{path.name}: reconstruction error {anomaly.score:.5f} (MSE){verdict}",
               f"the picture, its reconstruction, its squared error per pixel (largest {largest:.3f})"]
    return error_overlay(seen(predictor, picture).numpy(), seen(predictor, rebuilt).numpy(), heat, caption)


def map_targets(prediction: Prediction, classes: list[str], target: int | None,
                per_label: bool) -> list[tuple[int, str]]:
    """The classes one picture's heat maps are of, each with its PNG name's suffix: `target` (--target), else the
    predicted labels one by one where a picture has a set of them (`per_label`: every map's suffix is .<label>; the
    top-1's where none was predicted), else the top-1 (no suffix)."""
    if target is not None:  # a set's map is named by its label, as the maps of its predicted labels are
        return [(target, f".{safe_name(classes[target])}" if per_label else "")]
    if per_label:
        chosen = [classes.index(label) for label in prediction.labels] or [prediction.indices[0]]
        return [(index, f".{safe_name(classes[index])}") for index in chosen]
    return [(prediction.indices[0], "")]


def safe_name(label: str) -> str:
    """A class name as part of a file name: characters other than letters, digits, - and _ become _."""
    return "".join(char if char.isalnum() or char in "-_" else "_" for char in label) or "_"


def empty_note(row: Explained, method: str, layer: str | None) -> str:
    """The line that says a picture's heat map was empty, and what its PNG shows instead."""
    where = f" at {layer}" if method == "gradcam" else ""
    return (f"note: {row.path}: the {method} map{where} of {row.target_class} is empty "
            f"({empty_map(method, row.target_class)}); {row.written} shows the picture without a heat map")


def empty_map(method: str, name: str) -> str:
    """Why a heat map of class `name` is 0 everywhere, in `method`'s terms."""
    if method == "occlusion":
        return f"hiding no patch lowers {name}'s score"
    if method == "saliency":
        return f"no pixel changes {name}'s score"
    return f"no positive evidence for {name} anywhere"


def default_output(source: str) -> Path:
    """Beside the checkpoint: runs/.../checkpoints/best.pt -> runs/.../checkpoints/best.explain; torchvision
    weights: <weights>.explain in the working directory."""
    if source.startswith("torchvision:"):
        return Path(f"{source.removeprefix('torchvision:')}.explain")
    path = Path(source)
    return path.parent / f"{path.stem}.explain"


def check_output(folder: Path) -> None:
    """Raises ZooError when `folder`, or the nearest of its parents that exists, is not a folder."""
    if not folder.exists() and folder.suffix.lower() in FILE_SUFFIXES:
        raise ZooError(f"--output {folder}: zoo explain writes several PNGs into a folder; give a folder, e.g. "
                       f"{folder.with_suffix('')}")
    existing = next((path for path in (folder, *folder.parents) if path.exists()), None)
    if existing is not None and not existing.is_dir():
        which = f"--output {folder} is a file" if existing == folder else f"--output {folder}: {existing} is a file"
        raise ZooError(f"{which}; give a folder for the PNGs, e.g. {folder.parent / (folder.stem + '.explain')}")


def unique_stems(paths: list[Path]) -> list[str]:
    """Each picture's file stem, a second picture of the same stem (a.png, other/a.jpg) numbered: a-2."""
    seen_stems: dict[str, int] = {}
    stems = []
    for path in paths:
        count = seen_stems.get(path.stem, 0) + 1
        seen_stems[path.stem] = count
        stems.append(path.stem if count == 1 else f"{path.stem}-{count}")
    return stems


def write_pictures(drawn: list[tuple[Path, Image.Image]]) -> None:
    """Each picture as a PNG, atomically (zoo.rundir.atomic_write); an unwritable folder is one line."""
    from zoo.present.figures import png
    from zoo.rundir import atomic_write

    for path, picture in drawn:
        atomic_write(path, png(picture), fix="give --output a writable folder")
