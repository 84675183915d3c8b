"""`zoo report RUN_DIR`: the page a browser opens, built from a real run's files, with every section and nothing
fetched from elsewhere; a real headless Chromium renders it where one is installed (Debian's `chromium`)."""

from __future__ import annotations

import base64
import html
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from datafiles import write_colour_folders
from helpers import digits_config, run_zoo
from PIL import Image

from zoo.evaluation.evaluate import evaluate_checkpoint
from zoo.present.report import SECTIONS
from zoo.training import train

COLOURS = {"café": (220, 30, 30), "dog": (30, 220, 30), "猫": (30, 30, 220)}  # names a figure's font must draw


# Not conftest's digits_run: the page must show class names outside ASCII (café, 猫), which the digits lack.
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A finished LeNet-5 run on a folder of three one-colour classes, two of them named outside ASCII."""
    work = tmp_path_factory.mktemp("report")
    write_colour_folders(work / "photos", COLOURS, 16, seed=0)
    config = digits_config(
        work / "runs", "data.name=imagefolder", f"data.root={work / 'photos'}", "data.batch_size=16", "train.epochs=3",
        "optimizer.name=adam", "optimizer.lr=0.002", "scheduler.name=none")
    return train(config, quiet=True).run_dir


@pytest.fixture(scope="module")
def page(run_dir) -> str:
    before = sorted(path.relative_to(run_dir) for path in run_dir.rglob("*"))
    result = run_zoo("report", str(run_dir), cwd=run_dir.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote {run_dir / 'report.html'}"
    after = sorted(path.relative_to(run_dir) for path in run_dir.rglob("*"))
    assert sorted({*before, Path("report.html")}) == after  # the page and nothing else: no confusion files
    return (run_dir / "report.html").read_text(encoding="utf-8")


def test_the_page_has_every_section_and_fetches_nothing(page):
    for section in SECTIONS:
        assert f'<section id="{section}">' in page, section
    assert not re.search(r"<(script|link|iframe)\b", page)  # no script to fail, no style sheet to fetch
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) >= 2 and all(source.startswith("data:image/png;base64,") for source in sources)
    for source in sources:  # each figure is a whole PNG
        image = Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1])))
        image.load()
        assert image.width >= 200 and image.height >= 150


def test_the_figures_are_the_runs_own(page, run_dir):
    evaluation = evaluate_checkpoint(run_dir / "checkpoints" / "best.pt", save=False)
    assert f"{evaluation.metrics.accuracy:.2%}" in page
    trust = evaluation.trust
    for k, row in enumerate(evaluation.per_class()):  # each class's row, names as written (café, 猫), as measured
        cells = [row["class"], f"{row['precision']:.2%}", f"{row['recall']:.2%}", f"{row['f1']:.4f}",  # as evaluate
                 f"{trust.auc[k]:.4f}", f"{trust.average_precision[k]:.4f}", str(row["support"])]
        assert "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>" in page
    assert f"expected calibration error {trust.ece:.2%}" in page
    assert "optimizer:\n  name: adam" in page  # the resolved config
    epochs = (run_dir / "history.csv").read_text().count("\n") - 1
    assert page.count("</td></tr>") >= epochs + len(COLOURS)


def section(page: str, name: str) -> str:
    return page.split(f'<section id="{name}">')[1].split("</section>")[0]


def test_without_the_runs_scores_the_report_evaluates_best_pt_again(page, run_dir, tmp_path):
    older = tmp_path / "older"  # a run from before zoo kept test_scores.npz
    shutil.copytree(run_dir, older, ignore=shutil.ignore_patterns("test_scores.npz", "report.html"))
    result = run_zoo("report", str(older), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    again = (older / "report.html").read_text(encoding="utf-8")
    for name in ("classes", "trust", "wrong"):  # the same figures and pictures either way
        assert section(again, name) == section(page, name), name
    # wrote the page alone
    assert not (older / "test_scores.npz").exists() and not list(older.glob("checkpoints/best.test.*"))


def test_the_report_reads_no_data(page, run_dir, tmp_path):
    photos = run_dir.parents[2] / "photos"  # the run's data.root
    moved = photos.rename(tmp_path / "photos")
    try:
        result = run_zoo("report", str(run_dir), "-o", str(tmp_path / "away.html"), cwd=tmp_path)
    finally:
        moved.rename(photos)
    assert result.returncode == 0, result.stderr
    away = (tmp_path / "away.html").read_text(encoding="utf-8")
    assert section(away, "classes") == section(page, "classes") and section(away, "trust") == section(page, "trust")


def test_another_output_and_the_refusals(run_dir, tmp_path):
    result = run_zoo("report", str(run_dir / "checkpoints" / "best.pt"), "-o", str(tmp_path / "hw.html"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert '<section id="curves">' in (tmp_path / "hw.html").read_text(encoding="utf-8")
    for args, message in [
        ((str(run_dir), "-o", str(tmp_path / "report.pdf")), "the report is an HTML page; name it *.html"),
        ((str(run_dir), "-o", str(tmp_path)), "is a folder; name the page"),
        ((str(run_dir.parent),), "is not a finished run: config.yaml, history.csv, metrics.json, checkpoints/best.pt "
                                 "missing; runs inside it:"),
    ]:
        result = run_zoo("report", *args, cwd=tmp_path)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert message in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["hw.html"]


def test_chromium_renders_every_section_without_errors(page, run_dir, tmp_path):
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("no chromium here (Debian: apt-get install chromium); .ci/run installs it")
    sync_api = pytest.importorskip("playwright.sync_api")
    problems: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        view = browser.new_page(viewport={"width": 1200, "height": 900})
        view.on("console",
                lambda message: problems.append(message.text) if message.type in ("error", "warning") else None)
        view.on("pageerror", lambda error: problems.append(str(error)))
        view.on("request",
                lambda request: None if request.url.startswith(("file:", "data:")) else problems.append(request.url))
        view.goto((run_dir / "report.html").as_uri(), wait_until="load")
        shown = view.evaluate("""() => [...document.querySelectorAll('section')].map(s => [s.id,
            s.getBoundingClientRect().height,
            [...s.querySelectorAll('img')].map(i => i.complete && i.naturalWidth)])""")
        view.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert problems == []
    assert [section for section, _, _ in shown] == list(SECTIONS)
    assert all(height > 40 for _, height, _ in shown)
    widths = [width for _, _, images in shown for width in images]
    assert len(widths) >= 2 and all(width and width >= 200 for width in widths)
    screenshot = np.asarray(Image.open(tmp_path / "report.png").convert("L"))
    assert screenshot.shape[0] > 1500 and screenshot.std() > 10  # a long page with figures, not a blank one


# ---- damaged run files: one line for what the page cannot do without, else the page and a note -----------------------

def _damage_scores(run: Path, **change) -> None:
    arrays = dict(np.load(run / "test_scores.npz"))
    np.savez(run / "test_scores.npz", **{**arrays, **change})


DAMAGES = {  # what is damaged: (how, a fragment of the note on stderr and on the page)
    "a target out of range": (lambda run: _damage_scores(run, targets=np.full(10, 99)),
                              "test_scores.npz: 10 targets are outside the classes 0-2 (the first: 99); the figures "
                              "are best.pt's measured on the test split again"),
    "NaN logits": (lambda run: _damage_scores(run, logits=np.full((10, 3), np.nan, np.float32)),
                   "test_scores.npz: the logits of 10 of 10 images are not finite (NaN or inf); the figures are "
                   "best.pt's measured on the test split again"),
    "file names that are not": (lambda run: _damage_scores(run, paths=np.arange(10)),
                                "test_scores.npz: its paths are 10 int64, not 10 file names; the images' files are "
                                "left out"),
    "config.yaml with bytes that are not UTF-8": (
        lambda run: (run / "config.yaml").write_bytes((run / "config.yaml").read_bytes() + b"\xff\xfe"),
        "config.yaml is not UTF-8 (byte 0xff at offset"),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_optional_file_gives_the_page_with_a_note(page, run_dir, tmp_path, capsys, damage):
    from zoo.present.report import write_report

    how, note = DAMAGES[damage]
    run = tmp_path / "run"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("report.html"))
    assert np.load(run / "test_scores.npz")["logits"].shape == (10, 3)  # what the notes count
    how(run)
    damaged = write_report(run).read_text(encoding="utf-8")
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and stderr.startswith("note: ") and note in stderr
    assert f'<p class="note">note: {html.escape(stderr.removeprefix("note: ").strip())}</p>' in damaged
    for name in SECTIONS:
        assert f'<section id="{name}">' in damaged, name
    if damage == "config.yaml with bytes that are not UTF-8":
        assert section(damaged, "config").count("\N{REPLACEMENT CHARACTER}") == 2
    elif damage == "file names that are not":  # no file named, and no gallery to open them by
        assert "<img" not in section(damaged, "wrong") and "photos" not in section(damaged, "wrong")
    else:  # measured again, on the data that is still there: the same figures
        assert section(damaged, "classes") == section(page, "classes")
        assert section(damaged, "trust") == section(page, "trust")


@pytest.mark.parametrize("metrics, message", [
    ([1, 2], "metrics.json holds a JSON list, not the run's figures (an object); it is written at the run's end"),
    ("train", "metrics.json: train is 'train'"),
    ({"time_s": "1.5 s"}, "metrics.json: train.time_s is '1.5 s', not a number of 0 or more"),
])
def test_a_damaged_metrics_json_is_one_line_naming_it(run_dir, tmp_path, metrics, message):
    from zoo.errors import ZooError
    from zoo.present.report import write_report

    run = tmp_path / "run"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("report.html"))
    if isinstance(metrics, dict | str):
        metrics = {**json.loads((run / "metrics.json").read_text()), "train": metrics}
    (run / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(ZooError) as caught:
        write_report(run)
    assert str(caught.value).startswith(str(run / "metrics.json")) and message in str(caught.value)
    assert "\n" not in str(caught.value) and not (run / "report.html").exists()


def test_a_history_row_longer_than_its_header_still_draws(run_dir, tmp_path):
    from zoo.present.report import write_report

    run = tmp_path / "run"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("report.html"))
    header, first, *rest = (run / "history.csv").read_text().splitlines()
    (run / "history.csv").write_text("\n".join([header, first + ",0.5,0.25", *rest]) + "\n")  # 2 fields too many
    assert '<section id="curves">' in write_report(run).read_text(encoding="utf-8")
