"""zoo.metrics.calibration and zoo.metrics.familiarity (temperature scaling, conformal prediction sets, the unfamiliar
score), their place in best.pt, exports, zoo predict and zoo calibrate. zoo evaluate's and zoo report's figures are
tests/test_calibration_evaluate.py's."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
from helpers import digits_config, run_zoo, stopped_and_resumed

import zoo
from zoo.checkpoint import read_state
from zoo.errors import ZooError
from zoo.metrics.calibration import (
    Calibration,
    Conformal,
    conformal_threshold,
    conformity_scores,
    coverage_and_size,
    fit_temperature,
    prediction_sets,
    top1_ece,
)
from zoo.metrics.familiarity import FEATURES_PER_CHANNEL, Familiarity, energy, ledoit_wolf, pixel_features
from zoo.metrics.trust import compute_trust

# ---- the figures ---------------------------------------------------------------------------------------


def _overconfident(n: int, classes: int = 5, scale: float = 6.0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of a model right about 70% of the time yet sure of itself (its logits `scale` times too large)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    logits = torch.randn(n, classes, generator=g)
    logits[torch.arange(n), labels] += 1.5
    return logits * scale, labels


def test_the_temperature_minimises_the_validation_nll_and_keeps_every_top1():
    logits, labels = _overconfident(2000)
    found = fit_temperature(logits, labels)
    grid = torch.exp(torch.linspace(math.log(0.5), math.log(50), 4001))
    nll = torch.stack([torch.nn.functional.cross_entropy(logits.double() / t, labels) for t in grid])
    assert found == pytest.approx(float(grid[nll.argmin()]), rel=2e-3)
    assert found > 3  # the logits are 6 times too large: it softens them
    calibrated = Calibration(found, Conformal([0.5]), None).probabilities(logits)
    assert torch.equal(calibrated.argmax(1), logits.argmax(1))
    assert top1_ece(calibrated, labels) < top1_ece(logits.softmax(1), labels) / 3


def test_a_validation_split_without_a_mistake_keeps_the_temperature_at_1():
    logits, labels = _overconfident(300)
    right = logits.argmax(1) == labels
    assert fit_temperature(logits[right], labels[right]) == 1.0  # the NLL would fall all the way to T = 0.05
    assert fit_temperature(logits, labels) != 1.0


def test_top1_ece_is_the_trust_figures_ece():
    logits, labels = _overconfident(500, scale=2.0)
    trust = compute_trust(logits, labels, [str(k) for k in range(5)])
    assert top1_ece(logits.double().softmax(1), labels) == pytest.approx(trust.ece, abs=1e-12)


def test_conformal_threshold_is_the_ceil_n_plus_1_quantile():
    scores = [0.1 * k for k in range(1, 10)]  # n = 9
    assert conformal_threshold(scores, 0.9) == pytest.approx(0.9)  # ceil(10 x 0.9) = 9th smallest
    assert conformal_threshold(scores, 0.5) == pytest.approx(0.5)  # ceil(5) = 5th
    assert conformal_threshold(scores, 0.95) == math.inf  # ceil(9.5) = 10 > 9: nothing smaller than every class


def test_prediction_sets_by_hand():
    p = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3]])
    # RAPS with penalty 0.01 past rank 1: S = [0.6, 0.91, 1.02] and [0.5, 0.81, 1.02]
    assert prediction_sets(p, 0.95) == [[0, 1], [1, 2]]
    assert prediction_sets(p, 0.4) == [[0], [1]]  # never empty: the top-1 class stays
    assert prediction_sets(p, math.inf) == [[0, 1, 2], [1, 2, 0]]
    assert conformity_scores(p, torch.tensor([1, 0])) == pytest.approx([0.91, 1.02])


@pytest.mark.parametrize("coverage", [0.8, 0.9, 0.99])
def test_split_conformal_covers_exchangeable_pictures(coverage):
    """The guarantee, on 200 random splits of exchangeable data: mean coverage at least the target."""
    logits, labels = _overconfident(1200, scale=1.0, seed=1)
    probabilities = logits.softmax(1)
    covered, sizes = [], []
    for seed in range(200):
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
        calib, test = order[:300], order[300:]
        tau = conformal_threshold(conformity_scores(probabilities[calib], labels[calib]), coverage)
        share, size = coverage_and_size(prediction_sets(probabilities[test], tau), labels[test])
        covered.append(share)
        sizes.append(size)
    assert np.mean(covered) >= coverage - 0.005
    assert 1 <= np.mean(sizes) < 5  # shorter than every class


@pytest.mark.parametrize(("n", "d"), [(50, 20), (1294, 20), (300, 60), (10, 30)])
def test_ledoit_wolf_is_scikit_learns(n, d):
    from sklearn.covariance import LedoitWolf

    x = np.random.default_rng(n).normal(size=(n, d)) @ np.random.default_rng(d).normal(size=(d, d)) + 3
    assert np.allclose(ledoit_wolf(x), LedoitWolf().fit(x).covariance_, rtol=1e-10, atol=1e-12)


def test_pixel_features_per_channel():
    images = torch.rand(6, 3, 32, 32)
    features = pixel_features(images)
    assert features.shape == (6, 3 * FEATURES_PER_CHANNEL) and features.dtype == torch.float64
    assert torch.allclose(features[:, 0], images[:, 0].mean((1, 2)).double(), atol=1e-6)
    assert torch.allclose(features[:, 1], images[:, 0].std((1, 2), correction=0).double(), atol=1e-6)
    flat = torch.zeros(1, 1, 8, 8)
    assert pixel_features(flat)[0, 2:4].tolist() == [0.0, 0.0]  # no edges in a blank picture


def test_familiarity_lets_its_share_pass_and_flags_what_differs():
    g = torch.Generator().manual_seed(0)
    pictures = lambda n, shift=0.0: torch.rand(n, 1, 16, 16, generator=g) * 0.5 + shift  # noqa: E731
    logits = lambda n: torch.randn(n, 4, generator=g) * 3  # noqa: E731
    val_logits, val_pixels = logits(400), pixel_features(pictures(400))
    familiarity = Familiarity.fit(pixel_features(pictures(1000)), val_logits, val_pixels, 0.9)
    passed = (familiarity.scores(val_logits, val_pixels) <= familiarity.threshold).double().mean()
    assert 0.9 <= passed <= 0.92  # the "higher" quantile: at least the share
    fresh = familiarity.scores(logits(500), pixel_features(pictures(500)))
    assert 0.03 < (fresh > familiarity.threshold).double().mean() < 0.2
    shifted = familiarity.scores(logits(500), pixel_features(pictures(500, shift=0.5)))
    assert (shifted > familiarity.threshold).double().mean() == 1.0
    assert torch.allclose(energy(torch.zeros(2, 4)), torch.full((2,), -math.log(4), dtype=torch.float64))


def test_a_calibration_round_trips_and_damage_is_named():
    logits, labels = _overconfident(300)
    pixels = pixel_features(torch.rand(300, 1, 8, 8))
    calibration = Calibration.fit(logits, labels, pixels, pixel_features(torch.rand(50, 1, 8, 8)), 0.95)
    again = Calibration.from_dict(json.loads(json.dumps(calibration.to_dict())), FEATURES_PER_CHANNEL)
    assert again == calibration
    bad = calibration.to_dict()
    for key, value, said in (("temperature", float("nan"), "temperature"), ("temperature", 0.0, "outside"),
                             ("conformal", {"scores": [0.9, 0.1]}, "not sorted")):
        with pytest.raises(ValueError, match=said):
            Calibration.from_dict({**bad, key: value})
    with pytest.raises(ValueError, match="pixel statistics"):
        Calibration.from_dict(bad, 3 * FEATURES_PER_CHANNEL)


# ---- a run ---------------------------------------------------------------------------------------------

def test_a_run_keeps_its_calibration_in_best_pt_and_metrics(digits_run):
    state = read_state(digits_run.run_dir / "checkpoints" / "best.pt", "weights")
    calibration = state.calibration
    assert calibration is not None and 0.05 < calibration.temperature < 20
    assert calibration.conformal.count == 144  # the main job's validation split
    assert len(calibration.familiarity.mean) == FEATURES_PER_CHANNEL  # 1 channel
    metrics = digits_run.metrics
    assert metrics["calibration"]["temperature"] == calibration.temperature
    assert metrics["conformal"]["target"] == 0.9 and metrics["conformal"]["coverage"] >= 0.88
    assert metrics["conformal"]["mean_set_size"] >= 1
    assert 0 <= metrics["unfamiliar"]["test_flagged"] <= 0.15


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """300 of scikit-learn's digits as PNGs in two kinds: light on dark (as the model learnt) and dark on light,
    64 x 64 RGB, as ../shared/cases/turn3/h04_inverted_digits.sh makes them."""
    from PIL import Image
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("kinds")
    digits = load_digits()
    for name, invert in (("light_on_dark", False), ("dark_on_light", True)):
        (root / name).mkdir()
        for i in range(0, 1797, 6):
            a = (digits.images[i] * 255 / 16).round().astype(np.uint8)
            Image.fromarray(255 - a if invert else a).resize((64, 64), Image.Resampling.NEAREST).convert("RGB").save(
                root / name / f"{i:04d}.png")
    return root


def test_predict_flags_the_inverted_digits_and_gives_sets(digits_run, pictures):
    out = run_zoo("predict", digits_run.run_dir, pictures / "dark_on_light", "-f", "json", "--coverage", "0.9")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    rows = report["predictions"]
    assert report["unfamiliar_count"] == sum(row["unfamiliar"] for row in rows) >= 0.9 * len(rows)
    assert all(row["set"] and row["set"][0] == row["labels"][0] for row in rows)  # the top-1 class is in its set
    assert all(row["unfamiliar_score"] > report["unfamiliar_threshold"] for row in rows if row["unfamiliar"])
    assert f"{report['unfamiliar_count']} of 300 pictures are unfamiliar" in out.stderr
    familiar = json.loads(run_zoo("predict", digits_run.run_dir, pictures / "light_on_dark", "-f", "json").stdout)
    assert sum(row["unfamiliar"] for row in familiar["predictions"]) <= 0.15 * 300
    assert "set" not in familiar["predictions"][0]


def test_calibration_changes_no_top1_of_zoo_load(digits_run, pictures):
    predictor = zoo.load(digits_run.run_dir)
    batch = torch.stack([predictor.prepare(path) for path in sorted((pictures / "light_on_dark").iterdir())[:64]])
    raw = predictor.logits(batch)
    predictions = predictor.predict(batch, top_k=3, coverage=0.99)
    assert [p.indices[0] for p in predictions] == raw.argmax(1).tolist()
    expected = (raw / predictor.calibration.temperature).softmax(1).max(1).values
    assert [p.probability for p in predictions] == pytest.approx(expected.tolist(), abs=1e-6)
    assert all(len(p.set) >= 1 for p in predictions)


def test_a_coverage_that_is_no_fraction_is_refused(digits_run, pictures):
    out = run_zoo("predict", digits_run.run_dir, pictures / "light_on_dark" / "0000.png", "--coverage", "1.5")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "fraction between 0 and 1" in out.stderr
    predictor = zoo.load(digits_run.run_dir)
    for value in (0.0, 1.0, -0.1, float("nan")):
        with pytest.raises(ZooError, match="fraction between 0 and 1"):
            predictor.predict(pictures / "light_on_dark" / "0000.png", coverage=value)


def test_an_old_checkpoint_predicts_with_a_note_and_zoo_calibrate_adds_the_same(digits_run, pictures, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(digits_run.run_dir, old)
    best = old / "checkpoints" / "best.pt"
    data = torch.load(best, weights_only=True)
    del data["calibration"], data["config"]["calibration"]  # as a checkpoint written before calibration was added
    torch.save(data, best)
    (old / "metrics.json").write_text(json.dumps({"test": digits_run.metrics["test"]}))  # nor its metrics.json
    picture = pictures / "dark_on_light" / "0000.png"
    out = run_zoo("predict", old, picture, "-f", "json")
    assert out.returncode == 0 and "has no calibration" in out.stderr and "zoo calibrate" in out.stderr
    assert "unfamiliar" not in json.loads(out.stdout)["predictions"][0]
    refused = run_zoo("predict", old, picture, "--coverage", "0.9")
    assert refused.returncode == 2 and "zoo calibrate" in refused.stderr and refused.stderr.count("\n") == 1
    exported = tmp_path / "old.onnx"  # its export is as old: the same note, and the fix says to export again
    assert run_zoo("export", old, "-f", "onnx", "-o", exported).returncode == 0
    assert "has no calibration" in run_zoo("predict", exported, picture).stderr
    refused = run_zoo("predict", exported, picture, "--coverage", "0.9")
    assert refused.returncode == 2 and "run zoo calibrate on its run directory" in refused.stderr
    assert "then zoo export again" in refused.stderr
    not_a_checkpoint = run_zoo("calibrate", exported)
    assert not_a_checkpoint.returncode == 2 and "is an export" in not_a_checkpoint.stderr
    done = run_zoo("calibrate", old, "-f", "json")
    assert done.returncode == 0, done.stderr
    assert read_state(best, "weights").calibration == read_state(
        digits_run.run_dir / "checkpoints" / "best.pt", "weights").calibration  # what the run fitted, exactly
    assert json.loads(done.stdout)["calibration"]["temperature"] == digits_run.metrics["calibration"]["temperature"]
    updated = json.loads((old / "metrics.json").read_text())  # as the run wrote them, for zoo report
    for key in ("calibration", "conformal", "unfamiliar"):
        assert updated[key] == pytest.approx(digits_run.metrics[key])
    again = run_zoo("calibrate", old)
    assert again.returncode == 0 and "replacing the calibration it had" in again.stdout


def test_a_coverage_no_validation_split_can_promise_is_said(digits_run, pictures):
    out = run_zoo("predict", digits_run.run_dir, pictures / "light_on_dark" / "0000.png", "--coverage", "0.995",
                  "-f", "json")
    assert out.returncode == 0 and "more than 144 validation pictures can promise (at most 99.31%" in out.stderr
    assert len(json.loads(out.stdout)["predictions"][0]["set"]) == 10


def test_an_onnx_export_says_how_many_pictures_are_unfamiliar(digits_run, pictures, tmp_path):
    exported = tmp_path / "model.onnx"
    assert run_zoo("export", digits_run.run_dir, "-f", "onnx", "-o", exported).returncode == 0
    out = run_zoo("predict", exported, pictures / "dark_on_light", "-f", "csv")
    assert out.returncode == 0 and "300 of 300 pictures are unfamiliar" in out.stderr
    assert out.stdout.splitlines()[0].startswith("path,unfamiliar,unfamiliar_score,class_1")


def test_exports_carry_the_calibration(digits_run, pictures, tmp_path):
    picture = sorted((pictures / "dark_on_light").iterdir())[:8]
    expected = zoo.load(digits_run.run_dir).predict(picture, coverage=0.9)
    for suffix in ("onnx", "safetensors"):
        target = tmp_path / f"model.{suffix}"
        assert run_zoo("export", digits_run.run_dir, "-f", suffix, "-o", target).returncode == 0
        got = zoo.load(target).predict(picture, coverage=0.9)
        assert [p.unfamiliar for p in got] == [p.unfamiliar for p in expected]
        assert [p.set for p in got] == [p.set for p in expected]
        assert [p.unfamiliar_score for p in got] == pytest.approx([p.unfamiliar_score for p in expected], rel=1e-4)


def test_a_damaged_calibration_is_one_line(digits_run, tmp_path):
    best = tmp_path / "best.pt"
    data = torch.load(digits_run.run_dir / "checkpoints" / "best.pt", weights_only=True)
    data["calibration"]["temperature"] = -1.0
    torch.save(data, best)
    with pytest.raises(ZooError, match="damaged: its calibration temperature is -1.0"):
        read_state(best, "weights")


def test_calibration_off_and_no_validation_split(tmp_path):
    off = zoo.train(digits_config(tmp_path / "off", "train.epochs=1", "calibration.enabled=false"), quiet=True)
    assert read_state(off.run_dir / "checkpoints" / "best.pt", "weights").calibration is None
    assert "calibration" not in off.metrics
    out = run_zoo("train", "--config", "configs/lenet5_digits.yaml", "--quiet", "--set", "train.epochs=1",
                  "--set", "data.val_split=0", "--set", f"train.output_dir={tmp_path / 'noval'}")
    assert out.returncode == 0 and "no validation split" in out.stderr and "calibrated" not in out.stdout
    out = run_zoo("train", "--config", "configs/lenet5_digits.yaml", "--quiet", "--set", "train.epochs=1",
                  "--set", f"train.output_dir={tmp_path / 'one'}")
    assert out.returncode == 0 and "calibrated on the validation split: temperature" in out.stdout


def test_a_resumed_run_fits_the_calibration_an_uninterrupted_one_does(tmp_path, monkeypatch):
    whole, resumed, _ = stopped_and_resumed(lambda out: digits_config(out, "train.epochs=2"), tmp_path, monkeypatch, 50)
    kept = [read_state(r.run_dir / "checkpoints" / "best.pt", "weights").calibration for r in (whole, resumed)]
    assert kept[0] is not None and kept[0] == kept[1]
    assert whole.metrics["unfamiliar"] == resumed.metrics["unfamiliar"]


def test_explain_gives_the_calibrated_probabilities_and_the_unfamiliar_flag(digits_run, pictures, tmp_path):
    picture = pictures / "dark_on_light" / "0000.png"
    out = run_zoo("explain", digits_run.run_dir, picture, "-o", tmp_path, "--top-k", "1")
    assert out.returncode == 0, out.stderr
    probability = zoo.load(digits_run.run_dir).predict(picture, top_k=1)[0].probability
    assert f"{probability:.1%} (unfamiliar: unlike the training data)" in out.stdout


def test_the_runs_closing_line_says_when_the_temperature_was_kept():
    """A validation split without a mistake keeps T = 1 (fit_temperature): the line says so, where an unchanged ECE
    would otherwise read as a step that failed."""
    from zoo.training.run import _calibration_line

    metrics = {"calibration": {"temperature": 1.0, "ece_before": 0.4628, "ece_after": 0.4628},
               "conformal": {"target": 0.9, "coverage": 0.95, "mean_set_size": 1.2}}
    assert "temperature 1.000 (kept: no validation mistake to fit it on) (test ECE 46.28% -> 46.28%)" in \
        _calibration_line(metrics)
    metrics["calibration"]["temperature"] = 1.159
    assert "temperature 1.159 (test ECE" in _calibration_line(metrics)
