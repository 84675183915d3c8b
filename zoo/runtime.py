"""Where and how a run executes: the device, seeds and random state, mixed precision, CPU threads, and the speed
settings: cuDNN benchmark mode and torch.compile on CUDA only, where they pay; channels_last everywhere."""

from __future__ import annotations

import contextlib
import os
import random
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from zoo.errors import ZooError


def resolve_device(name: str, local_rank: int | None = None, key: str = "train.device") -> torch.device:
    """`name` (train.device, or the option `key` names) as a torch.device. Alone, `auto` picks CUDA, then Apple's
    MPS, then the CPU. Under torchrun (`local_rank` given) each process takes cuda:LOCAL_RANK (auto with CUDA,
    cuda) or the CPU (auto without CUDA, cpu). A device that is absent, or one that torchrun's processes cannot
    share out, is a ZooError naming `key`."""
    fix = "use device: auto or cpu" if key == "train.device" else f"use {key} auto or cpu"
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif local_rank is None and torch.backends.mps.is_available():
            return torch.device("mps")
        else:
            return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if local_rank is not None and name != "cuda":
        raise ZooError(f"{key} is {name!r}, but under torchrun each process takes its own device: "
                       "use device: auto (cuda:LOCAL_RANK, else the CPU), cuda or cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ZooError(f"{key} is {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ZooError(f"{key} is {name!r} but this machine has no CUDA device; {fix}")
        if local_rank is not None:
            if local_rank >= torch.cuda.device_count():
                raise ZooError(f"LOCAL_RANK {local_rank} but this node has {torch.cuda.device_count()} CUDA devices; "
                               "start at most that many processes per node (--nproc_per_node)")
            return torch.device("cuda", local_rank)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ZooError(f"{key} is {name!r} but there are {torch.cuda.device_count()} CUDA devices "
                           f"(0 to {torch.cuda.device_count() - 1})")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ZooError(f"{key} is 'mps' but MPS is not available here; {fix}")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ZooError(f"{key} is {name!r}; use auto, cpu, cuda, cuda:N or mps")
    return device


# ---- seeds and random state ---------------------------------------------------------------------------

def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (all devices); with `deterministic`, ask for reproducible kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # required by deterministic cuBLAS
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def capture_rng() -> dict[str, Any]:
    """This process's global random state (Python, NumPy, torch's CPU and CUDA generators), as tensors and plain
    values: what weights_only loading accepts. A checkpoint keeps one per rank (zoo.checkpoint.RankState)."""
    numpy_state = np.random.get_state(legacy=False)
    return {
        "python": _plain(random.getstate()),
        "numpy": {"key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
                  "pos": int(numpy_state["state"]["pos"]),
                  "has_gauss": int(numpy_state["has_gauss"]), "gauss": float(numpy_state["gauss"])},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(state: dict[str, Any]) -> None:
    """The random state capture_rng took; CUDA's only where this machine has as many devices as that one."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state({"bit_generator": "MT19937", "state": {"key": numpy_state["key"].numpy().astype(np.uint32),
                                                               "pos": numpy_state["pos"]},
                         "has_gauss": numpy_state["has_gauss"], "gauss": numpy_state["gauss"]})
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _plain(value: Any) -> Any:
    return [_plain(item) for item in value] if isinstance(value, tuple) else value


# ---- precision and speed -------------------------------------------------------------------------------

def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 or float16 autocast on CUDA; on other devices full precision, where autocast does not pay."""
    if precision == "32" or device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """float16 needs loss scaling against underflow; bf16 and float32 do not (the scaler is then a no-op)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "16" and device.type == "cuda")


TORCH_THREADS = torch.get_num_threads()  # torch's own choice at import: OMP_NUM_THREADS, else the physical cores
SYS_CPU = "/sys/devices/system/cpu"  # Linux's CPU topology


def cpu_threads(setting: int | str, local_world_size: int = 1, busy: float | None = None,
                started: int | None = None) -> int:
    """train.threads as a number of intra-op threads (torch.set_num_threads) for one process: the number, or for
    `auto`: OMP_NUM_THREADS where the user set it; else, for several torchrun processes on this machine, each one's
    share of the physical cores (torchrun's own OMP_NUM_THREADS=1 is not read as the user's); else, for a resumed
    run, the count it `started` with (its checkpoint's: a resumed run sums in the same order as an uninterrupted
    one); else the physical cores less those other processes keep `busy` now (busy_cpus), at least one.

    Why not every core on a busy machine: torch's threads wait for each other at the end of every operation, so
    one that shares its core with another process holds all of them back (scripts/bench_threads.py, this 2-core
    machine: the main job took 3.7x as long on 2 threads as on 1 beside one busy process, ResNet-20 2.7x). Idle,
    every core pays even for LeNet-5 (2 threads: 0.90x the wall time of 1 over the whole main job). Load that
    starts after the run did is not followed: the count is chosen once, so one run sums in one order."""
    if setting != "auto":
        return int(setting)
    user = os.environ.get("OMP_NUM_THREADS", "")
    if user.isdigit() and int(user) > 0 and not (local_world_size > 1 and user == "1"):
        return int(user)
    if local_world_size > 1:  # the other workers are busy too: the share, not the load
        return max(1, physical_cores() // local_world_size)
    if started is not None:
        return started
    return max(1, physical_cores() - round(busy or 0))


def physical_cores() -> int:
    """The physical cores among the CPUs this process may run on (its affinity, as taskset and cgroups set it):
    hyperthreads of one core count once, as torch counts them. The CPU count where Linux's topology is unreadable."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows: no affinity; torch's own count stands
        return TORCH_THREADS if "OMP_NUM_THREADS" not in os.environ else (os.cpu_count() or 1)
    cores = set()
    for cpu in cpus:
        try:
            with open(f"{SYS_CPU}/cpu{cpu}/topology/thread_siblings_list") as siblings:
                cores.add(siblings.read().strip())
        except OSError:
            return len(cpus)
    return max(1, len(cores))


def threads_note(setting: int | str, threads: int) -> str | None:
    """A note when train.threads asks for more threads than the physical cores this process may run on: the
    extra threads share cores and wait for each other at every operation's end."""
    cores = physical_cores()
    if setting == "auto" or threads <= cores:
        return None
    return (f"note: train.threads {threads} is more than the {cores} physical core{'s' if cores != 1 else ''} this "
            f"process may use: threads sharing a core wait for each other; {cores} or fewer (auto) train faster")


def busy_cpus() -> float | None:
    """How many threads besides this one want a CPU now, a count of demand, not of CPUs (it can exceed the
    cores: 6 on a 2-core machine shared by several programs): on Linux the runnable threads of /proc/loadavg
    (running or waiting for a core) less this one, the median of 5 looks 10 ms apart (the load average's minute
    would still count a run that just ended); elsewhere the 1-minute load average; None where neither is known
    (Windows)."""
    try:
        looks = []
        for look in range(5):
            with open("/proc/loadavg") as loadavg:
                looks.append(int(loadavg.read().split()[3].split("/")[0]) - 1)
            if look < 4:
                time.sleep(0.01)
        return float(sorted(looks)[2])
    except (OSError, IndexError, ValueError):
        pass
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def load_note(threads: int, busy: float | None) -> str | None:
    """A note when train.threads auto left cores to other processes (cpu_threads: `busy` threads of theirs
    wanted a CPU, by busy_cpus): why this run uses fewer threads than the machine has cores, and the key that gives
    it all of them. The caller says it once a run (zoo lr-find --apply: once for the sweep and the run)."""
    cores = physical_cores()
    if busy is None or threads >= cores:
        return None
    wanted = f"{busy:g} other thread{'s' if busy != 1 else ''}"
    return (f"note: train.threads auto: {threads} of {cores} cores, as {wanted} wanted a CPU as it started (the "
            f"load average's runnable count{', more than the cores' if busy > cores else ''}; threads on busy cores "
            f"wait for each other, several times slower); --set train.threads={cores} uses all")


def tune_backends(device: torch.device, precision: str, deterministic: bool) -> None:
    """On CUDA: cuDNN's benchmark mode (it times the convolution algorithms for each new input shape and keeps
    the fastest) unless deterministic; bf16 refused on a GPU without it. Nothing to do on other devices."""
    if device.type != "cuda":
        if precision != "32":  # said, as train.compile's no-op is: a key that does nothing should not pass in silence
            print(f"train.precision: {precision} ignored on {device.type} (autocast does not pay there); training in "
                  "float32")
        return
    if precision == "bf16" and not torch.cuda.is_bf16_supported(including_emulation=False):
        raise ZooError(f"train.precision is bf16 but {torch.cuda.get_device_name(device)} has no bfloat16 "
                       "(it needs compute capability 8.0, Ampere, or later); use precision: 16")
    torch.backends.cudnn.benchmark = not deterministic


def memory_format(channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last else torch.contiguous_format


def compiled(model: nn.Module, device: torch.device, enabled: bool) -> nn.Module:
    """torch.compile(model) on CUDA; elsewhere the model as it is, with a note: on this project's CPU machine
    compiling LeNet-5 took 40 s and ResNet-20 75 s, and both then trained slower than uncompiled."""
    if not enabled:
        return model
    if device.type != "cuda":
        print(f"train.compile: ignored on {device.type} (compiled models train slower there); running uncompiled")
        return model
    return torch.compile(model)
