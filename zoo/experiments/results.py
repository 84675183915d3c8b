"""A sweep's results: one row per run (results.csv), the runs of one configuration grouped over seeds, and the
best configuration (by mean validation top-1: the test split judges it, it does not choose it).

    rows = read_rows(folder)          # results.csv back, as `zoo compare SWEEP_DIR` reads it

results.csv's columns: each swept key (and `variant`), `seed`, `state` (complete, pruned, diverged: its loss went
NaN or infinite, or failed: an error, said in one line, which the next start tries again), `epochs_run`,
`best_epoch`, `val_accuracy`, `test_accuracy`, `test_loss` (0-1 fractions and the loss, as metrics.json holds them)
and `run_dir`. Rows are in the sweep's order: a grid's points as planned (the first key slowest), a search's
configurations as they were first tried; seeds ascending within each.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.metrics.paired import mean_se
from zoo.rundir import atomic_write, csv_text

FILE = "results.csv"
FIGURES = ("state", "epochs_run", "best_epoch", "val_accuracy", "test_accuracy", "test_loss", "run_dir")


@dataclass(frozen=True)
class RunRow:
    """One run of the sweep: its point (swept key -> value), seed, state and figures (None where it has none)."""

    point: dict[str, Any]
    seed: int
    state: str
    run_dir: str
    epochs_run: int | None = None
    best_epoch: int | None = None
    val_accuracy: float | None = None
    test_accuracy: float | None = None
    test_loss: float | None = None
    error: str | None = None  # a failed run's one line

    @classmethod
    def of(cls, point: dict[str, Any], seed: int, state: str, run_dir: str, metrics: dict[str, Any] | None,
           error: str | None = None) -> RunRow:
        """From a run's metrics.json (None: the run failed before it wrote one)."""
        if metrics is None:
            return cls(point, seed, state, run_dir, error=error)
        val, test = metrics.get("val") or {}, metrics.get("test") or {}
        return cls(point, seed, state, run_dir, metrics.get("epochs_run"), metrics.get("best_epoch"),
                   val.get("accuracy"), test.get("accuracy"), test.get("loss"), error)


@dataclass(frozen=True)
class Group:
    """The runs of one configuration over its seeds, with the mean and standard error of their figures."""

    point: dict[str, Any]
    rows: tuple[RunRow, ...]

    def figure(self, name: str) -> tuple[float | None, float | None]:
        """(mean, standard error) of a figure over the runs that have it: (None, None) where none has."""
        values = [getattr(row, name) for row in self.rows if getattr(row, name) is not None]
        return mean_se(values) if values else (None, None)

    @property
    def complete(self) -> bool:
        return bool(self.rows) and all(row.state == "complete" for row in self.rows)


@dataclass(frozen=True)
class Results:
    """A sweep's rows, its groups in the rows' order, and the best complete group (None: none completed)."""

    keys: list[str]
    rows: list[RunRow]
    groups: list[Group] = field(default_factory=list)
    best: Group | None = None

    @classmethod
    def of(cls, keys: list[str], rows: Sequence[RunRow]) -> Results:
        groups: dict[str, list[RunRow]] = {}
        for row in rows:
            groups.setdefault(repr(sorted(row.point.items())), []).append(row)
        grouped = [Group(members[0].point, tuple(members)) for members in groups.values()]
        complete = [group for group in grouped if group.complete and group.figure("val_accuracy")[0] is not None]
        best = max(complete, key=lambda group: group.figure("val_accuracy")[0], default=None)
        return cls(keys, list(rows), grouped, best)


def write_rows(folder: Path, results: Results) -> Path:
    """results.csv, atomically (formula-looking text made inert, zoo.rundir.csv_text)."""
    headers = [*results.keys, "seed", *FIGURES]
    table = [[*(row.point.get(key, "") for key in results.keys), row.seed, row.state,
              *(_cell(getattr(row, name)) for name in FIGURES[1:])] for row in results.rows]
    atomic_write(folder / FILE, csv_text(headers, table).encode())
    return folder / FILE


def _cell(value: Any) -> Any:
    return "" if value is None else round(value, 6) if isinstance(value, float) else value


def read_rows(folder: Path) -> list[dict[str, str]]:
    """results.csv's rows (column -> text). ZooError for a file that is missing a column a sweep writes."""
    path = folder / FILE
    try:
        with open(path, newline="", encoding="utf-8") as file:
            reader = csv.DictReader(file)
            rows = list(reader)
            columns = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ZooError(f"{path} does not read ({error}); run the sweep's command again to write it") from None
    missing = [name for name in ("seed", *FIGURES) if name not in columns]
    if missing:
        raise ZooError(f"{path} has no {', '.join(missing)} column; it is not a zoo sweep's results.csv")
    return rows


@dataclass(frozen=True)
class SweepResult:
    """What `zoo sweep` did: its folder, its results, the files it wrote, and the runs this start trained."""

    folder: Path
    results: Results
    files: list[Path]  # results.csv, best.yaml (when a configuration completed), compare.html
    trained: int  # runs this start finished (trained, or went on with)
    notes: list[str]


def read_results(folder: Path) -> tuple[list[str], list[RunRow]]:
    """results.csv back as (the swept keys, its rows), values as text (the figures zoo compare needs read as
    numbers). ZooError naming the line for a seed or a figure that is not a number, or a state a sweep never writes."""
    rows = read_rows(folder)
    keys = [key for key in rows[0] if key not in ("seed", *FIGURES)] if rows else []
    found = []
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        try:
            val = float(row["val_accuracy"]) if row["val_accuracy"] else None
            found.append(RunRow({key: row[key] for key in keys}, int(row["seed"]), row["state"], row["run_dir"],
                                val_accuracy=val))
        except (TypeError, ValueError):
            raise ZooError(f"{folder / FILE} line {number}: its seed or val_accuracy is not a number; run the sweep's "
                           "command again to write it") from None
        if row["state"] not in ("complete", "pruned", "diverged", "failed") or not row["run_dir"]:
            raise ZooError(f"{folder / FILE} line {number}: state {row['state']!r} or run_dir {row['run_dir']!r} is "
                           "not a sweep's; run the sweep's command again to write it")
    return keys, found
