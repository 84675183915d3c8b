"""Use a trained network: `zoo.load` opens any source zoo predicts with, as one `Predictor`.

    >>> predictor = zoo.load("runs/resnet18_imagefolder/<time>/checkpoints/best.pt")
    >>> predictor.predict(["cat.jpg", "dog.png"], top_k=3)[0].label
    'cat'

Sources: a zoo checkpoint (.pt), the files `zoo export` writes that load without running code (.safetensors, and
.onnx run by ONNX Runtime; not .pt2, which torch.export.load unpickles), and `torchvision:<Weights>` (ImageNet
weights, with their categories and transforms).
Each brings its class names and its preprocessing (zoo.data.preprocess, equal to evaluation's transform);
exported files carry them as `Metadata`, a map of text keys to JSON values in the file's own metadata.

An autoencoder (task reconstruction) opens as an `AutoencoderPredictor`: its network gives the reconstruction
(the sigmoid applied inside, by `Reconstructor` or in the exported graph), every picture's anomaly score is the MSE of
its reconstruction, and `predict` gives `AnomalyScore`s (score, verdict at the run's threshold) instead of top-k
classes:

    >>> autoencoder = zoo.load("runs/conv_autoencoder_digits/<time>")          # or its .onnx, .safetensors
    >>> autoencoder.reconstruct(["three.png"]).shape, autoencoder.anomaly_scores(["three.png"])
    (torch.Size([1, 1, 28, 28]), tensor([0.0213], dtype=torch.float64))
    >>> autoencoder.predict(["seven.png"])[0].verdict
    'abnormal'

An encoder exported alone (zoo export --encoder) is refused by `load`: its output is the code, which zoo has no
use for; run it with ONNX Runtime, or load its safetensors weights into the autoencoder's `encoder`.

A text network (data.name text) opens as a `TextPredictor`, whose `predict` takes sentences, tokenized with the run's
vocabulary (zoo.data.text; the checkpoint and every export carry it):

    >>> zoo.load("runs/textcnn_text/<time>").predict(["A fine, funny film."])[0].label
    'pos'
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from zoo.data.preprocess import Preprocessing
from zoo.data.text import pad, tokenize
from zoo.errors import ZooError
from zoo.metrics.familiarity import pixel_features
from zoo.metrics.reconstruction import per_image_mse
from zoo.tasks import Classification, Task, get_task

if TYPE_CHECKING:
    from PIL import Image

    from zoo.checkpoint import TrainingState, Vocabulary
    from zoo.config import Config
    from zoo.metrics.calibration import Calibration

EXPORT_EXTRA = "pip install 'zoo[export]' (onnx, onnxruntime, onnxscript)"
Network = Callable[[Tensor], Tensor]  # N x C x H x W float32 -> N x num_classes logits (or a reconstruction, a code)
Images = Any  # what the Predictor's methods take: paths, PIL images, one of either, or a preprocessed float tensor
PARTS = ("network", "encoder")  # what an export holds: the whole network, or an autoencoder's encoder alone


# ---- what an exported file carries --------------------------------------------------------------------

@dataclass(frozen=True)
class Metadata:
    """The facts an exported network needs beside its weights: stored in ONNX metadata_props, the safetensors
    header and a pt2 archive's zoo.json, each key's value as JSON text (Netron and `safetensors` show them)."""

    model_name: str
    num_classes: int  # the classifier's outputs; 0 for an autoencoder, which predicts no class
    classes: list[str]  # in output order; an autoencoder's: the data's classes it learnt as normal
    preprocessing: Preprocessing
    config: dict[str, Any]  # the run's resolved config: zoo.load rebuilds the network from it
    zoo_version: str
    torch_version: str
    task: str = "classification"  # config.task (zoo.tasks): how the outputs become a decision
    thresholds: list[float] | None = None  # a multi-label model's per-class decision thresholds (None: 0.5 each)
    anomaly_threshold: float | None = None  # an autoencoder's: abnormal above this MSE (None: the run chose none)
    part: str = "network"  # PARTS: "encoder" is an autoencoder's encoder alone (zoo export --encoder)
    # a classifier's temperature, prediction sets and unfamiliar score (zoo.metrics.calibration); None: not fitted
    calibration: Calibration | None = None
    vocabulary: Vocabulary | None = None  # a text network's words and tokenizer settings (zoo.checkpoint.Vocabulary)

    @classmethod
    def of_checkpoint(cls, state: TrainingState, config: Config) -> Metadata:
        import zoo
        from zoo.metrics.trust import output_names

        if get_task(config.task).has_classes:
            num_classes = state.num_classes
            classes = output_names(state.classes or [], num_classes)  # a head wider than the data: by index
        else:  # an autoencoder: no outputs to name; its classes are the normal ones
            num_classes, classes = 0, list(state.classes or [])
        stored = config.to_dict()
        if "calibration" not in state.config:  # a checkpoint older than calibration: its exports say so too
            stored.pop("calibration", None)
        return cls(config.model.name, num_classes, classes, Preprocessing.of_checkpoint(state, config),
                   stored, zoo.__version__, str(torch.__version__), config.task, state.thresholds,
                   state.anomaly_threshold, calibration=state.calibration, vocabulary=state.vocabulary)

    @property
    def outputs(self) -> str:
        """What the exported network gives (the ONNX graph's output name): "logits" (N x num_classes), an
        autoencoder's "reconstruction" (N x C x H x W in [0, 1]), or its encoder's "code" (N x code_shape)."""
        if self.part == "encoder":
            return "code"
        return "logits" if get_task(self.task).has_classes else "reconstruction"

    def to_strings(self) -> dict[str, str]:
        fields = {"zoo_version": self.zoo_version, "torch_version": self.torch_version, "model_name": self.model_name,
                  "num_classes": self.num_classes, "classes": self.classes, **self.preprocessing.to_dict(),
                  "config": self.config, "task": self.task, "thresholds": self.thresholds,
                  "anomaly_threshold": self.anomaly_threshold, "part": self.part,
                  "calibration": None if self.calibration is None else self.calibration.to_dict(),
                  "vocabulary": None if self.vocabulary is None else self.vocabulary.to_dict()}
        return {key: json.dumps(value, ensure_ascii=False) for key, value in fields.items()}

    @classmethod
    def from_strings(cls, strings: dict[str, str] | None, path: Path, weights: dict[str, Tensor] | None = None
                     ) -> Metadata:
        """The metadata of an exported file, each field checked for what it holds as a checkpoint's are
        (zoo.checkpoint.FieldCheck: types, ranges, and sizes against the file's `weights` where it has them).
        Raises ZooError for a file without zoo's metadata (exported by another tool), or with damaged metadata."""
        from zoo.checkpoint import FieldCheck, Vocabulary
        from zoo.config import TASKS
        from zoo.datasets import SPECS

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
        # preprocessing: its own fields; the others absent from older exports
        optional = ("preprocessing", "task", "thresholds", "anomaly_threshold", "part", "calibration", "vocabulary")
        missing = [key for key in (*cls.__dataclass_fields__, *Preprocessing.__dataclass_fields__)
                   if key not in values and key not in optional]
        if missing:
            raise check.refuse(missing[0], "is missing")
        config = check.mapping("config", values["config"])
        task = check.text("task", values.get("task", "classification"), TASKS)
        num_classes, classes = _outputs(check, values, config, get_task(task).has_classes, weights)
        channels = check.integer("in_channels", values["in_channels"], 1)
        if weights is not None:
            check.fits("in_channels", channels, weights, 1, "as many input channels", flat=True)
        preprocessing = Preprocessing(check.text("data", values["data"], tuple(SPECS)),
                                      *check.statistics("", values["mean"], values["std"], channels),
                                      check.side("input_size", values["input_size"], config), channels)
        anomaly, words = values.get("anomaly_threshold"), values.get("vocabulary")
        return cls(check.text("model_name", values["model_name"]), num_classes, classes, preprocessing, config,
                   *(check.text(key, values[key]) for key in ("zoo_version", "torch_version")), task,
                   check.thresholds("thresholds", values.get("thresholds"), num_classes or None),
                   None if anomaly is None else check.number("anomaly_threshold", anomaly),
                   check.text("part", values.get("part", "network"), PARTS),
                   check.calibration("calibration", values.get("calibration"),
                                     {"in_channels": channels, "input_size": preprocessing.input_size},
                                     tokens=words is not None),
                   Vocabulary.from_dict(words, check, weights))

    def decider(self) -> Task:
        """The task that turns the outputs into decisions, with the exported thresholds."""
        colorize = bool((self.config.get("reconstruction") or {}).get("colorize"))
        return get_task(self.task, self.thresholds, anomaly_threshold=self.anomaly_threshold, colorize=colorize)


def _outputs(check: Any, values: dict[str, Any], config: dict[str, Any], has_classes: bool,
             weights: dict[str, Tensor] | None) -> tuple[int, list[str]]:
    """(num_classes, classes) of an export's metadata, checked: a classifier's outputs, 1 or more, one name each
    (a head wider than the data named by index), as many as its weights' classifier rows; an autoencoder's 0
    outputs and the names of the classes it learnt as normal, any number."""
    from zoo.metrics.trust import output_names

    if not has_classes:
        return (check.integer("num_classes", values["num_classes"], 0, 0),
                check.names("classes", values["classes"], None))
    num_classes = check.integer("num_classes", values["num_classes"], 1)
    if weights is not None:
        check.fits("num_classes", num_classes, weights, 0, "as many rows (the classifier's outputs)")
    wider = isinstance(config.get("model"), dict) and config["model"].get("num_classes") == num_classes
    return num_classes, output_names(check.names("classes", values["classes"], num_classes, wider), num_classes)


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
    # with a calibration (Metadata.calibration): whether the picture is unlike the training data, its unfamiliar
    # score (above the threshold: unfamiliar), and with a coverage its prediction set (class names, best first)
    unfamiliar: bool | None = None
    unfamiliar_score: float | None = None
    set: tuple[str, ...] | None = None

    @property
    def label(self) -> str:
        return self.classes[0]

    @property
    def probability(self) -> float:
        return self.probabilities[0]

    def to_dict(self) -> dict[str, Any]:
        judged = ({"unfamiliar": self.unfamiliar, "unfamiliar_score": self.unfamiliar_score}
                  if self.unfamiliar is not None else {})
        return {"labels": list(self.labels), **judged, **({"set": list(self.set)} if self.set is not None else {}),
                "top_k": [{"class": name, "index": index, "probability": probability}
                          for index, name, probability in zip(self.indices, self.classes, self.probabilities)]}


def top_predictions(logits: Tensor, classes: Sequence[str], k: int, task: Task | None = None,
                    calibration: Calibration | None = None, features: Tensor | None = None,
                    coverage: float | None = None) -> list[Prediction]:
    """N x num_classes logits -> N Predictions of min(k, num_classes) classes each, with `task`'s decision
    (None: single-label classification's). With a `calibration`: the temperature-scaled probabilities, and with the
    pictures' `features` (zoo.metrics.familiarity.pixel_features) each one's unfamiliar score and verdict; with a
    `coverage` too, each one's prediction set."""
    task = task or Classification()
    probabilities = task.probabilities(logits) if calibration is None else calibration.probabilities(logits)
    values, indices = probabilities.topk(min(k, probabilities.shape[1]), dim=1)
    classes = list(classes)
    decided = task.decide(probabilities, classes)
    count = len(logits)
    scores = (calibration.unfamiliar(logits, features) if calibration is not None and features is not None
              else None)
    flagged = [None] * count if scores is None else (scores > calibration.familiarity.threshold).tolist()
    scores = [None] * count if scores is None else scores.tolist()
    sets = ([None] * count if calibration is None or coverage is None else
            [tuple(classes[i] for i in chosen) for chosen in calibration.conformal.sets(probabilities, coverage)])
    return [Prediction(tuple(row), tuple(classes[i] for i in row), tuple(p), tuple(labels), unfamiliar, score, chosen)
            for row, p, labels, unfamiliar, score, chosen
            in zip(indices.tolist(), values.tolist(), decided, flagged, scores, sets)]


class Predictor:
    """A trained network with its classes and preprocessing, ready to classify pictures.

    `model`: the network in eval mode (an nn.Module; for .onnx an `OnnxNetwork`); `classes`: its class names in
    output order; `transform`: PIL image -> float tensor C x H x W, the preprocessing of zoo.data.preprocess (a
    torchvision source: its weights' transforms); `config`: the run's Config (None for torchvision weights);
    `preprocessing`: the Preprocessing (None for torchvision weights); `source`: where it came from; `part`:
    "network", or "encoder" for an autoencoder's encoder exported alone (which `load` refuses; zoo export's check
    runs it). An autoencoder's is an AutoencoderPredictor.
    """

    def __init__(self, model: nn.Module | Network, classes: Sequence[str], transform: Callable[[Image.Image], Tensor],
                 *, in_channels: int, config: Config | None = None, preprocessing: Preprocessing | None = None,
                 device: torch.device | str = "cpu", source: str = "", fixed_batch: int | None = None,
                 task: Task | None = None, part: str = "network", calibration: Calibration | None = None) -> None:
        self.model, self.classes, self.transform = model, list(classes), transform
        self.task = task or Classification()  # how the outputs become decisions (zoo.tasks)
        self.in_channels, self.config, self.preprocessing, self.source = in_channels, config, preprocessing, source
        self.device = torch.device(device)
        self.fixed_batch = fixed_batch  # an export with a static batch takes exactly this many pictures a call
        self.part = part
        self.calibration = calibration  # temperature, prediction sets, unfamiliar score: None where not fitted
        # a zoo checkpoint or export older than calibration (its config has no calibration section): zoo calibrate
        # would add one; set by the source's opener
        self.predates_calibration = False

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

    def batches(self, images: Images, batch_size: int = 64) -> Iterator[Tensor]:
        """`images` as preprocessed batches N x C x H x W of at most `batch_size` pictures: paths and PIL images
        through `prepare`, in order; a float tensor N x C x H x W (already preprocessed) as one batch. Raises
        ZooError as `prepare` does, when the batch is reached."""
        if isinstance(images, Tensor):
            yield images
            return
        if isinstance(images, (str, Path)) or not isinstance(images, Sequence):
            images = [images]
        for start in range(0, len(images), batch_size):
            yield torch.stack([self.prepare(image) for image in images[start:start + batch_size]])

    @torch.inference_mode()
    def outputs(self, batch: Tensor) -> Tensor:
        """N x C x H x W float (preprocessed) -> what the network gives, on the CPU: a classifier's N x num_classes
        logits, an autoencoder's reconstruction (N x C x H x W in [0, 1]). Raises ZooError for a batch check_batch
        refuses."""
        self.check_batch(batch)
        batch = batch.to(self.device, torch.float32) if batch.is_floating_point() else batch.to(self.device)  # ids
        if self.fixed_batch is None:
            return self.model(batch).float().cpu()
        size, parts = self.fixed_batch, []
        for start in range(0, len(batch), size):
            chunk = batch[start:start + size]
            padded = (torch.cat([chunk, chunk.new_zeros(size - len(chunk), *chunk.shape[1:])]) if len(chunk) < size
                      else chunk)
            parts.append(self.model(padded)[:len(chunk)].float().cpu())
        return torch.cat(parts)

    def logits(self, batch: Tensor) -> Tensor:
        """N x C x H x W float (preprocessed) -> N x num_classes logits, on the CPU. Raises ZooError for another
        channel count than the network takes."""
        return self.outputs(batch)

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

    def decide(self, batch: Tensor, top_k: int, coverage: float | None = None) -> list[Prediction]:
        """A preprocessed batch's Predictions: the top_k classes of each picture and what the model decided; with a
        calibration, the calibrated probabilities and whether each picture is unfamiliar, and with `coverage` its
        prediction set."""
        features = pixel_features(batch) if self.calibration is not None else None
        return top_predictions(self.logits(batch), self.classes, top_k, self.task, self.calibration, features,
                               coverage)

    def predict(self, images: Images, top_k: int = 5, batch_size: int = 64,
                coverage: float | None = None) -> list[Prediction]:
        """The top_k classes of each picture, and what the model decided (Prediction.labels): paths, PIL images, or a
        float tensor N x C x H x W already preprocessed (by .transform). Returns one Prediction per picture, in
        order (top_k is capped at the class count). With a calibration (`.calibration`, fitted at the end of
        training or by zoo calibrate) the probabilities are temperature-scaled and each Prediction says whether the
        picture is `unfamiliar`; with `coverage` (a fraction, e.g. 0.9) it holds its prediction `set`, which
        holds the true class that often (split conformal prediction). Raises ZooError for a file that cannot be
        read (the whole call: zoo predict skips such files), a tensor that is not a preprocessed batch
        (check_batch), top_k below 1, or a coverage outside (0, 1) or without a calibration."""
        if top_k < 1:
            raise ZooError(f"top_k is {top_k}; give 1 or more")
        self.check_coverage(coverage)
        return [prediction for batch in self.batches(images, batch_size)
                for prediction in self.decide(batch, top_k, coverage)]

    def check_coverage(self, coverage: float | None) -> None:
        """Raises ZooError for a coverage that is not a fraction strictly between 0 and 1, or one asked of a model
        without a calibration (an older checkpoint, another task, a run without a validation split)."""
        if coverage is None:
            return
        if isinstance(coverage, bool) or not isinstance(coverage, (int, float)) or not 0 < coverage < 1:
            raise ZooError(f"--coverage {coverage}: give the share of pictures whose prediction set must hold the true "
                           "class, a fraction between 0 and 1 (e.g. 0.9)")
        if self.calibration is None:
            raise ZooError(f"--coverage: {self.source} has no calibration to build prediction sets from; "
                           f"{uncalibrated_fix(self)}")

    def __repr__(self) -> str:
        return f"Predictor({self.source!r}, {self.num_classes} classes, device={self.device})"


# ---- sentences ----------------------------------------------------------------------------------------

class TextPredictor(Predictor):
    """A text network (data.name text), ready to classify sentences: `predict` takes sentences (one text, or a list
    of them) instead of pictures, each tokenized and looked up as its training data was (zoo.data.text, with the
    run's `vocabulary`), or one batch of token ids N x L (int64, padded with <pad>, id 0). The rest is a
    Predictor's: top-k, the calibration's temperature, prediction sets and unfamiliar score (the energy alone)."""

    def __init__(self, *args: Any, vocabulary: Vocabulary, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.vocabulary = vocabulary

    def prepare(self, sentence: str) -> Tensor:  # type: ignore[override]
        """One sentence -> its token ids (int64, at most vocabulary.max_tokens; <unk>'s for words the training split
        had not). Raises ZooError for one that is not text, or holds nothing but spaces."""
        if not isinstance(sentence, str):
            raise ZooError(f"cannot classify a {type(sentence).__name__} as a sentence; give text, or one tensor of "
                           "token ids N x L (int64)")
        tokens = tokenize(sentence)
        if not tokens:
            raise ZooError("an empty sentence; give the words to classify")
        return torch.tensor(self.vocabulary.ids(tokens), dtype=torch.long)

    def batches(self, sentences: Any, batch_size: int = 64) -> Iterator[Tensor]:
        """`sentences` as batches of token ids N x L (padded to the longest, and to vocabulary.min_tokens) of at most
        `batch_size` sentences, in order; a tensor of ids as one batch. Raises ZooError as `prepare` does."""
        if isinstance(sentences, Tensor):
            yield sentences
            return
        sentences = [sentences] if isinstance(sentences, str) else list(sentences)
        for start in range(0, len(sentences), batch_size):
            chunk = [self.prepare(sentence) for sentence in sentences[start:start + batch_size]]
            yield pad(chunk, self.vocabulary.min_tokens)

    def check_batch(self, batch: Tensor) -> None:
        """Raises ZooError for a tensor that is not a batch of this vocabulary's token ids: not N x L integers, ids
        outside it, or fewer than min_tokens per row."""
        fix = "give sentences (text): they are tokenized as the training data was"
        size, least = len(self.vocabulary.words), self.vocabulary.min_tokens
        if batch.is_floating_point() or batch.dim() != 2:
            kind = str(batch.dtype).removeprefix("torch.")
            raise ZooError(f"the network takes token ids, N x L integers, not a {kind} tensor of shape "
                           f"{tuple(batch.shape)}; {fix}")
        if batch.numel() and not (0 <= int(batch.min()) and int(batch.max()) < size):
            raise ZooError(f"token ids run from 0 to {size - 1} (the vocabulary's words); this batch holds "
                           f"{int(batch.min())} to {int(batch.max())}; {fix}")
        if batch.shape[1] < least:
            raise ZooError(f"the network takes at least {least} tokens per row (pad with <pad>, id 0), not "
                           f"{batch.shape[1]}; {fix}")

    def __repr__(self) -> str:
        return (f"TextPredictor({self.source!r}, {self.num_classes} classes, {len(self.vocabulary.words):,} words, "
                f"device={self.device})")


# ---- autoencoders -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AnomalyScore:
    """One picture's reconstruction error and what it says: `score`, the mean squared error of the autoencoder's
    reconstruction against the picture (pixels in [0, 1], so 0 to 1); `verdict`, "abnormal" above `threshold` (the
    run's, chosen on its validation split), else "normal"; None where the run chose no threshold."""

    score: float
    verdict: str | None
    threshold: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "verdict": self.verdict}


class Reconstructor(nn.Module):
    """An autoencoder with its sigmoid: N x C x H x W pixels in [0, 1] -> the reconstruction, N x out_channels x H x W
    in [0, 1]. What an AutoencoderPredictor runs and zoo export exports, so every source gives pictures, not
    logits; `autoencoder` is the network itself (encode, decode, code_shape)."""

    def __init__(self, autoencoder: nn.Module) -> None:
        super().__init__()
        self.autoencoder = autoencoder

    def forward(self, x: Tensor) -> Tensor:
        return self.autoencoder(x).sigmoid()


class Encoder(nn.Module):
    """An autoencoder's encoder alone (zoo export --encoder): N x C x H x W pixels in [0, 1] -> the code, N x
    code_shape. Its weights keep the autoencoder's names (encoder.*), so its safetensors file loads into either."""

    def __init__(self, autoencoder: nn.Module) -> None:
        super().__init__()
        self.encoder = autoencoder.encoder

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(x)


class AutoencoderPredictor(Predictor):
    """An autoencoder (task reconstruction), ready to rebuild pictures and score them. Its `model` gives the
    reconstruction, N x C x H x W in [0, 1] (a Reconstructor, or an exported graph ending in the sigmoid); `classes`
    are the data's classes it learnt as normal; `threshold` is the run's anomaly threshold on a picture's MSE (None:
    the run had no validation split to choose it on). Pictures are taken as `predict` takes them."""

    @property
    def threshold(self) -> float | None:
        return self.task.threshold  # type: ignore[attr-defined]

    @property
    def num_classes(self) -> int:
        return 0  # it predicts no class

    def reconstruct(self, images: Images, batch_size: int = 64) -> Tensor:
        """The reconstructions, N x out_channels x H x W pixels in [0, 1] (float32, on the CPU), of paths, PIL
        images or a preprocessed float tensor N x C x H x W. Raises ZooError as `predict` does, or for no picture."""
        return _joined([self.outputs(batch) for batch in self.batches(images, batch_size)])

    def anomaly_scores(self, images: Images, batch_size: int = 64) -> Tensor:
        """Each picture's anomaly score (N, float64): the mean squared error of its reconstruction against the
        picture as the network takes it (pixels in [0, 1]). Raises ZooError as `reconstruct` does."""
        return _joined([self.scores(batch, self.outputs(batch)) for batch in self.batches(images, batch_size)])

    def scores(self, batch: Tensor, reconstructions: Tensor) -> Tensor:
        """(N, float64) MSE of each of `reconstructions` (N x C x H x W, [0, 1]) against the preprocessed `batch`.
        Raises ZooError for a colourisation network, whose output (colour) is not its input (gray)."""
        if getattr(self.task, "colorize", False):
            raise ZooError(f"{self.source} colourises: it is given the gray picture and gives a colour one, so there "
                           "is no reconstruction error to score; use zoo.load(...).reconstruct for its pictures")
        return per_image_mse(reconstructions, batch.float().cpu())

    def judge(self, batch: Tensor, reconstructions: Tensor) -> list[AnomalyScore]:
        """Each picture's AnomalyScore from its reconstruction: the verdict by the task (Reconstruction.verdicts),
        None without a threshold."""
        scores = self.scores(batch, reconstructions)
        verdicts = self.task.verdicts(scores) if self.threshold is not None else [None] * len(scores)  # type: ignore
        return [AnomalyScore(score, verdict, self.threshold) for score, verdict in zip(scores.tolist(), verdicts)]

    def decide(self, batch: Tensor, top_k: int | None = None,  # type: ignore[override]
               coverage: float | None = None) -> list[AnomalyScore]:
        """A preprocessed batch's AnomalyScores (top_k: a classifier's, ignored)."""
        return self.judge(batch, self.outputs(batch))

    def predict(self, images: Images, top_k: int | None = None,  # type: ignore[override]
                batch_size: int = 64) -> list[AnomalyScore]:
        """Each picture's AnomalyScore: its reconstruction error (score), "normal" or "abnormal" at the run's
        threshold (verdict; None without one) and the threshold; one per picture, in order. Raises ZooError as
        Predictor.predict does, and for a top_k: an autoencoder has no classes to rank."""
        if top_k is not None:
            raise ZooError(f"top_k: {self.source} is an autoencoder; it scores pictures by their reconstruction error "
                           "and has no classes to rank; leave top_k out")
        return [record for batch in self.batches(images, batch_size) for record in self.decide(batch)]

    def logits(self, batch: Tensor) -> Tensor:
        raise ZooError("an autoencoder's network gives its reconstruction, not logits; use .reconstruct(images) or "
                       ".outputs(batch)")

    def __repr__(self) -> str:
        return f"AutoencoderPredictor({self.source!r}, threshold={self.threshold}, device={self.device})"


def _joined(parts: list[Tensor]) -> Tensor:
    if not parts:
        raise ZooError("no pictures given; give paths, PIL images or one float tensor N x C x H x W (preprocessed)")
    return torch.cat(parts)


def runnable(model: nn.Module, metadata: Metadata) -> nn.Module:
    """The module a Predictor runs and zoo export exports, of a network zoo built: a classifier as it is (logits),
    an autoencoder with its sigmoid (Reconstructor: the reconstruction), or its encoder alone (Encoder: the code)."""
    if metadata.part == "encoder":
        return Encoder(model)
    return model if metadata.decider().has_classes else Reconstructor(model)


def weighed(model: nn.Module, part: str) -> nn.Module:
    """The module whose weights a safetensors export of `part` holds: the network, or its Encoder (encoder.*)."""
    return Encoder(model) if part == "encoder" else model


# ---- sources ------------------------------------------------------------------------------------------

def load(source: str | Path, device: str | torch.device = "cpu") -> Predictor:
    """The network at `source` as a Predictor on `device` (auto: CUDA, MPS, else the CPU; .onnx runs on the CPU,
    or CUDA where onnxruntime-gpu is installed).

    `source`: a zoo checkpoint (runs/.../checkpoints/best.pt), a file of `zoo export` (.safetensors, .onnx; a .pt2
    program is refused, its loading unpickles), or torchvision:<Weights> (e.g.
    torchvision:ResNet18_Weights.IMAGENET1K_V1, downloaded once into torch.hub's cache). An autoencoder's gives an
    AutoencoderPredictor. Raises ZooError, one line, for a missing or damaged file, a file zoo did not write,
    an autoencoder's encoder exported alone (zoo export --encoder), unknown weights, or a missing optional
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
    if suffix == ".pt2":
        raise ZooError(f"{path}: zoo does not load .pt2 programs, since torch.export.load unpickles their weights with "
                       "weights_only=False, which can run code; predict with the .onnx or .safetensors export, or call "
                       "torch.export.load yourself on a file you trust")
    opener = {".onnx": open_onnx, ".safetensors": open_safetensors}.get(suffix, open_zoo_checkpoint)
    predictor = opener(path, where)
    if predictor.part == "encoder":
        raise ZooError(f"{path} is an autoencoder's encoder alone (zoo export --encoder): it gives the code, which zoo "
                       "does not predict with; run it with onnxruntime (or load its weights with safetensors) "
                       "directly, or give the checkpoint or the whole network's export")
    return predictor


def _predictor(model: nn.Module | Network, metadata: Metadata, device: torch.device, source: Path,
               config: Config | None = None, fixed_batch: int | None = None) -> Predictor:
    """The Predictor of a network that gives `metadata.outputs`: an AutoencoderPredictor for a reconstruction."""
    preprocessing = metadata.preprocessing
    kind = AutoencoderPredictor if metadata.outputs == "reconstruction" else Predictor
    text = {} if metadata.vocabulary is None else {"vocabulary": metadata.vocabulary}  # sentences: a TextPredictor
    predictor = (TextPredictor if text else kind)(
        model, metadata.classes, preprocessing.transform(), in_channels=preprocessing.in_channels, config=config,
        preprocessing=preprocessing, device=device, source=str(source), fixed_batch=fixed_batch,
        task=metadata.decider(), part=metadata.part, calibration=metadata.calibration, **text)
    predictor.predates_calibration = metadata.calibration is None and "calibration" not in metadata.config
    return predictor


def uncalibrated_fix(predictor: Predictor) -> str:
    """What gives `predictor`'s model a calibration: zoo calibrate for a single-label zoo classifier (then export it
    again), nothing for another task or torchvision's weights."""
    if predictor.preprocessing is None or predictor.task.name != "classification":
        what = "torchvision's weights" if predictor.preprocessing is None else f"a {predictor.task.name} model"
        return f"{what} have none (it is fitted on a single-label classifier's validation split): remove --coverage"
    exported = Path(predictor.source).suffix.lower() in (".onnx", ".safetensors")
    return ("run zoo calibrate on its run directory (it adds a temperature, prediction sets and an unfamiliar score "
            "to best.pt)" + (", then zoo export again" if exported else ""))


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
    metadata = Metadata.of_checkpoint(state, config)
    predictor = _predictor(runnable(model, metadata).to(device), metadata, device, path, config)
    # the checkpoint's own config (metadata's is completed with every default)
    predictor.predates_calibration = state.calibration is None and "calibration" not in state.config
    return predictor


def open_safetensors(path: Path, device: torch.device) -> Predictor:
    """zoo's network rebuilt from the file's config and loaded with its weights (an encoder's: the encoder's)."""
    from zoo.checkpoint import TrainingState, load_weights, read_safetensors
    from zoo.config import validate_config

    tensors, strings = read_safetensors(path)
    metadata = Metadata.from_strings(strings, path, tensors)
    config = validate_config(metadata.config, f"{path} (config)")
    model = config.model.build(metadata.num_classes, metadata.preprocessing.in_channels, metadata.vocabulary)
    load_weights(weighed(model, metadata.part), TrainingState(tensors, metadata.config, metadata.model_name), path,
                 config.model.name)
    return _predictor(runnable(model, metadata).to(device).eval(), metadata, device, path, config)


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
    """An ONNX file run by ONNX Runtime: N x C x H x W float32 -> its graph's one output (torch tensors): N x
    num_classes logits, an autoencoder's reconstruction or its encoder's code (Metadata.outputs)."""

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
    if metadata.outputs == "logits" and isinstance(outputs, int) and outputs != metadata.num_classes:
        raise ZooError(f"{path} gives {outputs} outputs but its metadata says {metadata.num_classes} classes; "
                       "export it again with zoo export")
    return _predictor(network, metadata, torch.device("cpu"), path, fixed_batch=network.static_batch)


def open_torchvision(name: str, device: torch.device) -> Predictor:
    """torchvision's weights in zoo's own network (their keys match, tests/test_torchvision_compat.py proves it),
    with the weights' categories and transforms (resize, centre crop, normalization; GoogLeNet's statistics are
    its weights', which torchvision's builder converts the input to)."""
    import torchvision

    from zoo.models.registry import create_model, get_model_info, list_models
    from zoo.training.finetune import AUX_PREFIXES, _torchvision_weights, torchvision_transforms

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
    # torchvision's GoogLeNet and Inception v3 files hold their auxiliary heads (its builders load them, then drop
    # them); a network for prediction is built without: they are left out, as torchvision leaves them
    own = model.state_dict()
    model.load_state_dict({key: value for key, value in source.state.items()
                           if key in own or not key.startswith(AUX_PREFIXES)})
    transforms = torchvision_transforms(weights, get_model_info(model_name).torchvision)  # GoogLeNet's statistics too
    return Predictor(model.to(device).eval(), categories, transforms, in_channels=3, device=device,
                     source=f"torchvision:{name}")
