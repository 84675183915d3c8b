"""Running under torchrun: one process per device, joined by torch.distributed, trained with DDP.

    torchrun --nproc_per_node=4 -m zoo train --config configs/resnet56_cifar10.yaml

torchrun starts the processes and gives each RANK, LOCAL_RANK and WORLD_SIZE (and the rendezvous address):
`launch` joins the process group (NCCL on CUDA devices, gloo on the CPU), binds the process to
cuda:LOCAL_RANK, silences stdout on every rank but 0, and leaves the group when the run ends or fails.
Started any other way, a process runs alone on the device train.device names. Only rank 0 writes; every
rank trains on its shard of each batch and evaluates its share of the samples, and the sums are all-reduced.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import nn

from zoo.errors import RunStopped
from zoo.runtime import resolve_device

T = TypeVar("T")
TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE")


@dataclass(frozen=True)
class Job:
    """This process's place in the run: rank 0 of 1 when not started by torchrun."""

    device: torch.device
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    distributed: bool = False  # a process group is initialized (under torchrun, even for one process)
    local_world_size: int = 1  # the processes of this run on this machine, which share its cores

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that creates the run directory, prints, logs and saves. Code without a Job
        (data loading, the CLI's last line) asks `place()` instead."""
        return self.rank == 0

    def share(self, value: T) -> T:
        """Rank 0's `value` on every rank (e.g. the run directory, whose name holds rank 0's clock)."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: T) -> list[T]:
        """Every rank's `value`, in rank order (each rank's random state into rank 0's checkpoint)."""
        if not self.distributed:
            return [value]
        import torch.distributed as dist

        values: list[T] = [None] * self.world_size  # type: ignore[list-item]
        dist.all_gather_object(values, value)
        return values

    def sync_module(self, module: nn.Module) -> None:
        """Copy rank 0's weights and buffers into `module` on every rank (after rank 0 alone loaded them)."""
        if not self.distributed:
            return
        import torch.distributed as dist

        with torch.no_grad():
            for tensor in module.state_dict().values():  # they share storage with the module's own
                dist.broadcast(tensor, src=0)

    def wrap(self, model: nn.Module) -> nn.Module:
        """DistributedDataParallel around `model` when distributed (it broadcasts rank 0's initial weights
        and averages gradients over ranks during backward); the model itself otherwise."""
        if not self.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside a DistributedDataParallel wrapper (its .module); any other module as it is."""
    return getattr(model, "module", model)


def place() -> tuple[int, int]:
    """(rank, world size) in the initialized process group, else torchrun's RANK and WORLD_SIZE, else (0, 1):
    the one answer to "which process is this" for code that has no Job (data loading, the CLI's last line)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def local_rank() -> int:
    """This process's rank on its machine: torchrun's LOCAL_RANK, else 0. Each machine's first process says what
    every machine must hear (a lost process of the run: rank 0 may be the one gone)."""
    return int(os.environ.get("LOCAL_RANK", 0))


def launched_by_torchrun() -> bool:
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


@contextlib.contextmanager
def launch(device_name: str) -> Iterator[Job]:
    """The Job for this process: joined to torchrun's process group for the duration, or alone."""
    if not launched_by_torchrun():
        yield Job(resolve_device(device_name))
        return
    import torch.distributed as dist

    rank, local_rank, world_size = (int(os.environ[name]) for name in TORCHRUN_VARIABLES)
    device = resolve_device(device_name, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)  # before init: NCCL and the object broadcasts use the current device
    try:
        _join(device, rank, world_size)
    except dist.DistError as error:  # a process of the launch died, or its machine is unreachable, while joining
        raise RunStopped(f"could not join the run's processes ({first_line(error)}): another process of the launch "
                         "stopped or cannot be reached; start the launch again on every node", 1,
                         every_rank=True) from None
    job = Job(device, rank, local_rank, world_size, distributed=True,
              local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", world_size)))
    try:
        with _quiet(not job.is_main):
            yield job
        # Leave together: a gloo rank that tears its connections down while another still uses them
        # can abort the other ("terminate called without an active exception"). Not after an error,
        # where the other ranks may never arrive (torchrun stops them).
        dist.barrier()
    finally:
        # The run's DDP reducer and pending work sit in reference cycles; freed at interpreter exit, after the
        # group is gone, gloo's threads can abort the process the same way (seen once in about 60 runs).
        gc.collect()
        dist.destroy_process_group()


def _join(device: torch.device, rank: int, world_size: int) -> None:
    import torch.distributed as dist

    backend = "nccl" if device.type == "cuda" else "gloo"
    restart = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", 0))
    if restart and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        # torchrun's static rendezvous (--master-port) keeps its store through restarts, and the group's keys
        # with it: a restarted rank would read the dead attempt's addresses (gloo: "connection refused").
        # Each attempt keys its own (the c10d rendezvous does so by round).
        store = dist.PrefixStore(f"zoo/attempt_{restart}", dist.TCPStore(
            os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world_size, is_master=False))
        dist.init_process_group(backend, store=store, rank=rank, world_size=world_size)
    else:
        dist.init_process_group(backend)


def first_line(error: BaseException) -> str:
    """A distributed error's gist for a one-line message: its first line, without gloo's "[.../pair.cc:561] "
    source prefix and the advice sentences after it, at most 160 characters."""
    line = next((text.strip() for text in str(error).splitlines() if text.strip()), type(error).__name__)
    return re.sub(r"^\[[^\]]*\]\s*", "", line).split(". ")[0][:160]


@contextlib.contextmanager
def _quiet(silent: bool) -> Iterator[None]:
    """Rank 0 alone prints; the others' stdout goes nowhere (their errors still reach stderr)."""
    if not silent:
        yield
        return
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield
