"""The transfer experiment of the fine-tuning issue, as figures: LeNet-5 trained on the digits 0-4, then
trained for one epoch on the digits 5-9 three ways (feature extraction with `freeze: backbone`, the
convolutional base frozen with `freeze: until:features`, and a full fine-tune) against the same network
trained from scratch for the same epoch on the same data, over several seeds and two data budgets
(the full training split, and a scarce one: test_split 0.9 leaves about 80 training images).

    python scripts/transfer_digits.py [--seeds 3]

Prints one line per setting: mean test accuracy of the fine-tuned and the scratch network, and the ratio.
Then why feature extraction does poorly here: for each layer of the source network, the test accuracy on
5-9 of a linear classifier fitted to convergence (scikit-learn's logistic regression) on that layer's
features, of a nearest-class-mean classifier, and the share of the features' variance in their top 4
directions (a network trained on 5 classes squeezes its last layers towards 4 dimensions).
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

from zoo.checkpoint import read_state  # noqa: E402
from zoo.config import load_config  # noqa: E402
from zoo.data import build_datasets, build_loaders  # noqa: E402
from zoo.models.registry import create_model  # noqa: E402
from zoo.training import train  # noqa: E402

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
            source = train(load_config(CONFIG, [f"train.output_dir={out}", "data.classes=[0,1,2,3,4]",
                                                "train.run_name=source"]), quiet=True)
        checkpoint = source.run_dir / "checkpoints" / "best.pt"
        print(f"source: digits 0-4, test accuracy {source.metrics['test']['accuracy']:.2%}")
        for budget, split in (("full split", "0.2"), ("scarce (test_split 0.9)", "0.9")):
            for freeze in ("backbone", "until:features", "none"):
                tuned, scratch = [], []
                for seed in range(args.seeds):
                    common = [f"train.output_dir={out}", "data.classes=[5,6,7,8,9]", "train.epochs=1",
                              f"train.seed={seed}", "scheduler.name=none", f"data.test_split={split}"]
                    tuned.append(accuracy([*common, f"finetune.source={checkpoint}", f"finetune.freeze={freeze}"]))
                    scratch.append(accuracy(common))
                a, b = statistics.mean(tuned), statistics.mean(scratch)
                print(f"digits 5-9, one epoch, {budget}, freeze {freeze}: fine-tuned {a:.2%} "
                      f"({', '.join(f'{t:.1%}' for t in tuned)}), scratch {b:.2%} "
                      f"({', '.join(f'{s:.1%}' for s in scratch)}), ratio {a / b:.2f}")
        probe(checkpoint)


def layer_features(checkpoint: Path) -> dict[str, tuple]:
    """{layer: (train features, train labels, test features, test labels)} of digits 5-9 through the source
    network trained on 0-4, normalized as it was trained."""
    import torch

    state = read_state(checkpoint, "evaluate")
    config = load_config(CONFIG, ["data.classes=[5,6,7,8,9]", "data.augment=false"]).with_normalization(
        state.normalization.mean, state.normalization.std)
    model = create_model("lenet5", num_classes=5)
    model.load_state_dict(state.model)
    model.eval()
    train_loader, _, test_loader = build_loaders(build_datasets(config.data, in_channels=1, input_size=32), config.data)
    features = {}
    for split, loader in (("train", train_loader), ("test", test_loader)):
        images, labels = loader.images, loader.targets
        with torch.no_grad():
            conv = model.pool(model.forward_features(images)).flatten(1)
            fc1 = model.classifier[1](model.classifier[0](conv))
            fc2 = model.classifier[3](model.classifier[2](fc1))
        for name, values in (("pixels", images.flatten(1)), ("conv (400)", conv), ("fc1 (120)", fc1),
                             ("fc2/F6 (84)", fc2)):
            features.setdefault(name, []).extend([values.numpy(), labels.numpy()])
    return {name: tuple(parts) for name, parts in features.items()}


def probe(checkpoint: Path) -> None:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    for name, (x, y, x_test, y_test) in layer_features(checkpoint).items():
        linear = LogisticRegression(max_iter=5000).fit(x, y).score(x_test, y_test)
        means = np.stack([x[y == k].mean(0) for k in np.unique(y)])
        nearest = (np.linalg.norm(x_test[:, None] - means[None], axis=2).argmin(1) == y_test).mean()
        spectrum = np.linalg.eigvalsh(np.cov(x.T))[::-1]
        print(f"features of 5-9 at {name:12}: linear classifier at convergence {linear:.1%}, nearest class mean "
              f"{nearest:.1%}, variance in the top 4 directions {spectrum[:4].sum() / spectrum.sum():.0%}")


if __name__ == "__main__":
    main()
