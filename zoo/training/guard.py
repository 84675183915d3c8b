"""What may stop a training run between two steps: SIGINT/SIGTERM (finish the step, save, exit 130/143) and a
loss that is no longer finite (stop at once, keep the last finite checkpoints, exit 3).

The loss is checked on its device without waiting for it (the first bad step is recorded there); the host
looks every step on the CPU and every CHECK_INTERVAL steps on a GPU, where looking means waiting for the
device, and always before a checkpoint is written. Under DDP the ranks agree (an all-reduce over a CPU group)
at the same steps, so they all stop after the same one.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

import torch
from torch import Tensor

from zoo.distributed import place
from zoo.errors import ZooError
from zoo.loop import EXIT_CODES, Stop
from zoo.present.console import say

CHECK_INTERVAL = 10  # steps between looks on a GPU or under DDP
_NO_STEP = 2**62


class Guard:
    def __init__(self, device: torch.device, distributed: bool = False) -> None:
        self.device, self.distributed = device, distributed
        self.interval = 1 if device.type == "cpu" and not distributed else CHECK_INTERVAL
        self.signal: int | None = None
        self.saving = False
        self.first_bad = torch.full((), _NO_STEP, dtype=torch.int64, device=device)  # on a GPU
        self.first_bad_step = _NO_STEP  # on the CPU
        self._group = None
        if distributed:
            import torch.distributed as dist

            # A CPU group: agreeing needs no CUDA stream sync beyond the loss check itself.
            self._group = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else None

    # -- signals ------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def handling_signals(self) -> Iterator[Guard]:
        """SIGINT and SIGTERM ask for a stop after the current step. A second one while a checkpoint is being
        written waits for it; outside a save it stops at once (KeyboardInterrupt; the last checkpoint is intact)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {number: signal.getsignal(number) for number in EXIT_CODES}
        for number in EXIT_CODES:
            signal.signal(number, self._on_signal)
        try:
            yield self
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def _on_signal(self, number: int, frame: FrameType | None) -> None:
        name = signal.Signals(number).name
        if self.signal is None:
            self.signal = number
            if place()[0] == 0:  # torchrun hands the signal to every rank: said once
                say(f"\n{name}: stopping after this step and saving last.pt ({name} again to stop without saving)",
                    sys.stderr)  # the reader of a pipe may have died with the same Ctrl-C: say gives up quietly
        elif self.saving:
            say(f"{name}: still saving last.pt; it stops right after", sys.stderr)
        else:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def save(self) -> Iterator[None]:
        """A checkpoint write: signals during it wait until it is complete."""
        self.saving = True
        try:
            yield
        finally:
            self.saving = False

    # -- the loss -----------------------------------------------------------------------------------------
    def watch(self, loss: Tensor, step: int) -> None:
        """Record `step` if `loss` is the first non-finite one; no waiting for the device."""
        if self.device.type == "cpu":  # reading a CPU tensor costs nothing: one check instead of three ops
            if self.first_bad_step == _NO_STEP and not math.isfinite(loss.item()):
                self.first_bad_step = step
            return
        bad = ~torch.isfinite(loss.detach())
        self.first_bad = torch.where(bad & (self.first_bad == _NO_STEP), step, self.first_bad)

    def check(self, step: int, force: bool = False) -> Stop | None:
        """Every `interval` steps (or when forced: before a save), whether to stop, agreed over ranks."""
        if not force and step % self.interval:
            return None
        first_bad = self.first_bad_step if self.device.type == "cpu" else int(self.first_bad)
        requested = self.signal or 0
        if self.distributed:
            import torch.distributed as dist

            # One MAX over [signal, -first bad step]: any rank's signal, the earliest bad step.
            flags = torch.tensor([requested, -first_bad], dtype=torch.int64)
            dist.all_reduce(flags, op=dist.ReduceOp.MAX, group=self._group)
            requested, first_bad = int(flags[0]), -int(flags[1])
        if first_bad != _NO_STEP:
            return Stop(nonfinite_step=first_bad)
        if requested:
            return Stop(signal=requested)
        return None


@contextlib.contextmanager
def one_line_errors(device: torch.device, batch_size: int) -> Iterator[None]:
    """Around a run's work: running out of device or host memory becomes one line saying what to change
    (out_of_memory); any other error goes through as it is."""
    try:
        yield
    except Exception as error:
        known = out_of_memory(error, device, batch_size)
        if known is not None:
            raise known from None
        raise


def out_of_memory(error: BaseException, device: torch.device, batch_size: int) -> ZooError | None:
    """A training run out of device or host memory as one line saying what to change, or None for any other error."""
    text = str(error)
    if not (isinstance(error, torch.OutOfMemoryError) or "DefaultCPUAllocator: can't allocate memory" in text):
        return None
    first = next((line.strip() for line in text.splitlines() if line.strip()), "out of memory").rstrip(".")
    lighter = ("lower data.batch_size (or data.input_size)"
               + (", or set train.precision: bf16" if device.type == "cuda" else ""))
    return ZooError(f"out of memory on {device} at data.batch_size {batch_size} ({first}); {lighter}")
