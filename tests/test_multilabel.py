"""Multi-label classification through every command: a manifest of pictures of 1-3 of scikit-learn's digits (real
images, scripts/digit_sets.py), trained, evaluated, predicted, exported and explained; the task seam's pieces
checked against torch's and scikit-learn's definitions; what multi-label refuses."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import ROOT, digit_sets, run_zoo, stopped_and_resumed
from sklearn.metrics import accuracy_score, average_precision_score, hamming_loss

import zoo
from zoo.checkpoint import read_state
from zoo.config import load_config
from zoo.errors import ConfigError
from zoo.inference.explain import explain
from zoo.tasks import Classification, Multilabel, get_task

CONFIG = ROOT / "configs" / "lenet5_digit_sets.yaml"


def manifest_rows(manifest: Path, split: str) -> dict[str, set[str]]:
    with open(manifest, newline="") as file:
        return {str((manifest.parent / row["path"]).resolve()): set(row["label"].split(";"))
                for row in csv.DictReader(file) if row["split"] == split}


@pytest.fixture(scope="module")
def sets_run(tmp_path_factory):
    """A short multi-label run: (its directory, the manifest)."""
    folder = tmp_path_factory.mktemp("digit_sets")
    manifest = digit_sets(folder / "data", 400, 120)
    config = load_config(CONFIG, [f"data.manifest={manifest}", f"train.output_dir={folder / 'runs'}",
                                  "train.epochs=3", "train.threads=1"])
    return zoo.train(config, quiet=True).run_dir, manifest


def test_a_multilabel_run_keeps_its_thresholds_and_reports_label_set_figures(sets_run):
    run_dir, _ = sets_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    test = metrics["test"]
    assert test["count"] == 120 and test["accuracy"] == test["exact_match"]
    assert 0 <= test["hamming_loss"] <= 1 and 0 <= test["f1_micro"] <= 1 and test["top5_accuracy"] is None
    state = read_state(run_dir / "checkpoints" / "best.pt", "evaluate")
    assert state.config["task"] == "multilabel" and len(state.thresholds) == 10
    assert all(0 < threshold < 1 for threshold in state.thresholds)
    assert state.thresholds != [0.5] * 10  # chosen on the validation split, class by class
    val = zoo.evaluate_checkpoint(run_dir, "val", save=False).metrics  # metrics.json's val: at the thresholds too
    assert (metrics["val"]["exact_match"], metrics["val"]["hamming_loss"]) == (val.exact_match, val.hamming_loss)


def test_tensorboard_has_each_class_s_pr_curve_on_its_sigmoid(sets_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    run_dir, manifest = sets_run
    events = EventAccumulator(str(run_dir), size_guidance={"tensors": 0})
    events.Reload()
    assert {f"pr/test/{d}" for d in range(10)} <= set(events.Tags()["tensors"])
    positives = sum("3" in labels for labels in manifest_rows(manifest, "test").values())
    curve = tensor_util.make_ndarray(events.Tensors("pr/test/3")[-1].tensor_proto)  # tp, fp, tn, fn, precision, recall
    assert curve[0, 0] == positives and curve[1, 0] == 120 - positives  # at threshold 0: every image, once
    assert {"val/accuracy", "test/accuracy"} <= set(events.Tags()["scalars"])


def test_evaluate_predict_and_onnx_agree_on_the_label_sets(sets_run, tmp_path):
    """The issue's bar: zoo predict's label sets on the test files have the exact-match ratio zoo evaluate reports,
    and the ONNX export predicts the same sets; mAP and Hamming loss are scikit-learn's."""
    run_dir, manifest = sets_run
    done = run_zoo("evaluate", run_dir, "-f", "json")
    assert done.returncode == 0, done.stderr
    evaluation = json.loads(done.stdout)
    truth = manifest_rows(manifest, "test")
    done = run_zoo("predict", run_dir, *truth, "--format", "json", "-k", "10")
    assert done.returncode == 0, done.stderr
    predictions = json.loads(done.stdout)["predictions"]
    classes = [str(digit) for digit in range(10)]
    predicted = np.array([[name in row["labels"] for name in classes] for row in predictions])
    actual = np.array([[name in truth[str(Path(row["path"]).resolve())] for name in classes] for row in predictions])
    assert evaluation["exact_match"] == pytest.approx(accuracy_score(actual, predicted), abs=1e-12)
    assert evaluation["hamming_loss"] == pytest.approx(hamming_loss(actual, predicted), abs=1e-12)
    scores = np.array([[{item["class"]: item["probability"] for item in row["top_k"]}[name] for name in classes]
                       for row in predictions])
    assert evaluation["average_precision"]["macro"] == pytest.approx(
        average_precision_score(actual, scores, average="macro"), abs=1e-5)
    assert set(evaluation["thresholds"]) == set(classes) and evaluation["task"] == "multilabel"
    report = zoo.export_checkpoint(run_dir / "checkpoints" / "best.pt", "onnx", tmp_path / "sets.onnx")
    assert report.set_agreement == 1.0
    exported = zoo.load(tmp_path / "sets.onnx").predict(list(truth), top_k=1)
    assert [set(p.labels) for p in exported] == [set(row["labels"]) for row in predictions]


def test_grad_cam_draws_one_map_per_predicted_label(sets_run, tmp_path):
    run_dir, manifest = sets_run
    picture = next(iter(manifest_rows(manifest, "test")))
    report = explain(run_dir / "checkpoints" / "best.pt", [picture], method="gradcam", layer="features.3",
                         output=tmp_path / "maps")
    labels = report.rows[0].prediction.labels
    if labels:
        assert [row.target_class for row in report.rows] == list(labels)
        assert {row.written.name for row in report.rows} == {f"{Path(picture).stem}.gradcam.{label}.png"
                                                             for label in labels}
    else:  # nothing predicted: the top-1's map
        assert len(report.rows) == 1
    assert all(row.written.is_file() for row in report.rows)


def test_the_tasks_losses_and_decisions_are_torchs_and_scikit_learns():
    logits = torch.tensor([[2.0, -1.0, 0.1], [-3.0, 0.5, 0.0]])
    sets = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    multilabel = Multilabel([0.6, 0.5, 0.52])
    assert torch.allclose(multilabel.criterion(None, 0.0)(logits, sets),
                          torch.nn.functional.binary_cross_entropy(logits.sigmoid(), sets))
    assert multilabel.decide(logits.sigmoid(), ["a", "b", "c"]) == [["a", "c"], ["b"]]  # c: 0.525 >= 0.52
    assert multilabel.decide(torch.full((1, 3), -3.0).sigmoid(), ["a", "b", "c"]) == [[]]  # none passes
    assert Classification().decide(logits.softmax(1), ["a", "b", "c"]) == [["a"], ["b"]]
    counts = multilabel.class_counts(sets, 3)
    assert counts.tolist() == [1, 1, 1]
    assert multilabel.balanced_weights(torch.tensor([1, 3]), 4).tolist() == [3.0, 1 / 3]  # negatives / positives
    lookup = torch.tensor([2, 0])  # data class 0 is the model's 2, data class 1 the model's 0
    assert multilabel.relabel(torch.tensor([[1.0, 0.0]]), lookup, 3).tolist() == [[0.0, 0.0, 1.0]]
    assert Classification().relabel(torch.tensor([0, 1]), lookup, 3).tolist() == [2, 0]
    assert get_task("multilabel").threshold_tensor(3).tolist() == [0.5] * 3


@pytest.mark.parametrize(("extra", "says"), [
    (["data.name=digits", "data.manifest=null"], "data.name digits has one label per image"),
    (["data.sampler=balanced"], "data.sampler balanced draws by class"),
    (["data.augment.mixup_alpha=0.2"], "mixup_alpha and cutmix_alpha mix one label per image"),
    (["loss.label_smoothing=0.1"], "loss.label_smoothing spreads one class's probability"),
    (["task=classification", "multilabel.threshold=0.3"], "multilabel is read only with task: multilabel"),
])
def test_what_multilabel_cannot_take_is_one_line(extra, says):
    with pytest.raises(ConfigError, match=says):
        load_config(CONFIG, extra)


def test_a_new_manifest_is_evaluated_whole_and_its_files_named_after_it(sets_run, tmp_path):
    run_dir, manifest = sets_run
    rows = [f"{path},{';'.join(sorted(labels))}" for path, labels in list(manifest_rows(manifest, "test").items())[:30]]
    (tmp_path / "new.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    report = zoo.evaluate_checkpoint(run_dir, overrides=[f"data.manifest={tmp_path / 'new.csv'}"])
    assert report.metrics.count == 30 and report.evaluated == f"every row of {tmp_path / 'new.csv'}"
    assert report.trust_files.pr.name == "best.new.test.pr.png" and report.trust_files.pr.is_file()
    assert report.confusion_csv is None  # label sets have no confusion matrix: their counts are in the table


def test_a_multilabel_run_resumes_mid_epoch_bit_exact(sets_run, tmp_path, monkeypatch):
    """Stopped by Ctrl-C mid-epoch (after a step checkpoint) and resumed, a multi-label run with positive weights,
    an EMA and accumulated steps ends where the uninterrupted run ends: its weights, test figures and thresholds."""
    _, manifest = sets_run

    def config(out: Path):
        return load_config(CONFIG, [f"data.manifest={manifest}", f"train.output_dir={out}", "train.epochs=2",
                                    "train.threads=1", "train.deterministic=true", "loss.class_weights=auto",
                                    "train.ema={decay: 0.99}", "train.accumulate_steps=2",
                                    "train.checkpoint_every_steps=3", "data.workers=0"])

    # batch 18 (12 batches an epoch): epoch 2's sixth, after the checkpoint
    whole, resumed, run_dir = stopped_and_resumed(config, tmp_path, monkeypatch, 18)
    a, b = (read_state(run / "checkpoints" / "best.pt", "evaluate") for run in (whole.run_dir, run_dir))
    assert all(torch.equal(a.model[key], b.model[key]) for key in a.model)
    assert a.thresholds == b.thresholds
    figures = ("loss", "exact_match", "hamming_loss", "f1_micro", "f1_macro")
    assert [resumed.metrics["test"][key] for key in figures] == [whole.metrics["test"][key] for key in figures]


def test_a_new_list_of_some_classes_is_matched_by_name(sets_run, tmp_path):
    """A list without the digit 9 (and so one class fewer): its sets are matched to the model's ten outputs by name,
    the figures as on the same images named in the model's own classes."""
    run_dir, manifest = sets_run
    kept = {path: labels for path, labels in manifest_rows(manifest, "test").items() if "9" not in labels}
    (tmp_path / "no9.csv").write_text("path,label\n" + "".join(f"{path},{';'.join(sorted(labels))}\n"
                                                              for path, labels in kept.items()))
    report = zoo.evaluate_checkpoint(run_dir, overrides=[f"data.manifest={tmp_path / 'no9.csv'}"], save=False)
    assert report.targets.shape == (len(kept), 10) and not report.targets[:, 9].any()
    decided = report.task.decide(report.probabilities, report.classes)
    exact = sum(set(labels) == kept[path] for labels, path in zip(decided, report.paths)) / len(kept)
    assert report.metrics.exact_match == pytest.approx(exact, abs=1e-12)


def test_explain_with_a_target_names_the_map_by_its_label(sets_run, tmp_path):
    run_dir, manifest = sets_run
    picture = next(iter(manifest_rows(manifest, "test")))
    for target in ("3", "7"):
        explain(run_dir, [picture], method="gradcam", layer="features.3", target=target, output=tmp_path)
    assert {path.name for path in tmp_path.iterdir()} == {f"{Path(picture).stem}.gradcam.{d}.png" for d in "37"}


@pytest.mark.parametrize(("thresholds", "says"), [([0.5] * 9, "holds 9 thresholds for 10 classes"),
                                                  ([1.5] * 10, "outside (0, 1)"), (["x"] * 10, "not a number")])
def test_crafted_thresholds_are_refused_in_one_line(sets_run, tmp_path, thresholds, says):
    from zoo.errors import ZooError

    run_dir, _ = sets_run
    state = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)
    state["thresholds"] = thresholds
    torch.save(state, tmp_path / "crafted.pt")
    with pytest.raises(ZooError, match=f"crafted.pt is damaged: its thresholds.*{re.escape(says)}"):
        zoo.load(tmp_path / "crafted.pt")
