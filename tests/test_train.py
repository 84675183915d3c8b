"""End-to-end runs of `zoo train` and `zoo evaluate` on data that works offline (digits, xor, synthetic).
Tests zoo.training.run and zoo.training.hooks end to end."""

import io
import json
from pathlib import Path

import pytest
import torch
from helpers import digits_config, run_zoo
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from zoo.checkpoint import load_checkpoint
from zoo.config import load_config
from zoo.evaluation.evaluate import evaluate_checkpoint
from zoo.training import train

ROOT = Path(__file__).resolve().parents[1]
# digits_run: conftest's session-wide run of the README's main job (configs/lenet5_digits.yaml, 20 epochs).


def test_main_job_reaches_97_percent_on_digits(digits_run):
    metrics = digits_run.metrics
    assert metrics["test"]["accuracy"] >= 0.97
    assert metrics["val"]["accuracy"] >= 0.95
    assert 0 < metrics["test"]["loss"] < 0.2 and metrics["test"]["top5_accuracy"] >= metrics["test"]["accuracy"]


def test_run_directory_layout(digits_run):
    run = digits_run.run_dir
    assert run.parent.name == "lenet5_digits"
    assert (run / "config.yaml").is_file() and (run / "metrics.json").is_file()
    assert (run / "checkpoints" / "last.pt").is_file() and (run / "checkpoints" / "best.pt").is_file()
    assert list(run.glob("events.out.tfevents.*"))
    saved = load_config(run / "config.yaml")
    assert saved.model.name == "lenet5" and saved.train.epochs == 20
    on_disk = json.loads((run / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(digits_run.metrics))
    for split in ("val", "test"):
        assert set(on_disk[split]) >= {"loss", "accuracy", "top5_accuracy", "time_s", "images_per_s"}
        assert 0 <= on_disk[split]["accuracy"] <= 1
    assert on_disk["train"]["images_per_s"] > 0 and on_disk["train"]["time_s"] > 0


def test_checkpoint_holds_everything_to_resume_and_evaluate(digits_run):
    state = load_checkpoint(digits_run.run_dir / "checkpoints" / "last.pt")
    assert {"model", "optimizer", "scheduler", "scaler", "epoch", "batch", "step", "progress", "ranks", "config",
            "classes", "normalization", "zoo_version", "torch_version"} <= set(state)
    assert state["epoch"] == 20 and state["batch"] == 0 and state["classes"] == [str(d) for d in range(10)]
    assert state["normalization"]["input_size"] == 32 and state["normalization"]["in_channels"] == 1
    assert {"rng", "loader", "meter"} <= set(state["ranks"][0]) and state["ranks"][0]["meter"] is None  # between epochs
    best = load_checkpoint(digits_run.run_dir / "checkpoints" / "best.pt")
    assert best["epoch"] == digits_run.metrics["best_epoch"] == best["progress"]["best_epoch"]
    assert best["progress"]["best_accuracy"] == pytest.approx(digits_run.metrics["val"]["accuracy"])


def test_tensorboard_reader_finds_scalars_histograms_and_the_confusion_image(digits_run):
    events = EventAccumulator(str(digits_run.run_dir), size_guidance={"scalars": 0, "histograms": 0, "images": 0})
    events.Reload()
    tags = events.Tags()
    for tag in ("train/loss", "train/accuracy", "train/top5_accuracy", "val/loss", "val/accuracy", "val/top5_accuracy",
                "lr", "throughput/images_per_s", "time/epoch_s", "test/accuracy"):
        assert tag in tags["scalars"], tag
    assert len(events.Scalars("val/accuracy")) == 20
    assert any(t.startswith("grad_norm/features.0.weight") for t in tags["scalars"])
    assert any(t.startswith("weights/features.0.weight") for t in tags["histograms"])
    assert "val/confusion_matrix" in tags["images"]
    image = events.Images("val/confusion_matrix")[-1]
    assert image.step == 20  # the last epoch always draws
    picture = Image.open(io.BytesIO(image.encoded_image_string))
    assert picture.format == "PNG" and picture.size == (image.width, image.height) and picture.mode == "RGB"
    histogram = events.Histograms("weights/features.0.weight")[-1].histogram_value
    assert histogram.num == 150 and histogram.min < 0 < histogram.max  # conv1's 6 x 1 x 5 x 5 weights
    assert tags["graph"] is True


def test_evaluate_reproduces_the_recorded_test_accuracy(digits_run):
    best = digits_run.run_dir / "checkpoints" / "best.pt"
    report = evaluate_checkpoint(best, "test")
    recorded = digits_run.metrics["test"]
    assert report.metrics.accuracy == recorded["accuracy"]
    assert report.metrics.count == recorded["count"]
    assert report.metrics.confusion.sum() == recorded["count"]  # every test image counted once
    assert report.confusion_csv.is_file() and report.confusion_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = report.confusion_csv.read_text().splitlines()
    assert rows[0].split(",")[1:] == [str(d) for d in range(10)] and len(rows) == 11


def test_pictures_are_drawn_about_ten_times_a_run_and_at_its_end():
    from zoo.training.log import picture_epoch

    assert [e for e in range(1, 21) if picture_epoch(e, 20, None)] == list(range(2, 21, 2))
    assert [e for e in range(1, 26) if picture_epoch(e, 25, None)] == [3, 6, 9, 12, 15, 18, 21, 24, 25]
    assert all(picture_epoch(e, 5, None) for e in range(1, 6)) and all(picture_epoch(e, 20, 1) for e in range(1, 21))
    assert [e for e in range(1, 8) if picture_epoch(e, 7, 3)] == [3, 6, 7]


def test_evaluate_cli_json_and_table(digits_run):
    best = digits_run.run_dir / "checkpoints" / "best.pt"
    result = run_zoo("evaluate", best, "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["accuracy"] == digits_run.metrics["test"]["accuracy"]
    assert [row["class"] for row in report["per_class"]] == [str(d) for d in range(10)]
    assert sum(row["support"] for row in report["per_class"]) == report["count"]
    table = run_zoo("evaluate", best)
    assert "macro average" in table.stdout and "confusion matrix (rows: true class, columns: predicted)" in table.stdout
    header = table.stdout.split("confusion matrix (rows: true class, columns: predicted)\n")[1].splitlines()[0]
    assert header.split() == ["true", "class", *(str(d) for d in range(10))] and "\\" not in table.stdout


def test_a_second_run_never_reuses_a_directory(tmp_path):
    overrides = [f"train.output_dir={tmp_path}", "train.epochs=1", "data.synthetic_size=16", "data.batch_size=8"]
    config = load_config(ROOT / "configs" / "lenet5_digits.yaml", [*overrides, "data.name=synthetic"])
    first, second = train(config, quiet=True), train(config, quiet=True)
    assert first.run_dir != second.run_dir and first.run_dir.parent == second.run_dir.parent


def _xor_run(config_name: str, seed: int, tmp_path: Path):
    config = load_config(ROOT / "configs" / config_name, [f"train.seed={seed}", f"train.output_dir={tmp_path}"])
    result = train(config, quiet=True)
    events = EventAccumulator(str(result.run_dir), size_guidance={"scalars": 0})
    events.Reload()
    first = [e.value for e in events.Scalars("grad_norm/features.0.weight")]
    last = [e.value for e in events.Scalars("grad_norm/fc.weight")]
    return result.metrics["test"]["accuracy"], sum(first) / len(first), sum(last) / len(last)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5))
def test_xor_vanishing_gradients_and_the_relu_fix(seed, tmp_path):
    """The course's experiment: deep sigmoid stays near chance, ReLU with He init learns XOR, and the
    gradient norms say why: the sigmoid net's first layer gets a vanishing share of the gradient."""
    sigmoid_accuracy, sigmoid_first, sigmoid_last = _xor_run("xor_mlp_sigmoid_deep.yaml", seed, tmp_path)
    relu_accuracy, relu_first, relu_last = _xor_run("xor_mlp_relu_he.yaml", seed, tmp_path)
    assert sigmoid_accuracy <= 0.75
    assert relu_accuracy == 1.0
    assert sigmoid_first / sigmoid_last < 0.01
    assert relu_first / relu_last > 0.1


SHIPPED = sorted((ROOT / "configs").glob("*.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_config_trains_a_few_steps(path, tmp_path, monkeypatch):
    """Each config as written, on synthetic data at its own input size (XOR keeps its four points).
    A torchvision weights source is served from torch's cache, where a download would have put it."""
    config = load_config(path)
    if config.finetune is not None and config.finetune.source.startswith("torchvision:"):
        import torchvision

        monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
        weights = torchvision.models.get_weight(config.finetune.source.removeprefix("torchvision:"))
        cached = tmp_path / "torch" / "hub" / "checkpoints" / Path(weights.url).name
        cached.parent.mkdir(parents=True)
        torch.save(getattr(torchvision.models, config.model.name)(weights=None).state_dict(), cached)
    data = [] if config.data.name == "xor" else ["data.name=synthetic", "data.synthetic_size=8", "data.batch_size=4"]
    if config.task == "multilabel":  # label sets come only from a manifest: a small one of scripts/digit_sets.py's
        from helpers import digit_sets

        data = [f"data.manifest={digit_sets(tmp_path / 'data', 40, 12)}", "data.batch_size=4"]
    if config.task == "reconstruction":  # the normal digits are kept by index: synthetic data has its own classes
        data.append("data.classes=null")
    if config.data.name == "text":  # sentences come from a manifest: a small one of two classes
        (tmp_path / "sentences.csv").write_text("text,label\n" + "".join(
            f"a {word} sentence number {i},{word}\n" for i in range(8) for word in ("good", "bad")))
        data = [f"data.manifest={tmp_path / 'sentences.csv'}", "data.batch_size=4"]
    one_epoch = ["finetune.unfreeze_at_epoch=null"] if config.finetune and config.finetune.unfreeze_at_epoch else []
    config = load_config(path, [*data, "train.epochs=1", *one_epoch, "train.max_steps_per_epoch=2", "train.device=cpu",
                                f"train.output_dir={tmp_path}"])
    result = train(config, quiet=True)
    assert result.metrics["train"]["steps"] >= 1
    assert (result.run_dir / "checkpoints" / "best.pt").is_file()


# ---- what a run refuses before its first step, and what a failed first step leaves ---------------------

def _digits(tmp_path: Path, *overrides: str):
    return digits_config(tmp_path / "runs", "train.epochs=1", "train.max_steps_per_epoch=3", *overrides)


def test_one_class_is_refused_before_anything_is_written(tmp_path):
    from datafiles import write_imagefolder

    from zoo.errors import ZooError

    with pytest.raises(ZooError, match=r"^data.classes keeps 1 class \(3\); a classifier needs at least 2"):
        train(_digits(tmp_path, "data.classes=[3]"), quiet=True)
    write_imagefolder(tmp_path / "photos", {"defect": 12})
    with pytest.raises(ZooError,
                       match=r"^imagefolder: .*photos holds 1 class \(defect\); a classifier needs at least 2"):
        train(_digits(tmp_path, "data.name=imagefolder", f"data.root={tmp_path / 'photos'}"), quiet=True)
    assert not (tmp_path / "runs").exists()
    assert train(_digits(tmp_path, "data.classes=[3, 5]"), quiet=True).metrics["test"]["count"] > 0  # two are enough


def test_batches_of_one_image_are_refused_where_batch_norm_cannot_train(tmp_path):
    from zoo.errors import ZooError

    synthetic = ["data.name=synthetic", "data.synthetic_size=8", "data.batch_size=1"]
    with pytest.raises(ZooError,
                       match=r"^data.batch_size 1: resnet18's batch norm layer4.0.bn1 sees one value per channel "
                             r"in training at 32x32 inputs; set data.batch_size to 2 or more"):
        train(_digits(tmp_path, "model.name=resnet18", "data.input_size=32", *synthetic), quiet=True)
    assert not (tmp_path / "runs").exists()
    # Where every batch norm sees more than one value (a 64x64 input leaves 2x2), and without batch norm, it trains.
    assert train(_digits(tmp_path, "model.name=resnet18", "data.input_size=64", *synthetic),
                 quiet=True).metrics["train"]["steps"] == 3
    assert train(_digits(tmp_path, "data.batch_size=1"), quiet=True).metrics["train"]["steps"] == 3


def test_a_failed_first_step_leaves_no_half_made_run_directory(tmp_path, monkeypatch):
    import zoo.loop

    def fail(*args, **kwargs):
        raise RuntimeError("a bug in the first step")

    monkeypatch.setattr(zoo.loop, "aux_loss", fail)
    with pytest.raises(RuntimeError, match="a bug in the first step"):  # a bug keeps its traceback
        train(_digits(tmp_path), quiet=True)
    assert not (tmp_path / "runs").exists()  # nor runs/lenet5_digits/, which this run made
    (tmp_path / "runs" / "mine.txt").parent.mkdir()
    (tmp_path / "runs" / "mine.txt").write_text("the user's")
    with pytest.raises(RuntimeError):
        train(_digits(tmp_path), quiet=True)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["mine.txt"]  # what was there stays
    earlier = tmp_path / "runs" / "lenet5_digits" / "20260101-000000"
    earlier.mkdir(parents=True)  # another run of the same name: this one's directory goes, the other stays
    with pytest.raises(RuntimeError):
        train(_digits(tmp_path), quiet=True)
    assert list((tmp_path / "runs" / "lenet5_digits").iterdir()) == [earlier]


def test_running_out_of_memory_is_one_line_and_a_run_with_a_checkpoint_keeps_it(tmp_path, monkeypatch):
    import zoo.loop
    from zoo.errors import ZooError

    real, calls = zoo.loop.aux_loss, {"n": 0}

    def out_of_memory_at_step_3(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] >= 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity")
        return real(*args, **kwargs)

    monkeypatch.setattr(zoo.loop, "aux_loss", out_of_memory_at_step_3)
    with pytest.raises(ZooError,
                       match=r"^out of memory on cpu at data.batch_size 32 \(CUDA out of memory\. Tried to allocate "
                             r"2\.00 GiB\. GPU 0 has a total capacity\); lower data.batch_size"):
        train(_digits(tmp_path, "train.checkpoint_every_steps=2"), quiet=True)
    kept = list((tmp_path / "runs").glob("lenet5_digits/*/checkpoints/last.pt"))
    assert len(kept) == 1  # saved at step 2, before the failure: the run can be resumed, so it stays


def test_running_out_of_memory_while_the_data_is_built_is_one_line(tmp_path, monkeypatch):
    import zoo.training.setup
    from zoo.errors import ZooError

    def too_big(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:118] data. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 2875200000000 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(zoo.training.setup, "build_datasets", too_big)
    with pytest.raises(ZooError,
                       match=r"^out of memory on cpu at data.batch_size 32 \(.*DefaultCPUAllocator.*\); lower"):
        train(_digits(tmp_path, "data.input_size=20000"), quiet=True)
    assert not (tmp_path / "runs").exists()


def _epoch(correct: int, loss: float):
    """An EpochResult of 4 images, `correct` of them right, with mean loss `loss`."""
    from zoo.loop import EpochResult
    from zoo.metrics import MetricAccumulator

    meter = MetricAccumulator(2, torch.device("cpu"))
    targets = torch.tensor([0, 1, 0, 1])
    logits = torch.tensor([[1.0, 0.0] if i < correct and t == 0 or i >= correct and t == 1 else [0.0, 1.0]
                           for i, t in enumerate(targets.tolist())])
    meter.update(logits, targets, torch.tensor(loss))
    return EpochResult(meter.compute(), 1.0, 4)


def test_a_tie_on_validation_accuracy_goes_to_the_lower_validation_loss():
    """The fresh tester's XOR: 100% from epoch 1, the loss still falling; best.pt must follow the loss."""
    from zoo.checkpoint import Progress
    from zoo.training.hooks import record_epoch

    progress = Progress()
    history = [(4, 0.025), (4, 0.010), (4, 0.012), (3, 0.001), (4, 0.0015)]
    best = [record_epoch(progress, epoch, _epoch(4, 0.1), _epoch(correct, loss))
            for epoch, (correct, loss) in enumerate(history, start=1)]
    assert best == [True, True, False, False, True] and progress.best_epoch == 5
    assert progress.best_val["loss"] == pytest.approx(0.0015)
