"""Threads against load: the main job (`zoo train --config configs/lenet5_digits.yaml`) in a fresh process with
each thread setting, on an idle machine and beside busy processes, rounds alternating the settings so that the
machine's other work falls on all of them alike. Prints each setting's median wall time and its ratio to the
first setting's, per load.

    python scripts/bench_threads.py [--rounds 3] [--loads 0 2] [--settings 1 2 auto] [--config ...] [--set k=v ...]
    python scripts/bench_threads.py --steps [--rounds 5]     # one training step per network and batch size

`--steps` times one training step (forward, cross-entropy, backward, SGD) of each network and batch size in
STEP_CASES on 32x32 inputs, with 1 thread and with torch's default, alternating, in this process: where threads
start to pay, against the multiply-adds a batch takes (zoo summary's MACs per image x the batch size).

A setting is a train.threads value; `env:N` runs with OMP_NUM_THREADS=N and train.threads left at its default,
`passive:N` with OMP_WAIT_POLICY=PASSIVE as well. A load of k starts k processes that spin on the CPU for the
whole measurement (as other users' jobs on a shared machine do).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def spin() -> None:
    while True:
        pass


def one_run(setting: str, config: str, out: str, extra: list[str]) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    sets = ["--set", f"train.output_dir={out}", *(arg for item in extra for arg in ("--set", item))]
    kind, _, value = setting.partition(":")
    if kind in ("env", "passive"):
        env["OMP_NUM_THREADS"] = value
        if kind == "passive":
            env["OMP_WAIT_POLICY"] = "PASSIVE"
    else:
        sets += ["--set", f"train.threads={setting}"]
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "zoo", "train", "--config", config, "--quiet", *sets], env=env, cwd=ROOT,
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


STEP_CASES = [("mlp", 1, 64), ("mnist_cnn", 1, 64), ("lenet5", 1, 32), ("lenet5", 1, 256), ("resnet20", 1, 4),
              ("resnet20", 1, 16), ("resnet20", 3, 32), ("resnet20", 3, 128), ("resnet18", 3, 32)]


def step_times(rounds: int) -> None:
    import torch

    sys.path.insert(0, str(ROOT))
    import zoo
    from zoo.summary import summarize_model

    default = torch.get_num_threads()
    print(f"{os.cpu_count()} CPUs; one training step, median of {rounds} rounds of 10 steps, ms")
    print(f"| network | input | batch | MMACs a batch | 1 thread | {default} threads | ratio |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, channels, batch in STEP_CASES:
        size = 28 if name in ("mlp", "mnist_cnn") else 32
        extra = {"small_input": True} if name == "resnet18" else {}
        model = zoo.create_model(name, num_classes=10, in_channels=channels, **extra)
        macs = summarize_model(model, (channels, size, size)).totals.macs * batch
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        images, labels = torch.randn(batch, channels, size, size), torch.randint(0, 10, (batch,))

        def steps(threads: int) -> float:
            torch.set_num_threads(threads)
            start = time.perf_counter()
            for _ in range(10):
                optimizer.zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(model(images), labels).backward()
                optimizer.step()
            return (time.perf_counter() - start) / 10 * 1000

        steps(1), steps(default)  # warm-up
        one, many = [], []
        for _ in range(rounds):
            one.append(steps(1))
            many.append(steps(default))
        a, b = statistics.median(one), statistics.median(many)
        print(f"| {name} | {channels}x{size}x{size} | {batch} | {macs / 1e6:,.0f} | {a:.2f} | {b:.2f} | {b / a:.2f} |")
    torch.set_num_threads(default)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--loads", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--settings", nargs="+", default=["1", "2", "auto"])
    parser.add_argument("--config", default="configs/lenet5_digits.yaml")
    parser.add_argument("--set", nargs="*", default=[], help="overrides for every run, e.g. model.name=resnet20")
    parser.add_argument("--steps", action="store_true", help="time training steps in this process instead")
    args = parser.parse_args()
    if args.steps:
        step_times(max(args.rounds, 5))
        return
    print(f"{os.cpu_count()} CPUs; {args.config} {' '.join(args.set)}; median of {args.rounds} rounds, "
          "wall seconds per run")
    print("| busy processes | " + " | ".join(f"threads {s}" for s in args.settings) + " |")
    print("|---:|" + "---:|" * len(args.settings))
    with tempfile.TemporaryDirectory() as out:
        for load in args.loads:
            spinners = [multiprocessing.Process(target=spin, daemon=True) for _ in range(load)]
            for process in spinners:
                process.start()
            try:
                times: dict[str, list[float]] = {s: [] for s in args.settings}
                for _ in range(args.rounds):
                    for setting in args.settings:
                        times[setting].append(one_run(setting, args.config, out, args.set))
            finally:
                for process in spinners:
                    process.terminate()
            medians = {s: statistics.median(t) for s, t in times.items()}
            first = medians[args.settings[0]]
            print(f"| {load} | " + " | ".join(f"{m:.1f} s ({m / first:.2f}x)" for m in medians.values()) + " |")


if __name__ == "__main__":
    main()
