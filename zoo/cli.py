"""The `zoo` command. Each command parses its options, calls one library function and prints its result
(`lr-find --apply` then trains, as `zoo train` would).

Torch is imported inside the commands, so `zoo --help` does not pay for it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperArgument, TyperCommand

from zoo.errors import ZooError
from zoo.present.text import EvaluationFormat, ExportFormat, Format, PredictionFormat, Quantization

Choice = TypeVar("Choice", bound=Enum)


class ExplainMethod(str, Enum):
    """`zoo explain --method`; zoo.inference.explain.METHODS is the same list."""

    gradcam = "gradcam"
    saliency = "saliency"
    occlusion = "occlusion"


class Split(str, Enum):
    """`zoo evaluate --split`; zoo.evaluation.evaluate.CHOICES is the same list (importing it here would import
    torch)."""

    test = "test"
    val = "val"
    train = "train"


def choice(enum: type[Choice], what: str) -> Callable[[str | Choice], Choice]:
    """Typer's parser for an Enum option: `--help` lists the members, and a bad value is one line and exit code 2.

    Typer's own check would print a usage box instead; a ZooError goes through to main() as the commands' do.
    """
    names = [member.value for member in enum]
    listing = " or ".join(names) if len(names) == 2 else f"one of {', '.join(names)}"

    def parse(value: str | Choice) -> Choice:
        try:
            return enum(value)
        except ValueError:
            raise ZooError(f"unknown {what} {value!r}; choose {listing}") from None

    return parse


class Command(TyperCommand):
    """Typer's command with click's usage line, `zoo predict [OPTIONS] SOURCE INPUT...`: Typer 0.29 writes a
    required argument in braces, in the case of its parameter's name, and adds `...` to a metavar that has it
    (`{checkpoint}`, `{INPUT...}...`)."""

    def collect_usage_pieces(self, ctx: typer.Context) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if not isinstance(param, TyperArgument):
                pieces += param.get_usage_pieces(ctx)
                continue
            name = (param.metavar or param.name or "").upper()
            name += "..." if param.nargs != 1 and not name.endswith("...") else ""
            pieces.append(name if param.required else f"[{name}]")
        return pieces


class App(typer.Typer):
    """typer.Typer whose commands are Commands."""

    def command(self, name: str | None = None, *, cls: type[TyperCommand] | None = Command, **settings: Any
                ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return super().command(name, cls=cls, **settings)


# Click's plain help, not Typer's rich panels: at 80 columns and off a terminal (CI, a pipe) the panels cut option
# names and help short with an ellipsis and show flags as taking a <bool>; click's wraps and never cuts.
app = App(no_args_is_help=True, add_completion=False, rich_markup_mode=None)

FormatOption = Annotated[Format, typer.Option("--format", "-f", parser=choice(Format, "format"), help="What to print.")]
ConfigOption = Annotated[Path | None, typer.Option(
    "--config", "-c", help="A YAML config, e.g. configs/lenet5_digits.yaml.", show_default=False)]
# The config as an argument too (`zoo train my.yaml`), which new users type first
ConfigArgument = Annotated[Path | None, typer.Argument(
    metavar="CONFIG", help="The same as --config.", show_default=False)]
SetOption = Annotated[list[str] | None, typer.Option(
    "--set", metavar="KEY=VALUE", help="Override a key: --set optimizer.lr=0.01 (repeatable).")]
DeviceOption = Annotated[str, typer.Option(
    help="auto (this machine's best: CUDA, MPS, the CPU), cpu, cuda, cuda:N or mps; not the training run's.")]
QuietOption = Annotated[bool, typer.Option(
    "--quiet", "-q", help="No progress bars (automatic when not on a terminal).")]
# zoo predict's sentences, for a network trained on text (data.name text)
TextOption = Annotated[list[str] | None, typer.Option(
    "--text", metavar="SENTENCE", show_default=False,
    help="A sentence, for a network trained on text (data.name text) (repeatable).")]
TextFileOption = Annotated[Path | None, typer.Option(
    "--text-file", metavar="FILE", show_default=False,
    help="A text file of sentences, one a line, for a network trained on text.")]

config_app = App(no_args_is_help=True, help="Show or check a training config.", rich_markup_mode=None)
app.add_typer(config_app, name="config")


def one_config(argument: Path | None, option: Path | None, command: str,
               example: str = "configs/lenet5_digits.yaml", required: bool = True) -> Path | None:
    """The config a command was given, as its argument (`zoo train my.yaml`) or as --config, once; None for none
    where it is not `required` (train's --resume needs none)."""
    if argument is not None and option is not None:
        raise ZooError(f"give the config once: zoo {command} {option} (or --config {option})")
    if argument is None and option is None and required:
        raise ZooError(f"give a config: zoo {command} {example} (or --config {example})")
    return argument if argument is not None else option


def class_indices(text: str | None) -> tuple[int, ...] | None:
    """--abnormal-classes' "5,7" as (5, 7); a ZooError naming the option for anything but class indices."""
    if text is None:
        return None
    try:
        indices = tuple(int(part) for part in text.split(","))
    except ValueError:
        indices = ()
    if not indices or min(indices) < 0 or len(set(indices)) < len(indices):
        raise ZooError(f"--abnormal-classes {text!r}: give distinct class indices, 0 or more, separated by commas: 7 "
                       "or 5,7")
    return indices


def version_line() -> str:
    """`zoo --version`: zoo's, torch's and torchvision's versions from the installed packages' metadata, which
    is read without importing torch (that costs seconds)."""
    from importlib.metadata import PackageNotFoundError, version

    def of(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    zoo = of("zoo")
    zoo = "(version unknown: not installed; pip install -e .)" if zoo == "not installed" else zoo
    return f"zoo {zoo} (torch {of('torch')}, torchvision {of('torchvision')})"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(version_line())
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option(
        "--version", "-V", callback=_print_version, is_eager=True,
        help="Print the versions of zoo, torch and torchvision, and exit.")] = False) -> None:
    """A model zoo of the classic convolutional networks: list, summarize, train (lr-find: its lr), evaluate, fine-tune,
    predict, explain, report, export; sweep and compare."""


@app.command("list")
def list_command(
    filter: Annotated[str, typer.Option("--filter", help="fnmatch pattern, e.g. 'resnet*'.")] = "*",
    format: FormatOption = Format.table,
) -> None:
    """List the models: family, year, parameters, default input size."""
    from zoo.present.text import render_catalog
    from zoo.summary import catalog

    typer.echo(render_catalog(catalog(filter), format))


@app.command()
def train(
    config_file: ConfigArgument = None,
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="A YAML config, e.g. configs/lenet5_digits.yaml; this or --resume is required.",
        show_default=False)] = None,
    set: SetOption = None,
    quiet: QuietOption = False,
    resume: Annotated[Path | None, typer.Option(
        "--resume", help="Continue a run exactly: its directory (runs/<name>/<time>) or a checkpoint.")] = None,
    allow_config_change: Annotated[bool, typer.Option(
        "--allow-config-change",
        help="With --resume: accept a config (--config, --set) that differs from the checkpoint's.")] = False,
) -> None:
    """Train a model as a YAML config says, or continue a run.

    Give --config (a new run, written to runs/<run-name>/<time>/) or --resume (a run to continue): one of the two
    is required. With train.run_id set, --config writes runs/<run-name>/<run-id>/ and continues that run when it
    exists: one command line for the first start and every restart (torchrun --max-restarts, a requeue)."""
    from zoo.training import resume as resume_run
    from zoo.training import train as run_training

    config = one_config(config_file, config, "train", required=False)
    if resume is not None:
        resume_run(resume, config, set, allow_config_change, quiet=quiet)
        return
    if config is None:
        raise ZooError("give a config (zoo train --config configs/lenet5_digits.yaml), or --resume RUN_DIR "
                       "to continue a run")
    if allow_config_change:
        raise ZooError("--allow-config-change goes with --resume; remove it")
    from zoo.config import load_config

    run_training(load_config(config, set), quiet=quiet)


@app.command()
def finetune(
    config_file: ConfigArgument = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", show_default=False, help=(
        "A training config with a finetune section, e.g. configs/finetune_resnet18_imagefolder.yaml."))] = None,
    set: SetOption = None,
    quiet: QuietOption = False,
) -> None:
    """Fine-tune trained weights on new data.

    The config is a training config with a `finetune` section (finetune.source: the weights to start from)."""
    from zoo.training import finetune as run_finetune

    config = one_config(config_file, config, "finetune", "configs/finetune_resnet18_imagefolder.yaml")
    run_finetune(config, set, quiet=quiet)


@app.command()
def evaluate(
    checkpoint: Annotated[Path, typer.Argument(metavar="CHECKPOINT", help=(
        "A checkpoint, e.g. runs/<name>/<time>/checkpoints/best.pt, or a run directory, runs/<name>/<time> "
        "(its best.pt)."))],
    split: Annotated[Split, typer.Option(
        parser=choice(Split, "split"), help="The data split to measure.")] = Split.test,
    data: Annotated[str | None, typer.Option(
        "--data", help="Another data set than the checkpoint's (data.name).")] = None,
    data_root: Annotated[Path | None, typer.Option("--data-root", help="Where its files are (data.root).")] = None,
    set: Annotated[list[str] | None, typer.Option(
        "--set", metavar="KEY=VALUE", help="Override a key of the checkpoint's config: --set data.batch_size=256 "
        "(repeatable).")] = None,
    device: DeviceOption = "auto",
    format: Annotated[EvaluationFormat, typer.Option(
        "--format", "-f", parser=choice(EvaluationFormat, "format"), help="What to print.")] = EvaluationFormat.table,
    abnormal: Annotated[Path | None, typer.Option(
        "--abnormal", help="An autoencoder's abnormal pictures: a folder of them (read recursively).")] = None,
    abnormal_classes: Annotated[str | None, typer.Option(
        "--abnormal-classes", metavar="INDICES", help="An autoencoder's abnormal pictures: classes of its data set "
        "it did not train on, by index as data.classes gives them: 7 or 5,7.")] = None,
    coverage: Annotated[float | None, typer.Option(
        "--coverage", metavar="C", show_default=False, help="A calibrated classifier's prediction sets at this "
        "coverage, e.g. 0.9: how often they hold the true class, and how many classes they hold.")] = None,
    unfamiliar: Annotated[Path | None, typer.Option(
        "--unfamiliar", metavar="FOLDER", show_default=False, help="A calibrated classifier's unfamiliar score on a "
        "folder of pictures unlike its training data (read recursively): the share flagged, and its ROC AUC against "
        "the split.")] = None,
) -> None:
    """Evaluate a checkpoint on a split of its data or of other data.

    Loss, top-1/top-5 accuracy, per-class precision/recall/F1, the confusion matrix, ROC AUC and average precision,
    the calibration error (ECE) and the most confidently wrong images; the pictures are saved beside the checkpoint.
    A calibrated classifier (zoo calibrate) is measured on its temperature-scaled probabilities, with its ECE before
    and after, the share of the split its unfamiliar score flags and, with --coverage, its prediction sets.
    An autoencoder: MSE and PSNR beside PCA's, and with abnormal pictures the anomaly ROC AUC and average precision."""
    from zoo.evaluation.evaluate import evaluate_checkpoint
    from zoo.present.text import render_evaluation

    report = evaluate_checkpoint(checkpoint, split.value, overrides=set, data=data, data_root=data_root, device=device,
                                 abnormal=abnormal, abnormal_classes=class_indices(abnormal_classes),
                                 coverage=coverage, unfamiliar=unfamiliar)
    typer.echo(render_evaluation(report, format))


@app.command()
def predict(
    source: Annotated[str, typer.Argument(
        metavar="SOURCE", help="A checkpoint (runs/.../best.pt) or its run directory, a file of zoo export "
                               "(.onnx, .safetensors) or torchvision:<Weights>.")],
    inputs: Annotated[list[str] | None, typer.Argument(
        metavar="INPUT...", show_default=False,
        help="Image files, folders (recursive) and glob patterns ('photos/*.jpg').")] = None,
    text: TextOption = None,
    text_file: TextFileOption = None,
    top_k: Annotated[int | None, typer.Option("--top-k", "-k", show_default=False, help=(
        "Classes per image, best first; not for an autoencoder. [default: 5]"))] = None,
    format: Annotated[PredictionFormat | None, typer.Option(
        "--format", "-f", parser=choice(PredictionFormat, "format"),
        help="What to print (default: table, or as --output is named: .csv, .json).", show_default=False)] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write to this file instead of printing.")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per batch.")] = 64,
    device: DeviceOption = "auto",
    quiet: QuietOption = False,
    coverage: Annotated[float | None, typer.Option("--coverage", metavar="C", show_default=False, help=(
        "Give each image a prediction set that holds its true class with this probability, e.g. 0.9 (split "
        "conformal prediction, calibrated on the run's validation split)."))] = None,
) -> None:
    """Classify images or sentences: their top-k classes.

    A calibrated classifier (each run fits its calibration as it ends; zoo calibrate adds one to an older run) gives
    temperature-scaled probabilities
    and flags images unlike its training data as unfamiliar. An autoencoder gives each image its anomaly score (the
    mean squared error of its reconstruction) and its verdict, normal or abnormal at the run's threshold. Each image
    is preprocessed exactly as in evaluation. A network trained on text takes sentences (--text, --text-file),
    tokenized with its training split's vocabulary."""
    from zoo.inference.predict import output_format, predict_files, predict_texts, write_output
    from zoo.present.text import render_predictions

    fmt = output_format(format and format.value, output)
    sentences, options = text is not None or text_file is not None, dict(top_k=top_k, batch_size=batch_size,
                                                                         device=device, coverage=coverage)
    if inputs and sentences:
        raise ZooError("give image files or sentences (--text, --text-file), not both")
    report = (predict_texts(source, text or [], text_file, **options) if sentences
              else predict_files(source, inputs or [], progress=not quiet, **options))
    shown = render_predictions(report, fmt)
    if output is None:
        typer.echo(shown)
        return
    write_output(output, shown)
    typer.echo(f"wrote {len(report.rows)} prediction{'s' if len(report.rows) != 1 else ''} to {output}", err=True)


@app.command()
def calibrate(
    run: Annotated[Path, typer.Argument(metavar="RUN", help=(
        "A run directory, runs/<name>/<time> (its best.pt), or a checkpoint."))],
    device: DeviceOption = "auto",
    format: FormatOption = Format.table,
) -> None:
    """Calibrate a trained classifier on its validation split.

    Adds to its best.pt a temperature (Guo et al. 2017) for calibrated probabilities, the conformity scores of
    prediction sets (zoo predict --coverage) and the unfamiliar score's threshold. Each run fits them as it ends:
    this is for runs trained before, or with calibration.enabled false."""
    from zoo.present.text import render_calibration
    from zoo.training.calibrate import calibrate_run

    typer.echo(render_calibration(calibrate_run(run, device), format.value))


@app.command()
def serve(
    source: Annotated[str, typer.Argument(
        metavar="SOURCE", help="A checkpoint (runs/.../best.pt) or its run directory, a file of zoo export "
                               "(.onnx, .safetensors) or torchvision:<Weights>.")],
    host: Annotated[str, typer.Option(help="The address to listen on; 0.0.0.0 for every network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="The port to listen on; 0 for a free one.")] = 8000,
    max_batch: Annotated[int, typer.Option(
        "--max-batch", metavar="N", help="Pictures of concurrent requests run together, at most.")] = 64,
    max_wait_ms: Annotated[float, typer.Option(
        "--max-wait-ms", metavar="MS", help="How long a batch waits for more pictures after its first.")] = 5.0,
    max_upload_mb: Annotated[float, typer.Option(
        "--max-upload-mb", metavar="MB", help="A request's body, at most (413 beyond).")] = 20.0,
    device: DeviceOption = "auto",
) -> None:
    """Serve a network over HTTP, with a page to try it.

    POST /predict takes pictures as multipart `file` fields or as the raw body and answers zoo predict --format
    json's items; POST /explain one picture's heat map (a PNG, as zoo explain draws it); GET /model, /health, /docs.
    Concurrent requests are batched. Runs until SIGTERM or Ctrl-C, which finish the requests in flight. Needs the
    serve extra: pip install -e '.[serve]'."""
    from zoo.inference.serve import serve as serve_network

    serve_network(source, host, port, max_batch, max_wait_ms, max_upload_mb, device)


@app.command()
def export(
    checkpoint: Annotated[Path, typer.Argument(metavar="CHECKPOINT", help=(
        "A checkpoint, e.g. runs/<name>/<time>/checkpoints/best.pt, or a run directory, runs/<name>/<time> "
        "(its best.pt)."))],
    format: Annotated[ExportFormat, typer.Option(
        "--format", "-f", parser=choice(ExportFormat, "format"), help="The file to write.")] = ExportFormat.onnx,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", show_default=False,
        help="The file to write, named for its format (default: beside the checkpoint, best.pt -> best.onnx).")] = None,
    opset: Annotated[int | None, typer.Option(
        help="ONNX opset, 18 or newer (default: the exporter's; the summary line says which).",
        show_default=False)] = None,
    batch: Annotated[str | None, typer.Option(
        help="dynamic (any batch size; the default) or a fixed batch size N; onnx and pt2 only.",
        show_default=False)] = None,
    encoder: Annotated[bool, typer.Option("--encoder", help=(
        "An autoencoder's encoder alone: its output is the code (default name best.encoder.onnx)."))] = False,
    quantize: Annotated[Quantization | None, typer.Option(
        parser=choice(Quantization, "quantization"), show_default=False, help=(
            "int8: ONNX Runtime's static quantization, calibrated on 256 training images; kept only if its test "
            "top-1 is within --max-drop of the float file's (default name best.int8.onnx)."))] = None,
    max_drop: Annotated[float | None, typer.Option(
        "--max-drop", metavar="POINTS", show_default=False, help=(
            "With --quantize: the test top-1 the int8 file may lose, in percentage points. [default: 1.0]"))] = None,
) -> None:
    """Export a checkpoint as ONNX, pt2 or safetensors.

    pt2 is a torch.export program. An autoencoder's output is its reconstruction, pixels in [0, 1]. The file
    written is checked against PyTorch: a file that computes otherwise is removed. An int8 ONNX file (--quantize
    int8) is checked against the labels: its test top-1 beside the float file's, with both files' size and
    latency."""
    from zoo.inference.export import export_checkpoint, parse_batch, quantize_checkpoint
    from zoo.present.text import render_export, render_quantized_export, render_reconstruction_export

    if quantize is not None:
        typer.echo(render_quantized_export(quantize_checkpoint(
            checkpoint, output, quantize.value, max_drop=max_drop, format=format.value, opset=opset, batch=batch,
            encoder=encoder)))
        return
    if max_drop is not None:
        raise ZooError("--max-drop is the test top-1 an int8 file may lose: give it with --quantize int8, or remove it")
    report = export_checkpoint(checkpoint, format.value, output, opset=opset,
                               batch=None if batch is None else parse_batch(batch), encoder=encoder)
    typer.echo((render_export if report.outputs == "logits" else render_reconstruction_export)(report))


@app.command()
def explain(
    checkpoint: Annotated[str, typer.Argument(metavar="CHECKPOINT", help=(
        "A checkpoint (runs/.../best.pt) or its run directory, its .safetensors export or "
        "torchvision:<Weights>."))],
    images: Annotated[list[str] | None, typer.Argument(metavar="IMAGE...", show_default=False, help=(
        "Pictures to explain: files, folders (recursive) and glob patterns."))] = None,
    method: Annotated[ExplainMethod | None, typer.Option(
        parser=choice(ExplainMethod, "method"), show_default=False, help=(
            "gradcam (on a convolutional stage), saliency (input gradients) or occlusion (a patch moved over the "
            "picture: one forward pass a position). [default: the model's: occlusion for lenet5, else gradcam]"))
    ] = None,
    layer: Annotated[str | None, typer.Option(help=(
        "Grad-CAM's layer, a dotted module name: layer3, features.8. [default: the last convolutional stage]"),
        show_default=False)] = None,
    target: Annotated[str | None, typer.Option(help="The class to explain, a name or an index. [default: the top-1]",
                                               show_default=False)] = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="Classes printed per picture, best first.")] = 3,
    filters: Annotated[bool, typer.Option("--filters", help="Draw the first convolution's filters as a grid.")] = False,
    feature_maps: Annotated[Path | None, typer.Option("--feature-maps", metavar="IMAGE", show_default=False, help=(
        "Draw each stage's activations for this picture, a grid per stage (at most 64 channels)."))] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", show_default=False, help=(
        "The folder for the PNGs. [default: beside the checkpoint, best.pt -> best.explain/]"))] = None,
    device: DeviceOption = "auto",
) -> None:
    """Show what a network sees: heat maps, filters, feature maps.

    For each picture: the top-k classes and a heat map of the target class over the picture as the network saw
    it; an autoencoder's: the picture, its reconstruction and each pixel's squared error as a heat map. Pictures
    are prepared as zoo predict prepares them; each PNG written is printed."""
    from zoo.inference.explain import ERROR_MAP
    from zoo.inference.explain import explain as run_explain
    from zoo.present.text import render_error_maps, render_explain

    report = run_explain(checkpoint, images or [], method=method.value if method else None, layer=layer,
                         target=target, top_k=top_k, filters=filters, feature_maps=feature_maps, output=output,
                         device=device)
    typer.echo((render_error_maps if report.method == ERROR_MAP else render_explain)(report))


class StylizeInit(str, Enum):
    """`zoo stylize --init`; zoo.inference.stylize.INITS is the same list (importing it here would import torch)."""

    content = "content"
    noise = "noise"


class StylizePool(str, Enum):
    """`zoo stylize --pool`; zoo.inference.stylize.POOLS is the same list."""

    avg = "avg"
    max = "max"


class StylizeOptimizer(str, Enum):
    """`zoo stylize --optimizer`; zoo.inference.stylize.OPTIMIZERS is the same list."""

    lbfgs = "lbfgs"
    adam = "adam"


@app.command()
def stylize(
    content: Annotated[Path, typer.Argument(metavar="CONTENT", help="The picture whose arrangement is kept.")],
    style: Annotated[Path, typer.Argument(metavar="STYLE", help="The picture whose style is painted onto it.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", show_default=False, help=(
        "The picture to write, in the format its suffix names (.png, .jpg), its losses beside it in "
        "OUTPUT.losses.json. [default: CONTENT-STYLE.png in this folder]"))] = None,
    size: Annotated[int, typer.Option(help="The picture's longer side in pixels, 16 to 4096.")] = 256,
    steps: Annotated[int, typer.Option(help="Optimizer steps (L-BFGS iterations).")] = 100,
    init: Annotated[StylizeInit, typer.Option(parser=choice(StylizeInit, "init"), help=(
        "Start from the content picture, or from white noise as the paper does."))] = StylizeInit.content,
    pool: Annotated[StylizePool, typer.Option(parser=choice(StylizePool, "pool"), help=(
        "VGG-19's pooling: avg (the paper's choice, a better gradient flow) or its own max."))] = StylizePool.avg,
    optimizer: Annotated[StylizeOptimizer, typer.Option(parser=choice(StylizeOptimizer, "optimizer"), help=(
        "L-BFGS (the paper's; the pixels bounded to [0, 1]) or Adam."))] = StylizeOptimizer.lbfgs,
    lr: Annotated[float | None, typer.Option(show_default=False, help=(
        "Adam's step size (L-BFGS's line search finds its own). [default: 0.02]"))] = None,
    content_weight: Annotated[float, typer.Option(help="alpha, the content loss's weight.")] = 1.0,
    style_weight: Annotated[float, typer.Option(help=(
        "beta, the style loss's weight: alpha/beta 1e-3 is within the paper's Figure 3 range."))] = 1e3,
    tv_weight: Annotated[float, typer.Option(help=(
        "The total variation's weight: smoothness, not in the paper."))] = 1e-2,
    style_layers: Annotated[str, typer.Option(help=(
        "The layers of the style loss, comma-separated."))] = "conv1_1,conv2_1,conv3_1,conv4_1,conv5_1",
    weights: Annotated[str, typer.Option(help=(
        "VGG-19's weights: imagenet (torchvision's, downloaded once into torch.hub's cache), a state_dict file, "
        "or random (to try the command: no picture worth keeping)."))] = "imagenet",
    seed: Annotated[int, typer.Option(help="The noise of --init noise, and random weights.")] = 0,
    device: DeviceOption = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines on stderr.")] = False,
) -> None:
    """Neural style transfer: one picture in the style of another.

    Optimises a picture so that VGG-19 sees the content picture's arrangement (conv4_2) and the style picture's
    textures (the Gram matrices of five layers) in it; a line of losses every 10 steps on stderr. Writes the picture
    and its losses, nothing else."""
    from zoo.inference.stylize import default_output
    from zoo.inference.stylize import stylize as run_stylize

    result = run_stylize(content, style, output or default_output(content, style),
                         weights=None if weights == "random" else weights, device=device, quiet=quiet, size=size,
                         steps=steps, init=init.value, pool=pool.value, optimizer=optimizer.value, lr=lr,
                         content_weight=content_weight, style_weight=style_weight, tv_weight=tv_weight,
                         style_layers=tuple(name.strip() for name in style_layers.split(",")), seed=seed)
    typer.echo(result.summary())


@app.command("lr-find")
def lr_find_command(
    config_file: ConfigArgument = None,
    config: ConfigOption = None,
    set: SetOption = None,
    apply: Annotated[bool, typer.Option(
        "--apply", help="Then train with the suggested lr, as zoo train --set optimizer.lr=<it> would.")] = False,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", show_default=False,
        help="The picture of the loss against the lr, a PNG "
             "(default: <train.output_dir>/<run name>/lr_find.png).")] = None,
    steps: Annotated[int, typer.Option(help="Optimizer steps of the sweep, 5 to 1000.")] = 100,  # lr_find's STEPS ...
    start_lr: Annotated[float, typer.Option(help="optimizer.lr of the first step.")] = 1e-7,
    end_lr: Annotated[float, typer.Option(
        help="optimizer.lr of the last step, unless the loss diverges before.")] = 10.0,
    quiet: QuietOption = False,
) -> None:
    """Learning-rate range test: suggest optimizer.lr for a config.

    Smith 2017 (arXiv:1506.01186): sweep optimizer.lr exponentially for a few steps of the config's training,
    suggest the lr where the loss falls fastest, and plot the curve. Writes only the plot."""
    from zoo.present.text import render_lr_find
    from zoo.training.lr_find import run_lr_find

    config = one_config(config_file, config, "lr-find")
    found = run_lr_find(config, set, output, steps=steps, start_lr=start_lr, end_lr=end_lr, quiet=quiet)
    typer.echo(render_lr_find(found.result, config, found.overrides, found.plot))
    if found.result.problem is not None:
        raise ZooError(found.result.problem)
    if apply:  # then train, as zoo train --set optimizer.lr=<it> would
        from zoo.config import load_config
        from zoo.training import train as run_training

        run_training(load_config(config, found.overrides), quiet=quiet, said=found.result.notes)


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(
        metavar="RUN_DIR", help="A finished run's directory, runs/<name>/<time> (or its best.pt).")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", show_default=False, help="The page to write, .html (default: RUN_DIR/report.html).")] = None,
    device: DeviceOption = "auto",
) -> None:
    """Write a run's report: one self-contained HTML page.

    The config, the curves per epoch, the test split's per-class table and confusion matrix, timing and
    throughput; figures inlined, no network. Opens in any browser."""
    from zoo.present.report import write_report

    typer.echo(f"wrote {write_report(run_dir, output, device)}")


@app.command()
def sweep(
    config_file: ConfigArgument = None,
    config: ConfigOption = None,
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", metavar="KEY=SPEC", show_default=False, help=(
            "A key to sweep: values for a grid (optimizer.name=sgd,adam) or a range for a search "
            "(optimizer.lr=log:1e-4..1e-1, model.width=int:16..128); repeatable.")),
    ] = None,
    seeds: Annotated[str | None, typer.Option(
        help="Seeds each configuration runs with: 0-4, 0,2,7 or 3. [default: the config's sweep.seeds, else its "
             "train.seed]", show_default=False)] = None,
    workers: Annotated[int, typer.Option(help="Trials at once on this machine, each with its share of the cores.")] = 1,
    trials: Annotated[int | None, typer.Option(
        help="A search's configurations (each run once per seed). [default: sweep.trials, else 20]",
        show_default=False)] = None,
    storage: Annotated[str | None, typer.Option(
        metavar="URL", show_default=False, help=(
            "An Optuna RDB URL (sqlite:///sweep.db, postgresql://...) that several machines share. "
            "[default: optuna.journal in the sweep's folder]"))] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", show_default=False,
        help="The sweep's folder. [default: <train.output_dir>/sweeps/<config name>]")] = None,
    prune: Annotated[bool | None, typer.Option(
        "--prune/--no-prune", show_default=False,
        help="Stop trials whose validation top-1 trails the median at an epoch. [default: on for a search]")] = None,
    set: SetOption = None,
    format: FormatOption = Format.table,
    quiet: QuietOption = False,
) -> None:
    """Train a config over a grid or search of its keys.

    Each configuration runs once per seed.

    Every trial is an ordinary run in the sweep's folder (runs/); the same command again continues a stopped
    sweep without training anything twice. Writes results.csv, best.yaml and compare.html there. Exit code 1
    when a run failed (the table says why)."""
    from zoo.experiments.sweep import sweep as run_sweep
    from zoo.present.compare import render_sweep

    path = one_config(config_file, config, "sweep", "configs/lessons/optimizers.yaml")
    result = run_sweep(path, param or [], seeds=seeds, workers=workers, trials=trials, storage=storage, output=output,
                       overrides=set or [], prune=prune,
                       quiet=quiet or workers > 1 or not sys.stderr.isatty())  # two workers' bars would interleave
    typer.echo(render_sweep(result, format.value))
    if any(row.state == "failed" for row in result.results.rows):
        raise typer.Exit(1)  # the table says which runs failed and why; the same command tries them again


class CompareFormat(str, Enum):
    """`zoo compare --format`."""

    table = "table"
    markdown = "markdown"
    json = "json"


@app.command()
def compare(
    sources: Annotated[list[Path], typer.Argument(
        metavar="RUN_OR_SWEEP...", show_default=False,
        help="Run directories (or a checkpoint in one) and sweep folders: every finished run in them.")],
    format: Annotated[CompareFormat, typer.Option(
        "--format", "-f", parser=choice(CompareFormat, "format"), help="What to print.")] = CompareFormat.table,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", show_default=False,
        help="The HTML page. [default: compare.html in the runs' common folder]")] = None,
) -> None:
    """Compare finished runs: differences, paired tests.

    Runs that differ only in train.seed form a group (mean ± standard error). Two groups are compared over the
    seeds they share (paired t-test) and, where their runs answered the same test images, image by image
    (McNemar's exact test, the flipped images and both runs' heat maps on the page)."""
    from zoo.experiments.compare import compare as run_compare
    from zoo.present.compare import check_output, render_comparison, write_comparison

    check_output(output)
    comparison = run_compare(sources)
    page = write_comparison(sources, output, comparison=comparison)
    typer.echo(render_comparison(comparison, format.value))
    typer.echo(f"page: {page}", err=format == CompareFormat.json)


@config_app.command("show")
def config_show(config_file: ConfigArgument = None, config: ConfigOption = None, set: SetOption = None) -> None:
    """Print the resolved config: file, overrides and every default."""
    from zoo.config import load_config

    typer.echo(load_config(one_config(config_file, config, "config show"), set).to_yaml().rstrip())


@config_app.command("validate")
def config_validate(
    config: Annotated[Path | None, typer.Argument(
        metavar="CONFIG", help="The YAML file to check.", show_default=False)] = None,
    config_option: Annotated[Path | None, typer.Option(
        "--config", "-c", help="The same, as config show and train name it.", show_default=False)] = None,
    set: SetOption = None,
) -> None:
    """Check a config: 'ok', or one line per problem and exit code 2.

    With --set, the config as these overrides change it (as zoo train would read it)."""
    from zoo.config import load_config

    path = one_config(config, config_option, "config validate")
    load_config(path, set)
    typer.echo(f"{path}: ok")


@app.command("summary")
def summary_command(
    name: Annotated[str, typer.Argument(
        metavar="NAME", help="A registered model, e.g. resnet18 ('zoo list' shows them).")],
    input_size: Annotated[tuple[int, int, int] | None, typer.Option(
        "--input-size", metavar="C H W", help="Input channels, height, width. [default: the model's]")] = None,
    num_classes: Annotated[int | None, typer.Option(help="Classes. [default: the paper's]")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per step, for the training memory estimate.")] = 1,
    depth: Annotated[int, typer.Option(help="Nesting depth of the rows; deeper blocks fold into their parent.")] = 2,
    aux: Annotated[bool, typer.Option(
        help="Build and list the auxiliary heads (GoogLeNet, Inception v3), marked training only.")] = False,
    format: FormatOption = Format.table,
) -> None:
    """Summarize a model: per-layer shapes, parameters and MACs.

    Totals and memory estimates follow the rows."""
    from zoo.present.text import render_summary
    from zoo.summary import summarize

    typer.echo(render_summary(summarize(name, input_size, num_classes, batch_size, depth, aux), format))


READ_ONLY_COMMANDS = {"list", "summary", "config"}  # they write no files and start no threads
# They close what they write (atomic files, the TensorBoard writer, history.csv) before they return: once one has
# succeeded and no DataLoader worker is left, the teardown has nothing to do but cost 1.5-1.8 s (issue 18).
CLOSED_COMMANDS = {"train", "finetune", "lr-find", "evaluate", "explain", "report", "compare", "stylize"}


def main(fast_exit: bool = False) -> None:
    """Entry point: known errors become one line on stderr (a config's: one per problem) and exit code 2; anything
    else is a bug.

    Typer (in standalone mode) already answers usage errors with exit code 2, and lets exceptions
    from the commands through to here. With `fast_exit`, a read-only command that succeeded, and one of
    CLOSED_COMMANDS with no worker left, skips the interpreter's teardown (libtorch's static destructors cost
    0.8 s, more after a run) once its output is flushed.
    """
    from zoo.errors import RunStopped
    from zoo.present.console import say, silence

    try:
        app()
    except ZooError as error:
        for line in error.lines():  # a config's problems: one line each
            say(f"error: {line}", sys.stderr)
        sys.exit(getattr(error, "exit_code", 2))
    except RunStopped as stop:  # a signal or a non-finite loss: the run saved what it could and says how to go on
        from zoo.distributed import local_rank, place  # torch is imported already: a run raised this

        # Under torchrun, once; a lost process of the run, once a machine (rank 0 may be the one lost)
        if place()[0] == 0 or stop.every_rank and local_rank() == 0:
            say(str(stop), sys.stderr)  # the console may have died with the signal (a pipe's reader)
        sys.exit(stop.exit_code)
    except KeyboardInterrupt:  # a second Ctrl-C, outside a save: the last checkpoint written is intact
        say("interrupted; the last checkpoint written is intact", sys.stderr)
        sys.exit(130)
    except SystemExit as done:
        command = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), None)
        # A torchrun worker whose run is saved skips the interpreter's teardown too: gloo's threads have been
        # seen to abort a process in it (SIGABRT) after a run that had finished and written everything.
        torchrun_worker = "TORCHELASTIC_RUN_ID" in os.environ and command in ("train", "finetune")
        closed = command in CLOSED_COMMANDS and not _workers_alive()
        if fast_exit and done.code in (0, None) and (command in READ_ONLY_COMMANDS or torchrun_worker or closed):
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):  # a reader that left (zoo list | head): nothing more to say
                    silence(stream)
            os._exit(0)
        raise


def _workers_alive() -> bool:
    """Whether a child process (a DataLoader worker kept by persistent_workers) still runs: it is shut down in
    the teardown, which then must run."""
    import multiprocessing

    return bool(multiprocessing.active_children())


def run() -> None:
    """The `zoo` console script, `python -m zoo` and `python cli.py`."""
    main(fast_exit=True)
