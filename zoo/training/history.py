"""history.csv in the run directory: one row of figures per epoch, written as the epoch ends (as Keras' and
Lightning's CSVLoggers do), so runs can be plotted and compared without TensorBoard."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from zoo.loop import EpochResult
from zoo.rundir import atomic_write, check_present


class History:
    """The run's history.csv. A resumed run keeps the rows of the epochs its checkpoint has done and drops any
    written after it (an epoch that ended but whose checkpoint was not saved is trained again)."""

    def __init__(self, path: Path, ema: bool, rates: list[str], epochs_done: int | None = None,
                 figure: str = "accuracy") -> None:
        """`figure`: what the metrics' `accuracy` is, as the columns name it (an autoencoder's: psnr, in dB)."""
        self.path, self.figure = path, figure
        self.columns = ["epoch", "train_loss", f"train_{figure}", "val_loss", f"val_{figure}",
                        *(["val_top5_accuracy"] if figure == "accuracy" else []),
                        *(["ema_val_loss", f"ema_val_{figure}"] if ema else []),
                        *(name.replace("/", "_") for name in rates), "images_per_s", "time_s"]
        kept: list[dict[str, str]] = []
        if epochs_done is not None and path.is_file():
            with path.open(newline="") as file:
                kept = [row for row in csv.DictReader(file) if row.get("epoch", "").isdigit()
                        and int(row["epoch"]) <= epochs_done]
        self.text = io.StringIO()  # the whole file: each epoch writes it again, atomically (a few KB)
        self.writer = csv.DictWriter(self.text, self.columns, restval="", extrasaction="ignore", lineterminator="\n")
        self.writer.writeheader()
        self.writer.writerows(kept)
        atomic_write(path, self.text.getvalue().encode())

    def write(self, epoch: int, train: EpochResult, val: EpochResult | None, ema_val: EpochResult | None,
              rates: dict[str, float]) -> None:
        """Append `epoch`'s row: losses, top-1 accuracies (fractions), the learning rates, images/s, seconds."""
        figure = self.figure
        row: dict[str, object] = {"epoch": epoch, "train_loss": train.metrics.loss,
                                  f"train_{figure}": train.metrics.accuracy,
                                  "images_per_s": round(train.images_per_second, 1), "time_s": round(train.seconds, 3)}
        if val is not None:
            row.update({"val_loss": val.metrics.loss, f"val_{figure}": val.metrics.accuracy,
                        "val_top5_accuracy": "" if val.metrics.top5_accuracy is None else val.metrics.top5_accuracy})
        if ema_val is not None:
            row.update({"ema_val_loss": ema_val.metrics.loss, f"ema_val_{figure}": ema_val.metrics.accuracy})
        row.update({name.replace("/", "_"): rate for name, rate in rates.items()})
        self.writer.writerow(row)
        check_present(self.path.parent)  # a removed run directory is not made again
        atomic_write(self.path, self.text.getvalue().encode())  # a full disk leaves the file as it was, no half row
