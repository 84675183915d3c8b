"""`zoo export`: a checkpoint's network as ONNX, a torch.export program (.pt2) or safetensors, each with zoo's
metadata (classes, preprocessing, config: zoo.inference.load.Metadata), and verified before it is reported done.

    report = export_checkpoint("runs/.../checkpoints/best.pt", "onnx")   # best.onnx beside it

    report = export_checkpoint("runs/conv_autoencoder_digits/<time>", "onnx", encoder=True)  # best.encoder.onnx

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
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

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
    example = images[:batch or EXAMPLE_BATCH]
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
    seeded random normal ones of the network's input shape when the data is not at hand; and what they are."""
    from zoo.data import build_datasets

    count = CHECK_IMAGES if batch is None else batch * -(-CHECK_IMAGES // batch)
    preprocessing = metadata.preprocessing
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # the data's own notes (skipped files) are not the export's
            splits = build_datasets(config.data, in_channels=preprocessing.in_channels,
                                    input_size=preprocessing.input_size, seed=config.train.seed,
                                    multilabel=config.task == "multilabel")
        test = splits.test
        if len(test) == 0:
            raise ZooError("no test images")
        picked = [test[index % len(test)][0] for index in range(count)]
        return torch.stack(picked).float(), f"test images of {config.data.name}"
    except ZooError:  # not downloaded here, or moved: the network's shape is all the check needs
        shape = (2,) if config.data.name == "xor" else preprocessing.shape
        generator = torch.Generator().manual_seed(0)
        return torch.randn(count, *shape, generator=generator), f"random inputs ({config.data.name} is not at hand)"


def _export(model: nn.Module, weights: nn.Module, example: Tensor, format: str, metadata: Metadata,
            opset: int | None, dynamic: bool) -> bytes:
    """The exported file's bytes: `model`'s graph (onnx, pt2), or the state of `weights` (safetensors: the network
    as the checkpoint names its weights, or the autoencoder's encoder)."""
    strings = metadata.to_strings()
    if format == "safetensors":
        from safetensors.torch import save

        state = weights.state_dict()
        return save({key: tensor.detach().contiguous() for key, tensor in state.items()}, metadata=strings)
    shapes = ({0: torch.export.Dim("batch", min=1)},) if dynamic else None
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
                                    input_names=["images"], output_names=[metadata.outputs], verbose=False)
    proto = program.model_proto
    onnx.helper.set_model_props(proto, strings)
    part = " (its encoder alone)" if metadata.part == "encoder" else ""
    proto.doc_string = (f"{metadata.model_name}{part} exported by zoo {metadata.zoo_version}: images N x C x H x W -> "
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
