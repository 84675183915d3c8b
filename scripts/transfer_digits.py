"""The transfer experiment of the fine-tuning issue, as figures: LeNet-5 trained on the digits 0-4, then
trained for one epoch on the digits 5-9 three ways (feature extraction with `freeze: backbone`, the
convolutional base frozen with `freeze: until:features`, and a full fine-tune) against the same network
trained from scratch for the same epoch on the same data, over several seeds and two data budgets
(the full training split, and a scarce one: test_split 0.9 leaves about 80 training images).

    python scripts/transfer_digits.py [--seeds 3]

Prints one line per setting: mean test accuracy of the fine-tuned and the scratch network, and the ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from zoo.config import load_config  # noqa: E402
from zoo.trainer import train  # noqa: E402

CONFIG = ROOT / "configs" / "lenet5_digits.yaml"


def accuracy(overrides: list[str]) -> float:
    with contextlib.redirect_stdout(io.StringIO()):
        return train(load_config(CONFIG, overrides), quiet=True).metrics["test"]["accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        with contextlib.redirect_stdout(io.StringIO()):
            source = train(load_config(CONFIG, [f"train.output_dir={out}", "data.classes=[0,1,2,3,4]", "train.run_name=source"]), quiet=True)
        checkpoint = source.run_dir / "checkpoints" / "best.pt"
        print(f"source: digits 0-4, test accuracy {source.metrics['test']['accuracy']:.2%}")
        for budget, split in (("full split", "0.2"), ("scarce (test_split 0.9)", "0.9")):
            for freeze in ("backbone", "until:features", "none"):
                tuned, scratch = [], []
                for seed in range(args.seeds):
                    common = [f"train.output_dir={out}", "data.classes=[5,6,7,8,9]", "train.epochs=1", f"train.seed={seed}",
                              "scheduler.name=none", f"data.test_split={split}"]
                    tuned.append(accuracy([*common, f"finetune.source={checkpoint}", f"finetune.freeze={freeze}"]))
                    scratch.append(accuracy(common))
                a, b = statistics.mean(tuned), statistics.mean(scratch)
                print(f"digits 5-9, one epoch, {budget}, freeze {freeze}: fine-tuned {a:.2%} "
                      f"({', '.join(f'{t:.1%}' for t in tuned)}), scratch {b:.2%} ({', '.join(f'{s:.1%}' for s in scratch)}), ratio {a / b:.2f}")


if __name__ == "__main__":
    main()
