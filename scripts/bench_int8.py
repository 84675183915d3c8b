"""int8 against float ONNX on the CPU, side by side: what `zoo export --quantize int8` measures and prints (file size,
test top-1; ONNX Runtime's latency at batch 1 and 32, its default threads), for

1. the README's main job (LeNet-5 on scikit-learn's digits, trained here in about 20 s, or the run given),
2. ResNet-18 trained on the same digits at 32 px (torchvision's ResNet-18 as it is, 10 epochs, a few minutes here,
   or the run given): the accuracy of a deep network with batch norm folded into int8 convolutions, and
3. ResNet-18 at 224 px with random weights, on a small ImageFolder of random camera-like JPEGs (4 classes): its
   accuracy is n/a (a random network's top-1 on random pictures means nothing; its --max-drop is lifted) and only its
   size and latency at ImageNet's size are figures.

    python scripts/bench_int8.py [--run runs/lenet5_digits/<time>] [--resnet18-run RUN] [--photos 120] [--rounds 5]

The latencies are measured here again, the two files alternating for --rounds rounds (each round the median of a few
runs, zoo.inference.export.latencies), since the command measures each file once: the figures are the medians over
rounds. The machine may be shared: read the ratios rather than the absolute figures.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))  # bench_predict's ImageFolder checkpoint maker


def main_job(folder: Path, run: str | None) -> Path:
    """The given run directory, or the main job trained into `folder`."""
    if run is not None:
        return Path(run)
    from zoo.config import load_config
    from zoo.training import train

    with contextlib.redirect_stdout(sys.stderr):  # the run's closing lines: not the table's
        return train(load_config(ROOT / "configs" / "lenet5_digits.yaml", [f"train.output_dir={folder}"]),
                     quiet=True).run_dir


def digits_resnet18(folder: Path, run: str | None) -> Path:
    """The given run directory, or ResNet-18 trained on the main job's digits at 32 px for 10 epochs in `folder`."""
    if run is not None:
        return Path(run)
    from zoo.config import load_config
    from zoo.training import train

    overrides = ["model.name=resnet18", "data.input_size=32", "train.epochs=10", f"train.output_dir={folder}"]
    with contextlib.redirect_stdout(sys.stderr):
        return train(load_config(ROOT / "configs" / "lenet5_digits.yaml", overrides), quiet=True).run_dir


def resnet18(folder: Path, photos: int) -> Path:
    """A ResNet-18 checkpoint of random weights whose config names an ImageFolder of `photos` random JPEGs."""
    from bench_predict import imagefolder_checkpoint, write_photos

    write_photos(folder / "photos", photos)
    return imagefolder_checkpoint(folder, folder / "photos", "resnet18", 224)


def measure(checkpoint: Path, folder: Path, rounds: int, **options) -> tuple:
    """zoo export --quantize int8's report on `checkpoint`, and each file's latencies (batch size -> ms, the median
    over `rounds` alternating rounds) with the ratios' medians; the float file exported again to be timed."""
    import torch

    from zoo.inference.export import export_checkpoint, latencies, quantize_checkpoint

    report = quantize_checkpoint(checkpoint, folder / f"{checkpoint.stem}.int8.onnx", **options)
    float_file = export_checkpoint(checkpoint, "onnx", folder / f"{checkpoint.stem}.onnx").path
    images = torch.randn(32, *zoo_shape(report.path))  # random pictures: their values do not change the time
    runs = [[latencies(path, images) for path in (float_file, report.path)] for _ in range(rounds)]
    medians = [{size: statistics.median(run[kind][size] for run in runs) for size in (1, 32)} for kind in (0, 1)]
    ratios = {size: statistics.median(run[1][size] / run[0][size] for run in runs) for size in (1, 32)}
    return report, medians, ratios


def zoo_shape(path: Path) -> tuple[int, ...]:
    """C x H x W of an exported file's input (its metadata's preprocessing)."""
    import zoo

    return zoo.load(path).preprocessing.shape


def rows(name: str, report, medians, ratios, accuracy: bool) -> list[list[str]]:
    """The float and int8 rows of one network, and their ratios."""
    from zoo.present.text import format_bytes, percent

    files = (("float", report.float32, medians[0]), ("int8", report.int8, medians[1]))
    table = [[name, kind, format_bytes(figures.bytes), f"{times[1]:.2f} ms", f"{times[32]:.1f} ms",
              percent(figures.accuracy) if accuracy else "n/a"] for kind, figures, times in files]
    ratio = [f"{report.int8.bytes / report.float32.bytes:.2f}x", *(f"{ratios[size]:.2f}x" for size in (1, 32))]
    change = f"{-report.drop or 0.0:+.2f} points" if accuracy else "n/a"
    return [*table, [name, "int8 / float", *ratio, change]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", help="a main-job run directory (default: train one here, about 20 s)")
    parser.add_argument("--resnet18-run", help="a ResNet-18 run on digits (default: train one here, a few minutes)")
    parser.add_argument("--photos", type=int, default=120, help="JPEGs in ResNet-18's ImageFolder")
    parser.add_argument("--rounds", type=int, default=5, help="alternating latency rounds of the two files")
    args = parser.parse_args()

    import onnxruntime

    from zoo.checkpoint import checkpoint_file
    from zoo.present.text import render

    table = []
    with tempfile.TemporaryDirectory(prefix="zoo-bench-int8-") as temporary:
        folder = Path(temporary)
        report, *times = measure(checkpoint_file(main_job(folder / "runs", args.run)), folder, args.rounds)
        table += rows("lenet5 (main job)", report, *times, accuracy=True)
        print(f"lenet5: test split of {report.data}, {report.test_images} images; top-1 agreement "
              f"{report.agreement:.2%}", file=sys.stderr)
        report, *times = measure(checkpoint_file(digits_resnet18(folder / "runs", args.resnet18_run)), folder,
                                 args.rounds)
        table += rows("resnet18 on digits, 32 px", report, *times, accuracy=True)
        print(f"resnet18: top-1 agreement {report.agreement:.2%}", file=sys.stderr)
        report, *times = measure(resnet18(folder, args.photos), folder, args.rounds, max_drop=100)
        table += rows("resnet18 224 px (random weights)", report, *times, accuracy=False)
    print(f"ONNX Runtime {onnxruntime.__version__}, CPU provider, its default threads; latency: the median over "
          f"{args.rounds} alternating rounds")
    print(render(["network", "file", "size", "batch 1", "batch 32", "test top-1"], table,
                 numeric=[False, False, True, True, True, True]))


if __name__ == "__main__":
    main()
