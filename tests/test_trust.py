"""zoo.metrics.trust and its figures: ROC AUC, average precision and ECE as scikit-learn computes them on the scores
`zoo evaluate` produced; the PNGs beside the checkpoint; the JSON fields; the test split's PR curves in
TensorBoard; classes absent from the data, and class names in other scripts or with control characters; the
pictures a newcomer opens alone (filters, feature maps, heat maps, the gallery) at a size and type one can read."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from datafiles import write_colour_folders
from helpers import digits_config, run_zoo
from PIL import Image
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, roc_auc_score

from zoo.evaluation.evaluate import evaluate_checkpoint
from zoo.metrics.trust import compute_trust
from zoo.present.figures import pr_figure, reliability_figure, roc_figure
from zoo.present.text import render_evaluation
from zoo.training import train

COLOURS = {"café": (220, 30, 30), "猫": (30, 220, 30), "dog": (30, 30, 220)}


# Not conftest's digits_run: the tests need more than 16 wrong test images, and the 20-epoch main job gets 97% right.
@pytest.fixture(scope="module")
def short_digits_run(tmp_path_factory) -> Path:
    """The run directory of LeNet-5 on the digits after 2 epochs of 3 steps: wrong on many test images."""
    work = tmp_path_factory.mktemp("digits")
    return train(digits_config(work, "train.epochs=2", "train.max_steps_per_epoch=3"), quiet=True).run_dir


@pytest.fixture(scope="module")
def digits_report(short_digits_run):
    return evaluate_checkpoint(short_digits_run / "checkpoints" / "best.pt")


@pytest.fixture(scope="module")
def named_run(tmp_path_factory) -> Path:
    """best.pt of LeNet-5 trained on café/猫/dog folders of one colour each: right on every test image."""
    work = tmp_path_factory.mktemp("named")
    config = digits_config(
        work / "runs", "data.name=imagefolder", f"data.root={write_colour_folders(work / 'train', COLOURS, 20)}",
        "data.batch_size=16", "train.epochs=8", "optimizer.name=adam", "optimizer.lr=0.002", "scheduler.name=none",
        "data.augment=false")
    result = train(config, quiet=True)
    assert result.metrics["test"]["accuracy"] == 1.0
    return result.run_dir / "checkpoints" / "best.pt"


def test_auc_ap_and_ece_are_scikit_learns_on_the_scores_zoo_evaluate_produced(digits_report):
    report, trust = digits_report, digits_report.trust
    # the calibrated probabilities, as zoo predict gives them: the network's logits divided by the temperature
    scores = torch.softmax((report.logits / report.temperature).double(), dim=1).numpy()
    truth = report.targets.numpy()
    onehot = np.eye(10)[truth]
    assert len(truth) == 359 and trust.count == 359 and sorted(set(truth.tolist())) == list(range(10))
    for average in ("macro", "weighted"):
        assert getattr(trust, f"auc_{average}") == pytest.approx(
            roc_auc_score(truth, scores, multi_class="ovr", average=average), abs=1e-12)
        assert getattr(trust, f"ap_{average}") == pytest.approx(
            average_precision_score(onehot, scores, average=average), abs=1e-12)
    assert trust.auc == pytest.approx([roc_auc_score(truth == k, scores[:, k]) for k in range(10)], abs=1e-12)
    assert trust.average_precision == pytest.approx(list(average_precision_score(onehot, scores, average=None)),
                                                    abs=1e-12)
    confidence, correct = scores.max(axis=1), scores.argmax(axis=1) == truth
    accuracy, mean_confidence = calibration_curve(correct, confidence, n_bins=15, strategy="uniform")
    filled = [b for b in trust.reliability if b.count]
    assert [b.accuracy for b in filled] == pytest.approx(list(accuracy))
    assert [b.confidence for b in filled] == pytest.approx(list(mean_confidence))
    assert trust.ece == pytest.approx(
        sum(abs(a - c) * b.count for a, c, b in zip(accuracy, mean_confidence, filled)) / 359)
    assert sum(b.count for b in trust.reliability) == 359 and 0 < trust.ece < 1
    wrong = np.flatnonzero(~correct)
    assert trust.wrong_count == len(wrong) > 16 and len(trust.wrong) == 16  # 2 epochs of 3 steps: far from right
    assert [w.probability for w in trust.wrong] == sorted(confidence[wrong], reverse=True)[:16]
    assert all(w.path is None and w.predicted != w.true for w in trust.wrong)  # the digits read no files


def test_ece_by_hand_and_the_edge_cases():
    # Guo et al.'s ECE by hand: bins of 1/15; 0.9 and 0.92 share (13/15, 14/15], the others have one bin each.
    probabilities = torch.tensor([[0.9, 0.1], [0.25, 0.75], [0.3, 0.7], [0.55, 0.45], [0.08, 0.92]],
                                 dtype=torch.float64)
    targets = torch.tensor([0, 0, 1, 0, 0])  # right, wrong, right, right, wrong
    trust = compute_trust(probabilities.log(), targets, ["a", "b"])
    # |0.5 - 0.91| x 2 + |0 - 0.75| + |1 - 0.7| + |1 - 0.55|, over 5 samples
    assert trust.ece == pytest.approx((0.82 + 0.75 + 0.3 + 0.45) / 5)
    assert [(b.count, b.accuracy) for b in trust.reliability if b.count] == [(1, 1.0), (1, 1.0), (1, 0.0), (2, 0.5)]
    assert [(w.index, w.true, w.predicted) for w in trust.wrong] == [(4, 0, 1), (1, 0, 1)]  # the surer first
    # Binary: each class's AUC is the AUC of the one score.
    assert trust.auc == pytest.approx([roc_auc_score(targets == 1, probabilities[:, 1])] * 2)
    # One sample: nothing is defined but its class's AP; nothing crashes, the figures draw.
    one = compute_trust(torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([0]), ["a", "b", "c"])
    assert one.auc == [None, None, None] and one.auc_macro is None and one.average_precision == [1.0, None, None]
    assert one.wrong == [] and one.ece == pytest.approx(1 - torch.tensor([2.0, 0.0, -1.0]).softmax(0).max().item())
    for figure in (roc_figure, pr_figure, reliability_figure):
        assert Image.open(io.BytesIO(figure(one, "one sample"))).size == (640, 480)
    # A class absent from the data: None, left out of the averages.
    absent = compute_trust(torch.randn(6, 3, generator=torch.Generator().manual_seed(0)),
                           torch.tensor([0, 1, 0, 1, 0, 1]), ["a", "b", "c"])
    assert absent.auc[2] is None and absent.average_precision[2] is None
    assert absent.auc_macro == pytest.approx((absent.auc[0] + absent.auc[1]) / 2)
    assert absent.to_dict()["auc"]["per_class"]["c"] is None
    with pytest.raises(ValueError, match="do not match 2 classes"):
        compute_trust(torch.zeros(3, 3), torch.zeros(3, dtype=torch.long), ["a", "b"])


def test_the_figures_are_written_beside_the_checkpoint_and_decode(digits_report):
    files = digits_report.trust_files
    assert files.roc == digits_report.confusion_png.with_name("best.test.roc.png")
    for path in (files.roc, files.pr, files.reliability):
        with Image.open(path) as picture:
            assert picture.format == "PNG" and picture.size == (640, 480)
    with Image.open(files.wrong) as gallery:  # 4 x 4 thumbnails of 128 pixels and their captions
        assert (files.wrong.name == "best.test.wrong.png" and 4 * 128 <= gallery.width < 1200
                and 4 * 128 < gallery.height < 1000)
        assert len(np.unique(np.asarray(gallery.convert("L")))) > 50  # the digits, not a blank sheet
    lines = render_evaluation(digits_report).splitlines()
    assert any(line.startswith("trust: macro AUC 0.") and "ECE" in line for line in lines)
    assert any(line.startswith(f"most confidently wrong: the 16 surest of {digits_report.trust.wrong_count} wrong")
               for line in lines)
    assert lines[-4:] == [f"       {path}" for path in (files.roc, files.pr, files.reliability, files.wrong)]


def test_zoo_evaluate_json_has_the_trust_fields(short_digits_run, digits_report):
    done = run_zoo("evaluate", short_digits_run / "checkpoints" / "best.pt", "-f", "json")
    assert done.returncode == 0, done.stderr
    fields = json.loads(done.stdout)
    assert (set(fields["auc"]) == {"macro", "weighted", "per_class"}
            and list(fields["auc"]["per_class"]) == [str(d) for d in range(10)])
    # the same scores, in a subprocess
    assert fields["auc"]["macro"] == pytest.approx(digits_report.trust.auc_macro, abs=1e-9)
    assert fields["average_precision"]["weighted"] == pytest.approx(digits_report.trust.ap_weighted, abs=1e-9)
    assert 0 < fields["ece"] < 1 and fields["ece_bins"] == 15 and len(fields["reliability"]) == 15
    assert set(fields["reliability"][0]) == {"lower", "upper", "count", "accuracy", "confidence"}
    wrong = fields["confidently_wrong"]
    assert len(wrong) == 16 and set(wrong[0]) == {"index", "path", "true", "predicted", "probability"}
    assert (wrong[0]["path"] is None and wrong[0]["true"] != wrong[0]["predicted"]
            and wrong[0]["probability"] >= wrong[-1]["probability"])
    assert fields["wrong_png"].endswith("best.test.wrong.png") and Path(fields["roc_png"]).is_file()


def test_the_test_splits_pr_curves_are_in_tensorboard(short_digits_run, digits_report):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    events = EventAccumulator(str(short_digits_run), size_guidance={"tensors": 0})
    events.Reload()
    assert {f"pr/test/{d}" for d in range(10)} <= set(events.Tags()["tensors"])
    for k in (0, 9):
        # tp, fp, tn, fn, precision, recall
        curve = tensor_util.make_ndarray(events.Tensors(f"pr/test/{k}")[-1].tensor_proto)
        assert curve.shape == (6, 127)
        assert curve[0, 0] == digits_report.trust.support[k] and curve[5, 0] == 1.0  # every positive at threshold 0


def test_class_names_in_other_scripts_a_perfect_model_and_an_absent_class(named_run, tmp_path):
    (named_run.parent / "best.test.wrong.png").write_bytes(b"an older evaluation's")
    report = evaluate_checkpoint(named_run)  # right on every image: no gallery, the older one gone
    assert report.metrics.accuracy == 1.0 and report.trust.wrong == [] and report.trust_files.wrong is None
    assert not (named_run.parent / "best.test.wrong.png").exists()
    assert report.trust.auc_macro == 1.0 and report.to_dict()["confidently_wrong"] == []
    assert "most confidently wrong: none, every prediction is right (no gallery)" in render_evaluation(report)
    # café's images in 猫/, and no café/: café's AUC and AP are n/a, and its images the surest mistakes, by file.
    new = tmp_path / "new"
    write_colour_folders(new, {"dog": COLOURS["dog"]}, 3)
    moved = write_colour_folders(tmp_path / "moved", {"café": COLOURS["café"]}, 3) / "café"
    moved.rename(new / "猫")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns of a glyph missing from its font
        other = evaluate_checkpoint(named_run, data_root=new)
    fields = other.to_dict()
    assert fields["auc"]["per_class"]["café"] is None and fields["average_precision"]["per_class"]["café"] is None
    assert fields["auc"]["per_class"]["猫"] is not None
    assert [(w["true"], w["predicted"]) for w in fields["confidently_wrong"]] == [("猫", "café")] * 3
    assert {Path(w["path"]).parent.name for w in fields["confidently_wrong"]} == {"猫"}
    assert other.trust_files.wrong.name == "best.new.wrong.png"
    for path in (other.trust_files.roc, other.trust_files.pr, other.trust_files.reliability, other.trust_files.wrong):
        with Image.open(path) as picture:
            picture.load()


def test_a_head_wider_than_the_data_has_its_extra_outputs_as_absent_classes(tmp_path):
    """model.num_classes 12 on the 10 digits: the two outputs no sample has are n/a, not a crash (a shared case)."""
    run = train(digits_config(tmp_path, "model.num_classes=12", "train.epochs=1", "train.max_steps_per_epoch=5"),
                quiet=True).run_dir
    report = evaluate_checkpoint(run / "checkpoints" / "best.pt", save=False)
    trust = report.trust
    assert report.logits.shape == (359, 12) and trust.classes[10:] == ["10", "11"]
    assert trust.auc[10:] == [None, None] and trust.average_precision[10:] == [None, None]
    assert trust.auc_macro == pytest.approx(np.mean(trust.auc[:10]))
    from zoo.present.report import write_report  # the report of such a run draws too

    assert "ROC AUC" in write_report(run).read_text(encoding="utf-8")


# ---- names drawn safely, pictures one can read alone ----------------------------------------------------------------

@pytest.fixture
def drawn_texts(monkeypatch) -> list[str]:
    """Every text Pillow draws while the test runs, as drawn."""
    from PIL import ImageDraw

    texts: list[str] = []
    real = ImageDraw.ImageDraw.text

    def spy(self, xy, text, *args, **kwargs):
        texts.append(text)
        return real(self, xy, text, *args, **kwargs)

    monkeypatch.setattr(ImageDraw.ImageDraw, "text", spy)
    return texts


def _wrong_trust(classes: list[str], paths: list[str] | None = None):
    """4 images of 3 classes, the first two predicted wrong."""
    logits = torch.tensor([[0.0, 4.0, 0.0], [0.0, 0.0, 3.0], [0.0, 0.0, 5.0], [5.0, 0.0, 0.0]])
    return compute_trust(logits, torch.tensor([0, 1, 2, 0]), classes, paths)


def test_class_names_with_control_characters_draw_on_one_line(drawn_texts):
    from zoo.present.figures import confusion_image, wrong_gallery
    from zoo.present.grids import captioned

    classes = ["a\nb", "tab\there", "$x^\\undefined$"]  # a newline, a tab; matplotlib's mathtext
    trust = _wrong_trust(classes)
    gallery = wrong_gallery(trust, [Image.new("RGB", (8, 8))] * 2, "lenet5 on new\nphotos")
    confusion_image(torch.tensor([[1, 1, 0], [0, 0, 1], [0, 0, 1]]), classes, "lenet5 on new\nphotos")
    for figure in (roc_figure, pr_figure, reliability_figure):  # matplotlib's text: no crash, PNGs that decode
        Image.open(io.BytesIO(figure(trust, "lenet5 on new\nphotos"))).load()
    captioned(Image.new("RGB", (8, 8)), ["a\nb: 6 filters"])
    assert gallery.width >= 2 * 128
    assert not any(char in text for text in drawn_texts for char in "\n\t")
    assert {"a\\nb -> tab\\there", "lenet5 on new\\nphotos", "a\\nb: 6 filters"} <= set(drawn_texts)


def test_the_gallery_names_each_images_file_where_the_data_has_files(drawn_texts):
    from zoo.present.figures import wrong_gallery

    files = [f"/data/photos/{name}/IMG_{k:04d}.jpg" for k, name in enumerate(["cat", "dog", "emu", "cat"])]
    wrong_gallery(_wrong_trust(["cat", "dog", "emu"], files), [Image.new("RGB", (8, 8))] * 2)
    assert "IMG_0000.jpg" in drawn_texts and "IMG_0001.jpg" in drawn_texts
    assert not any("#0" in text for text in drawn_texts)
    drawn_texts.clear()
    wrong_gallery(_wrong_trust(["cat", "dog", "emu"]), [Image.new("RGB", (8, 8))] * 2)  # tensors: their position
    assert any(text.endswith("sure, #0") for text in drawn_texts)


def test_the_reliability_diagrams_counts_are_of_a_readable_size(monkeypatch):
    from matplotlib.axes import Axes

    sizes = []
    real = Axes.text
    monkeypatch.setattr(Axes, "text", lambda self, x, y, s, *a, **k: sizes.append((s, k.get("fontsize")))
                        or real(self, x, y, s, *a, **k))
    reliability_figure(_wrong_trust(["cat", "dog", "emu"]))
    counts = [size for text, size in sizes if text.replace(",", "").isdigit()]
    assert counts and min(counts) >= 9  # points: digits 8 pixels high or more at 100 dots per inch (6 points: 5)


def test_filters_feature_maps_and_heat_maps_are_big_enough_to_read_alone():
    import zoo
    from zoo.present.grids import GAP, PANEL, filter_grid, heatmap_overlay, map_grid

    lenet = zoo.create_model("lenet5", num_classes=10)
    filters = filter_grid(lenet)  # 6 filters of 5 x 5, 3 a row: 170 x 95 pixels before
    assert filters.width >= 300 and filters.height >= 220
    maps = map_grid(torch.rand(6, 28, 28), "features.0")  # LeNet-5's first stage: 205 pixels wide before
    assert maps.width >= 300
    heat = np.tile(np.linspace(0, 1, 32), (32, 1))  # 0 at the left, 1 at the right
    overlay = np.asarray(heatmap_overlay(np.zeros((32, 32, 3), np.uint8), heat, ["a caption"]))
    bar = overlay[GAP + PANEL + 6, 2 * GAP + PANEL + 4:2 * GAP + 2 * PANEL - 4].astype(int)  # the colour bar's middle
    assert bar[0, 2] > 100 and bar[0, 0] < 60  # jet's blue at 0
    assert bar[-1, 0] > 100 and bar[-1, 2] < 60  # its red at 1
    assert len({tuple(pixel) for pixel in bar}) > 50  # every step between
