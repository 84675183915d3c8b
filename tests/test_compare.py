"""zoo compare on tiny digits runs: groups over seeds, the paired difference, McNemar's test image by image where
the test splits are proven the same (and its refusal, with the reason, where they are not), the JSON interface,
and the self-contained page with its flipped images."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import digits_config, run_zoo
from zoo.experiments.compare import compare
from zoo.present.compare import comparison_dict, render_comparison, write_comparison
from zoo.training import train

TINY = ["train.epochs=2", "train.max_steps_per_epoch=5"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Four finished runs: the default init and He's, each with seeds 0 and 1."""
    out = tmp_path_factory.mktemp("runs")
    found = {}
    for init in ("default", "he_normal"):
        for seed in (0, 1):
            config = digits_config(out, *TINY, f"init={init}", f"train.seed={seed}", f"train.run_id={init}-{seed}")
            found[f"{init}-{seed}"] = train(config, quiet=True).run_dir
    return found


def _right(run: Path) -> np.ndarray:
    with np.load(run / "test_scores.npz") as data:
        return data["logits"].argmax(axis=1) == data["targets"]


def test_two_runs_on_the_same_test_images_are_paired_image_by_image(runs):
    first, second = runs["default-0"], runs["he_normal-0"]
    comparison = compare([first, second])
    assert [group.label for group in comparison.groups] == ["init=default", "init=he_normal"]
    assert set(comparison.differences) == {"init"}
    pair = comparison.paired
    assert pair is not None and comparison.paired_reason is None
    right_a, right_b = _right(first), _right(second)
    test = pair.tests[0].test
    assert test.to_right == int((~right_a & right_b).sum()) and test.to_wrong == int((right_a & ~right_b).sum())
    assert test.images == len(right_a) == 359
    flips = pair.tests[0].flips
    assert len(flips) == test.to_right + test.to_wrong
    assert all(right_b[flip.index] == flip.to_right and right_a[flip.index] != flip.to_right for flip in flips)
    classes = pair.tests[0].per_class
    assert sum(count for _, _, _, count in classes) == 359
    assert sum(a * count for _, a, _, count in classes) == pytest.approx(right_a.sum())
    as_json = comparison_dict(comparison)
    assert as_json["paired"]["to_right"] == test.to_right
    assert as_json["paired"]["p_value"] == pytest.approx(test.p_value)


def test_runs_with_different_seeds_on_digits_are_not_paired_and_the_line_says_why(runs):
    comparison = compare([runs["default-0"], runs["default-1"]])
    assert comparison.paired is None
    assert comparison.paired_reason == (
        "the runs' test splits hold different images: train.seed 0 and 1 hold out different test images from digits, "
        "which has no fixed test split; only the unpaired figures are compared")
    assert comparison_dict(comparison)["paired"] is None


def test_groups_over_seeds_are_compared_by_their_paired_difference_and_pooled_flips(runs):
    comparison = compare(list(runs.values()))
    assert [len(group.runs) for group in comparison.groups] == [2, 2]
    (pair,) = comparison.pairs
    accuracy = {name: json.loads((run / "metrics.json").read_text())["test"]["accuracy"] for name, run in runs.items()}
    differences = [accuracy[f"he_normal-{seed}"] - accuracy[f"default-{seed}"] for seed in (0, 1)]
    assert pair.difference.pairs == 2 and pair.difference.mean == pytest.approx(np.mean(differences))
    assert [test.seed for test in pair.tests] == [0, 1]  # each seed's two runs share their test images
    pooled = pair.pooled
    assert pooled.to_right == sum(test.test.to_right for test in pair.tests) and pooled.images == 2 * 359
    mean, se = comparison.groups[0].figure("test_accuracy")
    assert mean == pytest.approx((accuracy["default-0"] + accuracy["default-1"]) / 2)
    assert se == pytest.approx(abs(accuracy["default-0"] - accuracy["default-1"]) / 2)
    text = render_comparison(comparison)
    assert "init=he_normal against init=default" in text and "pooled over seeds 0, 1" in text


def test_a_run_from_before_the_fingerprint_is_not_paired(runs, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(runs["he_normal-0"], old)
    with np.load(old / "test_scores.npz") as data:
        arrays = {name: data[name] for name in data.files if name != "split"}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    (old / "test_scores.npz").write_bytes(buffer.getvalue())
    comparison = compare([runs["default-0"], old])
    assert comparison.paired is None and "trained before zoo kept its test split's fingerprint" in \
        comparison.paired_reason


def test_the_page_holds_the_tests_and_the_flipped_images_and_the_cli_prints_json(runs, tmp_path):
    page = write_comparison([runs["default-0"], runs["he_normal-0"]], tmp_path / "compare.html")
    text = page.read_text()
    for section in ("summary", "differences", "runs", "curves", "paired", "classes", "flips"):
        assert f'<section id="{section}">' in text
    assert "McNemar&#x27;s exact p" in text and text.count("data:image/png;base64,") >= 2
    assert "<script" not in text and "http://" not in text and "https://" not in text  # self-contained

    result = run_zoo("compare", runs["default-0"], runs["he_normal-0"], "--format", "json", "--output",
                     tmp_path / "cli.html")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert set(printed["paired"]) >= {"p_value", "to_right", "to_wrong"}
    assert printed["paired_reason"] is None and (tmp_path / "cli.html").is_file()


def test_the_fingerprint_names_files_or_indices_and_labels():
    from zoo.evaluation.scores import fingerprint

    class Files:
        paths = ["a/1.png", "b/2.png"]

    class Indices:
        indices = [4, 9]

    labels = np.array([0, 1])
    facts = {"data": "imagefolder", "classes": ["a", "b"]}
    assert fingerprint(Files(), labels, facts) == fingerprint(Files(), labels, facts)
    assert fingerprint(Files(), labels, facts) != fingerprint(Files(), np.array([1, 0]), facts)
    assert fingerprint(Indices(), labels, facts) != fingerprint(Indices(), labels, {**facts, "data": "digits"})
    assert fingerprint(object(), labels, facts) is None
    assert len(fingerprint(Indices(), labels, facts)) == 64


def test_test_scores_keep_the_fingerprint_the_run_wrote(runs):
    from zoo.evaluation.scores import read_scores

    with zipfile.ZipFile(runs["default-0"] / "test_scores.npz") as archive:
        assert "split.npy" in archive.namelist()
    same = {read_scores(runs[name]).split for name in ("default-0", "he_normal-0")}
    assert len(same) == 1 and read_scores(runs["default-1"]).split not in same


def test_the_vanishing_gradient_lesson_is_significant_image_by_image_with_its_flips(tmp_path):
    # the lesson as shipped, one seed and 3 epochs: the deep sigmoid network stays at chance, the ReLU one learns
    lesson = Path(__file__).resolve().parents[1] / "configs" / "lessons" / "vanishing_gradients.yaml"
    folder = tmp_path / "lesson"
    result = run_zoo("sweep", lesson, "--seeds", "0", "--set", "train.epochs=3", "--output", folder, cwd=tmp_path,
                     timeout=300)
    assert result.returncode == 0, result.stderr
    compared = run_zoo("compare", folder, "--format", "json", cwd=tmp_path)
    assert compared.returncode == 0, compared.stderr
    printed = json.loads(compared.stdout)
    paired = printed["paired"]
    # the sweep's best configuration first, as zoo sweep chose it: the sigmoid network, against it, went to wrong
    assert [group["label"] for group in printed["groups"]] == ["variant=relu_he", "variant=sigmoid_xavier"]
    assert paired["p_value"] < 0.01 and paired["to_wrong"] > 10 * max(1, paired["to_right"])
    page = (folder / "compare.html").read_text()
    assert '<section id="flips">' in page and "wrong -&gt; right" in page


def test_a_path_that_is_not_there_is_named_before_the_runs_are_counted(runs, tmp_path):
    from zoo.errors import ZooError

    with pytest.raises(ZooError, match=r"runs/does/not/exist: no such run directory or sweep folder"):
        compare([Path("runs/does/not/exist")])
    with pytest.raises(ZooError, match=r"a file, not a run directory"):
        compare([runs["default-0"] / "metrics.json", runs["default-1"]])


def test_a_damaged_score_file_is_said_and_the_run_is_compared_without_it(runs, tmp_path):
    import shutil

    damaged = tmp_path / "damaged"
    shutil.copytree(runs["he_normal-0"], damaged)
    (damaged / "test_scores.npz").write_bytes(b"not an npz")
    comparison = compare([runs["default-0"], damaged])
    assert comparison.paired is None and "kept no test scores" in comparison.paired_reason
    assert any("does not read as numpy's .npz" in note for note in comparison.notes)
    assert "note: " in render_comparison(comparison)
