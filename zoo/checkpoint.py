"""Checkpoints: saved atomically (a crash mid-save never destroys the last good file) and loaded safely
(`weights_only=True`: unpickling can build tensors and plain containers, never run code)."""

from __future__ import annotations

import io
import os
import pickle
import re
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from zoo.errors import ZooError


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same directory, fsync, rename over `path`, fsync the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Atomic; a full disk or an unwritable folder is one line, with the previous file intact."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    try:
        atomic_write(path, buffer.getvalue())
    except OSError as error:
        raise ZooError(f"cannot save {path} ({error.strerror or error}); the previous checkpoint is intact; "
                       "free some space or set train.output_dir to a writable folder") from None


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Temporary files a killed save left behind (atomic_write's .<name>.*.tmp)."""
    stale = sorted(Path(directory).glob(".*.tmp")) if Path(directory).is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def publish_copy(source: Path, target: Path) -> None:
    """Make `target` hold what `source` holds now, atomically: a hard link when the file system allows
    (no second write of a large checkpoint; replacing `source` later leaves `target` alone), else a copy."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        atomic_write(target, source.read_bytes())
        return
    os.replace(tmp, target)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a zoo checkpoint or weights file; a missing, damaged or unsafe file is a one-line ZooError."""
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"checkpoint {str(path)!r} not found; runs write runs/<name>/<time>/checkpoints/best.pt")
    if path.suffix == ".safetensors":
        return _load_safetensors(path, map_location)
    damaged = f"{path} is damaged or not a PyTorch checkpoint"
    if path.stat().st_size == 0:
        raise ZooError(f"{damaged} (an empty file); use another checkpoint")
    _check_crcs(path)
    try:
        with warnings.catch_warnings():  # a plain pickle of protocol 4 or 5 makes torch warn before it fails
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        unsafe = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", str(error))
        if unsafe:
            raise ZooError(f"{path} was refused: it needs the unsafe global {unsafe.group(1)}; zoo loads weights only "
                           "and never runs code from a file") from None
        cause = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", str(error))  # the rest is advice on weights_only
        raise ZooError(f"{damaged} (unpickling failed: {cause.group(1).strip() if cause else _first_line(error)}); "
                       "use another checkpoint") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as error:
        raise ZooError(f"{damaged} ({_first_line(error)}); use another checkpoint") from None


def _check_crcs(path: Path) -> None:
    """torch.load reads a zip checkpoint's tensors without checking the CRC-32 the archive records for each, so a
    flipped bit loads as a wrong weight: check them all (zipfile does at the end of each member; about 1 s a GB).
    A member recorded with CRC 0 is not checked (torch.serialization.set_crc32_options(False) writes 0)."""
    if not zipfile.is_zipfile(path):
        return  # torch.load's legacy format, or no zip at all: torch.load says which
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                if member.CRC != 0:
                    with archive.open(member) as data:
                        while data.read(1 << 24):
                            pass
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
        raise ZooError(f"{path} is damaged ({_first_line(error)}: its bytes changed after it was saved); "
                       "use another checkpoint") from None


def load_weights(model: torch.nn.Module, state: dict[str, Any], path: Path, model_name: str) -> None:
    """state["model"] into `model` (built as `model_name`), strictly; a misfit is one line naming what is off."""
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        lines = [line.strip() for line in str(error).splitlines()[1:] if line.strip()]
        trained = state.get("model_name")
        fix = (f"it holds a {trained}: leave model.name as the checkpoint has it" if trained and trained != model_name
               else "use the checkpoint with the config it was trained with")
        raise ZooError(f"{path} does not fit {model_name} ({lines[0].rstrip('.') if lines else error}); {fix}") from None


def _first_line(error: Exception) -> str:
    """The first sentence of the first line: torch's own messages go on with advice for torch.load's callers."""
    line = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
    return re.split(r"(?<=[a-z])\. (?=[A-Z])", line, maxsplit=1)[0].rstrip(".")


def _load_safetensors(path: Path, map_location: str | torch.device) -> dict[str, Any]:
    """A .safetensors file holds tensors and nothing else: a state_dict, by construction code-free."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path, device=str(map_location))
    except (SafetensorError, OSError, ValueError) as error:
        raise ZooError(f"{path} is damaged or not a safetensors file ({_first_line(error)}); use another file") from None
