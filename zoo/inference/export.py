"""`zoo export`: a checkpoint's network as ONNX, a torch.export program (.pt2) or safetensors, each with zoo's
metadata (classes, preprocessing, config: zoo.inference.load.Metadata), and verified before it is reported done.

    report = export_checkpoint("runs/.../checkpoints/best.pt", "onnx")   # best.onnx beside it

    report = export_checkpoint("runs/conv_autoencoder_digits/<time>", "onnx", encoder=True)  # best.encoder.onnx

    report = quantize_checkpoint("runs/lenet5_digits/<time>")   # best.int8.onnx; report.float32, report.int8

Verification: the written file is loaded the way `zoo.load` loads it (ONNX Runtime; torch.export.load;
zoo's network rebuilt from the safetensors file) and run on a batch of the checkpoint's test images (its
preprocessing; random normal inputs when that data is not at hand), then compared with eager PyTorch. Above
the tolerance (TOLERANCE, relative for outputs above 1) the file is removed and the export fails (ExportMismatch,
exit code 1). The network is exported in eval mode, so GoogLeNet's graph has its main head only (the safetensors
file keeps every tensor).

An autoencoder (task reconstruction) is exported with its sigmoid (zoo.inference.load.Reconstructor): the graph's
output is the reconstruction, N x C x H x W in [0, 1], and zoo.load of the file gives the checkpoint's
reconstructions. With `encoder`, its encoder alone (zoo.inference.load.Encoder): the output is the code, N x
code_shape, the metadata's `part` says "encoder", and the default name is best.encoder.<format>; zoo.load refuses
such a file (run it with ONNX Runtime directly). The safetensors file holds the autoencoder's weights (the
encoder's: encoder.*), as the checkpoint names them.

int8 (`zoo export --quantize int8`, quantize_checkpoint): a single-label classifier's float ONNX file, exported and
checked as above in a temporary folder, quantized by ONNX Runtime (static, QDQ, calibrated on CALIBRATION_IMAGES
training images prepared as evaluation prepares pictures), then verified against the labels rather than eager
PyTorch, since int8 logits differ by design: both files run in ONNX Runtime on the run's test split, and an int8
file whose top-1 is more than --max-drop points (MAX_DROP) below the float file's is removed (ExportMismatch).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from zoo.data.text import pad
from zoo.errors import ExportMismatch, ZooError
from zoo.inference.load import EXPORT_EXTRA, Metadata, Predictor, open_checkpoint, runnable, weighed
from zoo.metrics.reconstruction import per_image_mse

FORMATS = ("onnx", "pt2", "safetensors")
SUFFIXES = {"onnx": ".onnx", "pt2": ".pt2", "safetensors": ".safetensors"}
# The largest logit difference accepted, float32: 1e-4, times the largest |logit| where that is above 1. Float32 is
# that coarse: ResNet-50's eager logits (up to 11.9) are 2.4e-4 off its own float64 ones, and its ONNX export's 2.7e-4
# off eager, ONNX Runtime's graph optimizations on or off; an absolute 1e-4 would refuse correct exports.
TOLERANCE = 1e-4
CHECK_IMAGES = 8  # verified at once: more than the example batch, so a dynamic batch is proven
EXAMPLE_BATCH = 2  # traced with 2, not 1: torch.export specializes a dimension of size 1
MIN_OPSET = 18  # the oldest opset torch's dynamo exporter writes


@dataclass(frozen=True)
class ExportReport:
    path: Path
    format: str
    bytes: int
    batch: int | None  # the static batch size; None: dynamic
    opset: int | None  # ONNX only
    inputs: str  # what the check ran on
    images: int
    max_abs_diff: float  # the largest |exported - eager| output: logit, reconstructed pixel or code value
    tolerance: float  # what it was held to: TOLERANCE x max(1, largest |eager output|)
    top1_agreement: float | None  # a classifier's: fraction of images whose top-1 class agrees (None: autoencoders)
    set_agreement: float | None = None  # a multi-label model's: fraction of images whose predicted label set agrees
    verdict_agreement: float | None = None  # an autoencoder's: fraction whose anomaly verdict agrees (at its threshold)
    outputs: str = "logits"  # what the file's network gives (Metadata.outputs): logits, reconstruction or code


def parse_batch(text: str | int) -> int | None:
    """`--batch`: 'dynamic' (None) or a positive batch size."""
    if str(text) == "dynamic":
        return None
    try:
        size = int(text)
    except ValueError:
        size = 0
    if size < 1:
        raise ZooError(f"--batch {text}: give dynamic or a batch size of 1 or more")
    return size


def export_checkpoint(checkpoint: str | Path, format: str = "onnx", output: str | Path | None = None, *,
                      opset: int | None = None, batch: int | str | None = None, encoder: bool = False) -> ExportReport:
    """Export `checkpoint` (a zoo checkpoint) as `format` (onnx, pt2 or safetensors) to `output` (default: beside
    it, best.pt -> best.onnx; with `encoder`, best.encoder.onnx), with a `batch` size of None or 'dynamic' (any, the
    default) or N, and for ONNX an `opset` (None: the exporter's default). An autoencoder's network is exported with
    its sigmoid (output: the reconstruction); with `encoder`, its encoder alone (output: the code). Returns the
    ExportReport of the check.

    Raises ZooError (nothing written) for a file that is no zoo checkpoint, options that do not go together (see
    check_options), `encoder` for a network that is no autoencoder, an output that is the checkpoint, a folder,
    named for another format or not writable; ExportMismatch (the file removed) when the export's outputs differ
    from eager PyTorch's by more than the tolerance (see verify).
    """
    from zoo.rundir import atomic_write

    format = str(getattr(format, "value", format))
    batch = parse_batch(batch) if isinstance(batch, str) else batch
    check_options(format, opset, batch)
    from zoo.checkpoint import checkpoint_file

    checkpoint = checkpoint_file(checkpoint)  # a run directory: its best.pt, beside which the export goes
    state, config, model = open_checkpoint(checkpoint)  # on the CPU: exported graphs are device-free
    metadata = exported_metadata(Metadata.of_checkpoint(state, config), encoder)
    output = output_path(checkpoint, output, format, metadata.part)
    module = runnable(model, metadata)  # what the graph computes: logits, the reconstruction or the code
    images, inputs = check_inputs(config, metadata, batch)
    example = _example(images, batch, metadata)
    data = _export(module, weighed(model, metadata.part), example, format, metadata, opset, dynamic=batch is None)
    found: dict[str, Any] = {}

    def check(path: Path) -> None:
        found.update(verify(module, _reopen(path, format), images, output, metadata.outputs))

    written_opset = _opset(data) if format == "onnx" else None
    if opset is not None and written_opset != opset:  # the exporter converts to the opset asked for, or falls back
        raise ZooError(f"--opset {opset}: the exporter could not convert to it and wrote opset {written_opset}; give "
                       f"--opset {written_opset}, or leave --opset out")
    atomic_write(output, data, check, fix="give --output a file in a writable folder")
    return ExportReport(output, format, len(data), batch, written_opset, inputs, len(images), found["max_abs_diff"],
                        found["tolerance"], found.get("top1_agreement"), found.get("set_agreement"),
                        found.get("verdict_agreement"), metadata.outputs)


def exported_metadata(metadata: Metadata, encoder: bool) -> Metadata:
    """The checkpoint's metadata for the part exported: the whole network, or (`encoder`) an autoencoder's encoder.
    Raises ZooError for `encoder` with a network that has none (a classifier)."""
    if not encoder:
        return metadata
    if metadata.outputs != "reconstruction":
        raise ZooError(f"--encoder: {metadata.model_name} is a {metadata.task} network, not an autoencoder (task "
                       "reconstruction); only an autoencoder has an encoder to export alone: remove --encoder")
    return dataclasses.replace(metadata, part="encoder")


def check_options(format: str, opset: int | None, batch: int | None) -> None:
    """Raises ZooError for an unknown format, an opset that is not ONNX's or outside what the exporter writes, a
    batch size for safetensors, or ONNX without the export extra."""
    if format not in FORMATS:
        raise ZooError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    if format == "onnx":
        _need_onnx()
        import onnx.defs

        newest = onnx.defs.onnx_opset_version()  # the installed onnx's; the exporter writes no newer
        if opset is not None and not MIN_OPSET <= opset <= newest:
            raise ZooError(f"--opset {opset}: torch's exporter writes opset {MIN_OPSET} to {newest} (the newest the "
                           f"installed onnx knows); give --opset {MIN_OPSET} to {newest}")
    elif opset is not None:
        raise ZooError(f"--opset is for ONNX; {format} has none: remove it")
    if format == "safetensors" and batch is not None:
        raise ZooError("--batch is for onnx and pt2; a safetensors file holds weights, which take any batch: remove it")


def output_path(checkpoint: Path, output: str | Path | None, format: str, part: str = "network") -> Path:
    """Where the export goes: `output`, else beside the checkpoint (best.onnx; an encoder's best.encoder.onnx).
    Raises ZooError for the checkpoint itself, a folder, or a name of another format's suffix (zoo.load tells the
    formats apart by it)."""
    suffix = SUFFIXES[format]
    default = checkpoint.with_suffix(f".encoder{suffix}" if part == "encoder" else suffix)
    output = Path(output) if output is not None else default
    if output.resolve() == checkpoint.resolve():
        raise ZooError(f"--output {output} is the checkpoint itself; give another file name")
    if output.is_dir():
        raise ZooError(f"--output {output} is a folder; give a file name, e.g. {output / ('model' + suffix)}")
    if output.suffix.lower() != suffix:
        article = "an" if format == "onnx" else "a"
        raise ZooError(f"--output {output}: {article} {format} file is named *{suffix} (zoo.load tells the formats "
                       f"apart by it); give e.g. {output.with_suffix(suffix)}")
    return output


def _need_onnx() -> None:
    missing = [name for name in ("onnx", "onnxscript", "onnxruntime") if not _importable(name)]
    if missing:
        raise ZooError(f"--format onnx needs {', '.join(missing)}: {EXPORT_EXTRA}")


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def check_inputs(config, metadata: Metadata, batch: int | None) -> tuple[Tensor, str]:
    """CHECK_IMAGES (a multiple of a static batch) preprocessed test images of the checkpoint's data set, or
    seeded random normal ones of the network's input shape when the data is not at hand; and what they are. A text
    network's: test sentences as token ids (N x L, padded), or random ids of its vocabulary."""
    from zoo.data import build_datasets

    count = CHECK_IMAGES if batch is None else batch * -(-CHECK_IMAGES // batch)
    preprocessing, vocabulary = metadata.preprocessing, metadata.vocabulary
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # the data's own notes (skipped files) are not the export's
            splits = build_datasets(config.data, in_channels=preprocessing.in_channels,
                                    input_size=preprocessing.input_size, seed=config.train.seed,
                                    multilabel=config.task == "multilabel", vocabulary=vocabulary)
        test = splits.test
        if len(test) == 0:
            raise ZooError("no test images")
        picked = [test[index % len(test)][0] for index in range(count)]
        if vocabulary is not None:  # at least twice the shortest: a length every format's graph takes (_export)
            return pad(picked, 2 * vocabulary.min_tokens), f"test sentences of {config.data.name}"
        return torch.stack(picked).float(), f"test images of {config.data.name}"
    except ZooError:  # not downloaded here, or moved: the network's shape is all the check needs
        generator = torch.Generator().manual_seed(0)
        if vocabulary is not None:
            ids = torch.randint(len(vocabulary.words), (count, 2 * vocabulary.min_tokens), generator=generator)
            return ids, f"random token ids ({config.data.name} is not at hand)"
        shape = (2,) if config.data.name == "xor" else preprocessing.shape
        return torch.randn(count, *shape, generator=generator), f"random inputs ({config.data.name} is not at hand)"


def _example(inputs: Tensor, batch: int | None, metadata: Metadata) -> Tensor:
    """What the graph is traced with: the first EXAMPLE_BATCH inputs (a static batch's N); sentences cut to their own
    longest (at least one more than the shortest the network takes), so that the check runs at another length than
    the trace, and proves the dynamic L."""
    example = inputs[:batch or EXAMPLE_BATCH]
    if metadata.vocabulary is not None:
        longest = int((example != 0).sum(dim=1).max())  # <pad> is id 0
        example = example[:, :max(metadata.vocabulary.min_tokens + 1, longest)].contiguous()  # strides of its own
    return example


def _export(model: nn.Module, weights: nn.Module, example: Tensor, format: str, metadata: Metadata,
            opset: int | None, dynamic: bool) -> bytes:
    """The exported file's bytes: `model`'s graph (onnx, pt2), or the state of `weights` (safetensors: the network
    as the checkpoint names its weights, or the autoencoder's encoder)."""
    strings = metadata.to_strings()
    if format == "safetensors":
        from safetensors.torch import save

        state = weights.state_dict()
        return save({key: tensor.detach().contiguous() for key, tensor in state.items()}, metadata=strings)
    axes = {0: torch.export.Dim("batch", min=1)} if dynamic else {}
    if metadata.vocabulary is not None:  # token ids: any sentence length the network takes; a pt2 program one more,
        # since torch.export guards the widest window's map against a length of 1 (ONNX takes min_tokens: tested)
        axes[1] = torch.export.Dim("tokens", min=metadata.vocabulary.min_tokens + (format == "pt2"))
    shapes = (axes,) if axes else None
    given = "images N x C x H x W" if metadata.vocabulary is None else "tokens N x L (int64 token ids)"
    if format == "pt2":
        program = torch.export.export(model, (example,), dynamic_shapes=shapes)
        buffer = io.BytesIO()
        torch.export.save(program, buffer, extra_files={"zoo.json": json.dumps(strings)})
        return buffer.getvalue()
    import onnx

    chatter = io.StringIO()  # the exporter's progress lines, and its version converter's logged failure (checked after)
    with warnings.catch_warnings(), contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (example,), dynamo=True, dynamic_shapes=shapes, opset_version=opset,
                                    input_names=[given.split()[0]], output_names=[metadata.outputs], verbose=False)
    proto = program.model_proto
    onnx.helper.set_model_props(proto, strings)
    part = " (its encoder alone)" if metadata.part == "encoder" else ""
    proto.doc_string = (f"{metadata.model_name}{part} exported by zoo {metadata.zoo_version}: {given} -> "
                        f"{metadata.outputs}")
    return proto.SerializeToString()


def _opset(data: bytes) -> int | None:
    import onnx

    model = onnx.load_from_string(data)
    return next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), None)


def _reopen(path: Path, format: str) -> Predictor:
    """The written file as zoo.load opens it, on the CPU."""
    from zoo.inference.load import open_exported_program, open_onnx, open_safetensors

    opener = {"onnx": open_onnx, "pt2": open_exported_program, "safetensors": open_safetensors}[format]
    return opener(path, torch.device("cpu"))


@torch.inference_mode()
def verify(model: nn.Module, exported: Predictor, images: Tensor, output: Path, outputs: str = "logits"
           ) -> dict[str, Any]:
    """Compare `exported`'s outputs on `images` with eager `model`'s (`outputs`: what they are, Metadata.outputs);
    raise ExportMismatch above the tolerance (TOLERANCE, scaled by the largest |output| where that is above 1).
    Returns max_abs_diff, tolerance and what the outputs decide alike (AGREEMENTS)."""
    eager = model(images).float()
    values = exported.outputs(images)
    difference = (values - eager).abs().max().item()
    tolerance = TOLERANCE * max(1.0, eager.abs().max().item())
    agreement = AGREEMENTS[outputs](exported, values, eager, images)
    if not difference <= tolerance:  # NaN fails too
        top1 = agreement.get("top1_agreement")
        shown = f"; top-1 agreement {top1:.0%}" if top1 is not None else ""
        what = {"reconstruction": "reconstructions", "code": "codes"}.get(outputs, outputs)
        raise ExportMismatch(f"the export of {output.name} computes other {what} than the checkpoint "
                             f"(largest difference {difference:.2e}, above {tolerance:.1e}{shown}); nothing was "
                             "written: please report it with the checkpoint's model and zoo export's options")
    return {"max_abs_diff": difference, "tolerance": tolerance, **agreement}


def _class_agreement(exported: Predictor, logits: Tensor, eager: Tensor, images: Tensor) -> dict[str, float | None]:
    """A classifier's: the fraction of images whose top-1 class agrees, and a multi-label model's whose label set
    (its exported thresholds) agrees."""
    agreement = (logits.argmax(1) == eager.argmax(1)).float().mean().item()
    sets = None
    if exported.task.label_sets:  # the decisions with the exported thresholds, against eager's
        sets = sum(a == b for a, b in zip(*(_sets(exported, values) for values in (logits, eager)))) / len(images)
    return {"top1_agreement": agreement, "set_agreement": sets}


def _verdict_agreement(exported: Predictor, reconstructions: Tensor, eager: Tensor, images: Tensor
                       ) -> dict[str, float | None]:
    """An autoencoder's: the fraction of images whose anomaly verdict (the run's threshold on the reconstruction's
    MSE) agrees; None without a threshold."""
    if getattr(exported.task, "threshold", None) is None:
        return {"verdict_agreement": None}
    verdicts = [exported.task.verdicts(per_image_mse(values, images)) for values in (reconstructions, eager)]
    return {"verdict_agreement": sum(a == b for a, b in zip(*verdicts)) / len(images)}


# What the outputs of each kind decide, compared between the export and eager PyTorch (an encoder's code: nothing)
AGREEMENTS = {"logits": _class_agreement, "reconstruction": _verdict_agreement, "code": lambda *_: {}}


def _sets(exported: Predictor, logits: Tensor) -> list[tuple[str, ...]]:
    """Each image's decided labels (the exported task's rule and thresholds)."""
    probabilities = exported.task.probabilities(logits)
    return [tuple(labels) for labels in exported.task.decide(probabilities, exported.classes)]


# ---- int8: ONNX Runtime's static quantization, verified against the labels ---------------------------------

QUANTIZATIONS = ("int8",)
CALIBRATION_IMAGES = 256  # training images the activations' ranges are measured on, evenly spaced
MAX_DROP = 1.0  # percentage points of test top-1 the int8 file may lose against the float one
LATENCY_BATCHES = (1, 32)
LATENCY_RUNS = 5  # timed runs of each batch size after one warm-up; the median is reported


@dataclass(frozen=True)
class OnnxFigures:
    """One ONNX file as ONNX Runtime runs it on the CPU (its default threads)."""

    bytes: int
    accuracy: float  # top-1 on the run's test split, a fraction
    latency_ms: dict[int, float]  # batch size (LATENCY_BATCHES) -> the median milliseconds of a run


@dataclass(frozen=True)
class QuantizeReport:
    """What `zoo export --quantize` wrote and measured: the int8 file beside the float one it was made from."""

    path: Path
    quantization: str  # QUANTIZATIONS
    calibration_images: int  # training images calibrated on
    test_images: int
    data: str  # the data set whose test split both files were scored on
    float32: OnnxFigures  # the float file's: written to a temporary folder, checked against eager, then removed
    int8: OnnxFigures
    agreement: float  # the fraction of test images whose top-1 class the two files agree on
    max_drop: float  # percentage points
    check: ExportReport  # the float file's check against eager PyTorch

    @property
    def drop(self) -> float:
        """Percentage points of test top-1 the int8 file lost against the float one (negative: gained)."""
        return 100 * (self.float32.accuracy - self.int8.accuracy)

    def to_dict(self) -> dict[str, Any]:
        files = {name: dataclasses.asdict(figures) for name, figures in (("float", self.float32), ("int8", self.int8))}
        return {"path": str(self.path), "quantization": self.quantization, "data": self.data,
                "calibration_images": self.calibration_images, "test_images": self.test_images, **files,
                "drop_points": self.drop, "max_drop": self.max_drop, "top1_agreement": self.agreement}


def quantize_checkpoint(checkpoint: str | Path, output: str | Path | None = None, quantization: str = "int8", *,
                        max_drop: float | None = None, format: str = "onnx", opset: int | None = None,
                        batch: int | str | None = None, encoder: bool = False) -> QuantizeReport:
    """`zoo export --quantize int8`: `checkpoint` (a single-label classifier's) as an int8 ONNX file at `output`
    (default: beside it, best.pt -> best.int8.onnx), by ONNX Runtime's static quantization (QDQ; per-channel int8
    weights of 7 bits, uint8 activations: see quantized_bytes) calibrated on CALIBRATION_IMAGES of the run's training
    images, prepared as evaluation prepares pictures. The float file is exported (and checked against eager PyTorch)
    in a temporary folder first; both run in ONNX Runtime on the run's test split, and the int8 file is kept only
    where its top-1 is at most `max_drop` points (default MAX_DROP) below the float file's. Its metadata is the float
    export's plus "quantization": "int8", so zoo.load and zoo predict take it. `format`, `batch` and `encoder` are
    zoo export's options, refused where they do not go with quantization.

    Raises ZooError (nothing written) for options that do not go together (check_quantize_options), a checkpoint
    that is no single-label classifier's, data that is not at hand or has no test images; ExportMismatch (exit code
    1, nothing written) for a float file that computes otherwise than eager PyTorch, or an int8 file that loses more.
    """
    from zoo.checkpoint import checkpoint_file
    from zoo.rundir import atomic_write

    max_drop = check_quantize_options(quantization, str(getattr(format, "value", format)), max_drop, batch, opset)
    checkpoint = checkpoint_file(checkpoint)
    state, config, _ = open_checkpoint(checkpoint)
    metadata = quantizable(exported_metadata(Metadata.of_checkpoint(state, config), encoder), checkpoint)
    output = output_path(checkpoint, checkpoint.with_suffix(f".{quantization}.onnx") if output is None else output,
                         "onnx")
    splits, test = verification_data(config, metadata, checkpoint)
    calibration = calibration_images(splits, config.data)
    scores: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="zoo-int8-") as folder:
        reference = export_checkpoint(checkpoint, "onnx", Path(folder) / "float.onnx", opset=opset)
        data = quantized_bytes(reference.path, calibration, metadata, quantization)

        def check(path: Path) -> None:
            scores.update(compare_on_labels(reference.path, path, test, max_drop))

        atomic_write(output, data, check, fix="give --output a file in a writable folder")
        files = [OnnxFigures(path.stat().st_size, scores[name], latencies(path, calibration))
                 for name, path in (("float", reference.path), ("int8", output))]
    return QuantizeReport(output, quantization, len(calibration), scores["images"], config.data.name, *files,
                          scores["agreement"], max_drop, reference)


def check_quantize_options(quantization: str, format: str, max_drop: float | None, batch: int | str | None,
                           opset: int | None) -> float:
    """The --max-drop to hold the int8 file to (None: MAX_DROP). Raises ZooError for an unknown quantization, a
    format other than ONNX, a --max-drop that is negative or no number, a static batch size (the latencies are
    measured at LATENCY_BATCHES), or what check_options refuses for ONNX."""
    if quantization not in QUANTIZATIONS:
        raise ZooError(f"unknown quantization {quantization!r}; choose {', '.join(QUANTIZATIONS)}")
    if format != "onnx":
        raise ZooError(f"--quantize {quantization} writes ONNX (ONNX Runtime's static quantization); --format {format} "
                       "has no int8 file: give --format onnx")
    max_drop = MAX_DROP if max_drop is None else max_drop
    if not max_drop >= 0:  # NaN too
        raise ZooError(f"--max-drop {max_drop}: give the test top-1 the int8 file may lose, in percentage points, 0 "
                       f"or more (default {MAX_DROP})")
    if batch is not None and str(batch) != "dynamic":
        raise ZooError(f"--batch {batch}: an int8 file is written with a dynamic batch (its latency is measured at "
                       f"batch {' and '.join(map(str, LATENCY_BATCHES))}): remove --batch")
    check_options("onnx", opset, None)
    return float(max_drop)


def quantizable(metadata: Metadata, checkpoint: Path) -> Metadata:
    """`metadata` of a single-label classifier of pictures, whose int8 file is verified by its test top-1. Raises
    ZooError for an autoencoder (or its encoder), a multi-label model and a text network."""
    if metadata.task != "classification":
        what = {"reconstruction": "an autoencoder (task reconstruction)"}.get(metadata.task, f"a {metadata.task} model")
        raise ZooError(f"--quantize: {checkpoint} is {what}; an int8 file is verified by its test top-1 accuracy, "
                       "which only a single-label classifier (task classification) has: export it without --quantize")
    if metadata.vocabulary is not None:
        raise ZooError(f"--quantize: {checkpoint} reads sentences (token ids), and zoo's int8 files are calibrated on "
                       "pictures: export it without --quantize")
    return metadata


def verification_data(config: Any, metadata: Metadata, checkpoint: Path) -> tuple[Any, Any]:
    """The run's data splits (its seed, the checkpoint's preprocessing) and its test loader, as evaluation reads them.
    Raises ZooError where the data is not at hand, holds no pictures or no test images."""
    from zoo.data import build_datasets, build_loaders

    preprocessing = metadata.preprocessing
    fix = ("an int8 file is verified on the run's test split against its labels: run zoo export where the data "
           f"({config.data.name}) is at hand, or export without --quantize")
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # the data's own notes (skipped files) are not the export's
            splits = build_datasets(config.data, in_channels=preprocessing.in_channels,
                                    input_size=preprocessing.input_size, seed=config.train.seed)
    except ZooError as error:
        raise ZooError(f"--quantize: {checkpoint}'s data cannot be read here ({error}); {fix}") from None
    if splits.input_size == 1 or len(splits.test) == 0:
        held = "holds no pictures" if splits.input_size == 1 else "has no test images"
        raise ZooError(f"--quantize: {checkpoint}'s data ({config.data.name}) {held}; {fix}")
    return splits, build_loaders(splits, config.data, seed=config.train.seed)[2]


def calibration_images(splits: Any, data: Any) -> Tensor:
    """CALIBRATION_IMAGES training images (fewer where the split is smaller), evenly spaced, as evaluation prepares
    pictures: N x C x H x W, normalized, on the CPU."""
    from zoo.data.loaders import unaugmented_train

    return torch.cat(list(unaugmented_train(splits, data, CALIBRATION_IMAGES, "cpu"))).float()


def quantized_bytes(source: Path, calibration: Tensor, metadata: Metadata, quantization: str) -> bytes:
    """The int8 file of the float ONNX file at `source`: ONNX Runtime's pre-processing (shape inference, graph
    optimizations), then quantize_static in QDQ form with MinMax ranges on `calibration`. Weights per channel, int8
    in 7 bits (reduce_range) and activations uint8: ONNX Runtime's advice for x86 CPUs without VNNI, where 8-bit
    weights can saturate, so the file verified here computes the same on any CPU. The metadata is the float export's
    plus "quantization"; the exporter's per-node debugging notes (stack traces with this machine's paths) are left
    out."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Batches(CalibrationDataReader):
        def __init__(self, name: str) -> None:
            starts = range(0, len(calibration), 32)
            self.batches = iter({name: calibration[start:start + 32].numpy()} for start in starts)

        def get_next(self) -> dict[str, Any] | None:
            return next(self.batches, None)

    prepared, written = source.with_suffix(".prepared.onnx"), source.with_suffix(f".{quantization}.onnx")
    with _quiet():
        quant_pre_process(str(source), str(prepared))
        name = onnx.load(str(prepared), load_external_data=False).graph.input[0].name
        quantize_static(str(prepared), str(written), Batches(name), quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    proto = onnx.load(str(written))
    for node in proto.graph.node:
        del node.metadata_props[:]
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, {**metadata.to_strings(), "quantization": json.dumps(quantization)})
    proto.doc_string = (f"{metadata.model_name} exported by zoo {metadata.zoo_version}, {quantization} (ONNX Runtime's "
                        f"static quantization, QDQ): images N x C x H x W -> {metadata.outputs}")
    return proto.SerializeToString()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """ONNX Runtime's quantization tools' warnings, logged lines and printed progress: not the export's."""
    import logging

    chatter = io.StringIO()
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


@torch.inference_mode()
def compare_on_labels(reference: Path, quantized: Path, test: Any, max_drop: float) -> dict[str, Any]:
    """Both files' top-1 on the `test` loader's images and labels, run by ONNX Runtime as zoo.load runs them, and the
    share of images whose top-1 they agree on. Raises ExportMismatch where the int8 file's top-1 is more than
    `max_drop` points below the float file's."""
    from zoo.inference.load import OnnxNetwork

    networks = [OnnxNetwork(path, torch.device("cpu")) for path in (reference, quantized)]
    correct, agreed, count = [0, 0], 0, 0
    for images, labels in test:
        top = [network(images.float()).argmax(1) for network in networks]
        correct = [total + (classes == labels).sum().item() for total, classes in zip(correct, top)]
        agreed, count = agreed + (top[0] == top[1]).sum().item(), count + len(labels)
    before, after = (total / count for total in correct)
    if 100 * (before - after) > max_drop:
        raise ExportMismatch(f"the int8 file's test top-1 is {after:.2%}, {100 * (before - after):.2f} points below "
                             f"the float file's {before:.2%} (--max-drop {max_drop:g}); nothing written")
    return {"float": before, "int8": after, "agreement": agreed / count, "images": count}


def latencies(path: Path, images: Tensor) -> dict[int, float]:
    """The median milliseconds ONNX Runtime takes to run `path` on a batch of each of LATENCY_BATCHES (from
    `images`, repeated where fewer), over LATENCY_RUNS runs after one warm-up."""
    import statistics
    import time

    from zoo.inference.load import OnnxNetwork

    network = OnnxNetwork(path, torch.device("cpu"))
    figures = {}
    for size in LATENCY_BATCHES:
        batch = images[torch.arange(size) % len(images)].contiguous().numpy()
        feed = {network.input.name: batch}
        network.session.run([network.output], feed)
        times = []
        for _ in range(LATENCY_RUNS):
            start = time.perf_counter()
            network.session.run([network.output], feed)
            times.append(time.perf_counter() - start)
        figures[size] = 1000 * statistics.median(times)
    return figures
