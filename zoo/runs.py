"""Run directories: runs/<run-name>/<timestamp>/, created once and never reused."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from zoo.errors import ZooError


def create_run_dir(output_dir: Path, run_name: str) -> Path:
    """A new, empty directory; a second run in the same second gets a -1, -2 ... suffix, never the same one."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    parent = Path(output_dir) / run_name
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        blocking = next((p for p in (parent, *parent.parents) if p.exists() and not p.is_dir()), None)
        if blocking is not None:
            raise ZooError(f"cannot create {parent}: {blocking} is a file, not a folder; set train.output_dir to a "
                           "folder, or move the file") from None
        raise ZooError(f"cannot create {parent} ({error.strerror}); set train.output_dir to a writable folder") from None
    for suffix in ["", *(f"-{i}" for i in range(1, 1000))]:
        candidate = parent / f"{stamp}{suffix}"
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise ZooError(f"{parent} already holds 1,000 runs from {stamp}; choose another train.run_name")


def write_json(path: Path, data: dict[str, Any]) -> None:
    from zoo.checkpoint import atomic_write

    atomic_write(path, (json.dumps(data, indent=2) + "\n").encode())
