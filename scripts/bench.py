"""zoo's training speed against the baselines it must not lose to, side by side in one process.

    python scripts/bench.py --quick       # under 3 minutes on a 2-core CPU: one line per comparison
    python scripts/bench.py               # longer runs; a table, and JSON in runs/bench/bench.json
    python scripts/bench.py --gpu-only    # with CUDA: the GPU comparisons alone

Each comparison line ends in `ratio X.XX`, zoo over its baseline:
- train step: zoo's loop (zoo.loop.train_epoch fed by the in-memory loader, with the optimizer zoo train builds:
  SGD with torch's fused kernel) against a minimal hand-written PyTorch loop (index a preloaded tensor,
  forward, loss, backward, torch.optim.SGD's default step) on the same model, batch and data: LeNet-5 on
  digits and ResNet-20 on CIFAR-shaped data, on the CPU (goal: ratio >= 0.97). A control line times the raw
  loop against a second copy of itself: how far from 1.00 noise alone moves a ratio. A "loop only" line
  gives the raw loop the fused SGD too: what zoo's loop costs with the optimizer's gain taken out.
- data path: the in-memory loader against torchvision's per-sample DataLoader pipeline, with the same random
  crop, flip and normalization on CIFAR-shaped files (goal: ratio >= 5).
- FLOP/s: the training step's achieved FLOP/s (3 x 2 x the forward MACs per image, from zoo.summary) over the
  machine's own float32 matrix-multiply peak, measured here (the ratio is the fraction of the peak).
- With CUDA: ResNet-18 and ResNet-50 at bf16 + channels_last, batch 256, 224 x 224 synthetic data, zoo against
  the raw loop, images/s against the published ~2,470 images/s of ResNet-50 AMP training on one A100, and
  FLOP/s against the GPU's bf16 matmul peak; ResNet-50 with torch.compile against without (train.compile); and
  the in-memory data path on the GPU against torchvision's DataLoader feeding the GPU. Without CUDA this part
  says so and is skipped.

Timings: rounds of zoo and its baseline back to back, the first side alternating, so that load from elsewhere
weighs on both alike; a line shows the round of the median ratio: both sides' images/s and their ratio.
CIFAR-shaped data: random bytes in CIFAR-10's own on-disk format, read by torchvision.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # tests/datafiles.py writes the CIFAR files

from zoo.config import DataConfig, OptimizerConfig  # noqa: E402
from zoo.data import MemoryLoader, build_datasets, build_loaders  # noqa: E402
from zoo.data.memory import Pipeline  # noqa: E402
from zoo.loop import Compute, TrainStep, train_epoch  # noqa: E402
from zoo.models.registry import create_model  # noqa: E402
from zoo.runtime import autocast, grad_scaler, memory_format  # noqa: E402
from zoo.summary import summarize  # noqa: E402
from zoo.training.guard import Guard  # noqa: E402
from zoo.training.optim import build_optimizer  # noqa: E402

A100_RESNET50_AMP = 2470  # images/s, ResNet-50 mixed-precision training on one A100 (NVIDIA's published figure)
Row = dict[str, object]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def alternate(zoo_run: Callable[[], float], raw_run: Callable[[], float], rounds: int) -> tuple[float, float, float]:
    """(zoo, baseline, ratio) over `rounds` rounds after two warm-up rounds: the images/s of both sides in the
    round whose ratio, zoo over the baseline within the round, is the median one (the lower middle one for an
    even count), and that ratio. A round runs both sides back to back, the side going first alternating, so
    that load from elsewhere on the machine weighs on both alike."""
    zoo_run(), raw_run(), raw_run(), zoo_run()
    zoo_rates, raw_rates = [], []
    for index in range(rounds):
        first, second = (zoo_run, raw_run) if index % 2 else (raw_run, zoo_run)
        rates = {first: first(), second: second()}
        zoo_rates.append(rates[zoo_run])
        raw_rates.append(rates[raw_run])
    pairs = sorted(zip(zoo_rates, raw_rates), key=lambda pair: pair[0] / pair[1])
    zoo, raw = pairs[(len(pairs) - 1) // 2]  # the round of the median ratio: the figures and the ratio agree
    return zoo, raw, zoo / raw


class Setup:
    """One model trained on one loader's data, `steps` steps a round, by zoo's loop or by the raw one."""

    def __init__(self, name: str, loader: MemoryLoader, num_classes: int, steps: int, precision: str = "32",
                 channels_last: bool = False) -> None:
        self.loader, self.num_classes, self.steps, self.precision = loader, num_classes, steps, precision
        self.device, self.layout = loader.images.device, memory_format(channels_last)
        in_channels = loader.images.shape[1]
        self.model = create_model(name, num_classes=num_classes, in_channels=in_channels).to(self.device,
                                                                                             memory_format=self.layout)
        # Every round starts from these weights and a fresh optimizer state, so that every loop computes on
        # the same numbers (a CPU slows down on denormal values, which one loop's weights could drift into).
        self.start_weights = copy.deepcopy(self.model.state_dict())
        # The raw loop's data: the same images, normalized once, batches indexed out of one tensor.
        self.images = loader.pipeline(loader.images).contiguous(memory_format=self.layout)

    def _restart(self, optimizer: Callable[[nn.Module], torch.optim.Optimizer]
                 ) -> tuple[nn.Module, torch.optim.Optimizer]:
        model = copy.deepcopy(self.model)
        model.load_state_dict(self.start_weights)
        return model, optimizer(model)

    def zoo(self, compiled: bool = False) -> Callable[[], float]:
        """zoo's loop.train_epoch over the in-memory loader, with the optimizer zoo train builds; `compiled`: the
        step's model through torch.compile, as train.compile does (compiled in the warm-up rounds)."""
        model, optimizer = self._restart(lambda model: build_optimizer(model, OptimizerConfig(lr=0.01, momentum=0.9)))
        step_model = torch.compile(model) if compiled else model
        step = TrainStep(optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0),
                         grad_scaler(self.device, self.precision), nn.CrossEntropyLoss(),
                         Compute(self.device, self.precision, self.layout))
        guard, log_interval = Guard(self.device), 10**9

        def hook(count: int, batches: int, loss: torch.Tensor, meter: object) -> object:
            """What zoo train's StepHook does on a step that neither logs nor saves: the loss checked every step."""
            if count % log_interval == 0:
                raise AssertionError("never logs")
            guard.watch(loss, count)
            return guard.check(count, force=False)

        def run() -> float:
            model.load_state_dict(self.start_weights)
            optimizer.state.clear()
            sync(self.device)
            start = time.perf_counter()
            result = train_epoch(step_model, self.loader, step, self.num_classes, epoch_batches=self.steps, hook=hook)
            sync(self.device)
            return result.images / (time.perf_counter() - start)

        return run

    def raw(self, fused: bool = False) -> Callable[[], float]:
        """The minimal hand-written loop: index a batch, forward, loss, backward, step; torch's default SGD
        implementation unless `fused`."""
        model, optimizer = self._restart(lambda model: torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9,
                                                                       fused=fused or None))
        images, targets, batch, device = self.images, self.loader.targets, self.loader.batch_size, self.device

        def run() -> float:
            model.load_state_dict(self.start_weights)
            optimizer.state.clear()
            sync(device)
            start = time.perf_counter()
            order, seen = torch.randperm(len(images), device=device), 0
            for step in range(self.steps):
                index = order[step * batch:(step + 1) * batch]
                seen += len(index)  # the epoch's last batch is short (digits: 40 x 32 + 14 = 1,294)
                optimizer.zero_grad(set_to_none=True)
                with autocast(device, self.precision):
                    loss = nn.functional.cross_entropy(model(images[index]), targets[index])
                loss.backward()
                optimizer.step()
            sync(device)
            return seen / (time.perf_counter() - start)

        return run


def loader_rate(loader, batches: int, device: torch.device | None = None) -> float:
    """Images/s of iterating `batches` batches (a fresh pass); with `device`, each batch brought to it (from
    pinned memory, without blocking, as zoo's loop does) and the device waited for at the end."""
    start, seen = time.perf_counter(), 0
    for index, (images, _) in enumerate(loader):
        if device is not None:
            images = images.to(device, non_blocking=True)
        seen += len(images)
        if index + 1 == batches:
            break
    if device is not None:
        sync(device)
    return seen / (time.perf_counter() - start)


def matmul_peak(device: torch.device, dtype: torch.dtype, size: int, repeats: int) -> float:
    """FLOP/s of the best of 7 rounds of size x size matrix products at the training's thread count: the
    machine's practical ceiling (the best, since other work only ever lowers a round: 97-181 GFLOP/s were seen
    on this 2-core machine)."""
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    a @ b
    best = 0.0
    for _ in range(7):
        sync(device)
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        sync(device)
        best = max(best, 2 * size**3 * repeats / (time.perf_counter() - start))
    return best


def training_flops(name: str, input_size: tuple[int, int, int], num_classes: int) -> int:
    """FLOPs of one image's training step: forward MACs x 2 (multiply and add) x 3 (forward and backward)."""
    return 6 * summarize(name, input_size=input_size, num_classes=num_classes).totals.macs


def cifar_shaped(root: Path, images: int) -> tuple:
    """CIFAR-10's on-disk format filled with random bytes, accepted by torchvision's checksum for this process."""
    import pytest
    from datafiles import accept_cifar_files, write_cifar

    write_cifar(root, per_batch=images // 5, test=min(images // 5, 2000))
    patch = pytest.MonkeyPatch()
    accept_cifar_files(patch, root)
    return patch


def row(kind: str, subject: str, zoo: float, baseline: float, unit: str, baseline_name: str, goal: str = "",
        ratio: float | None = None) -> Row:
    ratio = zoo / baseline if ratio is None else ratio
    def number(value: float) -> str:
        return f"{value:>10,.0f}" if value >= 100 else f"{value:>10.1f}"

    line = (f"{kind:10} {subject:44} zoo {number(zoo)} {unit}  {baseline_name} {number(baseline)} {unit}"
            f"{'  goal ' + goal if goal else ''}  ratio {ratio:.2f}")
    print(line, flush=True)
    return {"comparison": kind, "subject": subject, "zoo": round(zoo, 1), "baseline": round(baseline, 1), "unit": unit,
            "baseline_name": baseline_name, "goal": goal, "ratio": round(ratio, 3)}


def cpu_benchmarks(quick: bool, work: Path) -> list[Row]:
    rows: list[Row] = []
    cpu = torch.device("cpu")
    peak = matmul_peak(cpu, torch.float32, 2048, 3 if quick else 8)

    # LeNet-5 on digits, batch 32 (the main job's): whole epochs of 40 steps.
    cfg = DataConfig(name="digits", batch_size=32, hflip=False, loader="memory")
    digits = build_loaders(build_datasets(cfg, in_channels=1, input_size=32), cfg)[0]
    lenet = Setup("lenet5", digits, 10, len(digits))
    zoo, raw, ratio = alternate(lenet.zoo(), lenet.raw(), rounds=21 if quick else 61)
    rows.append(row("train step", "lenet5 digits 1x32x32 b32 cpu, zoo fused SGD", zoo, raw, "img/s", "raw PyTorch",
                    ">= 0.97", ratio))
    control = alternate(lenet.raw(), lenet.raw(), rounds=21 if quick else 61)  # the noise: a loop against itself
    rows.append(row("control", "raw PyTorch against itself, as above", *control[:2], "img/s", "raw PyTorch", "1.00",
                    control[2]))
    fused = alternate(lenet.zoo(), lenet.raw(fused=True), rounds=21 if quick else 61)  # without zoo's fused optimizer
    rows.append(row("loop only", "lenet5 as above, both with fused SGD", *fused[:2], "img/s", "raw PyTorch fused", "",
                    fused[2]))
    lenet_flops = zoo * training_flops("lenet5", (1, 32, 32), 10)

    # ResNet-20 on CIFAR-shaped data, batch 128.
    count = 10_000 if quick else 50_000
    patch = cifar_shaped(work, count)
    try:
        cfg = DataConfig(name="cifar10", root=work, download=False, batch_size=128, val_split=0, loader="memory")
        splits = build_datasets(cfg, in_channels=3, input_size=32)
        cifar = build_loaders(splits, cfg)[0]
        resnet = Setup("resnet20", cifar, 10, 2 if quick else 5)
        zoo, raw, ratio = alternate(resnet.zoo(), resnet.raw(), rounds=11 if quick else 21)
        rows.append(row("train step", "resnet20 cifar-shaped b128 cpu, zoo fused SGD", zoo, raw, "img/s", "raw PyTorch",
                        ">= 0.97", ratio))
        fused = alternate(resnet.zoo(), resnet.raw(fused=True), rounds=11 if quick else 21)
        rows.append(row("loop only", "resnet20 as above, both with fused SGD", *fused[:2], "img/s",
                        "raw PyTorch fused", "", fused[2]))
        resnet_flops = zoo * training_flops("resnet20", (3, 32, 32), 10)

        # The data paths alone, with augmentation: random crop (padding 4), flip, normalization.
        augmented = cfg.model_copy(update={"augment": True})
        memory = build_loaders(splits, augmented)[0]
        per_sample = build_loaders(splits, augmented.model_copy(update={"loader": "torchvision"}))[0]
        batches = len(memory) if quick else min(len(memory), 200)
        zoo, raw, ratio = alternate(lambda: loader_rate(memory, batches), lambda: loader_rate(per_sample, batches),
                                    rounds=3 if quick else 5)
        rows.append(row("data path", f"cifar-shaped augmented batch 128 cpu ({count:,} images)", zoo, raw, "img/s",
                        f"torchvision DataLoader ({per_sample.num_workers} workers)", ">= 5", ratio))
    finally:
        patch.undo()

    peak = max(peak, matmul_peak(cpu, torch.float32, 2048, 3 if quick else 8))  # measured again: its noise is large
    for name, achieved in (("lenet5 digits batch 32", lenet_flops), ("resnet20 cifar-shaped batch 128", resnet_flops)):
        share = min(achieved / peak, 1.0)  # above the peak: the peak's measurement was low, not the training high
        rows.append(row("FLOP/s", f"{name} cpu ({share:.1%} of peak)", achieved / 1e9, peak / 1e9, "GFLOP/s",
                        f"float32 matmul peak, {torch.get_num_threads()} threads", ratio=share))
    return rows


def gpu_benchmarks(quick: bool, work: Path) -> list[Row]:
    """ResNet-18 and ResNet-50, bf16 autocast and channels_last, batch 256, 224 x 224 synthetic uint8 images
    held on the GPU and normalized per batch by zoo's in-memory path; ResNet-50 compiled against eager; and the
    in-memory data path on the GPU against torchvision's DataLoader feeding the GPU, on CIFAR-shaped files."""
    if not torch.cuda.is_available():
        print("gpu        skipped: no CUDA device here (resnet18/resnet50 bf16 + channels_last, batch 256, 224x224)")
        return []
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    peak = matmul_peak(device, torch.bfloat16, 8192, 10 if quick else 50)
    generator = torch.Generator(device).manual_seed(0)
    images = torch.randint(0, 256, (2560, 3, 224, 224), dtype=torch.uint8, device=device, generator=generator)
    targets = torch.randint(0, 1000, (2560,), device=device, generator=generator)
    loader = MemoryLoader(images, targets, Pipeline([], (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)).to(device), 256,
                          train=True)
    rows: list[Row] = []
    for name in ("resnet18", "resnet50"):
        setup = Setup(name, loader, 1000, len(loader), precision="bf16", channels_last=True)
        zoo, raw, ratio = alternate(setup.zoo(), setup.raw(), rounds=3 if quick else 7)
        subject = f"{name} 3x224x224 batch 256 bf16 channels_last {torch.cuda.get_device_name(device)}"
        rows.append(row("train step", subject, zoo, raw, "img/s", "raw PyTorch", ">= 0.97", ratio))
        if name == "resnet50":
            rows.append(row("published", f"{name} vs ResNet-50 AMP on one A100", zoo, A100_RESNET50_AMP, "img/s",
                            "A100 published"))
        achieved = zoo * training_flops(name, (3, 224, 224), 1000)
        rows.append(row("FLOP/s", f"{name} batch 256 bf16 ({achieved / peak:.1%} of peak)", achieved / 1e12,
                        peak / 1e12, "TFLOP/s", "bf16 matmul peak"))
        if name == "resnet50":  # train.compile: on against off, zoo's loop both
            compiled, eager, ratio = alternate(setup.zoo(compiled=True), setup.zoo(), rounds=3 if quick else 7)
            rows.append(row("compile", f"{subject}, torch.compile", compiled, eager, "img/s", "eager", "", ratio))
    del loader, images, targets

    count = 10_000 if quick else 50_000
    patch = cifar_shaped(work, count)
    try:
        cfg = DataConfig(name="cifar10", root=work, download=False, batch_size=256, val_split=0, loader="memory",
                         augment=True)
        splits = build_datasets(cfg, in_channels=3, input_size=32)
        memory = build_loaders(splits, cfg, device="cuda")[0]
        per_sample = build_loaders(splits, cfg.model_copy(update={"loader": "torchvision"}), pin_memory=True,
                                    device="cuda")[0]
        batches = min(len(memory), 150)
        zoo, raw, ratio = alternate(lambda: loader_rate(memory, batches, device),
                                    lambda: loader_rate(per_sample, batches, device), rounds=3 if quick else 5)
        rows.append(row("data path", f"cifar-shaped augmented batch 256 on {torch.cuda.get_device_name(device)} "
                        f"({count:,} images)", zoo, raw, "img/s",
                        f"torchvision DataLoader to the GPU ({per_sample.num_workers} workers)", ">= 5", ratio))
    finally:
        patch.undo()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short rounds: under 3 minutes on a 2-core CPU")
    parser.add_argument("--gpu-only", action="store_true", help="only the CUDA comparisons")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench" / "bench.json",
                        help="where the full run writes its JSON (default runs/bench/bench.json)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        rows = (([] if args.gpu_only else cpu_benchmarks(args.quick, Path(work)))
                + gpu_benchmarks(args.quick, Path(work)))
    print(f"{time.perf_counter() - start:.0f} s")
    if args.quick:
        return
    from zoo.present.text import render

    print()
    print(render(["comparison", "subject", "zoo", "baseline", "unit", "baseline_name", "goal", "ratio"],
                 [[r[k] for k in ("comparison", "subject", "zoo", "baseline", "unit", "baseline_name", "goal", "ratio")]
                  for r in rows]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"torch": str(torch.__version__), "cpus": os.cpu_count(), "rows": rows}, indent=2)
                        + "\n")
    print(f"\n{args.out}")


if __name__ == "__main__":
    main()
