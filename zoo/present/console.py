"""Writing to the console when it may be gone: a reader of a pipe that died with the same Ctrl-C (`zoo train
2>&1 | tee log`), a closed terminal, `nohup` after logout. A run's signal handling and saving must not depend on
stdout or stderr being writable, so what they print goes through `say`, which gives up quietly."""

from __future__ import annotations

import os
import sys
from typing import TextIO


def say(text: str, file: TextIO | None = None) -> None:
    """Print `text` (and a newline) to `file` (stdout by default), flushed; if the stream is broken, point its
    file descriptor at /dev/null instead, so that neither later writes nor the interpreter's final flush fail
    (Python would exit 120 on a failed flush at shutdown)."""
    stream = file if file is not None else sys.stdout
    try:
        print(text, file=stream, flush=True)
    except (BrokenPipeError, OSError, ValueError):  # ValueError: the stream was closed
        silence(stream)


def silence(stream: TextIO) -> None:
    """Send what is left for `stream` to /dev/null (its file descriptor, so buffered bytes go there too)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
