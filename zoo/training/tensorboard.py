"""TensorBoard logging for a run (`tensorboard --logdir runs`), through tensorboard's SummaryWriter: rank 0 writes
the run directory's event file."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from zoo.distributed import unwrap
from zoo.metrics import Metrics
from zoo.present.figures import confusion_image, png
from zoo.present.grids import filter_grid, reconstruction_grid


class TensorBoardLogger:
    """Scalars, per-layer gradient norms, weight histograms, the confusion matrix, first-layer filters, the test
    split's PR curves, the graph, hparams."""

    def __init__(self, log_dir: Path) -> None:
        self.writer = SummaryWriter(log_dir=str(log_dir))
        self._excepthook = threading.excepthook
        threading.excepthook = self._writer_thread_error

    def _writer_thread_error(self, args: threading.ExceptHookArgs) -> None:
        """The event writer's thread fails on a full disk or a removed run directory: tensorboard keeps the error
        and raises it at the run's next write (its _check_worker_status; zoo.training.log.RunLog.writing makes it
        one line), so the thread's own traceback would only say it twice."""
        if type(args.thread).__name__ != "_AsyncWriterThread":
            self._excepthook(args)

    def scalars(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def metrics(self, split: str, metrics: Metrics, step: int) -> None:
        if hasattr(metrics, "psnr"):  # a reconstruction's: PSNR and MSE, and the noisy input's PSNR where measured
            values = {f"{split}/{name}": value for name, value in metrics.summary().items()
                      if name != "count" and value is not None}
        else:
            values = {f"{split}/loss": metrics.loss, f"{split}/accuracy": metrics.accuracy}  # multi-label: exact match
        if metrics.top5_accuracy is not None:  # None: 5 classes or fewer, where top-5 is always 1
            values[f"{split}/top5_accuracy"] = metrics.top5_accuracy
        self.scalars(values, step)

    @torch.no_grad()
    def gradient_norms(self, model: nn.Module, step: int) -> None:
        """One L2 norm per weight tensor: vanishing gradients show as early layers' norms collapsing."""
        for name, param in unwrap(model).named_parameters():
            if param.grad is not None and param.dim() > 1:
                self.writer.add_scalar(f"grad_norm/{name}", param.grad.detach().norm().item(), step)

    @torch.no_grad()
    def histograms(self, model: nn.Module, epoch: int) -> None:
        """Each weight tensor's histogram in numpy's "auto" bins: a third of the time of SummaryWriter's default
        (TensorFlow's ~1,500 fixed log-spaced buckets), which TensorBoard's dashboard re-bins to 30 anyway."""
        for name, param in unwrap(model).named_parameters():
            self.writer.add_histogram(f"weights/{name}", param.detach().float().cpu(), epoch, bins="auto")

    def confusion(self, metrics: Metrics, classes: Sequence[str], epoch: int, split: str = "val") -> None:
        picture = confusion_image(metrics.confusion, classes, f"{split}, epoch {epoch}")
        self.image(f"{split}/confusion_matrix", picture, epoch)

    @torch.no_grad()
    def reconstructions(self, model: nn.Module, loader: Any, task: Any, compute: Any, epoch: int,
                        split: str = "val", count: int = 8) -> None:
        """An autoencoder's first `count` pictures of `split` as the image <split>/reconstructions: the input, the
        noisy input under data.noise (the noise validation draws) and the output, row by row. One forward pass of
        `count` pictures: milliseconds."""
        images, labels = next(iter(loader))
        inputs, targets = task.pair(*compute.batch(images[:count], labels[:count]), task.generator(compute.device))
        model.eval()
        outputs = task.probabilities(model(inputs))
        given = "gray input" if task.colorize else "noisy input"
        rows = [("input", targets), *([(given, inputs)] if task.noise or task.colorize else []), ("output", outputs)]
        self.image(f"{split}/reconstructions", reconstruction_grid(rows, f"{split}, epoch {epoch}"), epoch)

    def filters(self, model: nn.Module, epoch: int) -> None:
        """The first convolution's filters (zoo.present.grids.filter_grid, zoo explain --filters' picture) as the image
        filters/<its name>: a student watches them form. 1 ms for LeNet-5's 6, 5 ms for ResNet-18's 64."""
        name, _ = model.first_conv("train.log_filters")
        self.image(f"filters/{name}", filter_grid(model), epoch)

    def pr_curves(self, split: str, probabilities: torch.Tensor, positives: torch.Tensor, classes: Sequence[str],
                  step: int) -> None:
        """One precision-recall curve per class, the class against the rest on its probability (the task's:
        softmax, or a multi-label model's sigmoid), under pr/<split>/<class> (TensorBoard's PR Curves tab);
        `probabilities` and `positives` (which samples have the class) N x classes. A class without samples gets
        none: its recall is undefined (zoo.metrics.trust leaves it out too)."""
        probabilities, positives = probabilities.detach().float().cpu(), positives.detach().cpu()
        for k, name in enumerate(classes):
            if positives[:, k].any():
                self.writer.add_pr_curve(f"pr/{split}/{name}", positives[:, k].numpy(), probabilities[:, k].numpy(),
                                         step)

    def image(self, tag: str, picture: Any, step: int) -> None:
        """A PIL image as TensorBoard's image summary, encoded once as a fast PNG (compress level 1): add_image
        would turn it to floats and back, resample it at scale 1 and compress harder (17 ms against 4 ms for
        a 10-class confusion matrix)."""
        from tensorboard.compat.proto.summary_pb2 import Summary

        image = Summary.Image(height=picture.height, width=picture.width, colorspace=3,
                              encoded_image_string=png(picture.convert("RGB"), compress_level=1))
        self.writer.file_writer.add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)

    def graph(self, model: nn.Module, example: torch.Tensor) -> None:
        """The model graph, traced once; a network the tracer cannot follow costs a warning, not the run."""
        model = unwrap(model)
        was_training = model.training
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.writer.add_graph(model.eval(), example)
        except Exception as error:  # noqa: BLE001  (tracing is best-effort)
            print(f"warning: the model graph was not logged ({type(error).__name__}: {str(error).splitlines()[0]})")
        finally:
            model.train(was_training)

    def hparams(self, params: dict[str, Any], final: dict[str, float]) -> None:
        """Into this run's own event file (SummaryWriter.add_hparams would start a second one)."""
        clean = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in params.items()}
        experiment, session_start, session_end = hparams(clean, final)
        for summary in (experiment, session_start, session_end):
            self.writer.file_writer.add_summary(summary)
        for tag, value in final.items():
            self.writer.add_scalar(tag, value, 0)

    def close(self) -> None:
        try:
            self.writer.close()
        finally:
            threading.excepthook = self._excepthook

