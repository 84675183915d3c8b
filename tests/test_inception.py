"""zoo.models.inception (Inception v3) against torchvision's: layout, outputs, auxiliary head, initialization, the
input sizes it takes, its summary and Grad-CAM layer, and the seams it shares with GoogLeNet (the aux loss, the
fine-tuning of aux heads, the weights' input statistics).

The auxiliary head runs only in training and at 299x299 and up, so the tests that run it use two 299x299 images on
the CPU (about a second a forward pass); the others build on the meta device or run at 75x75."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.models as tvm
from conftest import build_on_meta, count_params
from helpers import cache_torchvision_weights
from PIL import Image
from test_torchvision_compat import load_into_ours, randomize, torchvision_model
from torch import nn

import zoo
from zoo.cli import main
from zoo.config import load_config
from zoo.inference.explain import find_stages, heatmaps
from zoo.loop import Compute, TrainStep
from zoo.summary import summarize
from zoo.training.finetune import Source, head_keys, read_source, transplant

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "inception_v3_cifar10.yaml"
WITHOUT_AUX, WITH_AUX = 23_834_568, 27_161_264  # torchvision's count (its weights' num_params) is the second


@pytest.fixture(scope="module")
def net() -> nn.Module:
    return zoo.create_model("inception_v3", num_classes=5, aux_logits=True, dropout=0.0)


def test_the_default_builder_is_the_papers_without_the_aux_head():
    info, model = zoo.get_model_info("inception_v3"), build_on_meta("inception_v3")
    assert (info.input_size, info.num_classes, info.min_input_size, info.torchvision) == (
        (3, 299, 299), 1000, 75, "inception_v3")
    assert info.paper.link == "arXiv:1512.00567" and info.reference.matches(WITHOUT_AUX)
    assert model.AuxLogits is None and not any(key.startswith("AuxLogits") for key in model.state_dict())
    assert model.head_paths == ("fc",) and build_on_meta("inception_v3", aux_logits=True).head_paths == (
        "fc", "AuxLogits.fc")


def test_parameter_counts_with_and_without_the_aux_head_are_torchvisions():
    with torch.device("meta"):
        reference = tvm.inception_v3(weights=None, aux_logits=True, init_weights=False)
    assert count_params(build_on_meta("inception_v3")) == WITHOUT_AUX
    assert count_params(build_on_meta("inception_v3", aux_logits=True)) == WITH_AUX == count_params(reference)
    assert tvm.Inception_V3_Weights.IMAGENET1K_V1.meta["num_params"] == WITH_AUX


def test_outputs_and_the_aux_head_equal_torchvisions_in_training_and_evaluation():
    reference = torchvision_model("inception_v3", aux_logits=True, dropout=0.0)
    ours = load_into_ours("inception_v3", reference, aux_logits=True, dropout=0.0)
    assert list(ours.state_dict()) == list(reference.state_dict())
    x = torch.randn(2, 3, 299, 299)
    with torch.no_grad():
        expected = reference.train()(x)  # InceptionOutputs(logits, aux_logits): batch statistics
        logits, (aux,) = ours.train()(x, return_aux=True)
        assert expected.aux_logits.std() > 0.1 and expected.logits.std() > 0.1
        assert (logits - expected.logits).abs().max() < 1e-5 and (aux - expected.aux_logits).abs().max() < 1e-5
        expected, actual = reference.eval()(x[:1]), ours.eval()(x[:1])
    assert expected.std() > 0.1 and (actual - expected).abs().max() < 1e-5


def test_a_seed_gives_torchvisions_initialization():
    torch.manual_seed(7)
    reference = tvm.inception_v3(weights=None, aux_logits=True, init_weights=True).state_dict()
    torch.manual_seed(7)
    ours = zoo.create_model("inception_v3", aux_logits=True).state_dict()
    assert all(torch.equal(ours[key], value) for key, value in reference.items())
    assert 0.09 < ours["Mixed_6b.branch7x7_2.conv.weight"].std() < 0.11  # std 0.1, where PyTorch's default is 0.03
    assert ours["AuxLogits.fc.weight"].std() < 0.0011 and ours["Mixed_5b.branch1x1.bn.weight"].eq(1).all()


def test_the_aux_logits_come_only_in_training_when_asked_for(net):
    x = torch.randn(1, 3, 75, 75)  # evaluation takes any size from 75 up, aux head built or not
    with torch.no_grad():
        logits, aux = net.eval()(x, return_aux=True)
        assert logits.shape == (1, 5) and aux == [] and torch.equal(net(x), logits)


def test_a_training_step_adds_loss_aux_weight_times_the_aux_loss(net):
    weight = load_config(CONFIG).loss.aux_weight
    assert weight == 0.4  # Google's training code's, set by the shipped config
    optimizer = torch.optim.SGD(net.parameters(), lr=0.0)
    step = TrainStep(optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0),
                     torch.amp.GradScaler(enabled=False), nn.CrossEntropyLoss(), Compute(torch.device("cpu")),
                     aux_weight=weight)
    outputs = []  # what the step's forward pass gave: (logits, [aux logits])
    hook = net.register_forward_hook(lambda module, args, output: outputs.append(output))
    try:
        loss, logits = step.backward(net.train(), torch.randn(2, 3, 299, 299), y := torch.tensor([1, 3]))
    finally:
        hook.remove()
    (main, (aux,)), criterion = outputs[0], nn.CrossEntropyLoss()
    assert main is logits and torch.allclose(loss, criterion(main, y) + weight * criterion(aux, y))
    assert loss > criterion(main, y) and net.AuxLogits.conv0.conv.weight.grad.abs().sum() > 0  # it reached the head


@pytest.mark.parametrize(("aux", "size", "message"), [
    (False, 74, "inception_v3 needs inputs of at least 75x75, got 74x74"),
    (True, 298, "inception_v3's auxiliary head needs inputs of at least 299x299 in training"),
])
def test_inputs_below_the_minimum_fail_in_one_line_before_any_layer(aux, size, message):
    model = build_on_meta("inception_v3", aux_logits=aux).train()
    with pytest.raises(zoo.ZooError, match=message) as error:
        model(torch.empty(1, 3, size, size, device="meta"), return_aux=True)
    assert "\n" not in str(error.value)


def test_the_config_and_the_summary_refuse_a_size_the_aux_head_cannot_train_at(monkeypatch, capsys):
    with pytest.raises(zoo.ZooError, match=r"data.input_size: .*auxiliary head .* model.aux_logits: false"):
        load_config(CONFIG, ["data.input_size=96"])
    assert load_config(CONFIG, ["data.input_size=96", "model.aux_logits=false"]).data.input_size == 96
    monkeypatch.setattr(sys, "argv", ["zoo", "summary", "inception_v3", "--aux", "--input-size", "3", "96", "96"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "299x299" in err


def test_the_summary_gives_torchvisions_macs_and_marks_the_aux_head_training_only():
    plain, aux = summarize("inception_v3"), summarize("inception_v3", aux=True)
    assert round(plain.totals.macs / 1e6) == 5_713  # torchvision's published 5.713 GFLOPS (MACs)
    assert plain.reference.matches and plain.totals.params == WITHOUT_AUX
    assert (aux.totals.params, aux.totals_without_aux.params) == (WITH_AUX, WITHOUT_AUX)
    assert aux.totals_without_aux.macs == plain.totals.macs < aux.totals.macs
    assert {row.name.split(".")[0] for row in aux.layers if row.training_only} == {"AuxLogits"}


def test_reset_classifier_resets_the_aux_head_too():
    model = build_on_meta("inception_v3", aux_logits=True)
    model.reset_classifier(3)
    assert model.fc.out_features == model.AuxLogits.fc.out_features == 3 == model.num_classes
    assert model.AuxLogits.conv1.conv.out_channels == 768  # only the final layers change


def test_explain_finds_mixed_7c_for_grad_cam():
    model = zoo.create_model("inception_v3", num_classes=5).eval()
    x = torch.randn(1, 3, 75, 75)
    backbone = find_stages(model, x)
    assert backbone.default == "Mixed_7c" and [s.name for s in backbone.stages][:2] == ["Conv2d_1a_3x3",
                                                                                         "Conv2d_2a_3x3"]
    heat = heatmaps(model, x, [2], "gradcam", backbone.default)
    assert heat.shape == (1, 75, 75) and torch.isfinite(heat).all()


@pytest.mark.filterwarnings("ignore:for .*copying from a non-meta parameter")  # meta models: shapes and keys only
def test_fine_tuning_skips_the_sources_aux_head_where_the_model_builds_none():
    with torch.device("meta"):
        state = tvm.inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict()
    plain = build_on_meta("inception_v3", num_classes=10)
    report = transplant(plain, Source(state, "torchvision's layout"))
    assert {key.split(".")[0] for key in report.skipped} == {"fc", "AuxLogits"} and not report.problems
    with_aux = build_on_meta("inception_v3", num_classes=10, aux_logits=True)
    report = transplant(with_aux, Source(state, "torchvision's layout"))
    assert set(report.skipped) == head_keys(with_aux) and "AuxLogits.conv0.conv.weight" in report.loaded
    without = {key: value for key, value in state.items() if not key.startswith("AuxLogits")}
    report = transplant(build_on_meta("inception_v3", num_classes=10, aux_logits=True), Source(without, "no aux"))
    assert "AuxLogits.conv1.conv.weight" in report.missing and not report.problems  # a new aux head, as a new head


def test_torchvision_weights_predict_as_torchvisions_inception_with_transform_input(tmp_path, monkeypatch):
    """torchvision's builder turns ImageNet-normalized input into (x - 0.5) / 0.5 for Google's weights; zoo's network
    takes its input as it comes, and the preprocessing normalizes with those statistics (INPUT_STATISTICS)."""
    reference = randomize(tvm.inception_v3(weights=None, aux_logits=False, init_weights=False,
                                           transform_input=True)).eval()
    weights = tvm.Inception_V3_Weights.IMAGENET1K_V1
    cache_torchvision_weights(weights, reference.state_dict(), tmp_path, monkeypatch)
    photo = tmp_path / "photo.png"
    pixels = np.random.default_rng(0).normal((90, 140, 200), 40, (320, 360, 3))
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(photo)
    with torch.no_grad(), Image.open(photo) as image:
        expected = reference(weights.transforms()(image.convert("RGB")).unsqueeze(0)).softmax(1)[0]
    prediction = zoo.load(f"torchvision:{weights}").predict(photo, top_k=3)[0]
    assert list(prediction.indices) == expected.topk(3).indices.tolist()
    assert prediction.probabilities == pytest.approx(expected.topk(3).values.tolist(), abs=1e-5)
    source = read_source(f"torchvision:{weights}", "inception_v3")  # fine-tuning normalizes the same way
    assert source.normalization.mean == (0.5, 0.5, 0.5) and source.normalization.std == (0.5, 0.5, 0.5)
