"""The "Bad input" table of docs/reliability.md: every case of tests/bad_input_cases.py run through the CLI, with
the line it printed. tests/test_bad_input.py checks that the docs hold each row as printed.

    python scripts/bad_input_table.py > /tmp/table.md    # then replace the table under "## Bad input"

A case that cannot run on this machine (cuda where there is CUDA) keeps its row from the docs.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

from bad_input_cases import CASES, HEADER, make_checkpoint, run_zoo  # noqa: E402


def main() -> None:
    path = ROOT / "docs" / "reliability.md"
    docs = path.read_text().splitlines() if path.is_file() else []
    with tempfile.TemporaryDirectory(prefix="zoo-bad-input-") as tmp:
        checkpoint = make_checkpoint(Path(tmp, "source"))
        print(HEADER)
        for number, case in enumerate(CASES):
            if case.skip():
                print(next((row for row in docs if row.startswith(f"| {case.name} ")),
                           case.row(f"error: ... {case.message} ...")))
                continue
            work = Path(tmp, str(number))
            work.mkdir()
            case.prepare(work, checkpoint)
            result = run_zoo(list(case.args), work)
            lines = result.stderr.splitlines()
            if result.returncode != 2 or len(lines) != 1:
                sys.exit(f"{case.name}: exit code {result.returncode}, stderr:\n{result.stderr}")
            print(case.row(lines[0]))


if __name__ == "__main__":
    main()
