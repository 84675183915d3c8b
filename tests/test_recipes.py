"""The training recipes of data.augment (policies, jitter, rotation, random erasing, Mixup/CutMix), train.ema and
train.accumulate_steps: what each computes, both data paths, and how a run reports and saves them.
Tests zoo.data.transforms, zoo.training.ema and zoo.loop's TrainStep."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import digits_config
from torch import nn
from torchvision.transforms import v2

import zoo.training.run
from zoo.checkpoint import load_checkpoint, read_state
from zoo.config import AugmentConfig, DataConfig, EmaConfig, load_config
from zoo.data import build_datasets, build_loaders
from zoo.data.transforms import augmentation, batch_mixing
from zoo.errors import ZooError
from zoo.evaluation.evaluate import evaluate_checkpoint
from zoo.loop import Compute, EpochResult, TrainStep
from zoo.metrics import Metrics
from zoo.training import train
from zoo.training.ema import WeightAverage, horizon_note
from zoo.training.hooks import better

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "lenet5_digits.yaml"


DETERMINISTIC = "train.deterministic=true"  # the runs here: the digits config, deterministic


class Tiny(nn.Sequential):
    """A zoo-style network (forward takes return_aux) for steps by hand."""

    def forward(self, images, return_aux=False):
        logits = super().forward(images)
        return (logits, []) if return_aux else logits


# ---- gradient accumulation ---------------------------------------------------------------------------

def test_four_batches_of_8_step_as_one_batch_of_32(tmp_path):
    # LeNet-5 has no batch norm, so the gradient of 32 images is the mean of four batches' of 8: the same steps.
    # Same images in the same order (the sampler's permutation), 2 epochs of 5 optimizer steps, momentum and a
    # cosine schedule counted in optimizer steps.
    common = ["data.augment=false", "train.epochs=2", "train.max_steps_per_epoch=5", "scheduler.name=cosine"]
    whole = train(digits_config(tmp_path / "whole", DETERMINISTIC, *common, "data.batch_size=32"), quiet=True)
    split = train(digits_config(tmp_path / "split", DETERMINISTIC, *common, "data.batch_size=8",
                                "train.accumulate_steps=4"), quiet=True)
    a, b = (load_checkpoint(run.run_dir / "checkpoints" / "last.pt") for run in (whole, split))
    assert a["step"] == b["step"] == 10 and split.metrics["train"]["images"] == whole.metrics["train"]["images"] == 320
    for key in a["model"]:
        torch.testing.assert_close(b["model"][key], a["model"][key], rtol=0, atol=1e-6)
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 10


def test_the_epochs_last_optimizer_step_takes_the_batches_left(tmp_path):
    # 41 batches of 32 an epoch in steps of 4: ten of 4 batches and one of 1, which is not lost.
    result = train(digits_config(tmp_path, DETERMINISTIC, "train.epochs=1", "train.accumulate_steps=4"), quiet=True)
    assert result.metrics["train"]["steps"] == 11 and result.metrics["train"]["images"] == 1_294


def test_accumulation_steps_the_optimizer_only_at_each_groups_last_batch():
    model = Tiny(nn.Linear(4, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    step = TrainStep(optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0),
                     torch.amp.GradScaler(enabled=False), nn.CrossEntropyLoss(), Compute(torch.device("cpu")),
                     accumulate_steps=3)
    images, targets = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    weight = model[0].weight
    before = weight.detach().clone()
    step.backward(model, images[:2], targets[:2], 1 / 3, first=True)
    step.backward(model, images[2:4], targets[2:4], 1 / 3, first=False)
    assert torch.equal(weight, before)  # gradients gathered, no step yet
    step.backward(model, images[4:], targets[4:], 1 / 3, first=False)
    expected = torch.autograd.grad(nn.functional.cross_entropy(model(images), targets), weight)[0]
    torch.testing.assert_close(weight.grad, expected, rtol=1e-6, atol=1e-7)
    step.update(model)
    torch.testing.assert_close(weight.detach(), before - 0.1 * expected)


# ---- EMA ---------------------------------------------------------------------------------------------

def test_the_average_follows_its_formula_with_a_linear_warmup():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    average = WeightAverage(model, EmaConfig(decay=0.9, warmup_steps=4))
    assert [average.decay(n) for n in (1, 2, 4, 8)] == pytest.approx([0.225, 0.45, 0.9, 0.9])
    expected = None
    for update in range(1, 7):
        with torch.no_grad():
            model[0].weight.add_(torch.randn_like(model[0].weight))
        model.train()(torch.randn(5, 3))  # moves batch norm's running statistics, which are averaged too
        current = {key: value.detach().clone() for key, value in model.state_dict().items()}
        decay = average.decay(update)
        expected = current if expected is None else {
            key: (decay * expected[key] + (1 - decay) * value if value.is_floating_point() else value)
            for key, value in current.items()}
        average.update(model)
    averaged = average.module.state_dict()
    for key, value in expected.items():
        torch.testing.assert_close(averaged[key], value, rtol=1e-6, atol=1e-6)
    assert average.updates == 6 and int(average.state_dict()["n_averaged"]) == 6


def _result(accuracy: float, loss: float) -> EpochResult:
    metrics = Metrics(loss=loss, accuracy=accuracy, top5_accuracy=None, count=100,
                      confusion=torch.zeros(2, 2, dtype=torch.long))
    return EpochResult(metrics, 1.0, 100)


def test_the_better_weights_win_a_tie_goes_to_the_lower_loss_then_to_the_raw_ones():
    raw, ema = _result(0.9, 0.5), _result(0.92, 0.6)
    assert better(raw, ema) == (ema, "ema")
    assert better(ema, raw) == (ema, "raw")
    assert better(_result(0.9, 0.5), _result(0.9, 0.4))[1] == "ema"
    assert better(_result(0.9, 0.4), _result(0.9, 0.4))[1] == "raw"
    assert better(None, None) == (None, "ema") and better(raw, None) == (raw, "raw")


def test_a_run_evaluates_the_average_beside_the_weights_and_says_which_best_pt_holds(tmp_path, capsys):
    result = train(digits_config(tmp_path, DETERMINISTIC, "train.epochs=2", "train.ema={decay: 0.9, warmup_steps: 10}"),
                   quiet=True)
    out = capsys.readouterr().out
    assert out.count("ema val loss") == 2
    assert result.metrics["best_weights"] in ("raw", "ema")
    best = load_checkpoint(result.run_dir / "checkpoints" / "best.pt")
    assert best["weights"] == result.metrics["best_weights"]
    last = load_checkpoint(result.run_dir / "checkpoints" / "last.pt")
    assert int(last["ema"]["n_averaged"]) == last["step"] == 82 and last["weights"] == "raw"


def test_when_the_average_wins_best_pt_holds_it_and_the_test_split_is_measured_on_it(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo.training.run, "better", lambda val, ema_val: (ema_val, "ema"))
    result = train(digits_config(tmp_path, DETERMINISTIC, "train.epochs=2", "train.ema={decay: 0.9}"), quiet=True)
    assert result.metrics["best_weights"] == "ema" and result.metrics["best_epoch"] == 2
    checkpoints = result.run_dir / "checkpoints"
    best, last = load_checkpoint(checkpoints / "best.pt"), load_checkpoint(checkpoints / "last.pt")
    assert best["weights"] == "ema" and "optimizer" not in best
    for key, value in best["model"].items():
        assert torch.equal(value, last["ema"][f"module.{key}"]), key
        assert not torch.equal(value, last["model"][key]) or not value.is_floating_point()
    again = evaluate_checkpoint(checkpoints / "best.pt", "test")
    assert again.metrics.accuracy == pytest.approx(result.metrics["test"]["accuracy"])
    with pytest.raises(ZooError, match=r"cannot be resumed: it holds train.ema's average of the weights, .*resume from "
                                       r".*checkpoints/last.pt$"):
        read_state(checkpoints / "best.pt", "resume")


def test_an_average_that_outlasts_the_run_gets_a_note():
    assert horizon_note(EmaConfig(decay=0.9998), 820).startswith(
        "note: train.ema.decay 0.9998 averages over about 5,000 optimizer steps and this run has 820")
    assert "--set train.ema.decay=0.9878" in horizon_note(EmaConfig(decay=0.9998), 820)
    assert horizon_note(EmaConfig(decay=0.99), 820) is None
    long_warmup = horizon_note(EmaConfig(decay=0.9, warmup_steps=2000), 82)  # the decay would end at 0.037
    assert long_warmup.startswith("note: train.ema.warmup_steps 2,000 is over half this run's 82 optimizer steps: "
                                  "the decay reaches 0.037 of 0.9") and long_warmup.endswith("train.ema.warmup_steps=8")
    assert horizon_note(EmaConfig(decay=0.9, warmup_steps=8), 82) is None


# ---- augmentation ------------------------------------------------------------------------------------

AUGMENT = AugmentConfig(policy="trivialaugment", color_jitter=0.3, rotation=10, random_erasing=0.5)


def test_both_data_paths_run_the_same_torchvision_steps_in_the_same_order():
    config = DataConfig(name="mnist", augment=AUGMENT, hflip=False)
    crop_flip, stored, erasing = augmentation(config, 32)
    assert [type(step) for step in crop_flip] == [v2.RandomCrop]
    assert [type(step) for step in stored] == [v2.ColorJitter, v2.RandomRotation, v2.TrivialAugmentWide]
    assert [type(step) for step in erasing] == [v2.RandomErasing] and erasing[0].p == 0.5
    from zoo.data.transforms import image_transforms

    train_transform, _ = image_transforms([v2.Pad([2, 2, 2, 2])], config, 32, ((0.5,), (0.25,)))
    names = [type(step).__name__ for step in train_transform.transforms]
    assert names == ["ToImage", "Pad", "RandomCrop", "ColorJitter", "RandomRotation", "TrivialAugmentWide", "ToDtype",
                     "Normalize", "RandomErasing", "ToPureTensor"]


@pytest.mark.parametrize("augment", [True, {"color_jitter": 0.2}, {"rotation": 5}, {"policy": "augmix"},
                                     {"random_erasing": 0.1}, {"mixup_alpha": 0.2}])
def test_per_image_is_whether_augmentation_builds_per_image_steps(augment):
    config = DataConfig(name="cifar10", augment=augment)
    _, stored, erasing = augmentation(config, 32)
    assert config.augmentation.per_image == bool(stored or erasing)


@pytest.mark.parametrize("loader", ["memory", "torchvision"])
def test_each_image_of_a_batch_draws_its_own_policy(loader):
    # A v2 transform given a whole batch draws one operation for all of it; the in-memory path must not.
    config = DataConfig(name="digits", augment=AugmentConfig(policy="trivialaugment", random_erasing=1.0),
                        crop_padding=0, hflip=False, loader=loader, batch_size=64)
    splits = build_datasets(config, in_channels=1, input_size=32, seed=0)
    plain = DataConfig(name="digits", loader=loader, batch_size=64)
    torch.manual_seed(0)
    train_loader = build_loaders(splits, config, seed=0)[0]
    train_loader.sampler.set_epoch(1)
    augmented, _ = next(iter(train_loader))
    reference = build_loaders(build_datasets(plain, in_channels=1, input_size=32, seed=0), plain, seed=0)[0]
    reference.sampler.set_epoch(1)
    original, _ = next(iter(reference))
    changed = (augmented - original).abs().flatten(1)
    erased = (augmented == 0).flatten(1).float().mean(1)  # random erasing writes 0s, the mean, in a box
    assert augmented.shape == original.shape and (changed.amax(1) > 0).all()
    assert erased.std() > 0.01  # boxes of different sizes: drawn per image, not once for the batch


def test_mixup_and_cutmix_give_soft_targets_that_the_loss_takes(tmp_path):
    mix = batch_mixing(AugmentConfig(mixup_alpha=0.4, cutmix_alpha=1.0, switch_prob=0.25), num_classes=3)
    assert isinstance(mix, v2.RandomChoice) and mix.p == [0.75, 0.25]
    assert batch_mixing(AugmentConfig(policy="trivialaugment"), 3) is None
    torch.manual_seed(1)
    images, labels = torch.rand(8, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    mixed, soft = mix(images, labels)
    assert soft.shape == (8, 3) and torch.allclose(soft.sum(1), torch.ones(8)) and not torch.equal(mixed, images)

    model = Tiny(nn.Flatten(), nn.Linear(16, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    only_mixup = batch_mixing(AugmentConfig(mixup_alpha=0.4), 3)
    step = TrainStep(optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0),
                     torch.amp.GradScaler(enabled=False), nn.CrossEntropyLoss(), Compute(torch.device("cpu")),
                     mix=only_mixup)
    torch.manual_seed(2)
    loss, logits = step.backward(model, images, labels)
    torch.manual_seed(2)
    mixed, soft = only_mixup(images, labels)
    assert soft.max() < 1  # mixed, not one-hot
    torch.testing.assert_close(loss, nn.functional.cross_entropy(model(mixed), soft))


def test_a_mixed_run_reports_training_accuracy_against_the_labels_and_says_so(tmp_path, capsys):
    result = train(digits_config(tmp_path, DETERMINISTIC, "train.epochs=1",
                                 "data.augment={mixup_alpha: 0.2, cutmix_alpha: 1.0}"), quiet=True)
    assert "the training loss is against the mixed targets, the training accuracy against each image's own label" \
        in capsys.readouterr().out
    assert 0 < result.metrics["test"]["accuracy"] <= 1


@pytest.mark.parametrize("sets, message", [
    (["data.augment={policy: randaug}"], "data.augment.policy: unknown policy 'randaug'; choose one of none, "
                                         "randaugment, trivialaugment, autoaugment, augmix; did you mean randaugment?"),
    (["data.augment={polcy: trivialaugment}"], "data.augment.polcy: unknown key; did you mean data.augment.policy?"),
    (["data.augment={magnitude: 5}"], "data.augment: magnitude is a setting of policy randaugment, and the policy is "
                                      "none; set policy: randaugment, or remove magnitude"),
    (["data.augment={mixup_alpha: 0.2, switch_prob: 0.9}"], "data.augment: switch_prob chooses between Mixup and "
                                                              "CutMix; it needs mixup_alpha and cutmix_alpha above 0"),
    (["data.augment=sometimes"], "data.augment: input should be a valid boolean"),
    (["data.augment=false", "data.augment.policy=augmix"], "--set data.augment.policy: data.augment is False, not a "
                                                            "section; give the section whole, e.g. --set "
                                                            "'data.augment={policy: ...}'"),
    (["train.accumulate_steps=0"], "train.accumulate_steps: input should be greater than 0"),
    (["train.ema={decay: 1}"], "train.ema.decay: input should be less than 1"),
])
def test_bad_recipe_values_are_one_line_naming_the_key(sets, message):
    with pytest.raises(ZooError) as error:
        load_config(CONFIG, sets)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_augment_true_and_a_key_of_the_section_mean_the_section(tmp_path):
    config = load_config(CONFIG, ["data.augment.policy=randaugment", "data.augment.magnitude=5"])
    assert config.data.augmentation == AugmentConfig(policy="randaugment", magnitude=5)
    saved = config.to_dict()["data"]["augment"]
    assert load_config(CONFIG, [f"data.augment={json.dumps(saved)}"]).data.augment == config.data.augment  # as stored


# ---- the run's own records ---------------------------------------------------------------------------

def test_history_csv_has_a_row_per_epoch_and_a_short_run_still_logs_steps(tmp_path):
    import csv

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = train(digits_config(tmp_path, DETERMINISTIC, "train.epochs=3", "train.max_steps_per_epoch=4",
                                 "train.log_interval=50", "train.ema={decay: 0.9}"), quiet=True)
    with (result.run_dir / "history.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [row["epoch"] for row in rows] == ["1", "2", "3"]
    assert {"train_loss", "val_accuracy", "ema_val_accuracy", "lr", "images_per_s"} <= set(rows[0])
    best = rows[result.metrics["best_epoch"] - 1]
    column = "val_accuracy" if result.metrics["best_weights"] == "raw" else "ema_val_accuracy"
    assert float(best[column]) == pytest.approx(result.metrics["val"]["accuracy"])
    assert 0 < float(rows[0]["lr"]) <= 0.05
    events = EventAccumulator(str(result.run_dir), size_guidance={"scalars": 0})
    events.Reload()
    assert len(events.Scalars("train/batch_loss")) == 12  # 12 steps, fewer than 20: every one logged


# ---- the vanishing-gradient lesson's configs ---------------------------------------------------------------

def test_the_xor_lesson_runs_under_their_own_names_with_no_note_on_pictures(tmp_path, capsys):
    """xor's batches are [4, 2] bits, not 2-channel pictures: nothing is converted to gray, and no note says so;
    each lesson config writes under its own name, so that TensorBoard shows the sigmoid run beside the ReLU one."""
    names = []
    for lesson in ("xor_mlp_sigmoid_deep", "xor_mlp_relu_he"):
        config = load_config(ROOT / "configs" / f"{lesson}.yaml",
                             [f"train.output_dir={tmp_path}", "train.epochs=1", "train.max_steps_per_epoch=2"])
        result = train(config, quiet=True)
        names.append(result.run_dir.parent.name)
        err = capsys.readouterr().err
        assert "gray" not in err and "colour" not in err, err
        assert "xor: 2 classes (0, 1): train 512, val 4, test 4 samples" in err.splitlines()
    assert names == ["xor_sigmoid_deep", "xor_relu_he"]
