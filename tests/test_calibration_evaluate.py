"""`zoo evaluate` and `zoo report` of a calibrated classifier (zoo.metrics.calibration): the calibration, conformal
and unfamiliar sections of `zoo evaluate -f json` (issue 31's interface), the unfamiliar score on a folder of
inverted digits (--unfamiliar), the refusals of --coverage and --unfamiliar, and an older checkpoint without a
calibration, which evaluates as before with one note.
Tests zoo.evaluation.evaluate's calibration figures, zoo.present.text's lines of them and zoo.present.report's
calibration section."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from bad_input_cases import run_zoo
from helpers import ROOT, digit_sets
from PIL import Image

import zoo
from zoo.checkpoint import read_state
from zoo.config import load_config
from zoo.evaluation.evaluate import evaluate_checkpoint
from zoo.present.text import render_evaluation

NOTE = "has no calibration; zoo calibrate {} adds a temperature, prediction sets (--coverage) and an unfamiliar score"


def inverted_digits(folder: Path, step: int = 12) -> Path:
    """Every `step`-th of scikit-learn's digits, dark ink on a light ground (255 - the 8x8 picture, 64x64 RGB PNG):
    what a model of light-on-dark digits never saw (tests/../shared/cases/turn3/h04_inverted_digits.sh)."""
    from sklearn.datasets import load_digits

    folder.mkdir(parents=True)
    digits = load_digits()
    for index in range(0, len(digits.images), step):
        pixels = (digits.images[index] * 255 / 16).round().astype(np.uint8)
        Image.fromarray(255 - pixels).resize((64, 64), Image.Resampling.NEAREST).convert("RGB").save(
            folder / f"{index:04d}.png")
    return folder


def stripped(best: Path, target: Path) -> Path:
    """A copy of `best` without its calibration: a checkpoint from before zoo fitted one."""
    state = torch.load(best, weights_only=True)
    assert state.pop("calibration") is not None
    del state["config"]["calibration"]  # nor its config the section
    torch.save(state, target)
    return target


@pytest.fixture(scope="module")
def work(tmp_path_factory, digits_run) -> dict[str, Path]:
    """conftest's digits run (LeNet-5, 20 epochs) copied, so that what evaluate writes stays out of the shared run;
    the copy with best.pt stripped of its calibration; 150 inverted digits."""
    folder = tmp_path_factory.mktemp("calibrated")
    run = Path(shutil.copytree(digits_run.run_dir, folder / "run"))
    old = Path(shutil.copytree(run, folder / "old"))
    stripped(run / "checkpoints" / "best.pt", old / "checkpoints" / "best.pt")
    return {"run": run, "old": old, "inverted": inverted_digits(folder / "inverted")}


@pytest.fixture(scope="module")
def evaluated(work) -> dict:
    """`zoo evaluate RUN --coverage 0.9 --unfamiliar inverted/ -f json`, as printed."""
    result = run_zoo(["evaluate", str(work["run"]), "--coverage", "0.9", "--unfamiliar", str(work["inverted"]),
                      "-f", "json"], work["run"])
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return json.loads(result.stdout)


def test_the_json_holds_the_calibration_the_sets_and_the_unfamiliar_figures(work, evaluated):
    calibration, conformal, unfamiliar = evaluated["calibration"], evaluated["conformal"], evaluated["unfamiliar"]
    state = read_state(work["run"] / "checkpoints" / "best.pt", "evaluate")
    assert calibration["temperature"] == state.calibration.temperature
    assert 0 <= calibration["ece_before"] <= 1 and 0 <= calibration["ece_after"] <= 1
    assert evaluated["ece"] == pytest.approx(calibration["ece_after"], abs=1e-6)  # trust: the calibrated probabilities
    assert conformal["target"] == 0.9 and 0 <= conformal["coverage"] <= 1 and conformal["mean_set_size"] >= 1
    assert conformal["calibration_images"] == state.calibration.conformal.count
    assert set(unfamiliar) >= {"threshold", "test_flagged", "folder_flagged", "auroc", "folder_images"}
    assert 0 <= unfamiliar["test_flagged"] <= 0.2  # about 1 - familiar_share of pictures like the validation ones
    # dark-on-light digits: the network is sure of most of them, the pixel statistics are not
    assert unfamiliar["folder_images"] == 150 and unfamiliar["folder_flagged"] > 0.9 and unfamiliar["auroc"] > 0.95
    # the run's own test figures (metrics.json, at coverage 0.9) are the same measurement
    kept = json.loads((work["run"] / "metrics.json").read_text())
    assert calibration == pytest.approx(kept["calibration"]) and conformal == pytest.approx(kept["conformal"])
    assert unfamiliar["test_flagged"] == pytest.approx(kept["unfamiliar"]["test_flagged"])


def test_calibration_changes_no_top1_class_and_the_old_checkpoint_gets_one_note(work, evaluated, capsys):
    capsys.readouterr()
    old = evaluate_checkpoint(work["old"], save=False)
    best = work["old"] / "checkpoints" / "best.pt"
    assert capsys.readouterr().err == f"note: {best} {NOTE.format(work['old'])}\n"
    assert old.calibrated is None and not {"calibration", "conformal", "unfamiliar"} & set(old.to_dict())
    new = evaluate_checkpoint(work["run"], save=False)
    assert capsys.readouterr().err == ""
    temperature = new.calibrated["calibration"]["temperature"]
    assert torch.equal(new.logits.argmax(dim=1), old.logits.argmax(dim=1))
    assert torch.allclose(new.logits, old.logits, atol=1e-5)  # the network's logits, as test_scores.npz keeps them
    assert torch.allclose(new.probabilities, (old.logits / temperature).softmax(dim=1), atol=1e-6)  # what predict gives
    assert new.metrics.accuracy == old.metrics.accuracy == evaluated["accuracy"]
    assert new.metrics.loss == old.metrics.loss  # the model's own loss, as the run's test loss
    assert old.trust.ece == pytest.approx(new.calibrated["calibration"]["ece_before"], abs=1e-6)
    assert "conformal" not in new.calibrated  # no --coverage: no sets


def test_the_table_says_each_figure_in_a_line(work, evaluated):
    report = evaluate_checkpoint(work["run"], save=False, coverage=0.9, unfamiliar=work["inverted"])
    text = render_evaluation(report)
    calibration, conformal, unfamiliar = evaluated["calibration"], evaluated["conformal"], evaluated["unfamiliar"]
    assert (f"calibration: temperature {calibration['temperature']:.2f}, ECE {calibration['ece_before']:.2%} -> "
            f"{calibration['ece_after']:.2%} (15 bins)") in text
    assert (f"prediction sets at 90% coverage: {conformal['coverage']:.1%} covered, {conformal['mean_set_size']:.2f} "
            f"classes on average (from {conformal['calibration_images']} validation images)") in text
    flagged = f"{unfamiliar['test_flagged']:.1%}"
    assert re.search(rf"unfamiliar: {flagged} of the test split flagged \(threshold [0-9.]+: 95% of validation "
                     r"pictures pass\)", text)
    assert (f"unfamiliar folder {work['inverted']}: {unfamiliar['folder_flagged']:.1%} of 150 flagged, AUROC "
            f"{unfamiliar['auroc']:.4f}") in text


@pytest.fixture(scope="module")
def other_tasks(tmp_path_factory) -> dict[str, Path]:
    """best.pt of a multi-label LeNet-5 (scripts/digit_sets.py) and of an autoencoder, one training step each: what
    has no prediction sets or unfamiliar score."""
    folder = tmp_path_factory.mktemp("other_tasks")
    short = ["train.epochs=1", "train.max_steps_per_epoch=1", "train.threads=1"]
    manifest = digit_sets(folder / "sets", 40, 10)
    multilabel = load_config(ROOT / "configs" / "lenet5_digit_sets.yaml",
                             [f"data.manifest={manifest}", f"train.output_dir={folder / 'runs'}", *short])
    autoencoder = load_config(ROOT / "configs" / "autoencoder_anomaly.yaml",
                              [f"train.output_dir={folder / 'runs'}", *short])
    return {name: zoo.train(config, quiet=True).run_dir / "checkpoints" / "best.pt"
            for name, config in (("sets.pt", multilabel), ("ae.pt", autoencoder))}


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(path): (path.stat().st_size, path.stat().st_mtime_ns) for path in root.rglob("*")}


# Beside tests/bad_input_cases.py's (a coverage of 1.5, an old.pt without calibration, a folder not there or without
# pictures), which need no run directory and no model of another task.
REFUSALS = {  # args after `zoo evaluate` (names in the case's folder) -> the one line, after "error: "
    "a coverage of 0": (["run", "--coverage", "0"], r"--coverage 0.0: give the share .* between 0 and 1 .*"),
    "a folder for an old run": (["old", "--unfamiliar", "inverted"],
                                r"--unfamiliar: old/checkpoints/best.pt has no calibration \(trained before zoo "
                                r"fitted one, or with calibration.enabled false\); run zoo calibrate old first: it "
                                r"fits a temperature, prediction sets and an unfamiliar score on the validation split"),
    "sets of a multilabel model": (["sets.pt", "--coverage", "0.9", "--unfamiliar", "inverted"],
                                   r"--coverage and --unfamiliar: sets.pt is a multilabel model; prediction sets and "
                                   r"the unfamiliar score are for single-label classifiers \(task classification\)"),
    "sets of an autoencoder": (["ae.pt", "--coverage", "0.9"],
                               r"--coverage: ae.pt is an autoencoder \(task reconstruction\); prediction sets and the "
                               r"unfamiliar score are for single-label classifiers: an autoencoder flags abnormal "
                               r"pictures with --abnormal FOLDER"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_each_refusal_is_one_line_exit_code_2_and_nothing_written(case, work, other_tasks, tmp_path):
    args, message = REFUSALS[case]
    shutil.copytree(work["run"], tmp_path / "run")
    shutil.copytree(work["old"], tmp_path / "old")
    shutil.copytree(work["inverted"], tmp_path / "inverted")
    for name, best in other_tasks.items():
        shutil.copy(best, tmp_path / name)
    before = snapshot(tmp_path)
    result = run_zoo(["evaluate", *args], tmp_path)
    assert result.returncode == 2 and result.stdout == "", result.stderr
    assert re.fullmatch(f"error: {message}\n", result.stderr), result.stderr
    assert snapshot(tmp_path) == before


def test_the_report_shows_trust_at_prediction_time(work, evaluated, tmp_path):
    from zoo.present.report import write_report

    page = write_report(work["run"], tmp_path / "calibrated.html").read_text(encoding="utf-8")
    section = page.split('<section id="calibration">')[1].split("</section>")[0]
    calibration, conformal = evaluated["calibration"], evaluated["conformal"]
    ece = f"{calibration['ece_before']:.2%} / {calibration['ece_after']:.2%}"
    for cell in (f"{calibration['temperature']:.3f}", ece, f"{conformal['coverage']:.2%}",
                 f"{conformal['mean_set_size']:.2f} classes", f"{evaluated['unfamiliar']['test_flagged']:.2%}"):
        assert f"<td>{cell}" in section, cell
    trust = page.split('<section id="trust">')[1].split("</section>")[0]
    assert f"expected calibration error {evaluated['ece']:.2%}" in trust  # zoo evaluate's: the calibrated figures
    old = write_report(work["old"], tmp_path / "old.html").read_text(encoding="utf-8")
    assert f"<code>zoo calibrate {work['old']}</code> fits a temperature" in old
    assert not os.path.exists(work["run"] / "report.html")  # wrote where it was told, nothing else
