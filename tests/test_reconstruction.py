"""The reconstruction task (course 004's autoencoders): its figures against their definitions and scikit-learn, the
noise of a denoising autoencoder, what the config refuses, a run on the digits end to end (metrics.json, best.pt's
anomaly threshold, TensorBoard's reconstructions), zoo evaluate's anomaly figures beside PCA's, and an exact resume.
Tests zoo.tasks.reconstruction, zoo.metrics.reconstruction, zoo.evaluation.reconstruction and the config's checks."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from helpers import ROOT, run_zoo, stopped_and_resumed
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.metrics import average_precision_score, roc_auc_score

import zoo
from zoo.checkpoint import read_state
from zoo.cli import class_indices
from zoo.config import load_config
from zoo.errors import ConfigError, ZooError
from zoo.metrics.reconstruction import ReconstructionAccumulator, detection, per_image_mse, psnr, threshold_at
from zoo.present.text import render_evaluation
from zoo.tasks import Reconstruction, task_of

ANOMALY = ROOT / "configs" / "autoencoder_anomaly.yaml"
DENOISE = ROOT / "configs" / "conv_autoencoder_denoise.yaml"


def test_psnr_is_ten_log_of_one_over_each_pictures_mse_averaged():
    generator = torch.Generator().manual_seed(0)
    targets = torch.rand(6, 1, 8, 8, generator=generator)
    outputs = (targets + 0.1 * torch.randn(6, 1, 8, 8, generator=generator)).clamp(0, 1)
    errors = ((outputs.double() - targets.double()) ** 2).flatten(1).mean(1)
    assert torch.allclose(per_image_mse(outputs, targets), errors)
    assert torch.allclose(psnr(errors), 10 * torch.log10(1 / errors))
    assert psnr(torch.zeros(1)).item() == pytest.approx(100.0)  # exact: floored at 1e-10, not infinite

    meter = ReconstructionAccumulator(noisy=True)
    logits = torch.logit(outputs.clamp(1e-4, 1 - 1e-4))
    for part in (slice(0, 2), slice(2, 6)):  # two batches: sums, not means
        meter.update(logits[part], targets[part], torch.tensor(0.5), inputs=outputs[part])
    metrics = meter.compute()
    rebuilt = per_image_mse(logits.sigmoid(), targets)
    assert metrics.count == 6 and metrics.loss == pytest.approx(0.5)
    assert metrics.mse == pytest.approx(rebuilt.mean().item())
    assert metrics.psnr == pytest.approx(psnr(rebuilt).mean().item()) == metrics.accuracy
    assert metrics.input_psnr == pytest.approx(psnr(errors).mean().item())
    clean = ReconstructionAccumulator(noisy=False)  # without data.noise the input is the picture: nothing to measure
    clean.update(logits, targets, torch.tensor(0.5), inputs=targets)
    assert clean.compute().input_psnr is None


def test_the_meters_sums_survive_a_checkpoint():
    meter = ReconstructionAccumulator()
    meter.update(torch.randn(4, 1, 8, 8), torch.rand(4, 1, 8, 8), torch.tensor(0.7))
    again = ReconstructionAccumulator()
    again.load_state_dict(meter.state_dict())
    assert again.compute() == meter.compute()


def test_anomaly_figures_are_scikit_learns_and_the_threshold_flags_at_most_the_rate():
    rng = np.random.default_rng(0)
    normal, abnormal = rng.gamma(2.0, 1.0, 200), rng.gamma(4.0, 1.0, 50)
    threshold = threshold_at(normal, 0.05)
    assert (normal > threshold).mean() <= 0.05 < (normal >= np.quantile(normal, 0.9)).mean()
    found = detection(normal, abnormal, threshold)
    truth = np.r_[np.zeros(200), np.ones(50)]
    assert found.auc == pytest.approx(roc_auc_score(truth, np.r_[normal, abnormal]))
    assert found.average_precision == pytest.approx(average_precision_score(truth, np.r_[normal, abnormal]))
    assert found.true_positives == (abnormal > threshold).sum() and found.false_positives == (normal > threshold).sum()
    assert found.true_positives + found.false_negatives == 50 and found.false_positives + found.true_negatives == 200
    assert detection(normal, abnormal, None).summary().keys() == {"auc", "average_precision", "threshold"}
    with pytest.raises(ValueError):
        detection(normal, np.empty(0), threshold)


def test_noise_goes_to_the_inputs_alone_clipped_and_validation_draws_the_same_each_pass():
    task = Reconstruction(noise=0.3)
    pictures = torch.rand(16, 1, 8, 8)
    labels = torch.zeros(16, dtype=torch.long)
    inputs, targets = task.pair(pictures, labels)
    assert targets is pictures and inputs.min() >= 0 and inputs.max() <= 1
    assert 0.2 < (inputs - pictures).std() < 0.3  # std 0.3, less where clipping cut it
    first = task.pair(pictures, labels, task.generator(torch.device("cpu")))[0]
    second = task.pair(pictures, labels, task.generator(torch.device("cpu")))[0]
    assert torch.equal(first, second)  # every validation pass and zoo evaluate see the same noisy pictures
    clean = Reconstruction()
    assert clean.pair(pictures, labels)[0] is pictures and clean.generator(torch.device("cpu")) is None


@pytest.mark.parametrize("extra, says", [
    ("loss.class_weights=auto", "loss.class_weights weighs classes"),
    ("loss.label_smoothing=0.1", "loss.label_smoothing smooths class targets"),
    ("data.sampler=balanced", "data.sampler balanced draws by class"),
    ("data.augment={mixup_alpha: 0.2}", "mixup_alpha and cutmix_alpha mix labels"),
    ("data.normalize=true", "data.normalize: an autoencoder rebuilds [0, 1] pixels"),
    ("model.name=lenet5", "lenet5 is a classifier"),
    ("task=classification", "model autoencoder is an autoencoder"),
    ("data.noise=1.5", "data.noise"),
])
def test_what_reconstruction_cannot_take_is_one_line(extra, says):
    with pytest.raises(ConfigError) as raised:
        load_config(ANOMALY, [extra])
    assert says in str(raised.value) and "\n" not in str(raised.value)


def test_autoencoder_keys_without_the_task_are_refused():
    for extra in ("data.noise=0.3", "reconstruction.loss=mse"):
        with pytest.raises(ConfigError) as raised:
            load_config(ROOT / "configs" / "lenet5_digits.yaml", [extra])
        assert "reconstruction" in str(raised.value)
    assert load_config(ANOMALY).data.normalize is False  # the task's default: [0, 1] pixels


@pytest.fixture(scope="module")
def anomaly_run(tmp_path_factory):
    """The shipped anomaly config, shortened: an autoencoder of digit 0 alone."""
    out = tmp_path_factory.mktemp("anomaly")
    config = load_config(ANOMALY, [f"train.output_dir={out}", "train.epochs=60", "train.threads=1"])
    return zoo.train(config, quiet=True)


def test_a_run_writes_its_figures_threshold_and_reconstructions(anomaly_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    metrics = anomaly_run.metrics
    assert set(metrics["test"]) >= {"loss", "mse", "psnr", "count"} and metrics["test"]["input_psnr"] is None
    assert metrics["test"]["psnr"] == pytest.approx(-10 * math.log10(metrics["test"]["mse"]), abs=3)
    state = read_state(anomaly_run.run_dir / "checkpoints" / "best.pt", "evaluate")
    assert state.num_classes is None and state.classes == ["0"]
    assert state.anomaly_threshold == metrics["anomaly_threshold"] > 0
    events = EventAccumulator(str(anomaly_run.run_dir), size_guidance={"images": 0})
    events.Reload()
    assert "val/reconstructions" in events.Tags()["images"] and "val/psnr" in events.Tags()["scalars"]


def test_evaluate_prints_the_anomaly_figures_beside_pca_and_saves_the_pictures(anomaly_run):
    done = run_zoo("evaluate", anomaly_run.run_dir, "--abnormal-classes", "1,2,3,4,5,6,7,8,9", "-f", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["task"] == "reconstruction" and report["code_size"] == 32 and report["abnormal_count"] > 1000
    assert report["anomaly"]["auc"] >= 0.9 and 0 < report["anomaly"]["average_precision"] <= 1
    assert report["anomaly"]["threshold"] == pytest.approx(read_state(
        anomaly_run.run_dir / "checkpoints" / "best.pt", "evaluate").anomaly_threshold)
    assert report["pca"]["components"] == 32 and {"auc", "average_precision", "threshold", "psnr"} <= set(report["pca"])
    assert report["psnr"] == pytest.approx(anomaly_run.metrics["test"]["psnr"])  # the run's own test figures
    for key in ("reconstructions_png", "errors_png"):
        assert Image.open(report[key]).width > 100
    table = render_evaluation(zoo.evaluate_checkpoint(anomaly_run.run_dir, abnormal_classes=(7,), save=False))
    assert "anomaly ROC AUC" in table and "PCA (32 components)" in table and "class 7 of digits" in table


def test_the_report_of_an_autoencoder_shows_its_figures_beside_pca_and_its_reconstructions(anomaly_run, tmp_path):
    page = zoo.write_report(anomaly_run.run_dir, tmp_path / "report.html").read_text()
    psnr = anomaly_run.metrics["test"]["psnr"]
    assert "Reconstructions (test split)" in page and f"{psnr:.2f} dB / " in page
    assert page.count("data:image/png;base64,") == 2  # the training curves and the reconstructions
    assert "top-1" not in page and "confusion" not in page.lower()


def test_a_folder_of_abnormal_pictures_is_read_through_the_runs_preprocessing(anomaly_run, tmp_path):
    digits = load_digits()
    folder = tmp_path / "sevens"
    folder.mkdir()
    for index in np.flatnonzero(digits.target == 7)[:30]:
        pixels = (digits.images[index] * (255 / 16)).round().astype(np.uint8)
        Image.fromarray(pixels, "L").save(folder / f"{index}.png")
    by_folder = zoo.evaluate_checkpoint(anomaly_run.run_dir, abnormal=folder, save=False)
    assert len(by_folder.abnormal_errors) == 30 and by_folder.anomaly.auc > 0.8
    assert by_folder.abnormal.startswith("every image of")


@pytest.mark.parametrize("options, says", [
    ({"abnormal_classes": (0,)}, "the run trained on it as normal"),
    ({"abnormal_classes": (12,)}, "digits has classes 0 to 9"),
    ({"abnormal_classes": (7,), "abnormal": "."}, "not both"),
    ({"abnormal": "nowhere"}, "--abnormal nowhere: not found; give a folder of abnormal pictures"),
    ({"abnormal": ANOMALY}, "autoencoder_anomaly.yaml: is a file; give a folder"),
    ({"data": "mnist"}, "an autoencoder is measured on its own data's split"),
])
def test_evaluate_refuses_what_an_autoencoder_cannot_be_measured_on(anomaly_run, options, says):
    with pytest.raises(ZooError) as raised:
        zoo.evaluate_checkpoint(anomaly_run.run_dir, save=False, **options)
    assert says in str(raised.value) and "\n" not in str(raised.value)
    for text in ("a,b", "3,3", "-1", ""):
        with pytest.raises(ZooError, match="give distinct class indices"):
            class_indices(text)
    assert class_indices("5,7") == (5, 7)


def test_a_classifier_given_abnormal_pictures_is_refused(tmp_path):
    from zoo.checkpoint import TrainingState, save_checkpoint

    config = load_config(ROOT / "configs" / "lenet5_digits.yaml")
    model = config.model.build(10, 1)
    model.name = "lenet5"
    from zoo.checkpoint import Normalization

    save_checkpoint(TrainingState.of_network(model, config.to_dict(), [str(i) for i in range(10)],
                                             Normalization((0.5,), (0.5,), 32, 1)), tmp_path / "lenet5.pt")
    done = run_zoo("evaluate", tmp_path / "lenet5.pt", "--abnormal-classes", "7")
    assert done.returncode == 2 and "is a classification model; abnormal pictures are for an autoencoder" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_denoising_gains_on_the_noisy_input(tmp_path):
    """The denoising config, shortened: the output is nearer the clean digits than the noisy input it was given."""
    config = load_config(DENOISE, [f"train.output_dir={tmp_path}", "train.epochs=8", "train.threads=1"])
    test = zoo.train(config, quiet=True).metrics["test"]
    assert test["input_psnr"] < 15 and test["psnr"] >= test["input_psnr"] + 3


def test_an_autoencoder_run_resumes_mid_epoch_bit_exact(tmp_path, monkeypatch):
    """Stopped by Ctrl-C mid-epoch (after a step checkpoint) and resumed, a denoising run ends with the weights and
    figures of the run never stopped: the training noise comes from the random state a checkpoint keeps."""
    def config(out):
        return load_config(DENOISE, [f"train.output_dir={out}", "train.epochs=2", "train.threads=1",
                                     "train.deterministic=true", "train.checkpoint_every_steps=5",
                                     "data.classes=[0, 1]"])

    # 9 batches an epoch: epoch 2's fifth, after the checkpoint at step 10
    whole, resumed, run_dir = stopped_and_resumed(config, tmp_path, monkeypatch, 14)
    a, b = (read_state(run / "checkpoints" / "best.pt", "evaluate") for run in (whole.run_dir, run_dir))
    assert all(torch.equal(a.model[key], b.model[key]) for key in a.model)
    assert a.anomaly_threshold == b.anomaly_threshold
    assert resumed.metrics["test"] == {**whole.metrics["test"], **{key: resumed.metrics["test"][key]
                                                                   for key in ("time_s", "images_per_s")}}


def test_the_task_of_a_config_carries_its_noise_and_loss():
    config = load_config(DENOISE, ["reconstruction.loss=mse"])
    task = task_of(config, anomaly_threshold=0.01)
    assert (task.noise, task.loss, task.threshold) == (0.3, "mse", 0.01)
    logits, targets = torch.randn(2, 1, 4, 4), torch.rand(2, 1, 4, 4)
    assert task.eval_criterion()(logits, targets).item() == pytest.approx(
        torch.nn.functional.mse_loss(logits.sigmoid(), targets).item())
    assert task.verdicts(torch.tensor([0.005, 0.02])) == ["normal", "abnormal"]


def test_colourisation_learns_colour_from_gray(tmp_path):
    """Gray in, colour out: on pictures of two colours of different brightness, the output is nearer the colour
    picture than the gray input is, the network takes 1 channel and gives 3, and zoo.load colourises a file."""
    from datafiles import write_colour_folders

    root = write_colour_folders(tmp_path / "colours", {"red": (200, 30, 30), "blue": (30, 60, 220)}, 24, seed=0)
    config = load_config(ROOT / "configs" / "deep_conv_autoencoder_colorize.yaml",
                         [f"data.root={root}", "data.input_size=16", "model.channels=[8, 16]", "train.epochs=25",
                          "data.batch_size=8", f"train.output_dir={tmp_path / 'runs'}", "train.threads=1"])
    assert (config.model.in_channels, config.model.kwargs["out_channels"]) == (1, 3)
    result = zoo.train(config, quiet=True)
    test = result.metrics["test"]
    assert test["psnr"] >= test["input_psnr"] + 3, test
    assert read_state(result.run_dir / "checkpoints" / "best.pt", "evaluate").normalization.in_channels == 1
    colour = zoo.load(result.run_dir).reconstruct([next((root / "red").iterdir())])
    assert colour.shape == (1, 3, 16, 16) and colour[0, 0].mean() > colour[0, 2].mean()  # red, not blue or gray
    report = zoo.evaluate_checkpoint(result.run_dir, save=False)
    assert report.pca is None and report.metrics.psnr == pytest.approx(test["psnr"])
    with pytest.raises(ZooError, match="colourises: its output .colour. is not its input"):  # nothing to score
        zoo.evaluate_checkpoint(result.run_dir, abnormal=root / "blue", save=False)
    with pytest.raises(ZooError, match="colourises"):
        zoo.load(result.run_dir).anomaly_scores([next((root / "red").iterdir())])


def test_colourisation_needs_colour_pictures():
    with pytest.raises(ConfigError, match="digits is stored in gray"):
        load_config(DENOISE, ["reconstruction.colorize=true"])


def test_a_flat_folder_of_normal_pictures_is_one_class(tmp_path):
    """A practitioner's folder of good parts, pictures and no class folders: one class named after the folder for an
    autoencoder; a classifier given it is refused for having one class."""
    digits = load_digits()
    good = tmp_path / "good"
    good.mkdir()
    for index in np.flatnonzero(digits.target == 0)[:40]:
        Image.fromarray((digits.images[index] * (255 / 16)).round().astype(np.uint8), "L").save(good / f"{index}.png")
    (good / ".DS_Store").write_bytes(b"\0")  # hidden: not read
    sets = [f"data.root={good}", "data.name=imagefolder", "data.classes=null", "train.epochs=2",
            f"train.output_dir={tmp_path / 'runs'}", "train.threads=1"]
    result = zoo.train(load_config(ANOMALY, sets), quiet=True)
    assert read_state(result.run_dir / "checkpoints" / "best.pt", "evaluate").classes == ["good"]
    assert result.metrics["test"]["count"] + result.metrics["val"]["count"] < 40
    with pytest.raises(ZooError, match="holds 1 class .good.; a classifier needs at least 2"):
        zoo.train(load_config(ROOT / "configs" / "lenet5_digits.yaml", sets[:2] + sets[3:]), quiet=True)
