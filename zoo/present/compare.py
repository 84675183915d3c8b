"""What `zoo compare` and `zoo sweep` print, and the comparison's self-contained HTML page (zoo report's style).

    print(render_comparison(zoo.experiments.compare.compare(["runs/a", "runs/b"]), "table"))
    path = write_comparison(["runs/sweeps/optimizers"], "compare.html")

The page's sections (`SECTIONS`): summary (the groups' mean ± standard error), differences (the config keys that
differ), runs (each run's figures), curves (history.csv overlaid), paired (the paired difference over seeds and
McNemar's test image by image, per seed and pooled), classes (per-class top-1 of the first paired seed), flips
(its flipped test images under both runs' heat maps). Like zoo report's page: figures as PNG data URIs, one style
sheet, no script and no network.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import ZooError
from zoo.present.report import Page, check_output, figure, table
from zoo.present.text import render
from zoo.rundir import atomic_write

if TYPE_CHECKING:
    from zoo.experiments.compare import Comparison, GroupRecord, PairComparison
    from zoo.experiments.results import Group, SweepResult
    from zoo.metrics.paired import McNemar, PairedDifference

SECTIONS = ("summary", "differences", "runs", "curves", "paired", "classes", "flips")
PAGE = "compare.html"


# ---- numbers as text ---------------------------------------------------------------------------------

def mean_se_text(mean: float | None, se: float | None, percent: bool = True) -> str:
    """'97.31% ± 0.42%' (a fraction), '0.0812 ± 0.0031' (else); 'n/a' for no value."""
    if mean is None:
        return "n/a"
    show = (lambda value: f"{value:.2%}") if percent else (lambda value: f"{value:.4f}")
    return show(mean) + (f" ± {show(se)}" if se is not None else "")


def p_text(p: float | None) -> str:
    """A p-value as text: 'n/a', '< 1e-300' where it is below what a float holds, 2 digits under 0.001, else 3."""
    if p is None:
        return "n/a"
    return "< 1e-300" if p < 1e-300 else f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


def points(value: float) -> str:
    """A difference of two fractions in percentage points: '+1.20'."""
    return f"{value * 100:+.2f}"


def difference_text(difference: PairedDifference | None) -> str:
    """'+1.20 points (95% CI +0.40 to +2.00, paired t-test p 0.012, 5 seeds)'."""
    if difference is None:
        return "n/a"
    if difference.se is None:
        return f"{points(difference.mean)} points (one pair of runs: no interval)"
    if difference.p_value is None:
        return f"{points(difference.mean)} points (the same on all {difference.pairs} seeds: no spread to test)"
    level = f"{difference.confidence:.0%}"
    return (f"{points(difference.mean)} points ({level} CI {points(difference.low)} to {points(difference.high)}, "
            f"paired t-test p {p_text(difference.p_value)}, {difference.pairs} seeds)")


def mcnemar_text(test: McNemar) -> str:
    return (f"{test.to_right:,} wrong -> right, {test.to_wrong:,} right -> wrong of {test.images:,} images, McNemar's "
            f"exact p {p_text(test.p_value)}")


# ---- JSON ---------------------------------------------------------------------------------------------

def comparison_dict(comparison: Comparison) -> dict[str, Any]:
    """The comparison as `zoo compare --format json` prints it: `paired` (p_value, to_right, to_wrong ...) where two
    groups answered the same test images, else null and `paired_reason`."""
    paired = comparison.paired
    return {
        "runs": [{"run_dir": str(run.directory), "group": _group_of(comparison, run), "seed": run.seed,
                  "test_accuracy": run.figure("test_accuracy"), "test_loss": run.figure("test_loss"),
                  "val_accuracy": run.figure("val_accuracy"), "epochs_run": run.metrics.get("epochs_run"),
                  "time_s": run.figure("time_s")} for run in comparison.runs],
        "differences": comparison.differences,
        "groups": [_group_dict(group) for group in comparison.groups],
        "pairs": [_pair_dict(pair) for pair in comparison.pairs],
        "paired": _images_dict(paired) if paired is not None else None,
        "paired_reason": comparison.paired_reason,
    }


def _group_of(comparison: Comparison, run: Any) -> str:
    return next(group.label for group in comparison.groups if run in group.runs)


def _group_dict(group: GroupRecord) -> dict[str, Any]:
    figures = {}
    for name in ("test_accuracy", "test_loss", "val_accuracy"):
        mean, se = group.figure(name)
        figures[name] = {"mean": mean, "se": se}
    return {"label": group.label, "settings": group.settings, "seeds": [run.seed for run in group.runs],
            "runs": [str(run.directory) for run in group.runs], **figures}


def _pair_dict(pair: PairComparison) -> dict[str, Any]:
    difference = pair.difference
    return {"first": pair.first.label, "second": pair.second.label,
            "test_accuracy_difference": None if difference is None else {
                "mean": difference.mean, "se": difference.se, "low": difference.low, "high": difference.high,
                "p_value": difference.p_value, "seeds": difference.pairs, "confidence": difference.confidence},
            "paired": _images_dict(pair) if pair.tests else None, "paired_reason": pair.reason}


def _images_dict(pair: PairComparison) -> dict[str, Any]:
    pooled = pair.pooled
    return {"p_value": pooled.p_value, "to_right": pooled.to_right, "to_wrong": pooled.to_wrong,
            "both_right": pooled.both_right, "both_wrong": pooled.both_wrong, "images": pooled.images,
            "seeds": [test.seed for test in pair.tests],
            "per_seed": [{"seed": test.seed, "first": str(test.first.directory), "second": str(test.second.directory),
                          "p_value": test.test.p_value, "to_right": test.test.to_right, "to_wrong": test.test.to_wrong,
                          "images": test.test.images,
                          "flipped": [{"index": flip.index, "label": test.first.classes[flip.label],
                                       "first": test.first.classes[flip.first],
                                       "second": test.first.classes[flip.second], "to_right": flip.to_right,
                                       "path": flip.path} for flip in test.flips]}
                         for test in pair.tests]}


# ---- text ---------------------------------------------------------------------------------------------

def render_comparison(comparison: Comparison, fmt: str = "table") -> str:
    """The groups' table, the differing keys and each pair's tests (table or markdown), or JSON."""
    if fmt == "json":
        return json.dumps(comparison_dict(comparison), indent=2, default=str)
    rows = [[group.label, len(group.runs), ", ".join(str(run.seed) for run in group.runs),
             mean_se_text(*group.figure("test_accuracy")), mean_se_text(*group.figure("val_accuracy")),
             mean_se_text(*group.figure("test_loss"), percent=False)] for group in comparison.groups]
    lines = [render(["group", "runs", "seeds", "test top-1", "val top-1", "test loss"], rows, fmt,
                    numeric=[False, True, False, True, True, True])]
    if not comparison.differences:
        lines.append("the runs' configs do not differ")
    for pair in comparison.pairs:
        lines.append(f"{pair.second.label} against {pair.first.label}: test top-1 {difference_text(pair.difference)}")
        if pair.tests:
            for test in pair.tests if len(pair.tests) > 1 else ():
                lines.append(f"  seed {test.seed}: {mcnemar_text(test.test)}")
            pooled = "pooled over seeds " + ", ".join(str(test.seed) for test in pair.tests) if len(pair.tests) > 1 \
                else f"seed {pair.tests[0].seed}"
            lines.append(f"  image by image ({pooled}): {mcnemar_text(pair.pooled)}")
        else:
            lines.append(f"  not paired image by image: {pair.reason}")
    lines += [f"note: {note}" for note in comparison.notes]
    return "\n".join(lines)


def render_sweep(result: SweepResult, fmt: str = "table") -> str:
    """Each configuration's runs and mean ± standard error over its seeds, the best marked, then the files."""
    results = result.results
    if fmt == "json":
        return json.dumps({"folder": str(result.folder), "files": [str(path) for path in result.files],
                           "trained": result.trained, "best": results.best.point if results.best else None,
                           "configurations": [_sweep_group(group, group is results.best)
                                              for group in results.groups]}, indent=2, default=str)
    keys = results.keys
    rows = [[*(_short(group.point.get(key)) for key in keys), len(group.rows), _states(group),
             mean_se_text(*group.figure("val_accuracy")), mean_se_text(*group.figure("test_accuracy")),
             "best" if group is results.best else ""] for group in results.groups]
    headers = [*keys, "runs", "states", "val top-1", "test top-1", ""]
    lines = [render(headers, rows, fmt, numeric=[False] * len(keys) + [True, False, True, True, False])]
    failed = [row for row in results.rows if row.state in ("failed", "diverged")]
    for row in failed[:3]:
        lines.append(f"{row.state}: {row.run_dir}: {row.error}")
    if len(failed) > 3:
        lines.append(f"... {len(failed) - 3} more runs that failed or diverged (results.csv)")
    lines += [f"note: {note}" for note in result.notes if "still running" in note]
    lines.append(f"{result.trained} run{'s' * (result.trained != 1)} trained now, {len(results.rows)} in all; "
                 + ", ".join(str(path) for path in result.files))
    return "\n".join(lines)


def _sweep_group(group: Group, best: bool) -> dict[str, Any]:
    figures = {name: dict(zip(("mean", "se"), group.figure(name))) for name in ("val_accuracy", "test_accuracy")}
    return {"point": group.point, "seeds": [row.seed for row in group.rows],
            "states": [row.state for row in group.rows], "run_dirs": [row.run_dir for row in group.rows],
            "best": best, **figures}


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _states(group: Group) -> str:
    counts: dict[str, int] = {}
    for row in group.rows:
        counts[row.state] = counts.get(row.state, 0) + 1
    return ", ".join(f"{count} {state}" for state, count in counts.items())


# ---- the page -----------------------------------------------------------------------------------------

def default_output(sources: Sequence[str | Path], comparison: Comparison) -> Path:
    """compare.html in the sweep's folder where one sweep folder is compared (the page zoo sweep writes), else in the
    runs' deepest common folder (two runs of a sweep: its runs/ folder, not the sweep's page)."""
    import os

    if len(sources) == 1 and (Path(sources[0]) / "results.csv").is_file() \
            and not (Path(sources[0]) / "metrics.json").is_file():
        return Path(sources[0]) / PAGE
    return Path(os.path.commonpath([str(run.directory.resolve()) for run in comparison.runs])) / PAGE


def write_comparison(sources: Sequence[str | Path], output: str | Path | None = None,
                     reference: Sequence[Path] | None = None, comparison: Comparison | None = None) -> Path:
    """Compare `sources` (zoo.experiments.compare.compare, or the `comparison` made already) and write the page
    atomically to `output` (default: default_output); returns its path. ZooError as compare raises, or for a bad
    `output` (not *.html, a missing folder)."""
    from zoo.experiments.compare import compare

    path = check_output(output)
    comparison = comparison or compare(sources, reference)
    path = path or default_output(sources, comparison)
    atomic_write(path, build_page(comparison).encode("utf-8"), fix="give --output a file in a writable folder")
    return path


def build_page(comparison: Comparison) -> str:
    """The page, as text; the comparison's notes (runs left out) above its sections, as render_comparison ends."""
    title = f"zoo compare: {len(comparison.runs)} runs in {len(comparison.groups)} groups"
    page = Page(title, notes=comparison.notes)
    page.add("summary", "Groups (mean ± standard error over seeds)", _summary_html(comparison))
    page.add("differences", "What differs", _differences_html(comparison))
    page.add("runs", "Runs", _runs_html(comparison))
    from zoo.present.figures import overlaid_curves

    number = {group.label: index for index, group in enumerate(comparison.groups)}
    series = [(group.label, number[group.label], run.history) for group in comparison.groups for run in group.runs]
    page.add("curves", "Curves", figure(overlaid_curves(series), "Validation top-1 and training loss per epoch, "
                                                                 "one line per run, one colour per group."))
    page.add("paired", "Paired tests", _paired_html(comparison))
    first = next((pair.tests[0] for pair in comparison.pairs if pair.tests), None)
    if first is not None:
        page.add("classes", f"Per-class top-1 (seed {first.seed}'s test split)", _classes_html(first))
        page.add("flips", f"Flipped test images (seed {first.seed})", _flips_html(first))
    return page.html()


def _summary_html(comparison: Comparison) -> str:
    rows = [[group.label, len(group.runs), ", ".join(str(run.seed) for run in group.runs),
             mean_se_text(*group.figure("test_accuracy")), mean_se_text(*group.figure("val_accuracy")),
             mean_se_text(*group.figure("test_loss"), percent=False)] for group in comparison.groups]
    return table(["group", "runs", "seeds", "test top-1", "val top-1", "test loss"], rows)


def _differences_html(comparison: Comparison) -> str:
    if not comparison.differences:
        return "<p>The runs' configs do not differ (where and how fast they ran aside).</p>"
    keys = list(comparison.differences)
    rows = [[run.directory.name, *(_shown(comparison.differences[key][index]) for key in keys)]
            for index, run in enumerate(comparison.runs)]
    return table(["run", *keys], rows)


def _shown(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def _runs_html(comparison: Comparison) -> str:
    rows = [[str(run.directory), _group_of(comparison, run), run.seed, _percent(run.figure("test_accuracy")),
             _fixed(run.figure("test_loss")), _percent(run.figure("val_accuracy")), run.metrics.get("epochs_run"),
             _fixed(run.figure("time_s"), 1)] for run in comparison.runs]
    return table(["run", "group", "seed", "test top-1", "test loss", "val top-1", "epochs", "time (s)"], rows)


def _percent(value: float | None) -> str | None:
    return None if value is None else f"{value:.2%}"


def _fixed(value: float | None, digits: int = 4) -> str | None:
    return None if value is None else f"{value:.{digits}f}"


def _paired_html(comparison: Comparison) -> str:
    if not comparison.pairs:
        return "<p>One group: nothing to pair.</p>"
    parts = []
    for pair in comparison.pairs:
        title = f"{pair.second.label} against {pair.first.label}"
        body = [f"<h3>{html.escape(title)}</h3>",
                "<p>Test top-1, second minus first, in percentage points: "
                f"{html.escape(difference_text(pair.difference))}.</p>"]
        if pair.tests:
            rows = [[test.seed, test.test.images, test.test.to_right, test.test.to_wrong, p_text(test.test.p_value)]
                    for test in pair.tests]
            pooled = pair.pooled
            if len(pair.tests) > 1:
                rows.append(["pooled", pooled.images, pooled.to_right, pooled.to_wrong, p_text(pooled.p_value)])
            body.append(table(["seed", "images", "wrong -> right", "right -> wrong", "McNemar's exact p"], rows))
        else:
            body.append(f'<p class="note">Not paired image by image: {html.escape(pair.reason or "")}</p>')
        parts.append("\n".join(body))
    return "\n".join(parts) + ("\n<p>McNemar's exact test counts the test images one run got right and the other "
                               "wrong; a small p says the two error rates differ beyond what chance flips. The "
                               "paired t-test compares the runs of the seeds both groups have.</p>")


def _classes_html(test: Any) -> str:
    rows = [[name, count, f"{first:.2%}", f"{second:.2%}", f"{points(second - first)} points"]
            for name, first, second, count in test.per_class]
    return table(["class", "test images", test.first.directory.name, test.second.directory.name, "difference"], rows)


def _flips_html(test: Any) -> str:
    from zoo.experiments.compare import flip_gallery
    from zoo.present.figures import png

    if not test.flips:
        return "<p>No test image flipped: the two runs answered every one alike.</p>"
    try:
        gallery = flip_gallery(test)
    except (ZooError, OSError) as error:  # the data moved since the runs: the counts stand without the pictures
        return f'<p class="note">The flipped images cannot be drawn: {html.escape(str(error))}</p>'
    caption = (f"{sum(not flip.to_right for flip in test.flips)} right -> wrong and "
               f"{sum(flip.to_right for flip in test.flips)} wrong -> right; the first of each, with each run's heat "
               "map of its own answer.")
    return figure(png(gallery), caption)
