"""`zoo train --resume ... --allow-config-change`: every config key, changed on resume, either takes effect (the
resumed run's checkpoint holds the new value, and the learning-rate schedule goes on from where the run is, in
the new config's steps) or is refused in one line before anything is written.
Tests zoo.training.resume's config changes."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from zoo.checkpoint import load_checkpoint
from zoo.config import load_config
from zoo.errors import ZooError
from zoo.metrics import MetricAccumulator
from zoo.training import resume, train
from zoo.training.resume import _flatten

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "lenet5_digits.yaml"
TRAIN_IMAGES = 1_294  # digits: 1,797 less 20% test and 10% of the rest for validation
REFUSED = "refused"

# key -> (the value it changes to, what resuming with it must do: REFUSED, or the value the checkpoint then holds)
CHANGES: dict[str, tuple[str, object]] = {
    "model.name": ("mnist_cnn", REFUSED),  # the weights do not fit another network
    "model.num_classes": ("12", REFUSED),
    "model.in_channels": ("3", REFUSED),
    "data.name": ("mnist", REFUSED),
    "data.root": ("elsewhere", "elsewhere"),  # moved data: its classes must be the run's (digits has no files)
    "data.download": ("false", False),
    "data.manifest": ("other.csv", REFUSED),  # digits reads no manifest: the config refuses it
    "data.label_delimiter": ("/", "/"),  # digits has no label cells; a manifest's changed classes: check_same_data
    "data.max_tokens": ("64", 64),  # digits has no sentences; a text run's vocabulary keeps its training cut
    "task": ("multilabel", REFUSED),
    "multilabel.threshold": ("0.3", REFUSED),  # read only with task multilabel: the config refuses it
    "data.noise": ("0.3", REFUSED),  # read only with task reconstruction: the config refuses them
    "reconstruction.loss": ("mse", REFUSED),
    "reconstruction.false_positive_rate": ("0.1", REFUSED),
    "reconstruction.colorize": ("true", REFUSED),
    "calibration.enabled": ("false", False),  # fitted (or not) as the resumed run ends, as the new config says
    "calibration.familiar_share": ("0.9", 0.9),
    "data.batch_size": ("64", 64),
    "data.eval_batch_size": ("100", 100),
    "data.workers": ("0", 0),
    "data.input_size": ("36", 36),
    "data.normalize": ("false", False),
    "data.mean": ("[0.5]", [0.5]),
    "data.std": ("[0.25]", [0.25]),
    "data.augment": ("false", False),
    "data.crop_padding": ("3", 3),
    "data.hflip": ("true", True),
    "data.val_split": ("0.2", REFUSED),  # another hold-out: test images could have been trained on
    "data.test_split": ("0.3", REFUSED),
    "data.classes": ("[0, 1, 2]", REFUSED),
    "data.synthetic_size": ("64", REFUSED),
    "data.synthetic_classes": ("3", REFUSED),
    "data.loader": ("torchvision", "torchvision"),
    "data.sampler": ("balanced", "balanced"),  # at an epoch boundary: the next epochs draw balanced
    "optimizer.name": ("adam", "adam"),
    "optimizer.lr": ("0.01", 0.01),
    "optimizer.momentum": ("0.5", 0.5),
    "optimizer.nesterov": ("true", True),
    "optimizer.weight_decay": ("0.001", 0.001),
    "optimizer.decay_bias_and_norm": ("false", REFUSED),  # two parameter groups: the saved state does not fit
    "optimizer.betas": ("[0.8, 0.9]", [0.8, 0.9]),
    "optimizer.eps": ("1e-6", 1e-6),
    "optimizer.fused": ("false", False),
    "scheduler.name": ("onecycle", "onecycle"),
    "scheduler.warmup_epochs": ("0.5", 0.5),
    "scheduler.step_size": ("2", 2),
    "scheduler.milestones": ("[2]", [2]),
    "scheduler.gamma": ("0.5", 0.5),
    "scheduler.min_lr": ("0.001", 0.001),
    "scheduler.pct_start": ("0.5", 0.5),
    "init": ("he_normal", REFUSED),  # the weights come from the checkpoint
    "loss.label_smoothing": ("0.1", 0.1),
    "loss.class_weights": ("auto", "auto"),
    "loss.aux_weight": ("0.5", 0.5),
    "train.epochs": ("3", 3),
    "train.seed": ("1", REFUSED),  # the seed draws the hold-out
    "train.deterministic": ("true", True),
    "train.device": ("cpu", "cpu"),
    "train.precision": ("bf16", "bf16"),
    "train.channels_last": ("true", True),
    "train.compile": ("true", True),
    "train.threads": ("1", 1),
    "train.grad_clip": ("1.0", 1.0),
    "train.accumulate_steps": ("2", 2),  # at an epoch boundary: the schedule goes on in the new optimizer steps
    "train.ema": ("{decay: 0.9}", 0.9),  # checked as train.ema.decay: the average starts from the weights
    "train.log_interval": ("2", 2),
    "train.histogram_interval": ("2", 2),
    "train.log_filters": ("true", True),
    "train.max_steps_per_epoch": ("3", 3),
    "train.checkpoint_every_steps": ("2", 2),
    "train.early_stopping": ("{patience: 2}", 2),  # checked as train.early_stopping.patience
    "train.output_dir": ("elsewhere", REFUSED),  # the run goes on in its own directory
    "train.run_name": ("other", REFUSED),
    "train.run_id": ("other", REFUSED),
    "finetune": ("{source: best.pt, freeze: backbone}", REFUSED),  # a source means nothing to a resumed run
    "sweep": ("{seeds: 0-2}", REFUSED),  # zoo sweep's section: a run never reads it
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished 2-epoch run of 5 steps an epoch (LeNet-5 on digits, cosine schedule)."""
    out = tmp_path_factory.mktemp("finished")
    config = load_config(CONFIG, [f"train.output_dir={out}", "train.epochs=2", "train.max_steps_per_epoch=5"])
    return train(config, quiet=True).run_dir


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}


def test_every_config_key_has_a_rule(finished):
    keys = set(_flatten(load_config(CONFIG).to_dict()))
    assert keys == set(CHANGES), (
        f"add a row for {sorted(keys - set(CHANGES))} (or remove {sorted(set(CHANGES) - keys)})")


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(CHANGES))
def test_a_key_changed_on_resume_takes_effect_or_is_refused_in_one_line(finished, key, tmp_path, capsys):
    value, expected = CHANGES[key]
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    overrides = [f"{key}={value}"] + ([] if key == "train.epochs" else ["train.epochs=3"])
    if key in ("data.mean", "data.std"):  # one goes with the other
        overrides += ["data.mean=[0.5]", "data.std=[0.25]"]
    if key != "train.max_steps_per_epoch":
        overrides.append("train.max_steps_per_epoch=5")
    before = _snapshot(run_dir)
    if expected == REFUSED:
        with pytest.raises(ZooError) as refused:
            resume(run_dir, overrides=overrides, allow_config_change=True, quiet=True)
        assert "\n" not in str(refused.value) and key.split(".")[0] in str(refused.value), str(refused.value)
        assert _snapshot(run_dir) == before  # nothing written, nothing overwritten
        return
    result = resume(run_dir, overrides=overrides, allow_config_change=True, quiet=True)
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    stored = _flatten(state["config"])
    checked_as = {"train.early_stopping": "train.early_stopping.patience", "train.ema": "train.ema.decay"}
    assert stored.get(checked_as.get(key, key)) == expected
    assert result.run_dir == run_dir and result.metrics["epochs_run"] == 3 and state["epoch"] == 3
    assert result.metrics["test"]["count"] == 359  # every test image, once: the same hold-out
    assert "config changes (allowed):" in capsys.readouterr().out


def _lrs(run_dir: Path) -> list[float]:
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return [event.value for event in events.Scalars("lr_epoch")]


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_a_larger_batch_on_resume_continues_the_schedule_in_its_own_steps(schedule, tmp_path, capsys):
    # A 2-epoch run at batch 32 (41 steps an epoch), resumed for 4 epochs at batch 128 (11 steps): the schedule
    # goes on at step 2 x 11 of 4 x 11 and ends where a 4-epoch run at batch 128 ends (it used to replay the
    # 82 old steps: onecycle stepped past its end, cosine climbed back up).
    first = train(load_config(CONFIG, [f"train.output_dir={tmp_path}", f"scheduler.name={schedule}", "train.epochs=2",
                                       "data.augment=false"]), quiet=True)
    result = resume(first.run_dir, overrides=["train.epochs=4", "data.batch_size=128"], allow_config_change=True,
                    quiet=True)
    assert "the learning-rate schedule goes on at step 22 of 44 (11 per epoch)" in capsys.readouterr().out
    fresh = train(load_config(CONFIG, [f"train.output_dir={tmp_path / 'fresh'}", f"scheduler.name={schedule}",
                                       "train.epochs=4", "data.batch_size=128", "data.augment=false"]), quiet=True)
    resumed, straight = _lrs(result.run_dir), _lrs(fresh.run_dir)
    assert len(resumed) == 4 and resumed[2:] == pytest.approx(straight[2:], rel=1e-6, abs=1e-9)
    # the 2-epoch schedule had ended; the 4-epoch one decays
    assert resumed[1] < 1e-4 and resumed[3] < resumed[2] > 1e-3
    state = load_checkpoint(result.run_dir / "checkpoints" / "last.pt")
    assert state["step"] == 2 * 41 + 2 * 11 and result.metrics["train"]["images"] == 4 * TRAIN_IMAGES


def test_another_optimizer_on_resume_starts_its_state_afresh(tmp_path, capsys):
    first = train(load_config(CONFIG, [f"train.output_dir={tmp_path}", "train.epochs=1",
                                       "train.max_steps_per_epoch=5"]), quiet=True)
    resume(first.run_dir, overrides=["optimizer.name=adam", "optimizer.lr=0.001", "train.epochs=2",
                                     "train.max_steps_per_epoch=5"], allow_config_change=True, quiet=True)
    assert "optimizer.name: 'sgd' -> 'adam': the new optimizer starts with no state" in capsys.readouterr().out
    state = load_checkpoint(first.run_dir / "checkpoints" / "last.pt")
    moments = next(iter(state["optimizer"]["state"].values()))
    assert {"exp_avg", "exp_avg_sq"} <= set(moments) and float(moments["step"]) == 5  # Adam's, from its first step
    assert "betas" in state["optimizer"]["param_groups"][0]


def test_a_batch_size_change_mid_epoch_is_refused_naming_the_epoch(finished, tmp_path):
    state = load_checkpoint(finished / "checkpoints" / "last.pt")
    state["batch"] = 3  # as a step checkpoint 3 batches into epoch 3 would hold, with the epoch's sums so far
    state["ranks"] = [{**rank, "meter": MetricAccumulator(10).state_dict()} for rank in state["ranks"]]
    mid = tmp_path / "mid.pt"
    torch.save(state, mid)
    with pytest.raises(ZooError, match=r"^--allow-config-change cannot change data.batch_size \(32 -> 64\): the "
                                       r"position in the epoch is counted in batches of the old size; resume without "
                                       r"the change to finish epoch 3"):
        resume(mid, overrides=["data.batch_size=64", "train.epochs=3"], allow_config_change=True)


def test_fewer_epochs_than_done_is_refused(finished):
    with pytest.raises(ZooError, match=r"train.epochs 1: .*last.pt has done 2 epochs already; give at least 3"):
        resume(finished, overrides=["train.epochs=1"], allow_config_change=True)


def test_images_added_between_stop_and_resume_are_refused(tmp_path):
    # They would redraw the held-out splits (test images trained on) and move the position in the epoch.
    from datafiles import write_imagefolder

    photos = write_imagefolder(tmp_path / "photos", {"cat": 12, "dog": 12})
    first = train(load_config(CONFIG, [f"train.output_dir={tmp_path / 'runs'}", "data.name=imagefolder",
                                       f"data.root={photos}", "train.epochs=1", "data.batch_size=8"]), quiet=True)
    assert load_checkpoint(first.run_dir / "checkpoints" / "last.pt")["split_sizes"] == {"train": 17, "val": 2,
                                                                                         "test": 5}
    write_imagefolder(tmp_path / "more", {"cat": 6, "dog": 6}, seed=5)
    for path in (tmp_path / "more").rglob("*.png"):
        path.rename(photos / path.parent.name / f"new_{path.name}")
    before = _snapshot(first.run_dir)
    with pytest.raises(ZooError, match=r"the data changed since .*last.pt was saved \(train 17 -> 26 images; "
                                       r"val 2 -> 3 images; test 5 -> 7 images\): its splits would be drawn again"):
        resume(first.run_dir, overrides=["train.epochs=2"], allow_config_change=True, quiet=True)
    assert _snapshot(first.run_dir) == before


def test_extending_a_finished_schedule_says_what_the_added_epochs_train_at(finished, tmp_path, capsys):
    # A finished cosine of 2 epochs, rebuilt for 3, goes on at step 10 of 15 from 25% of the lr: said, no note. A
    # finished cosine of 10 epochs rebuilt for 11 goes on at 2% of it: the added epoch trains little, and the run
    # says so (it used to go on at lr 0.00025, then 0, without a word).
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)  # the module's run stays a finished 2-epoch one
    resume(run_dir, overrides=["train.epochs=3", "train.max_steps_per_epoch=5"], allow_config_change=True, quiet=True)
    out = capsys.readouterr().out
    assert "the learning-rate schedule goes on at step 10 of 15 (5 per epoch): lr 0.0125 now, " in out
    assert "note: the rest of the schedule" not in out
    ten = train(load_config(CONFIG, [f"train.output_dir={tmp_path}", "train.epochs=10", "train.max_steps_per_epoch=5",
                                     "data.augment=false"]), quiet=True)
    capsys.readouterr()
    resume(ten.run_dir, overrides=["train.epochs=11", "train.max_steps_per_epoch=5"], allow_config_change=True,
           quiet=True)
    out = capsys.readouterr().out
    assert "goes on at step 50 of 55 (5 per epoch): lr 0.00101 now, down to 4.08e-05 by the last step" in out, out
    assert ("note: the rest of the schedule stays below 10% of optimizer.lr 0.05, so the added epochs train little"
            in out)


# ---- what --resume refuses: a checkpoint behind last.pt, a finished run ------------------------------

def _run_of(tmp_path: Path, *sets: str) -> Path:
    return train(load_config(CONFIG, [f"train.output_dir={tmp_path}", "train.max_steps_per_epoch=5",
                                      "data.augment=false", *sets]), quiet=True).run_dir


def test_a_best_pt_behind_last_pt_is_refused_before_anything_is_written(tmp_path, capsys):
    # best.pt of epoch 1 in a run that went on to epoch 2: resuming it used to train epoch 2 again in place,
    # over last.pt, metrics.json, config.yaml and the history, without a word.
    run_dir = _run_of(tmp_path, "train.epochs=1")
    checkpoints = run_dir / "checkpoints"
    epoch_one = (checkpoints / "last.pt").read_bytes()
    resume(run_dir, overrides=["train.epochs=2"], allow_config_change=True, quiet=True)
    (checkpoints / "best.pt").unlink()  # a hard link to last.pt: writing into it would write last.pt
    (checkpoints / "best.pt").write_bytes(epoch_one)  # as best.pt is when epoch 1 validated best
    before = _snapshot(run_dir)
    behind = (rf"^{checkpoints}/best.pt is at the end of epoch 1 \(step 5\), behind the run's "
              rf"{checkpoints}/last.pt at the end of epoch 2 \(step 10\): resuming from it would train again over "
              rf"the later epochs and overwrite them; go on from last.pt with zoo train --resume {run_dir}, or "
              rf"fine-tune from best.pt into a new run with zoo finetune --config {run_dir}/config.yaml "
              rf"--set finetune.source={checkpoints}/best.pt$")
    for overrides, allow in (([], False), (["train.epochs=3"], True)):
        with pytest.raises(ZooError, match=behind) as refused:
            resume(checkpoints / "best.pt", overrides=overrides, allow_config_change=allow, quiet=True)
    assert _snapshot(run_dir) == before
    # The fine-tuning it names starts a new run of the same name (config.yaml's run_name: null was read as 'null').
    config, source = re.search(r"zoo finetune --config (\S+) --set (\S+)$", str(refused.value)).groups()
    tuned = train(load_config(config, [source, f"train.output_dir={tmp_path / 'tuned'}"]), quiet=True)
    assert tuned.run_dir.parent == tmp_path / "tuned" / "lenet5_digits" and tuned.metrics["epochs_run"] == 2
    assert _snapshot(run_dir) == before
    # train.ema's best.pt (weights only) keeps its own message, which names last.pt.
    ema = {key: value for key, value in load_checkpoint(checkpoints / "last.pt").items()
           if key in ("model", "model_name", "num_classes", "config", "classes", "normalization")}
    (checkpoints / "best.pt").unlink()
    torch.save({**ema, "weights": "ema"}, checkpoints / "best.pt")
    with pytest.raises(ZooError, match=rf"best.pt cannot be resumed: it holds train.ema's average .*resume from "
                                       rf"{checkpoints}/last.pt$"):
        resume(checkpoints / "best.pt", quiet=True)
    # A best.pt at last.pt's step is the newest state: it resumes (here extended, since the run is finished).
    (checkpoints / "best.pt").unlink()
    (checkpoints / "best.pt").write_bytes((checkpoints / "last.pt").read_bytes())
    result = resume(checkpoints / "best.pt", overrides=["train.epochs=3"], allow_config_change=True, quiet=True)
    assert result.metrics["epochs_run"] == 3 and load_checkpoint(checkpoints / "last.pt")["step"] == 15


def test_a_finished_run_is_refused_and_the_command_it_names_trains_more(finished, tmp_path, capsys):
    # It used to say "resuming ... at the start of epoch 3", train nothing, and rewrite metrics.json and config.yaml.
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    before = _snapshot(run_dir)
    fix = f"zoo train --resume {run_dir} --set train.epochs=12 --allow-config-change"
    for target in (run_dir, run_dir / "checkpoints" / "last.pt"):
        with pytest.raises(ZooError) as refused:
            resume(target, quiet=True)
        assert str(refused.value) == (f"--resume {target}: the run is finished, there is nothing left to train (it has "
                                      f"done its 2 epochs); to train more: {fix}")
    with pytest.raises(ZooError, match=r"the run is finished"):  # its own config.yaml is the checkpoint's config
        resume(run_dir, config=run_dir / "config.yaml", quiet=True)
    assert _snapshot(run_dir) == before
    capsys.readouterr()
    result = resume(run_dir, overrides=fix.split("--set ")[1].split()[:1], allow_config_change=True, quiet=True)
    assert ("the learning-rate schedule goes on at step 10 of 60 (5 per epoch): lr 0.0467 now, down to "
            in capsys.readouterr().out)
    assert result.metrics["epochs_run"] == 12 and load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] == 60


def test_a_run_early_stopping_ended_is_finished_and_more_patience_trains_on(tmp_path):
    never = "train.early_stopping={metric: val_loss, patience: 2, min_delta: 100}"  # no epoch improves by 100
    run_dir = _run_of(tmp_path / "early", "train.epochs=6", never)
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["epoch"] == 3
    before = _snapshot(run_dir)
    fix = f"zoo train --resume {run_dir} --set train.early_stopping.patience=7 --allow-config-change"
    with pytest.raises(ZooError) as refused:
        resume(run_dir, quiet=True)
    assert str(refused.value) == (f"--resume {run_dir}: the run is finished, there is nothing left to train (early "
                                  "stopping ended it after epoch 3 of 6: val_loss has not improved for 2 epochs "
                                  f"(train.early_stopping.patience 2)); to train more: {fix}")
    # more epochs alone: still stopped
    with pytest.raises(ZooError, match=r"early stopping ended it after epoch 3 of 9"):
        resume(run_dir, overrides=["train.epochs=9"], allow_config_change=True, quiet=True)
    with pytest.raises(ZooError, match=r"train.epochs 3: .*last.pt has done 3 epochs already; give at least 4"):
        resume(run_dir, overrides=["train.epochs=3"], allow_config_change=True, quiet=True)  # as many as done: nothing
    assert _snapshot(run_dir) == before
    result = resume(run_dir, overrides=["train.early_stopping.patience=7"], allow_config_change=True, quiet=True)
    assert result.metrics["epochs_run"] == 6  # 3 more epochs without improvement, to the end of train.epochs
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["progress"]["early_stopping"][1] == 5

    # Stopped at its last epoch: both the epochs and the patience are spent, and the fix names both.
    last_epoch = _run_of(tmp_path / "both", "train.epochs=2", never.replace("patience: 2", "patience: 1"))
    with pytest.raises(ZooError) as refused:
        resume(last_epoch, quiet=True)
    assert str(refused.value).endswith(
        "(its 2 epochs are done and early stopping would stop it at once: val_loss has not improved for 1 epoch "
        f"(train.early_stopping.patience 1)); to train more: zoo train --resume {last_epoch} --set train.epochs=12 "
        "--set train.early_stopping.patience=6 --allow-config-change")


def test_the_schedule_note_says_which_way_the_rest_goes(tmp_path, capsys):
    # A rising rest used to read "2.04e-06 to 0.0237 over the rest", its range taken for the schedule backwards.
    warm = _run_of(tmp_path / "warm", "train.epochs=1", "scheduler.name=none")
    capsys.readouterr()
    resume(warm, overrides=["train.epochs=2", "scheduler.warmup_epochs=2"], allow_config_change=True, quiet=True)
    assert ("goes on at step 5 of 10 (5 per epoch): lr 0.028 now, up to 0.05 by the last step\n"
            in capsys.readouterr().out)
    cycle = _run_of(tmp_path / "cycle", "train.epochs=1", "scheduler.name=onecycle")
    capsys.readouterr()
    resume(cycle, overrides=["train.epochs=4", "scheduler.pct_start=0.5"], allow_config_change=True, quiet=True)
    out = capsys.readouterr().out  # rising to step 10, then falling
    assert ("goes on at step 5 of 20 (5 per epoch): lr 0.0302 now, up to 0.05, then down to 2e-07 by the last step\n"
            in out)
    flat = _run_of(tmp_path / "flat", "train.epochs=1", "scheduler.name=none")
    capsys.readouterr()
    resume(flat, overrides=["train.epochs=2"], allow_config_change=True, quiet=True)
    assert "goes on at step 5 of 10 (5 per epoch): lr 0.05 now and to the last step\n" in capsys.readouterr().out
