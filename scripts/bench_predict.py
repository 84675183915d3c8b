"""Prediction throughput, side by side in one process: zoo's predict against a hand-written torchvision loop, and
ONNX Runtime against eager PyTorch on the CPU.

    python scripts/bench_predict.py [--images 512] [--rounds 3] [--workers 2]

1. `zoo.predict_files` on a folder of JPEGs (640 x 480, camera-like) with checkpoints of ImageFolder runs
   (ResNet-18 at 224 px, where the network's time dominates; LeNet-5 on RGB at 32 px, where decoding does), against
   the loop a user writes: torchvision's ImageFolder-style reading (PIL, RGB), Resize, CenterCrop, ToTensor,
   Normalize, a DataLoader with the same workers and batch size, the same network in eval mode under
   inference_mode, softmax and top-5. Rounds alternate; the ratio is zoo's images/s over the
   loop's (goal >= 0.95). Both produce the same top-1, which is checked.
2. LeNet-5 and ResNet-18 (224 px) at batch 1 and 32: the exported ONNX file in ONNX Runtime (CPU provider, its
   default threads) against eager PyTorch, each the median of timed calls after warm-up.

The machine is shared: read the ratios, measured side by side, rather than the absolute figures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the test suite's checkpoint maker


def write_photos(folder: Path, count: int) -> None:
    """`count` JPEGs of 640 x 480 smooth random colour (so they compress like photos), in 4 class folders."""
    rng = np.random.default_rng(0)
    for index in range(count):
        small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((640, 480), Image.BILINEAR)
        path = folder / f"class{index % 4}" / f"{index:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, quality=90)


def imagefolder_checkpoint(folder: Path, photos: Path, name: str, side: int) -> Path:
    """A checkpoint as an ImageFolder run writes it (RGB, ImageNet's mean and std, `side` px, 4 classes)."""
    from zoo.checkpoint import Normalization, TrainingState, save_checkpoint
    from zoo.config import validate_config

    config = validate_config({"model": {"name": name, "in_channels": 3},
                              "data": {"name": "imagefolder", "root": str(photos), "input_size": side}})
    network = config.model.build(4, 3)
    state = TrainingState.of_network(network, config.to_dict(), [f"class{i}" for i in range(4)],
                                     Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), side, 3))
    save_checkpoint(state, folder / f"{name}.pt")
    return folder / f"{name}.pt"


def hand_written(checkpoint: Path, photos: Path, batch_size: int, workers: int) -> list[int]:
    """What a user writes: their own ImageFolder-style reading and the same network."""
    import torchvision.transforms as T
    from torch.utils.data import DataLoader, Dataset

    import zoo

    predictor = zoo.load(checkpoint)  # the same weights; only the reading and the loop are the user's
    model, side = predictor.model, predictor.preprocessing.input_size
    transform = T.Compose([T.Resize(side), T.CenterCrop(side), T.ToTensor(),
                           T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    paths = sorted(photos.rglob("*.jpg"))

    class Files(Dataset):
        def __len__(self) -> int:
            return len(paths)

        def __getitem__(self, index: int) -> torch.Tensor:
            with Image.open(paths[index]) as image:
                return transform(image.convert("RGB"))

    top1: list[int] = []
    with torch.inference_mode():
        for batch in DataLoader(Files(), batch_size, num_workers=workers):
            probabilities = model(batch).softmax(1)
            top1 += probabilities.topk(min(5, probabilities.shape[1]), dim=1).indices[:, 0].tolist()
    return top1


def zoo_predict(checkpoint: Path, photos: Path, batch_size: int, workers: int) -> list[int]:
    from zoo.inference.predict import predict_files

    report = predict_files(checkpoint, [photos], top_k=5, batch_size=batch_size, device="cpu", workers=workers)
    return [prediction.indices[0] for _, prediction in report.rows]


def timed(function, *args) -> tuple[float, object]:
    start = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - start, result


def throughput(args: argparse.Namespace, work: Path, name: str, side: int) -> None:
    photos = work / "photos"
    if not photos.is_dir():
        write_photos(photos, args.images)
    checkpoint = imagefolder_checkpoint(work, photos, name, side)
    zoo_predict(checkpoint, photos, args.batch_size, args.workers)  # warm-up: imports, page cache
    times: dict[str, list[float]] = {"zoo": [], "loop": []}
    for _ in range(args.rounds):
        seconds, ours = timed(zoo_predict, checkpoint, photos, args.batch_size, args.workers)
        times["zoo"].append(seconds)
        seconds, theirs = timed(hand_written, checkpoint, photos, args.batch_size, args.workers)
        times["loop"].append(seconds)
        agree = np.mean(np.array(ours) == np.array(theirs))
    zoo_rate = args.images / statistics.median(times["zoo"])
    loop_rate = args.images / statistics.median(times["loop"])
    print(f"predict, {name} at {side} px, {args.images} JPEGs of 640x480, batch {args.batch_size}, "
          f"{args.workers} workers: zoo {zoo_rate:.1f} img/s, hand-written torchvision loop {loop_rate:.1f} img/s, "
          f"ratio {zoo_rate / loop_rate:.2f} (goal >= 0.95); top-1 agreement {agree:.1%}")
    print(f"  rounds, seconds: zoo {', '.join(f'{t:.2f}' for t in times['zoo'])}; "
          f"loop {', '.join(f'{t:.2f}' for t in times['loop'])}")


def median_call(function, calls: int) -> float:
    for _ in range(3):
        function()
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def runtimes(work: Path) -> None:
    from test_export import checkpoint_of

    import zoo
    from zoo.inference.export import export_checkpoint

    for name, side in (("lenet5", 32), ("resnet18", 224)):
        checkpoint = checkpoint_of(name, work, side=side)
        onnx = zoo.load(export_checkpoint(checkpoint, "onnx").path)
        eager = zoo.load(checkpoint)
        for batch in (1, 32):
            images = torch.randn(batch, eager.in_channels, side, side)
            calls = 200 if name == "lenet5" else (30 if batch == 1 else 5)
            with torch.inference_mode():
                eager_s = median_call(lambda: eager.model(images), calls)
            array = images.numpy()
            session = onnx.model.session
            onnx_s = median_call(lambda: session.run(None, {"images": array}), calls)
            faster = "ONNX Runtime faster" if onnx_s < eager_s else "eager faster"
            print(f"{name} batch {batch:>2}: eager {batch / eager_s:,.0f} img/s, "
                  f"ONNX Runtime {batch / onnx_s:,.0f} img/s, ratio {eager_s / onnx_s:.2f} ({faster})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-runtimes", action="store_true")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as folder:
        throughput(args, Path(folder), "resnet18", 224)  # the network's time dominates
        throughput(args, Path(folder), "lenet5", 32)  # decoding and resizing dominate
        if not args.skip_runtimes:
            runtimes(Path(folder))


if __name__ == "__main__":
    main()
