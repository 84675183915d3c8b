"""`zoo finetune`: sources (zoo checkpoints, torchvision state_dict files, torchvision's weights API),
freezing, discriminative learning rates, and what travels into the new checkpoint."""

import contextlib
import io
from pathlib import Path

import pytest
import torch
import torchvision
from datafiles import write_imagefolder
from helpers import run_zoo
from test_torchvision_compat import randomize

import zoo
from zoo.checkpoint import load_checkpoint
from zoo.config import FinetuneConfig, OptimizerConfig, load_config
from zoo.errors import ZooError
from zoo.evaluation.evaluate import evaluate_checkpoint
from zoo.training import train
from zoo.training.finetune import Freezer, head_keys, lr_scale, read_source, transplant
from zoo.training.optim import build_optimizer

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "configs" / "lenet5_digits.yaml"


def quiet_train(config):
    with contextlib.redirect_stdout(io.StringIO()) as out:
        result = train(config, quiet=True)
    return result, out.getvalue()


@pytest.fixture(scope="module")
def digits_source(tmp_path_factory):
    """LeNet-5 trained on the digits 0-4: the source of the transfer tests."""
    out = tmp_path_factory.mktemp("source")
    result, _ = quiet_train(load_config(DIGITS, [f"train.output_dir={out}", "data.classes=[0,1,2,3,4]",
                                                 "train.epochs=4"]))
    return result.run_dir / "checkpoints" / "best.pt"


@pytest.fixture(scope="module")
def feature_extraction(digits_source, tmp_path_factory):
    out = tmp_path_factory.mktemp("finetuned")
    config = load_config(DIGITS, [f"train.output_dir={out}", "data.classes=[5,6,7,8,9]", "train.epochs=1",
                                  f"finetune.source={digits_source}", "finetune.freeze=backbone"])
    return quiet_train(config)


def test_the_load_report_is_printed(feature_extraction):
    _, printed = feature_extraction
    assert "keys loaded 8, skipped 2 (classifier.4.weight, classifier.4.bias), missing 0" in printed
    assert "parameters: 425 trainable, 60,856 frozen (freeze: backbone)" in printed


def test_frozen_parameters_are_bit_for_bit_unchanged_and_the_head_trained(digits_source, feature_extraction):
    result, _ = feature_extraction
    before = load_checkpoint(digits_source)["model"]
    after = load_checkpoint(result.run_dir / "checkpoints" / "last.pt")["model"]
    for key, value in after.items():
        if key.startswith("classifier.4."):
            assert value.shape[0] == 5 and not torch.equal(value, before[key])
        else:
            assert torch.equal(value, before[key]), key


def test_fine_tuned_checkpoint_carries_the_new_classes_and_evaluates(feature_extraction):
    result, _ = feature_extraction
    state = load_checkpoint(result.run_dir / "checkpoints" / "best.pt")
    assert state["classes"] == ["5", "6", "7", "8", "9"] and state["num_classes"] == 5
    report = evaluate_checkpoint(result.run_dir / "checkpoints" / "best.pt")
    assert report.classes == ["5", "6", "7", "8", "9"]
    assert report.metrics.accuracy == result.metrics["test"]["accuracy"] > 0.5  # well above chance (0.2)


def test_evaluating_on_more_classes_than_the_checkpoint_predicts_is_refused(feature_extraction):
    result, _ = feature_extraction
    with pytest.raises(ZooError,
                       match="digits has 10 classes but .*best.pt predicts 5; evaluate on the data it was trained on"):
        evaluate_checkpoint(result.run_dir / "checkpoints" / "best.pt", overrides=["data.classes=null"])


def test_unfreezing_at_an_epoch_trains_everything_from_then_on(digits_source, tmp_path):
    config = load_config(DIGITS, [f"train.output_dir={tmp_path}", "data.classes=[5,6,7,8,9]", "train.epochs=2",
                                  f"finetune.source={digits_source}", "finetune.freeze=backbone",
                                  "finetune.unfreeze_at_epoch=2"])
    result, printed = quiet_train(config)
    assert "epoch 2: every layer trains from now on" in printed
    before = load_checkpoint(digits_source)["model"]["features.0.weight"]
    assert not torch.equal(load_checkpoint(result.run_dir / "checkpoints" / "last.pt")["model"]["features.0.weight"],
                           before)


def test_frozen_batch_norm_keeps_its_running_statistics(tmp_path):
    out = tmp_path / "runs"
    synthetic = ["data.name=synthetic", "data.synthetic_size=32", "data.batch_size=8", "train.epochs=1",
                 f"train.output_dir={out}"]
    source, _ = quiet_train(load_config(ROOT / "configs" / "resnet56_cifar10.yaml",
                                        [*synthetic, "model.name=resnet20"]))
    checkpoint = source.run_dir / "checkpoints" / "best.pt"
    tuned, _ = quiet_train(load_config(ROOT / "configs" / "resnet56_cifar10.yaml", [
        *synthetic, "model.name=resnet20", "data.synthetic_classes=4", f"finetune.source={checkpoint}",
        "finetune.freeze=until:layer2"]))
    before, after = (load_checkpoint(checkpoint)["model"],
                     load_checkpoint(tuned.run_dir / "checkpoints" / "last.pt")["model"])
    for key in ("bn1.running_mean", "layer1.0.bn1.running_var", "layer2.2.bn2.weight", "layer2.2.bn2.running_mean"):
        assert torch.equal(before[key], after[key]), key
    for key in ("layer3.0.bn1.running_mean", "layer3.2.conv2.weight"):
        assert not torch.equal(before[key], after[key]), key


def test_backbone_lr_multiplier_gives_the_head_the_full_lr():
    model = zoo.create_model("resnet18", num_classes=5)
    optimizer = build_optimizer(model, OptimizerConfig(lr=0.1), lr_scale(model, 0.01))
    by_lr = sorted((round(group["lr"], 6), sum(p.numel() for p in group["params"])) for group in optimizer.param_groups)
    assert by_lr == [(0.001, 11_689_512 - 513_000), (0.1, 512 * 5 + 5)]


@pytest.fixture(scope="module")
def torchvision_file(tmp_path_factory):
    reference = randomize(torchvision.models.resnet18(weights=None)).eval()
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    return reference, path


def test_a_torchvision_state_dict_file_loads_and_the_backbone_matches(torchvision_file):
    reference, path = torchvision_file
    model = zoo.create_model("resnet18", num_classes=5).eval()
    report = transplant(model, read_source(str(path), "resnet18"))
    assert sorted(report.skipped) == ["fc.bias", "fc.weight"] and not report.missing and not report.problems
    assert len(report.loaded) == len(reference.state_dict()) - 2
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = reference.layer4(reference.layer3(reference.layer2(reference.layer1(
            reference.maxpool(reference.relu(reference.bn1(reference.conv1(x))))))))
        assert torch.equal(model.forward_features(x), expected)


def test_fine_tuning_a_torchvision_file_on_an_imagefolder(torchvision_file, tmp_path):
    _, path = torchvision_file
    root = write_imagefolder(tmp_path / "photos", {f"class{i}": 6 for i in range(5)}, size=(48, 40))
    config = load_config(ROOT / "configs" / "finetune_resnet18_imagefolder.yaml", [
        f"finetune.source={path}", f"data.root={root}", "data.input_size=64", "data.batch_size=8", "train.epochs=1",
        "finetune.unfreeze_at_epoch=null", "train.max_steps_per_epoch=1", f"train.output_dir={tmp_path / 'runs'}"])
    result, printed = quiet_train(config)
    assert "skipped 2 (fc.weight, fc.bias)" in printed
    state = load_checkpoint(result.run_dir / "checkpoints" / "best.pt")
    assert state["classes"] == [f"class{i}" for i in range(5)] and state["model"]["fc.weight"].shape == (5, 512)
    assert state["normalization"]["mean"] == pytest.approx([0.485, 0.456, 0.406])  # ImageNet's, as the weights expect


def test_a_mismatched_source_names_the_first_keys(torchvision_file):
    _, path = torchvision_file
    model = zoo.create_model("resnet34", num_classes=5)
    with pytest.raises(ZooError, match=r"does not fit resnet34: layer1.2.conv1.weight is missing from the source"):
        transplant(model, read_source(str(path), "resnet34"))
    report = transplant(model, read_source(str(path), "resnet34"), strict=False)
    assert report.loaded and "layer3.5.conv1.weight" in report.missing


def test_a_zoo_checkpoint_of_another_model_is_refused(digits_source):
    with pytest.raises(ZooError, match="holds a lenet5, not a resnet18; set model.name: lenet5"):
        read_source(str(digits_source), "resnet18")


def test_torchvision_weights_api_offline_and_from_the_cache(torchvision_file, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cached = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(ZooError,
                       match=rf"cannot download .*resnet18-f37072fd.pth \(offline\?\); .* place it at {cached}"):
        read_source("torchvision:ResNet18_Weights.IMAGENET1K_V1", "resnet18")
    cached.parent.mkdir(parents=True, exist_ok=True)  # the failed download made it
    cached.write_bytes(torchvision_file[1].read_bytes())
    source = read_source("torchvision:ResNet18_Weights.IMAGENET1K_V1", "resnet18")
    assert "fc.weight" in source.state and len(source.classes) == 1000
    assert list(source.normalization.mean) == pytest.approx([0.485, 0.456, 0.406])


@pytest.mark.parametrize(("spec", "model", "message"), [
    ("torchvision:ResNet18_Weights.NOPE", "resnet18",
     "unknown torchvision weights 'ResNet18_Weights.NOPE'; e.g. torchvision:ResNet18_Weights.IMAGENET1K_V1"),
    ("torchvision:VGG16_Weights.IMAGENET1K_V1", "resnet18",
     "are weights for another network; resnet18 takes torchvision:ResNet18_Weights.IMAGENET1K_V1"),
    ("torchvision:ResNet18_Weights.IMAGENET1K_V1", "lenet5", "lenet5 has no torchvision counterpart"),
])
def test_bad_torchvision_specs(spec, model, message):
    with pytest.raises(ZooError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        read_source(spec, model)


def test_freeze_until_a_module_that_does_not_exist():
    with pytest.raises(ZooError, match="resnet18 has no module 'layer9'; its top-level modules are conv1, bn1, relu, "
                                       "maxpool, layer1"):
        Freezer(zoo.create_model("resnet18"), "until:layer9")


def test_freeze_spec_is_validated_in_the_config():
    with pytest.raises(ValueError, match="must be none, backbone or until:<module name>"):
        FinetuneConfig(source="x.pt", freeze="half")


def test_head_keys_cover_googlenets_auxiliary_heads():
    assert head_keys(zoo.create_model("googlenet", aux_logits=True)) == {
        "fc.weight", "fc.bias", "aux1.fc2.weight", "aux1.fc2.bias", "aux2.fc2.weight", "aux2.fc2.bias"}


def test_zoo_finetune_needs_a_finetune_section():
    result = run_zoo("finetune", "--config", DIGITS)
    assert result.returncode == 2
    assert result.stderr.strip().startswith(f"error: {DIGITS} has no finetune section; add finetune.source")


def test_the_epoch_line_shows_the_heads_lr_and_tensorboard_each_groups(digits_source, tmp_path):
    # With backbone_lr_mult 0.1 the first parameter group is the backbone's: showing it read 10x too low.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = load_config(DIGITS, [f"train.output_dir={tmp_path}", "data.classes=[5,6,7,8,9]", "train.epochs=2",
                                  "scheduler.name=none", "optimizer.lr=0.01", "train.log_interval=5",
                                  f"finetune.source={digits_source}", "finetune.backbone_lr_mult=0.1"])
    result, printed = quiet_train(config)
    assert printed.count("  lr 0.01  ") == 2
    events = EventAccumulator(str(result.run_dir), size_guidance={"scalars": 0})
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert {"lr/head", "lr/backbone", "lr_epoch/head", "lr_epoch/backbone"} <= set(scalars) and "lr" not in scalars
    assert events.Scalars("lr/head")[0].value == pytest.approx(0.01)
    assert events.Scalars("lr_epoch/backbone")[-1].value == pytest.approx(0.001)
