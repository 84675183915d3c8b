"""The public API (zoo/__init__.py) and the README's word on it: every public name resolves, and the README's
Python block runs as written. The package map's test is in test_layout.py."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import zoo

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _section(title: str) -> str:
    return README.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_every_public_name_resolves_and_import_zoo_needs_no_torch():
    for name in zoo.__all__:
        assert getattr(zoo, name) is not None, name
    code = "import sys, zoo; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.stdout.strip() == "False", result.stderr


def test_the_readmes_python_block_runs_as_written(tmp_path):
    block = re.search(r"```python\n(.*?)```", _section("Python API"), re.S).group(1)
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    checks = """
assert logits.shape == (8, 10) and features.dim() == 4 and model.num_classes == 5
assert info.reference.count == 138_357_544
assert result.run_dir.parent.parent == __import__("pathlib").Path("runs") and result.metrics["epochs_run"] == 3
assert report.metrics.accuracy == result.metrics["test"]["accuracy"] > 0.5, (report.metrics.accuracy, result.metrics)
assert state.classes == [str(digit) for digit in range(10)] and state.model_name == "lenet5"
assert len(top3) == 2 and top3[0].label in predictor.classes and len(top3[0].classes) == 3
assert sum(top3[0].probabilities) <= 1.0 and top3[0].probabilities == tuple(sorted(top3[0].probabilities, reverse=True))
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", block + checks], capture_output=True, text=True, cwd=tmp_path,
                            timeout=300)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]
