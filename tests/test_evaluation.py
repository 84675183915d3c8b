"""zoo evaluate on data users bring: folders holding some of the trained classes, in another order; a
checkpoint trained on another machine's device."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from datafiles import write_colour_folders
from helpers import digits_config

from zoo.checkpoint import load_checkpoint, save_checkpoint
from zoo.errors import ZooError
from zoo.evaluation.evaluate import by_name, evaluate_checkpoint
from zoo.training import train

COLOURS = {"ant": (220, 30, 30), "bee": (30, 220, 30), "cat": (30, 30, 220), "dog": (220, 220, 30)}


def _photos(root: Path, classes: list[str], count: int) -> Path:
    return write_colour_folders(root, {name: COLOURS[name] for name in classes}, count)


# Not conftest's digits_run: these tests evaluate folders of named classes (ant, bee, cat), so the model learns those.
@pytest.fixture(scope="module")
def three_classes(tmp_path_factory) -> Path:
    """best.pt of LeNet-5 trained on ant/bee/cat folders of one colour each: right on every test image."""
    work = tmp_path_factory.mktemp("classes")
    config = digits_config(
        work / "runs", "data.name=imagefolder", f"data.root={_photos(work / 'train3', ['ant', 'bee', 'cat'], 20)}",
        "data.batch_size=16", "train.epochs=8", "optimizer.name=adam", "optimizer.lr=0.002", "scheduler.name=none",
        "data.augment=false")
    result = train(config, quiet=True)
    assert result.metrics["test"]["accuracy"] == 1.0
    return result.run_dir / "checkpoints" / "best.pt"


def test_a_folder_of_some_classes_is_matched_by_name(three_classes, tmp_path, capsys):
    new = _photos(tmp_path / "new", ["bee", "cat"], 10)  # no ant/: bee and cat come first and second here
    report = evaluate_checkpoint(three_classes, data_root=new)
    assert report.metrics.accuracy == 1.0 and report.classes == ["ant", "bee", "cat"]
    # every image: new data
    assert report.metrics.confusion.diag().tolist() == [0, 10, 10] and report.metrics.count == 20
    assert "matched to best.pt's by name: bee -> 1, cat -> 2" in capsys.readouterr().err
    assert report.per_class()[0] == {"class": "ant", "precision": None, "recall": None, "f1": None, "support": 0}


def test_a_class_the_model_does_not_know_is_refused(three_classes, tmp_path):
    new = _photos(tmp_path / "new", ["bee", "dog"], 10)
    with pytest.raises(ZooError,
                       match=r"the data has classes .*best.pt does not predict: dog; it predicts ant, bee, cat"):
        evaluate_checkpoint(three_classes, data_root=new)


def test_by_name_maps_labels_and_leaves_agreeing_names_alone():
    loader = [(torch.zeros(3, 1), torch.tensor([0, 1, 1]))]
    assert by_name(loader, ["ant", "bee"], ["ant", "bee", "cat"], Path("m.pt")) is loader  # a prefix: the same indices
    relabelled = by_name(loader, ["cat", "ant"], ["ant", "bee", "cat"], Path("m.pt"))
    assert len(relabelled) == 1 and next(iter(relabelled))[1].tolist() == [2, 0, 0]


def test_the_training_device_is_not_an_order_for_evaluate(three_classes, tmp_path):
    state = load_checkpoint(three_classes)
    state["config"]["train"]["device"] = "cuda"  # what a run on a GPU machine stores
    moved = tmp_path / "from_gpu_box.pt"
    save_checkpoint(state, moved)
    assert evaluate_checkpoint(moved).metrics.accuracy == 1.0  # auto: this machine's best device
    if not torch.cuda.is_available():
        with pytest.raises(ZooError,
                           match="--device is 'cuda' but this machine has no CUDA device; use --device auto or cpu"):
            evaluate_checkpoint(moved, device="cuda")
    with pytest.raises(ZooError, match="--device is 'tpu'; use auto, cpu, cuda, cuda:N or mps"):
        evaluate_checkpoint(moved, device="tpu")


def test_a_folder_of_held_out_images_is_evaluated_whole(three_classes, tmp_path):
    # A test/ folder alone (or a split folder named as the --split) is evaluated, every image of it.
    _photos(tmp_path / "held" / "test", ["cat", "ant"], 3)
    report = evaluate_checkpoint(three_classes, data_root=tmp_path / "held")
    assert report.metrics.count == 6 and report.metrics.accuracy == 1.0
    with pytest.raises(ZooError, match=r"held has test/ but no val folder; choose --split test"):
        evaluate_checkpoint(three_classes, "val", data_root=tmp_path / "held")


def test_a_checkpoint_trained_on_some_classes_evaluates_a_folder_of_them(tmp_path):
    # Its data.classes ([0, 2] of ant, bee, cat) picked classes of the training folder by index; a new folder's
    # classes are matched by name instead (here ant and cat, the only two).
    work = tmp_path / "work"
    config = digits_config(
        work / "runs", "data.name=imagefolder", f"data.root={_photos(work / 'train3', ['ant', 'bee', 'cat'], 20)}",
        "data.classes=[0, 2]", "train.epochs=1", "train.max_steps_per_epoch=2", "data.batch_size=8")
    best = train(config, quiet=True).run_dir / "checkpoints" / "best.pt"
    report = evaluate_checkpoint(best, data_root=_photos(tmp_path / "new", ["ant", "cat"], 4))
    assert report.classes == ["ant", "cat"] and report.metrics.count == 8


def test_the_runs_own_data_with_another_hold_out_is_refused(three_classes):
    # data.classes [1, 2] of the training folder draws another test split: 7 of 8 such "test" images were trained on.
    for override in ("data.classes=[1, 2]", "data.test_split=0.3", "train.seed=1"):
        with pytest.raises(ZooError, match=r"^--set (data|train)\.\w+: .*(test split|draws)"):
            evaluate_checkpoint(three_classes, overrides=[override])


def test_a_run_directory_stands_for_its_best_pt_wherever_a_checkpoint_is_asked_for(tmp_path):
    # As `zoo train --resume` takes a run directory; "not found" for runs/<name>/<time> tripped a new user.
    import zoo
    from zoo.inference.export import export_checkpoint

    run = train(digits_config(tmp_path, "train.epochs=1", "train.max_steps_per_epoch=3"), quiet=True).run_dir
    best = run / "checkpoints" / "best.pt"
    by_dir, by_file = evaluate_checkpoint(run), evaluate_checkpoint(best)
    assert by_dir.metrics.accuracy == by_file.metrics.accuracy and by_dir.confusion_csv.parent == best.parent
    assert zoo.load(run).classes == zoo.load(best).classes
    assert export_checkpoint(run / "checkpoints", "safetensors").path == best.with_suffix(".safetensors")
    finetuned = train(digits_config(tmp_path / "ft", "train.epochs=1", "train.max_steps_per_epoch=1",
                                    f"finetune.source={run}"), quiet=True)
    assert finetuned.metrics["epochs_run"] == 1


# Not conftest's digits_run: a test here asserts no confusion files beside best.pt, and test_train writes them there.
@pytest.fixture(scope="module")
def digits_best(tmp_path_factory) -> Path:
    """best.pt of LeNet-5 on scikit-learn's digits after 2 steps: a data set that reads no files."""
    work = tmp_path_factory.mktemp("digits")
    run = train(digits_config(work / "runs", "train.epochs=1", "train.max_steps_per_epoch=2"), quiet=True).run_dir
    return run / "checkpoints" / "best.pt"


def test_a_folder_for_a_data_set_that_reads_no_files_is_refused(digits_best, tmp_path):
    # It was ignored: the run's own digits test split was measured, as if it were the folder's, and exit code 0.
    photos = _photos(tmp_path / "photos", ["ant", "bee"], 2)
    with pytest.raises(ZooError, match=rf"^--data-root {photos}: digits reads no files; to evaluate on a folder of "
                                       "images add --data imagefolder$"):
        evaluate_checkpoint(digits_best, data_root=photos)
    with pytest.raises(ZooError, match=r"^--set data.root=.*photos: digits reads no files"):
        evaluate_checkpoint(digits_best, overrides=[f"data.root={photos}"])
    with pytest.raises(ZooError, match=r"^--data-root .*: xor reads no files; remove it, or give --data imagefolder"):
        evaluate_checkpoint(digits_best, data="xor", data_root=photos)
    assert not list(digits_best.parent.glob("*.confusion.*"))  # nothing written
    assert evaluate_checkpoint(digits_best, data_root="data").metrics.count == 359  # the run's own root: its own data


def test_other_data_does_not_overwrite_the_runs_own_confusion_files(three_classes, tmp_path):
    from zoo.present.text import render_evaluation

    own = evaluate_checkpoint(three_classes)
    assert own.confusion_csv == three_classes.with_name("best.test.confusion.csv")
    saved = own.confusion_csv.read_bytes(), own.confusion_png.read_bytes()
    assert render_evaluation(own).splitlines()[0] == f"{three_classes} on the test split: 12 images"
    # every cat, none right but cat
    new = evaluate_checkpoint(three_classes, data_root=_photos(tmp_path / "new", ["cat"], 5))
    assert (new.confusion_csv.name, new.confusion_png.name) == ("best.new.confusion.csv", "best.new.confusion.png")
    assert render_evaluation(new).splitlines()[0] == f"{three_classes} on every image of {tmp_path / 'new'}: 5 images"
    _photos(tmp_path / "held" / "test", ["ant", "bee"], 2)
    held = evaluate_checkpoint(three_classes, data_root=tmp_path / "held")
    assert held.confusion_csv.name == "best.held.test.confusion.csv"
    assert held.to_dict()["evaluated"] == f"every image of {tmp_path / 'held' / 'test'}"
    assert (own.confusion_csv.read_bytes(), own.confusion_png.read_bytes()) == saved


def test_an_unknown_class_is_named_whatever_the_class_counts(three_classes, tmp_path):
    # 4 folders for a 3-class model: the count alone was the message, without the class it does not know.
    new = _photos(tmp_path / "new", ["ant", "bee", "cat", "dog"], 2)
    with pytest.raises(ZooError,
                       match=r"^the data has classes .*best.pt does not predict: dog \(4 classes for its 3\); "
                             "it predicts ant, bee, cat: name the classes as in training"):
        evaluate_checkpoint(three_classes, data_root=new)


# ---- test_scores.npz: the reader checks what it reads (zoo.evaluation.scores) ----------------------------------------

def _scores_file(folder: Path, **change) -> Path:
    """A test_scores.npz as a run of 3 classes on tensors writes it (8 images, the surest wrong ones pictured),
    with the arrays in `change` put in place of the run's (None: left out)."""
    import numpy as np
    from PIL import Image

    from zoo.evaluation.scores import write_scores
    from zoo.metrics.trust import confidently_wrong

    logits = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    wrong = confidently_wrong(logits.double().softmax(dim=1).numpy(), targets.numpy())
    pictures = [Image.new("RGB", (6, 5), (10 * k, 0, 0)) for k in range(len(wrong))]
    write_scores(folder, logits.numpy(), targets.numpy(), None, wrong, pictures)
    if change:
        with np.load(folder / "test_scores.npz") as data:
            arrays = {name: data[name] for name in data.files}
        arrays.update(change)
        np.savez(folder / "test_scores.npz", **{name: value for name, value in arrays.items() if value is not None})
    return folder / "test_scores.npz"


def test_read_scores_gives_back_what_the_run_wrote(tmp_path):
    from zoo.evaluation.scores import read_scores

    _scores_file(tmp_path)
    scores = read_scores(tmp_path, 8, 3)
    assert scores.logits.shape == (8, 3) and scores.targets.tolist() == [0, 1, 2, 0, 1, 2, 0, 1]
    assert len(scores.pictures) == len(scores.wrong) > 0 and scores.notes == ()
    assert read_scores(tmp_path / "nothing") is None  # an older run: no file


@pytest.mark.parametrize("change, message", [
    ({"targets": [0, 1, 2, 0, 1, 2, 0, 99]}, "1 targets are outside the classes 0-2 (the first: 99)"),
    ({"targets": [0, 1, 2, 0, 1, 2, 0, -1]}, "1 targets are outside the classes 0-2 (the first: -1)"),
    ({"targets": [0.0, 1, 2, 0, 1, 2, 0, 1]}, "its targets are 8 float64, not 8 class indices"),
    ({"logits": "nan"}, "the logits of 8 of 8 images are not finite (NaN or inf)"),
    ({"logits": [[1.0, 2.0]] * 8}, "its logits have 2 classes, the checkpoint 3"),
    ({"logits": [1.0] * 8}, "its logits are 8 float64, not samples x classes numbers"),
    ({"logits": None}, "has no logits array"),
    ({"targets": [0, 1, 2]}, "its targets are 3 int64, not 8 class indices"),
])
def test_damaged_scores_are_one_line_naming_the_file(tmp_path, change, message):
    import numpy as np

    from zoo.evaluation.scores import DamagedScores, read_scores

    if change.get("logits") == "nan":
        change = {"logits": np.full((8, 3), np.nan, dtype=np.float32)}
    change = {name: value if value is None else np.asarray(value) for name, value in change.items()}
    path = _scores_file(tmp_path, **change)
    with pytest.raises(DamagedScores) as caught:
        read_scores(tmp_path, 8, 3)
    assert str(caught.value).startswith(f"{path}") and message in str(caught.value) and "\n" not in str(caught.value)
    assert isinstance(caught.value, ZooError)  # the CLI's one line, exit 2


def test_scores_that_are_no_npz_or_another_runs_are_damaged(tmp_path):
    from zoo.evaluation.scores import DamagedScores, read_scores

    (tmp_path / "test_scores.npz").write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(DamagedScores, match="does not read as numpy's .npz"):
        read_scores(tmp_path)
    _scores_file(tmp_path)
    with pytest.raises(DamagedScores, match="its logits hold 8 images, metrics.json's test split 10"):
        read_scores(tmp_path, 10, 3)


@pytest.mark.parametrize("pictures, note", [
    ("float", "its pictures are 3 x 8 x 8 x 3 float64, not 3 x height x width x 3 uint8"),
    ("gray", "its pictures are 3 x 5 x 6 uint8, not 3 x height x width x 3 uint8"),
    ("other wrong", "its pictures are not of the most confidently wrong images of its scores"),
])
def test_pictures_that_do_not_fit_are_left_out_with_a_note(tmp_path, pictures, note):
    import numpy as np

    from zoo.evaluation.scores import read_scores

    _scores_file(tmp_path)
    with np.load(tmp_path / "test_scores.npz") as data:
        wrong = data["wrong"]
    assert len(wrong) == 3  # what the messages above count
    change = {"float": {"pictures": np.random.rand(3, 8, 8, 3)},
              "gray": {"pictures": np.zeros((3, 5, 6), np.uint8)},
              "other wrong": {"wrong": wrong[::-1]}}[pictures]
    path = _scores_file(tmp_path, **change)
    scores = read_scores(tmp_path, 8, 3)
    assert scores.pictures is None and scores.logits.shape == (8, 3)
    assert scores.notes == (f"{path}: {note}; the gallery of the most confidently wrong images is left out",)


def test_the_run_and_zoo_evaluate_report_one_test_loss_with_label_smoothing(tmp_path):
    """The test loss is plain cross-entropy wherever it is shown (timm validates so): with label smoothing the run
    and metrics.json said 0.5749 (the smoothed loss), zoo evaluate and the report 0.0567, both 'test loss'."""
    result = train(digits_config(tmp_path, "train.epochs=2", "loss.label_smoothing=0.2"), quiet=True)
    evaluated = evaluate_checkpoint(result.run_dir / "checkpoints" / "best.pt", "test")
    assert result.metrics["test"]["loss"] == pytest.approx(evaluated.metrics.loss, rel=1e-5)
    assert set(result.metrics["test"]) >= {"loss", "accuracy", "top5_accuracy", "count"}  # the keys scripts read
    validated = evaluate_checkpoint(result.run_dir / "checkpoints" / "best.pt", "val")
    assert result.metrics["val"]["loss"] == pytest.approx(validated.metrics.loss, rel=1e-5)


def test_a_checkpoint_in_a_folder_it_cannot_write_to_is_still_measured_and_says_so(digits_best, monkeypatch):
    # ../shared/cases/turn3/r08: zoo evaluate of a checkpoint on a read-only or full disk ended in a traceback.
    import os

    from zoo.present.text import render_evaluation

    before = sorted(path.name for path in digits_best.parent.iterdir())
    real_open = os.open

    def read_only(path, flags, *args, **kwargs):
        if flags & os.O_CREAT:
            raise OSError(30, "Read-only file system", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)  # mkstemp creates its temporary file through os.open
    report = evaluate_checkpoint(digits_best, device="cpu")
    monkeypatch.undo()
    assert report.metrics.count > 0 and report.trust is not None
    assert report.confusion_csv is None and report.trust_files is None
    assert report.not_saved.startswith("cannot write ") and "(Read-only file system); the figures above are " \
        "complete; to keep the files, make room there or copy the checkpoint" in report.not_saved
    assert "written before it" not in report.not_saved
    text = render_evaluation(report, "table")
    assert "top-1" in text and f"not saved: {report.not_saved}" in text and "saved: " not in text.replace(
        "not saved: ", "")
    assert report.to_dict()["not_saved"] == report.not_saved and report.to_dict()["confusion_csv"] is None
    assert sorted(path.name for path in digits_best.parent.iterdir()) == before


def test_an_evaluation_stopped_by_a_file_in_the_way_names_what_it_wrote_before(digits_best, tmp_path):
    # a folder named like the ROC figure: the confusion files were written, and the line said nothing of them
    import shutil

    checkpoint = tmp_path / "best.pt"
    shutil.copy(digits_best, checkpoint)
    (tmp_path / "best.test.roc.png").mkdir()
    report = evaluate_checkpoint(checkpoint, device="cpu")
    assert report.not_saved.startswith(f"cannot write {tmp_path / 'best.test.roc.png'} (Is a directory)")
    assert report.not_saved.endswith(f"(written before it: {tmp_path / 'best.test.confusion.csv'}, "
                                     f"{tmp_path / 'best.test.confusion.png'})")
