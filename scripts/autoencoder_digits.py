"""The course's autoencoder lessons (004) measured on scikit-learn's digits, as zoo trains and evaluates them.

    python scripts/autoencoder_digits.py anomaly [--set key=value ...]   # one normal digit, the nine others abnormal
    python scripts/autoencoder_digits.py denoise [--set key=value ...]   # data.noise 0.3, every digit

anomaly: for each digit d, an autoencoder trained on d's training pictures alone (configs/autoencoder_anomaly.yaml
with data.classes [d]), then `zoo evaluate --abnormal-classes` the nine other digits: the anomaly ROC AUC and average
precision of its reconstruction error, and of PCA with as many components as its code, fitted on the same pictures.
denoise: configs/conv_autoencoder_denoise.yaml, the test split's PSNR of the output and of the noisy input, and PCA's.
Prints one row per run and the means; every figure is as zoo evaluate measured it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(config: Path, sets: list[str], abnormal: tuple[int, ...] | None, out: Path) -> dict:
    import zoo
    from zoo.evaluation.evaluate import evaluate_checkpoint

    resolved = zoo.load_config(config, [*sets, f"train.output_dir={out}"])
    with open(os.devnull, "w") as silent, contextlib.redirect_stdout(silent), contextlib.redirect_stderr(silent):
        result = zoo.train(resolved, quiet=True)  # its epoch lines: the figures below are zoo evaluate's
    return evaluate_checkpoint(result.run_dir, abnormal_classes=abnormal, save=False).to_dict()


def anomaly(sets: list[str], out: Path) -> None:
    print("normal  code  AE AUC  PCA AUC  AE AP   PCA AP  AE PSNR  PCA PSNR")
    rows = []
    for digit in range(10):
        others = tuple(other for other in range(10) if other != digit)
        figures = run(ROOT / "configs" / "autoencoder_anomaly.yaml", [*sets, f"data.classes=[{digit}]"], others,
                      out / str(digit))
        row = (figures["anomaly"]["auc"], figures["pca"]["auc"], figures["anomaly"]["average_precision"],
               figures["pca"]["average_precision"], figures["psnr"], figures["pca"]["psnr"])
        rows.append(row)
        print(f"{digit:>6}  {figures['code_size']:>4}  {row[0]:.4f}  {row[1]:.4f}   {row[2]:.4f}  {row[3]:.4f}  "
              f"{row[4]:7.2f}  {row[5]:8.2f}", flush=True)
    means = [statistics.fmean(column) for column in zip(*rows)]
    wins = sum(row[0] > row[1] for row in rows)
    print(f"  mean        {means[0]:.4f}  {means[1]:.4f}   {means[2]:.4f}  {means[3]:.4f}  {means[4]:7.2f}  "
          f"{means[5]:8.2f}")
    print(f"the autoencoder's AUC beats PCA's for {wins} of 10 normal digits")


def denoise(sets: list[str], out: Path) -> None:
    figures = run(ROOT / "configs" / "conv_autoencoder_denoise.yaml", sets, None, out)
    print(f"noisy input PSNR {figures['input_psnr']:.2f} dB, output {figures['psnr']:.2f} dB "
          f"({figures['psnr'] - figures['input_psnr']:+.2f} dB), PCA ({figures['pca']['components']} components) "
          f"{figures['pca']['psnr']:.2f} dB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lesson", choices=["anomaly", "denoise"])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        (anomaly if args.lesson == "anomaly" else denoise)(args.set, Path(out))
    return None


if __name__ == "__main__":
    sys.exit(main())
