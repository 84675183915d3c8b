"""scripts/transfer_lesson.py: its core on 2 seeds and 1 epoch gives a table with every arm and finite figures."""

from __future__ import annotations

import importlib.util
import math
import re
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "transfer_lesson.py"


def load_script():
    spec = importlib.util.spec_from_file_location("transfer_lesson", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    sys.dont_write_bytecode, before = True, sys.dont_write_bytecode  # leave no scripts/__pycache__
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = before
    return module


def test_two_seeds_one_epoch(tmp_path: Path) -> None:
    lesson = load_script()
    measurement = lesson.measure(2, (1,), tmp_path, source_epochs=1)
    table = lesson.render(measurement)
    for label, _ in lesson.ARMS:
        assert f"| 1 | 0.05 | {label} |" in table
    for layer in lesson.LAYERS:
        assert f"| {layer} |" in table
    figures = [float(x.rstrip("%")) for pair in re.findall(r"(\S+) ± (\S+)", table) for x in pair]  # "nan ± nan" too
    arms = len(lesson.ARMS)
    assert len(figures) == 2 * (1 + arms + (arms - 1) + 3 * len(lesson.LAYERS))  # source, arms, differences, probes
    assert all(math.isfinite(x) for x in figures)
    assert measurement.train_per_class == {(10, 10, 10, 10, 10)}  # the scarce split: 10 images per class
    assert measurement.frozen_intact
    assert all(0 <= a <= 1 for values in measurement.accuracy.values() for a in values)
