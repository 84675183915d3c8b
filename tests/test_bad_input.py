"""Bad input never yields a traceback: every case of docs/reliability.md's "Bad input" table (tests/bad_input_cases.py)
through the real CLI: exit code 2, one line on stderr naming the problem and the fix, nothing written or overwritten,
and the line exactly as the table shows it.
Tests zoo.cli and zoo.errors: how every command reports bad input."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import helpers
import pytest
from bad_input_cases import CASES, HEADER, ROOT, link_configs, make_checkpoint, run_zoo, train

DOCS = ROOT / "docs" / "reliability.md"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("source"))


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """(type, size, mtime) of everything under root, folders too: a file made and removed again changes its folder's."""
    entries = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            entries[os.path.relpath(path, root)] = (stat.S_IFMT(info.st_mode), info.st_size, info.st_mtime_ns)
    return entries


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_is_one_line_exit_code_2_and_nothing_written(case, checkpoint, tmp_path):
    if reason := case.skip():
        pytest.skip(reason)
    case.prepare(tmp_path, checkpoint)
    before = snapshot(tmp_path)
    result = run_zoo(list(case.args), tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and case.message in lines[0], result.stderr
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "runs").is_dir()  # the default train.output_dir, relative to the working directory
    assert case.row(lines[0]) in DOCS.read_text(), (
        f"docs/reliability.md: update the row of {case.name!r} (scripts/bad_input_table.py)")


def test_the_docs_table_lists_every_case_once_in_order():
    text = DOCS.read_text()
    assert "## Bad input\n" in text and HEADER in text
    rows = text.split(HEADER, 1)[1].strip().split("\n\n", 1)[0].splitlines()
    named = [re.match(r"\| (.+?)(?: \(.*?\))? \| `zoo ", row).group(1) for row in rows]
    assert named == [case.name for case in CASES]


def test_the_runner_prints_what_python_m_zoo_prints(tmp_path):
    args = train("optimizer.lr=0")
    link_configs(tmp_path)
    real = helpers.run_zoo(*args, cwd=tmp_path)  # `python -m zoo`, this checkout's zoo
    forked = run_zoo(list(args), tmp_path)
    assert (forked.returncode, forked.stdout, forked.stderr) == (real.returncode, real.stdout, real.stderr) == (
        2, "", "error: --set optimizer.lr: input should be greater than 0 (got 0)\n")
