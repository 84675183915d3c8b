"""DenseNet and MobileNet: the CIFAR DenseNet-BC against the paper, the memory-efficient DenseNet against the plain
one, depthwise convolutions' MACs against torchvision's published figures, the size refusal, Grad-CAM's layer,
torchvision's old DenseNet keys and its seeded weights, and the commands (summary, train on digits, explain).

torchvision's state dicts loading and giving the same outputs: test_torchvision_compat.py.

Tests zoo.models.densenet and zoo.models.mobilenet.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.models as tvm
from conftest import build_on_meta, count_params
from helpers import ROOT, cache_torchvision_weights, run_zoo
from PIL import Image
from sklearn.datasets import load_digits
from torch import nn

import zoo
from zoo.cli import main
from zoo.config import load_config
from zoo.inference.explain import explain, find_stages
from zoo.models.densenet import DenseLayer, rename_legacy_keys
from zoo.models.layers import ACTIVATIONS
from zoo.models.mobilenet import SqueezeExcitation, make_divisible
from zoo.summary import summarize
from zoo.training import train

# torchvision's published operation counts at 224x224 (weights meta "_ops": GFLOPS meaning GMACs).
TORCHVISION_GMACS = {"mobilenet_v2": 0.301, "mobilenet_v3_large": 0.217, "mobilenet_v3_small": 0.057,
                     "densenet121": 2.834, "densenet161": 7.728, "densenet169": 3.36, "densenet201": 4.291}
# The smallest side each takes, and Grad-CAM's default layer: the last stage at the last convolution's map size.
MINIMUM_AND_LAYER = {
    "densenet121": (32, "features.norm5"), "densenet161": (32, "features.norm5"),
    "densenet169": (32, "features.norm5"), "densenet201": (32, "features.norm5"),
    "densenet_bc_100": (4, "features.norm5"),  # two transitions halve the map
    "mobilenet_v2": (32, "features.18"), "mobilenet_v3_large": (32, "features.16"),
    "mobilenet_v3_small": (32, "features.12"),
}
DIGITS_CONFIG = ROOT / "configs" / "mobilenet_v2_digits.yaml"


def test_densenet_bc_100_is_the_papers_cifar_network():
    """Huang et al. 2017, section 3: a 3x3 convolution to 2k = 24 maps, 3 blocks of 16 bottleneck layers (1x1 to 4k,
    3x3 to k = 12), transitions keeping half the maps; depth 100; Table 2's 0.8M parameters."""
    model = zoo.create_model("densenet_bc_100").eval()
    features = model.features
    assert list(features._modules) == ["conv0", "denseblock1", "transition1", "denseblock2", "transition2",
                                       "denseblock3", "norm5"]
    assert (features.conv0.out_channels, features.conv0.kernel_size, features.conv0.stride) == (24, (3, 3), (1, 1))
    blocks = [features.denseblock1, features.denseblock2, features.denseblock3]
    layers = [layer for block in blocks for layer in block.values()]
    assert len(layers) == 48 and all(isinstance(layer, DenseLayer) for layer in layers)
    assert {(layer.conv1.out_channels, layer.conv2.out_channels) for layer in layers} == {(48, 12)}
    assert (features.transition1.conv.in_channels, features.transition1.conv.out_channels) == (24 + 16 * 12, 108)
    assert (features.transition2.conv.in_channels, features.transition2.conv.out_channels) == (108 + 16 * 12, 150)
    assert model.classifier.in_features == 150 + 16 * 12 == 342
    assert sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules()) == 100  # L, the depth
    assert count_params(model) == 769_162 and round(769_162 / 1e6, 1) == 0.8
    with torch.no_grad():
        assert model.forward_features(torch.randn(1, 3, 32, 32)).shape == (1, 342, 8, 8)  # 32, 16 and 8 pixels


def _saved_bytes(model: nn.Module, x: torch.Tensor) -> tuple[int, torch.Tensor]:
    """The bytes of the tensors autograd keeps for the backward pass of model(x) (each storage once), and the output."""
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = model(x)
    return sum(storages.values()), out


def test_memory_efficient_densenet_gives_the_same_gradients_and_statistics_and_keeps_less():
    plain = zoo.create_model("densenet_bc_100").train()
    efficient = zoo.create_model("densenet_bc_100", memory_efficient=True).train()
    efficient.load_state_dict(plain.state_dict())
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
    kept = []
    for model in (plain, efficient):
        saved, logits = _saved_bytes(model, x)
        nn.functional.cross_entropy(logits, y).backward()
        kept.append(saved)
    for (name, a), b in zip(plain.named_parameters(), efficient.parameters()):
        assert a.grad.abs().sum() > 0 and torch.equal(a.grad, b.grad), name
    # The recomputed bottleneck does not count the batch twice in the running statistics (torchvision's does).
    efficient_state = efficient.state_dict()
    assert all(torch.equal(value, efficient_state[key]) for key, value in plain.state_dict().items())
    assert kept[1] < 0.5 * kept[0]  # 2,128.5 -> 772.8 MiB at 64 x 3 x 32 x 32


@pytest.mark.parametrize(("name", "gmacs"), TORCHVISION_GMACS.items())
def test_macs_match_torchvisions_published_figures(name, gmacs):
    assert round(summarize(name).totals.macs / 1e9, 3) == gmacs


def test_a_depthwise_convolution_costs_one_filter_per_map():
    """Course 002's MobileNet: a depthwise 3x3 on C maps costs 9 C H W MACs, not the 9 C C H W of a full one;
    MobileNetV2's 300.77 MMACs (torchvision's 0.30 GFLOPS) count each that way."""
    summary = summarize("mobilenet_v2", depth=5)
    rows = {row.name: row for row in summary.layers}
    depthwise = rows["features.1.conv.0.0"]  # the first block's, on the stem's 32 maps of 112 x 112
    assert depthwise.output_shape == (32, 112, 112) and depthwise.params == 9 * 32
    assert depthwise.macs == 9 * 32 * 112 * 112 == 3_612_672
    assert summary.totals.macs == 300_774_272 and round(summary.totals.macs / 1e6, 2) == 300.77


@pytest.mark.parametrize("name", MINIMUM_AND_LAYER)
def test_a_smaller_input_is_refused_in_one_line_before_any_layer_runs(name):
    size = MINIMUM_AND_LAYER[name][0]
    model = build_on_meta(name)
    assert model.min_input_size == zoo.get_model_info(name).min_input_size == size
    with pytest.raises(zoo.ZooError, match=rf"^{name} needs inputs of at least {size}x{size}, got {size - 1}x{size}; "):
        model(torch.empty(1, 3, size - 1, size, device="meta"))


@pytest.mark.parametrize("name", MINIMUM_AND_LAYER)
def test_gradcam_finds_its_layer_at_32x32(name):
    model = build_on_meta(name, num_classes=10).to_empty(device="cpu").eval()
    with torch.no_grad():  # shapes are all find_stages reads: zeros will do
        for tensor in [*model.parameters(), *model.buffers()]:
            tensor.zero_()
    backbone = find_stages(model, torch.zeros(1, 3, 32, 32))
    assert backbone.default == MINIMUM_AND_LAYER[name][1]


def test_mobilenet_v2_small_input_keeps_a_4x4_map_at_32x32_and_the_same_weights():
    small, default = build_on_meta("mobilenet_v2", small_input=True), build_on_meta("mobilenet_v2")
    assert small.features[0][0].stride == (1, 1) and small.features[2].conv[1][0].stride == (1, 1)
    assert {k: v.shape for k, v in small.state_dict().items()} == {k: v.shape for k, v in default.state_dict().items()}
    assert small.min_input_size == 8
    model = zoo.create_model("mobilenet_v2", num_classes=10, small_input=True).eval()
    with torch.no_grad():
        assert model.forward_features(torch.randn(1, 3, 32, 32)).shape == (1, 1280, 4, 4)


def test_torchvisions_old_densenet_keys_are_renamed():
    """torchvision's published DenseNet files name a layer's modules norm.1, conv.2 ... (before dots were refused) and
    predate batch norm's num_batches_tracked, which torch fills in on loading."""
    ours = build_on_meta("densenet121")
    state = {key: value for key, value in ours.state_dict().items() if not key.endswith("num_batches_tracked")}
    keys = list(state)
    old = {re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", key): value
           for key, value in state.items()}
    assert "features.denseblock1.denselayer1.norm.1.weight" in old and "features.transition1.norm.weight" in old
    renamed = rename_legacy_keys(old)
    assert list(renamed) == keys
    result = ours.load_state_dict(renamed, strict=True, assign=True)
    assert not result.missing_keys and not result.unexpected_keys


@pytest.mark.parametrize("name", ["densenet121", "mobilenet_v2", "mobilenet_v3_small"])
def test_a_seed_gives_torchvisions_weights(name):
    """The same modules built in the same order with torchvision's initialization draw the same numbers."""
    torch.manual_seed(0)
    reference = getattr(tvm, name)(weights=None).state_dict()
    torch.manual_seed(0)
    ours = zoo.create_model(name).state_dict()
    assert list(ours) == list(reference)
    assert all(torch.equal(ours[key], value) for key, value in reference.items())


@pytest.mark.parametrize(("name", "width_mult"), [("mobilenet_v2", 0.5), ("mobilenet_v2", 1.4),
                                                  ("mobilenet_v3_large", 0.75), ("mobilenet_v3_small", 0.5)])
def test_width_multiplier_rounds_maps_as_torchvision(name, width_mult):
    with torch.device("meta"):
        reference = getattr(tvm, name)(weights=None, width_mult=width_mult)
    ours = build_on_meta(name, width_mult=width_mult)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in reference.state_dict().items()}


def test_mobilenet_v3_squeeze_excitation_and_activations():
    large = build_on_meta("mobilenet_v3_large")
    se = [m for m in large.modules() if isinstance(m, SqueezeExcitation)]
    assert len(se) == 8  # Table 1's SE rows
    first = se[0]  # the block expanding 24 to 72 maps
    assert isinstance(first.fc1, nn.Conv2d) and first.fc1.weight.shape == (make_divisible(72 / 4), 72, 1, 1) == (
        24, 72, 1, 1)
    assert isinstance(first.scale_activation, nn.Hardsigmoid)

    def count(model: nn.Module, kind: type[nn.Module]) -> int:
        return sum(type(m) is kind for m in model.modules())

    # The paper's: ReLU in the first 6 blocks (2 each, 1 in the first) and in SE, hard-swish in the rest and the head.
    assert (count(large, nn.ReLU), count(large, nn.Hardswish)) == (11 + 8, 1 + 2 * 9 + 1 + 1)
    swish = build_on_meta("mobilenet_v3_large", activation="swish")
    assert count(swish, nn.SiLU) == 11 + 8 + 21 and count(swish, nn.ReLU) == count(swish, nn.Hardswish) == 0
    assert count(swish, nn.Hardsigmoid) == 8  # SE's gate stays
    assert {k: v.shape for k, v in swish.state_dict().items()} == {k: v.shape for k, v in large.state_dict().items()}
    assert count(build_on_meta("mobilenet_v2"), nn.ReLU6) == 1 + 1 + 2 * 16 + 1
    with pytest.raises(zoo.ZooError, match="unknown activation 'swsh'"):
        build_on_meta("mobilenet_v2", activation="swsh")


@pytest.mark.parametrize(("name", "size"), [("densenet_bc_100", 8), ("mobilenet_v2", 32), ("mobilenet_v3_small", 32)])
def test_every_activation_trains_forward_and_backward(name, size):
    """In training mode (dropout on), in-place layers included: V3's head once broke sigmoid's backward."""
    state = zoo.create_model(name, num_classes=3).state_dict()
    x = torch.randn(2, 3, size, size)
    for activation in ACTIVATIONS:
        model = build_on_meta(name, num_classes=3, activation=activation)
        model.load_state_dict(state, assign=True)
        model.train()(x).sum().backward()
        first = next(model.parameters()).grad
        assert torch.isfinite(first).all() and first.abs().sum() > 0, activation


def _zoo(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """`zoo *args` in this process (zoo.cli.main: the command's exit code handling included): code, stdout, stderr."""
    monkeypatch.setattr(sys, "argv", ["zoo", *args])
    code = 0
    try:
        main()
    except SystemExit as exit_info:
        code = exit_info.code
    out, err = capsys.readouterr()
    return code, out, err


def test_summary_command_counts_depthwise_macs_and_refuses_a_small_input(monkeypatch, capsys):
    code, out, _ = _zoo(monkeypatch, capsys, "summary", "mobilenet_v2", "--depth", "5", "--format", "json")
    summary = json.loads(out)
    rows = {row["name"]: row for row in summary["layers"]}
    assert code == 0 and rows["features.1.conv.0.0"]["macs"] == 9 * 32 * 112 * 112
    assert summary["totals"]["macs"] == 300_774_272 and summary["reference"]["matches"]
    code, out, err = _zoo(monkeypatch, capsys, "summary", "mobilenet_v2", "--input-size", "3", "16", "16")
    assert code == 2 and out == "" and err.splitlines() == [
        "error: mobilenet_v2 needs inputs of at least 32x32, got 16x16; resize or pad the images (data.input_size)"]


def _digit(folder: Path) -> Path:
    picture = folder / "digit0.png"
    Image.fromarray((load_digits().images[0] * 16).clip(0, 255).astype(np.uint8)).save(picture)
    return picture


def test_digits_config_trains_and_gradcam_explains_its_last_stage(tmp_path):
    """The digits config cut to 1 epoch of 3 steps, in this process (zoo train and zoo explain call these)."""
    config = load_config(DIGITS_CONFIG, ["train.epochs=1", "train.max_steps_per_epoch=3",
                                         f"train.output_dir={tmp_path / 'runs'}"])
    assert (config.model.name, config.model.kwargs, config.data.input_size) == ("mobilenet_v2", {"width_mult": 0.5}, 32)
    result = train(config, quiet=True)
    assert result.metrics["epochs_run"] == 1 and result.metrics["train"]["steps"] == 3
    report = explain(result.run_dir / "checkpoints" / "best.pt", [str(_digit(tmp_path))], device="cpu")
    (row,) = report.rows
    assert report.method == "gradcam" and report.layer == "features.18" and row.written.is_file()


@pytest.mark.slow
def test_digits_config_through_the_commands(tmp_path):
    """The same in new processes: `zoo train` (1 epoch of 3 steps) then `zoo explain` on its best.pt."""
    result = run_zoo("train", DIGITS_CONFIG, "--set", "train.epochs=1", "--set", "train.max_steps_per_epoch=3",
                     "--set", f"train.output_dir={tmp_path / 'runs'}", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (checkpoint,) = (tmp_path / "runs").glob("*/*/checkpoints/best.pt")
    result = run_zoo("explain", checkpoint, _digit(tmp_path), "--device", "cpu", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    overlay = checkpoint.parent / "best.explain" / "digit0.gradcam.png"
    assert f"wrote {overlay}" in result.stdout and overlay.is_file()


def test_torchvision_densenet_files_with_their_old_key_names_load(tmp_path, monkeypatch):
    """torchvision's published DenseNet files say `norm.1`, `conv.2` where its modules say `norm1`, `conv2` (its
    builder renames them); zoo.load and fine-tuning read such a file, and predict as torchvision's network does."""
    import torchvision

    reference = torchvision.models.densenet121(weights=None).eval()
    weights = torchvision.models.DenseNet121_Weights.IMAGENET1K_V1
    old = {re.sub(r"(denselayer\d+\.(?:norm|relu|conv))(\d)\.", r"\1.\2.", key): value
           for key, value in reference.state_dict().items() if not key.endswith("num_batches_tracked")}  # as theirs
    assert any(".norm.1." in key for key in old)
    cache_torchvision_weights(weights, old, tmp_path, monkeypatch)
    predictor = zoo.load(f"torchvision:{weights}")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(predictor.model(x), reference(x), atol=1e-5)


def test_a_grad_cam_layer_of_one_cell_is_said_with_a_larger_one_named():
    """MobileNetV2 at 32 px ends in a 1 x 1 map: Grad-CAM there tints the whole picture one colour."""
    from zoo.inference.explain import find_stages

    model = zoo.create_model("mobilenet_v2", num_classes=10).eval()
    backbone = find_stages(model, torch.randn(1, 3, 32, 32))
    note = backbone.single_cell_note(backbone.default)
    assert note is not None and note.startswith(f"note: Grad-CAM at {backbone.default} is a 1x1 map")
    larger = re.search(r"--layer \(([\w.]+): (\d+)x(\d+)\)", note)
    assert larger and backbone.maps[larger[1]][-2:] == (int(larger[2]), int(larger[3])) != (1, 1)
    assert find_stages(model, torch.randn(1, 3, 96, 96)).single_cell_note(backbone.default) is None  # 3 x 3
