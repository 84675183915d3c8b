"""Use a trained network: `zoo.load` opens any source zoo predicts with, as one `Predictor`.

    >>> predictor = zoo.load("runs/resnet18_imagefolder/<time>/checkpoints/best.pt")
    >>> predictor.predict(["cat.jpg", "dog.png"], top_k=3)[0].label
    'cat'

Sources: a zoo checkpoint (.pt), the files `zoo export` writes that load without running code (.safetensors, and
.onnx run by ONNX Runtime; not .pt2, which torch.export.load unpickles), and `torchvision:<Weights>` (ImageNet
weights, with their categories and transforms).
Each brings its class names and its preprocessing (zoo.data.preprocess, equal to evaluation's transform);
exported files carry them as `Metadata`, a map of text keys to JSON values in the file's own metadata.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from zoo.data.preprocess import Preprocessing
from zoo.errors import ZooError
from zoo.tasks import Classification, Task, get_task

if TYPE_CHECKING:
    from PIL import Image

    from zoo.checkpoint import TrainingState
    from zoo.config import Config

EXPORT_EXTRA = "pip install 'zoo[export]' (onnx, onnxruntime, onnxscript)"
Network = Callable[[Tensor], Tensor]  # N x C x H x W float32 -> N x num_classes logits


# ---- what an exported file carries --------------------------------------------------------------------

@dataclass(frozen=True)
class Metadata:
    """The facts an exported network needs beside its weights: stored in ONNX metadata_props, the safetensors
    header and a pt2 archive's zoo.json, each key's value as JSON text (Netron and `safetensors` show them)."""

    model_name: str
    num_classes: int
    classes: list[str]
    preprocessing: Preprocessing
    config: dict[str, Any]  # the run's resolved config: zoo.load rebuilds the network from it
    zoo_version: str
    torch_version: str
    task: str = "classification"  # config.task (zoo.tasks): how the outputs become a decision
    thresholds: list[float] | None = None  # a multi-label model's per-class decision thresholds (None: 0.5 each)

    @classmethod
    def of_checkpoint(cls, state: TrainingState, config: Config) -> Metadata:
        import zoo
        from zoo.metrics.trust import output_names

        classes = output_names(state.classes or [], state.num_classes)  # a head wider than the data: by index
        return cls(config.model.name, state.num_classes, classes, Preprocessing.of_checkpoint(state, config),
                   config.to_dict(), zoo.__version__, str(torch.__version__), config.task, state.thresholds)

    def to_strings(self) -> dict[str, str]:
        fields = {"zoo_version": self.zoo_version, "torch_version": self.torch_version, "model_name": self.model_name,
                  "num_classes": self.num_classes, "classes": self.classes, **self.preprocessing.to_dict(),
                  "config": self.config, "task": self.task, "thresholds": self.thresholds}
        return {key: json.dumps(value, ensure_ascii=False) for key, value in fields.items()}

    @classmethod
    def from_strings(cls, strings: dict[str, str] | None, path: Path, weights: dict[str, Tensor] | None = None
                     ) -> Metadata:
        """The metadata of an exported file, each field checked for what it holds as a checkpoint's are
        (zoo.checkpoint.FieldCheck: types, ranges, and sizes against the file's `weights` where it has them).
        Raises ZooError for a file without zoo's metadata (exported by another tool), or with damaged metadata."""
        from zoo.checkpoint import FieldCheck
        from zoo.datasets import SPECS
        from zoo.metrics.trust import output_names

        strings = strings or {}
        if "zoo_version" not in strings:
            raise ZooError(f"{path} has no zoo metadata (class names, preprocessing): "
                           "it was not written by zoo export; "
                           "export the checkpoint with zoo export, or fine-tune from a weights file (finetune.source)")
        try:
            values = {key: json.loads(text) for key, text in strings.items()}
        except (TypeError, ValueError) as error:
            raise ZooError(f"{path}: its zoo metadata is damaged ({type(error).__name__}: {error}); "
                           "export it again") from None
        check = FieldCheck(path, "export it again with zoo export", "zoo metadata's ")
        optional = ("preprocessing", "task", "thresholds")  # the last two: absent from older exports
        missing = [key for key in (*cls.__dataclass_fields__, *Preprocessing.__dataclass_fields__)
                   if key not in values and key not in optional]
        if missing:
            raise check.refuse(missing[0], "is missing")
        config = check.mapping("config", values["config"])
        num_classes, channels = (check.integer(key, values[key], 1) for key in ("num_classes", "in_channels"))
        if weights is not None:
            check.fits("num_classes", num_classes, weights, 0, "as many rows (the classifier's outputs)")
            check.fits("in_channels", channels, weights, 1, "as many input channels", flat=True)
        wider = isinstance(config.get("model"), dict) and config["model"].get("num_classes") == num_classes
        classes = output_names(check.names("classes", values["classes"], num_classes, wider), num_classes)
        preprocessing = Preprocessing(check.text("data", values["data"], tuple(SPECS)),
                                      *check.statistics("", values["mean"], values["std"], channels),
                                      check.side("input_size", values["input_size"], config), channels)
        from zoo.config import TASKS

        task = check.text("task", values.get("task", "classification"), TASKS)
        return cls(check.text("model_name", values["model_name"]), num_classes, classes, preprocessing, config,
                   *(check.text(key, values[key]) for key in ("zoo_version", "torch_version")), task,
                   check.thresholds("thresholds", values.get("thresholds"), num_classes))

    def decider(self) -> Task:
        """The task that turns the outputs into decisions, with the exported thresholds."""
        return get_task(self.task, self.thresholds)


# ---- predictions --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Prediction:
    """One picture's top-k: class indices, names and probabilities (fractions: softmax of the logits, or a
    multi-label model's sigmoid per class), best first; and its `labels`, what the model decided (zoo.tasks): the
    top-1 class, or a multi-label model's every class at or above its threshold (none included)."""

    indices: tuple[int, ...]
    classes: tuple[str, ...]
    probabilities: tuple[float, ...]
    labels: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.classes[0]

    @property
    def probability(self) -> float:
        return self.probabilities[0]

    def to_dict(self) -> dict[str, Any]:
        return {"labels": list(self.labels),
                "top_k": [{"class": name, "index": index, "probability": probability}
                          for index, name, probability in zip(self.indices, self.classes, self.probabilities)]}


def top_predictions(logits: Tensor, classes: Sequence[str], k: int, task: Task | None = None) -> list[Prediction]:
    """N x num_classes logits -> N Predictions of min(k, num_classes) classes each, with `task`'s decision
    (None: single-label classification's)."""
    task = task or Classification()
    probabilities = task.probabilities(logits)
    values, indices = probabilities.topk(min(k, probabilities.shape[1]), dim=1)
    classes = list(classes)
    decided = task.decide(probabilities, classes)
    return [Prediction(tuple(row), tuple(classes[i] for i in row), tuple(p), tuple(labels))
            for row, p, labels in zip(indices.tolist(), values.tolist(), decided)]


class Predictor:
    """A trained network with its classes and preprocessing, ready to classify pictures.

    `model`: the network in eval mode (an nn.Module; for .onnx an `OnnxNetwork`); `classes`: its class names in
    output order; `transform`: PIL image -> float tensor C x H x W, the preprocessing of zoo.data.preprocess (a
    torchvision source: its weights' transforms); `config`: the run's Config (None for torchvision weights);
    `preprocessing`: the Preprocessing (None for torchvision weights); `source`: where it came from.
    """

    def __init__(self, model: nn.Module | Network, classes: Sequence[str], transform: Callable[[Image.Image], Tensor],
                 *, in_channels: int, config: Config | None = None, preprocessing: Preprocessing | None = None,
                 device: torch.device | str = "cpu", source: str = "", fixed_batch: int | None = None,
                 task: Task | None = None) -> None:
        self.model, self.classes, self.transform = model, list(classes), transform
        self.task = task or Classification()  # how the outputs become decisions (zoo.tasks)
        self.in_channels, self.config, self.preprocessing, self.source = in_channels, config, preprocessing, source
        self.device = torch.device(device)
        self.fixed_batch = fixed_batch  # an export with a static batch takes exactly this many pictures a call

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def prepare(self, image: str | Path | Image.Image) -> Tensor:
        """One picture (a path, or a PIL image of any mode) -> C x H x W, read as zoo.data.images.open_image does.
        Raises ZooError for a path that is missing, a folder or no picture Pillow decodes, or another type."""
        from PIL import Image

        from zoo.data.images import display_rgb, open_image

        if isinstance(image, Image.Image):
            from PIL import ImageOps

            return self.transform(display_rgb(ImageOps.exif_transpose(image)))
        if not isinstance(image, (str, Path)):
            raise ZooError(f"cannot predict a {type(image).__name__}; give paths, PIL images or one float tensor "
                           "N x C x H x W (preprocessed)")
        path = Path(image)
        if path.is_dir():
            raise ZooError(f"{path} is a folder; give its files (zoo.predict_files and zoo predict read folders)")
        if not path.exists():
            raise ZooError(f"{path} not found")
        return self.transform(open_image(path))

    @torch.inference_mode()
    def logits(self, batch: Tensor) -> Tensor:
        """N x C x H x W float (preprocessed) -> N x num_classes logits, on the CPU. Raises ZooError for another
        channel count than the network takes."""
        self.check_batch(batch)
        batch = batch.to(self.device, torch.float32)
        if self.fixed_batch is None:
            return self.model(batch).float().cpu()
        size, parts = self.fixed_batch, []
        for start in range(0, len(batch), size):
            chunk = batch[start:start + size]
            padded = (torch.cat([chunk, chunk.new_zeros(size - len(chunk), *chunk.shape[1:])]) if len(chunk) < size
                      else chunk)
            parts.append(self.model(padded)[:len(chunk)].float().cpu())
        return torch.cat(parts)

    def check_batch(self, batch: Tensor) -> None:
        """Raises ZooError for a tensor that is not a preprocessed batch: not float (a uint8 picture, as
        torchvision.io.read_image gives), another channel count or side than the network was trained at, or
        values that are not finite."""
        shape = tuple(batch.shape)
        fix = "preprocess pictures with .transform, or pass paths or PIL images"
        if not batch.is_floating_point():
            raise ZooError(f"a {str(batch.dtype).removeprefix('torch.')} tensor is not a preprocessed batch (floats, "
                           f"normalized); {fix}")
        pictures = self.preprocessing is None or self.preprocessing.takes_pictures  # else N x features (xor)
        side = self.preprocessing.input_size if self.preprocessing is not None and pictures else None
        expected = f"N x {self.in_channels}" + ("" if not pictures else f" x {side} x {side}" if side else " x H x W")
        if batch.dim() != (4 if pictures else 2) or shape[1] != self.in_channels \
                or (side and shape[2:] != (side, side)):
            raise ZooError(f"the network takes {expected} inputs, not a tensor of shape {shape}; {fix}")
        if not torch.isfinite(batch).all():
            raise ZooError(f"the batch holds NaN or infinite values; {fix}")

    def predict(self, images: Tensor | Sequence[str | Path | Image.Image] | str | Path | Image.Image, top_k: int = 5,
                batch_size: int = 64) -> list[Prediction]:
        """The top_k classes of each picture, and what the model decided (Prediction.labels): paths, PIL images, or a
        float tensor N x C x H x W already preprocessed (by .transform). Returns one Prediction per picture, in
        order (top_k is capped at the class count). Raises ZooError for a file that cannot be read (the whole call:
        zoo predict skips such files), a tensor that is not a preprocessed batch (check_batch), or top_k below 1."""
        if top_k < 1:
            raise ZooError(f"top_k is {top_k}; give 1 or more")
        if isinstance(images, Tensor):
            return top_predictions(self.logits(images), self.classes, top_k, self.task)
        if isinstance(images, (str, Path)) or not isinstance(images, Sequence):
            images = [images]
        predictions: list[Prediction] = []
        for start in range(0, len(images), batch_size):
            batch = torch.stack([self.prepare(image) for image in images[start:start + batch_size]])
            predictions += top_predictions(self.logits(batch), self.classes, top_k, self.task)
        return predictions

    def __repr__(self) -> str:
        return f"Predictor({self.source!r}, {self.num_classes} classes, device={self.device})"


# ---- sources ------------------------------------------------------------------------------------------

def load(source: str | Path, device: str | torch.device = "cpu") -> Predictor:
    """The network at `source` as a Predictor on `device` (auto: CUDA, MPS, else the CPU; .onnx runs on the CPU,
    or CUDA where onnxruntime-gpu is installed).

    `source`: a zoo checkpoint (runs/.../checkpoints/best.pt), a file of `zoo export` (.safetensors, .onnx; a .pt2
    program is refused, its loading unpickles), or torchvision:<Weights> (e.g.
    torchvision:ResNet18_Weights.IMAGENET1K_V1, downloaded once into torch.hub's cache). Raises ZooError, one
    line, for a missing or damaged file, a file zoo did not write, unknown weights, or a missing optional
    package (.onnx needs zoo[export]).
    """
    from zoo.runtime import resolve_device

    where = resolve_device(str(device), key="--device")
    text = str(source)
    if text.startswith("torchvision:"):
        return open_torchvision(text.removeprefix("torchvision:"), where)
    from zoo.checkpoint import checkpoint_file

    path = checkpoint_file(source)  # a run directory: its best.pt
    if not path.is_file():
        raise ZooError(f"{text!r} not found; give a checkpoint (runs/<name>/<time>/checkpoints/best.pt), a file of "
                       "zoo export (.onnx, .safetensors) or torchvision:<Weights>")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return open_onnx(path, where)
    if suffix == ".pt2":
        raise ZooError(f"{path}: zoo does not load .pt2 programs, since torch.export.load unpickles their weights with "
                       "weights_only=False, which can run code; predict with the .onnx or .safetensors export, or call "
                       "torch.export.load yourself on a file you trust")
    if suffix == ".safetensors":
        return open_safetensors(path, where)
    return open_zoo_checkpoint(path, where)


def _predictor(model: nn.Module | Network, metadata: Metadata, device: torch.device, source: Path,
               config: Config | None = None, fixed_batch: int | None = None) -> Predictor:
    preprocessing = metadata.preprocessing
    return Predictor(model, metadata.classes, preprocessing.transform(), in_channels=preprocessing.in_channels,
                     config=config, preprocessing=preprocessing, device=device, source=str(source),
                     fixed_batch=fixed_batch, task=metadata.decider())


def open_checkpoint(path: Path) -> tuple[TrainingState, Config, nn.Module]:
    """A zoo checkpoint's state, its config (normalized as the network was trained) and the network, in eval mode
    on the CPU. Raises ZooError for a file that is no zoo checkpoint, or weights that do not fit its config."""
    from zoo.checkpoint import read_state
    from zoo.evaluation.evaluate import checkpoint_config, load_model

    state = read_state(path, "evaluate")
    config = checkpoint_config(state, path, [])
    return state, config, load_model(state, config, path).eval()


def open_zoo_checkpoint(path: Path, device: torch.device) -> Predictor:
    state, config, model = open_checkpoint(path)
    return _predictor(model.to(device), Metadata.of_checkpoint(state, config), device, path, config)


def open_safetensors(path: Path, device: torch.device) -> Predictor:
    from zoo.checkpoint import TrainingState, load_weights, read_safetensors
    from zoo.config import validate_config

    tensors, strings = read_safetensors(path)
    metadata = Metadata.from_strings(strings, path, tensors)
    config = validate_config(metadata.config, f"{path} (config)")
    model = config.model.build(metadata.num_classes, metadata.preprocessing.in_channels)
    load_weights(model, TrainingState(tensors, metadata.config, metadata.model_name), path, config.model.name)
    return _predictor(model.to(device).eval(), metadata, device, path, config)


def open_exported_program(path: Path, device: torch.device) -> Predictor:
    """A .pt2 file zoo export has just written (its check): torch.export.load unpickles without weights_only,
    so `load` never opens one a user brings."""
    extra = {"zoo.json": ""}
    try:
        with open(path, "rb") as file:  # a file object: torch.export.load takes only names ending in .pt2
            program = torch.export.load(file, extra_files=extra)
    except Exception as error:  # torch raises many kinds for a file that is no torch.export archive
        raise ZooError(f"{path} is damaged or not a torch.export program ({type(error).__name__}); "
                       "export it again") from None
    metadata = Metadata.from_strings(json.loads(extra["zoo.json"] or "{}"), path)
    module = program.module().to(device)
    return _predictor(module, metadata, device, path, fixed_batch=_static_batch(program))


def _static_batch(program: Any) -> int | None:
    """The batch size an ExportedProgram was specialized to, or None when its batch dimension is dynamic."""
    from torch.export.graph_signature import InputKind

    spec = next(spec for spec in program.graph_signature.input_specs if spec.kind == InputKind.USER_INPUT)
    node = next(node for node in program.graph.nodes if node.op == "placeholder" and node.name == spec.arg.name)
    size = node.meta["val"].shape[0]
    return size if isinstance(size, int) else None


class OnnxNetwork:
    """An ONNX file run by ONNX Runtime: N x C x H x W float32 -> N x num_classes logits (torch tensors)."""

    def __init__(self, path: Path, device: torch.device) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise ZooError(f"running {path.name} needs ONNX Runtime: {EXPORT_EXTRA}") from None
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: its warnings about unused initializers are not the user's
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=providers)
        except Exception as error:  # onnxruntime's own exception types (InvalidProtobuf, Fail ...)
            reason = next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)
            raise ZooError(f"{path} is damaged or not an ONNX model ({reason[:200]}); export it again") from None
        self.input = self.session.get_inputs()[0]
        self.output = self.session.get_outputs()[0].name

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self.session.get_modelmeta().custom_metadata_map)

    @property
    def static_batch(self) -> int | None:
        size = self.input.shape[0]
        return size if isinstance(size, int) else None

    def __call__(self, batch: Tensor) -> Tensor:
        array = batch.detach().cpu().contiguous().numpy()
        return torch.from_numpy(self.session.run([self.output], {self.input.name: array})[0])


def open_onnx(path: Path, device: torch.device) -> Predictor:
    network = OnnxNetwork(path, device)
    metadata = Metadata.from_strings(network.metadata, path)
    channels, outputs = network.input.shape[1], network.session.get_outputs()[0].shape[-1]
    if isinstance(channels, int) and channels != metadata.preprocessing.in_channels:
        raise ZooError(f"{path} takes {channels}-channel input but its metadata says "
                       f"{metadata.preprocessing.in_channels}; export it again with zoo export")
    if isinstance(outputs, int) and outputs != metadata.num_classes:
        raise ZooError(f"{path} gives {outputs} outputs but its metadata says {metadata.num_classes} classes; "
                       "export it again with zoo export")
    return _predictor(network, metadata, torch.device("cpu"), path, fixed_batch=network.static_batch)


def open_torchvision(name: str, device: torch.device) -> Predictor:
    """torchvision's weights in zoo's own network (their keys match, tests/test_torchvision_compat.py proves it),
    with the weights' categories and transforms (resize, centre crop, normalization; GoogLeNet's statistics are
    its weights', which torchvision's builder converts the input to)."""
    import torchvision

    from zoo.models.registry import create_model, get_model_info, list_models
    from zoo.training.finetune import _torchvision_weights, torchvision_transforms

    try:
        weights = torchvision.models.get_weight(name)
    except (ValueError, KeyError, AttributeError):
        raise ZooError(f"unknown torchvision weights {name!r}; "
                       "e.g. torchvision:ResNet18_Weights.IMAGENET1K_V1") from None
    counterparts = [model for model in list_models() if (builder := get_model_info(model).torchvision)
                    and torchvision.models.get_model_weights(builder) is type(weights)]
    if not counterparts:
        raise ZooError(f"{name} are weights for a network zoo does not build; zoo reads those of its own networks "
                       "(zoo list shows which match torchvision)")
    model_name = counterparts[0]  # one zoo network per torchvision builder
    source = _torchvision_weights(name, model_name)
    categories = list(weights.meta["categories"])
    model = create_model(model_name, num_classes=len(categories))
    model.load_state_dict(source.state)
    transforms = torchvision_transforms(weights, get_model_info(model_name).torchvision)  # GoogLeNet's statistics too
    return Predictor(model.to(device).eval(), categories, transforms, in_channels=3, device=device,
                     source=f"torchvision:{name}")
