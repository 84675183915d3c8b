"""zoo.summary against published figures and against a second, independent count.

zoo.summary traces one pass on CPU zeros through functional_call and counts MACs from the functional
calls it sees. The independent path here builds a fresh model on the meta device and counts with
forward hooks on Conv/Linear modules, from each module's own attributes.
"""

from __future__ import annotations

import json
import math
import sys
from functools import cache

import pytest
import torch
import torch.nn.functional as F
from helpers import run_zoo
from torch import nn

from zoo.cli import main
from zoo.errors import ZooError
from zoo.models.registry import ParamReference, create_model, get_model_info, list_models
from zoo.present.text import render_summary
from zoo.summary import Summary, summarize, summarize_model

# torchvision's published operation counts (weights meta "_ops", GFLOPS meaning GMACs) at 224x224.
TORCHVISION_GMACS = {"resnet18": 1.814, "resnet50": 4.089, "vgg16": 15.470, "googlenet": 1.498, "alexnet_owt": 0.714}


def small_input(name: str) -> tuple[int, int, int]:
    """The smallest input a model takes: the cross-checks hold at any size, and this one is cheap."""
    info = get_model_info(name)
    return (info.input_size[0], info.min_input_size, info.min_input_size)


def meta_model(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **kwargs)


def brute_force_macs(model: nn.Module, x: torch.Tensor, **kwargs) -> int:
    """MACs from hooks on every Conv and Linear module: output elements x weights per output element."""
    total = 0

    def count(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Linear):
            total += output.numel() * module.in_features
        else:
            total += output.numel() * module.in_channels // module.groups * math.prod(module.kernel_size)

    handles = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(x, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    return total


def assert_rows_add_up(summary: Summary) -> None:
    rows = summary.layers
    assert sum(r.params for r in rows) == summary.totals.params
    assert sum(r.trainable_params for r in rows) == summary.totals.trainable_params
    assert sum(r.macs for r in rows) == summary.totals.macs


@cache
def summary_at_224(name: str) -> Summary:
    return summarize(name)


@pytest.mark.parametrize("name, gmacs", TORCHVISION_GMACS.items())
def test_macs_match_torchvision(name: str, gmacs: float) -> None:
    assert round(summary_at_224(name).totals.macs / 1e9, 3) == gmacs


@pytest.mark.parametrize("name", TORCHVISION_GMACS)
def test_macs_at_224_match_brute_force(name: str) -> None:
    model = meta_model(name).eval()
    assert summary_at_224(name).totals.macs == brute_force_macs(model, torch.empty(1, 3, 224, 224, device="meta"))


@pytest.mark.parametrize("name", list_models(input="image"))  # a text model's summary: test_textcnn.py
def test_totals_match_registry_and_independent_counts(name: str) -> None:
    info, size = get_model_info(name), small_input(name)
    summary = summarize(name, input_size=size)
    model = meta_model(name).eval()
    assert summary.totals.params == sum(p.numel() for p in model.parameters())
    assert summary.totals.buffers == sum(b.numel() for b in model.buffers())
    assert summary.totals.macs == brute_force_macs(model, torch.empty(1, *size, device="meta"))
    if info.reference is not None:
        assert summary.reference is not None and summary.reference.matches, summary.reference


@pytest.mark.parametrize("name", list_models(input="image"))
def test_rows_add_up_at_every_depth(name: str) -> None:
    model = meta_model(name)
    deepest = max(n.count(".") + 1 for n, _ in model.named_modules() if n)
    summaries = [summarize_model(model, small_input(name), depth=d) for d in range(1, deepest + 2)]
    for summary in summaries:
        assert_rows_add_up(summary)
        assert summary.totals == summaries[0].totals  # totals never depend on depth
    leaves = [r for r in summaries[-1].layers if not r.own]  # below the deepest module, every row is a leaf
    assert len(leaves) == sum(1 for m in model.modules() if next(m.children(), None) is None)


class Tied(nn.Module):
    """Every way a parameter can be shared or used outside its module."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(8, 16)  # 144 parameters
        self.hidden = nn.Linear(16, 16)  # 272, called twice
        self.alias = self.hidden  # the same module registered under a second name
        self.tied = nn.Linear(16, 16)
        self.tied.weight = self.hidden.weight  # shares hidden's weight: only its bias (16) is new
        self.scale = nn.Parameter(torch.ones(16))  # the root's own, used in its forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.alias(self.hidden(self.embed(x))) * self.scale
        h = self.tied(h)
        return F.linear(h, self.embed.weight.t())  # a functional call on embed's weight: 16 -> 8


def test_tied_and_functional_parameters_count_once() -> None:
    model = Tied()
    summary = summarize_model(model, (8,), depth=1)
    assert summary.totals.params == sum(p.numel() for p in model.parameters()) == 144 + 272 + 16 + 16
    # embed 8x16, hidden twice 16x16, tied 16x16, and the functional 16x8 the module hooks cannot see.
    assert summary.totals.macs == 128 + 2 * 256 + 256 + 128
    assert brute_force_macs(model, torch.zeros(1, 8)) == summary.totals.macs - 128
    rows = {r.name: r for r in summary.layers}
    assert rows["(model) (own)"].params == 16 and rows["(model) (own)"].macs == 128
    assert rows["hidden"].calls == 2 and rows["hidden"].macs == 512
    assert rows["tied"].params == 16
    assert "alias" not in rows
    assert_rows_add_up(summary)
    assert model.scale.device.type == "cpu" and torch.equal(model.scale, torch.ones(16))  # untouched


class Convolutions(nn.Module):
    """Convolutions of every kind the trace computes only a probe of, called as modules and as functions."""

    def __init__(self) -> None:
        super().__init__()
        self.grouped = nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2)
        self.transposed = nn.ConvTranspose2d(8, 6, 4, stride=2, padding=1, output_padding=1, groups=2)
        self.same = nn.Conv1d(6, 5, 3, padding="same", dilation=2)
        self.volume = nn.Conv3d(1, 3, (1, 3, 3))
        self.fc = nn.Linear(7, 9)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.same(self.transposed(self.grouped(x)).flatten(2))  # N x 5 x 121
        v = self.volume(y.reshape(-1, 1, 5, 11, 11))  # N x 3 x 5 x 9 x 9
        v = F.conv2d(input=v[:, :, 0], weight=torch.ones(2, 3, 3, 3))  # keyword arguments: N x 2 x 7 x 7
        unbatched = F.conv1d(y[0], torch.ones(4, 5, 3))  # 4 x 119
        return self.fc(v[..., :7]), unbatched


def test_traced_shapes_and_macs_match_a_real_forward() -> None:
    model, x = Convolutions(), torch.zeros(1, 4, 9, 9)
    shapes: dict[str, tuple[int, ...]] = {}

    def record(name: str, output: torch.Tensor | tuple) -> None:
        shapes[name] = tuple((output[0] if isinstance(output, tuple) else output).shape[1:])

    for name, module in model.named_modules():
        module.register_forward_hook(lambda m, args, output, name=name: record(name, output))
    model(x)
    summary = summarize_model(model, (4, 9, 9), depth=1)
    assert {r.name: r.output_shape for r in summary.layers if not r.own} == {n: s for n, s in shapes.items() if n}
    # Output elements x weights per output element; a transposed convolution: input elements x weights per input.
    assert {r.name: r.macs for r in summary.layers} == {
        "(model) (own)": 2 * 7 * 7 * (3 * 3 * 3) + 4 * 119 * (5 * 3),  # the two functional calls
        "grouped": 8 * 5 * 5 * (2 * 3 * 3), "transposed": 8 * 5 * 5 * (3 * 4 * 4), "same": 5 * 121 * (6 * 3),
        "volume": 3 * 5 * 9 * 9 * (3 * 3), "fc": 2 * 7 * 9 * 7,
    }


def test_frozen_parameters_and_buffers_are_separate() -> None:
    model = meta_model("resnet18")
    for p in model.layer1.parameters():
        p.requires_grad_(False)
    totals = summarize_model(model, (3, 32, 32)).totals
    assert totals.frozen_params == sum(p.numel() for p in model.layer1.parameters())
    assert totals.trainable_params + totals.frozen_params == totals.params
    assert totals.buffers == sum(b.numel() for b in model.buffers())


def test_googlenet_aux_heads_are_training_only() -> None:
    summary = summarize("googlenet", input_size=(3, 64, 64), aux=True, depth=3)
    assert summary.totals.params == 13_004_888  # torchvision's count with the auxiliary heads
    assert summary.totals_without_aux is not None and summary.totals_without_aux.params == 6_624_904
    assert summary.reference is not None and summary.reference.matches
    training_only = {r.name for r in summary.layers if r.training_only}
    assert training_only and all(name.startswith(("aux1.", "aux2.")) for name in training_only)
    assert all(r.training_only for r in summary.layers if r.name.startswith("aux"))
    aux_macs = sum(r.macs for r in summary.layers if r.training_only)
    assert summary.totals.macs - aux_macs == summary.totals_without_aux.macs
    assert_rows_add_up(summary)
    model = meta_model("googlenet", aux_logits=True).train()
    x = torch.empty(1, 3, 64, 64, device="meta")
    assert summary.totals.macs == brute_force_macs(model, x, return_aux=True)
    assert summary.totals_without_aux.macs == brute_force_macs(model.eval(), x)


def test_googlenet_aux_totals_at_224() -> None:
    summary = summarize("googlenet", aux=True, depth=1)
    assert round(summary.totals_without_aux.macs / 1e9, 3) == 1.498
    assert [r.name for r in summary.layers if r.training_only] == ["aux1", "aux2"]
    table = render_summary(summary)
    assert "training only" in table and "without (inference)" in table


def test_memory_figures_for_lenet5() -> None:
    summary = summarize("lenet5", batch_size=8)
    # input, conv1, tanh, pool, conv2, tanh, pool, fc 120, tanh, fc 84, tanh, fc 10; the adaptive pool is the
    # identity at 5x5 and passes its input through, which is no new memory
    activations = 1024 + 4704 * 2 + 1176 + 1600 * 2 + 400 + 120 * 2 + 84 * 2 + 10
    totals = summary.totals
    assert totals.activation_bytes == 4 * activations
    assert totals.param_bytes == 4 * 61_706
    assert totals.training_bytes == 8 * 2 * totals.activation_bytes + 2 * totals.param_bytes + totals.buffer_bytes


def test_in_place_and_views_allocate_nothing() -> None:
    # VGG16's ReLUs run in place, its dropouts pass through in eval, and its adaptive pool passes the 7x7
    # map through: outputs of the 13 convolutions, 5 pools and 3 linear layers, plus the input. The course's
    # per-layer figures add up to exactly these 15,237,608 values (58 MiB); the "24M" total it states does
    # not follow from them.
    expected = 150_528 + 2 * 3_211_264 + 802_816 + 2 * 1_605_632 + 401_408 + 3 * 802_816 + 200_704
    expected += 3 * 401_408 + 100_352 + 3 * 100_352 + 25_088 + 4096 * 2 + 1000
    assert expected == 15_237_608
    assert summary_at_224("vgg16").totals.activation_bytes == 4 * expected


def test_layer_rows_describe_the_layers() -> None:
    rows = {r.name: r for r in summarize("resnet18", depth=3).layers}
    conv1 = rows["conv1"]
    assert (conv1.kernel, conv1.stride, conv1.padding) == ((7, 7), (2, 2), (3, 3))
    assert (conv1.input_shape, conv1.output_shape) == ((3, 224, 224), (64, 112, 112))
    assert rows["maxpool"].kernel == (3, 3) and rows["maxpool"].output_shape == (64, 56, 56)
    assert rows["layer1.0.relu"].calls == 2
    assert rows["fc"].input_shape == (512,) and rows["fc"].macs == 512_000
    assert list(rows)[:4] == ["conv1", "bn1", "relu", "maxpool"]  # the order the forward runs them


def test_reference_mismatch_is_flagged_loudly() -> None:
    wrong = ParamReference(11_689_513, "a test's wrong count")
    summary = summarize_model(meta_model("resnet18"), (3, 32, 32), reference=wrong)
    assert summary.reference is not None and not summary.reference.matches
    assert "!!! MISMATCH" in render_summary(summary)
    assert summarize("resnet18", input_size=(3, 32, 32), num_classes=10).reference is None  # not the paper's


def test_formats() -> None:
    summary = summarize("mnist_cnn")
    data = json.loads(render_summary(summary, "json"))
    assert list(data) == ["model", "input_size", "batch_size", "depth", "layers", "totals", "totals_without_aux",
                          "reference", "code_shape", "input"]
    assert data["code_shape"] is None and data["input"] == "image"  # a classifier of pictures has no code
    assert data["totals"]["params"] == 34_826 and data["input_size"] == [1, 28, 28]
    assert data["layers"][0]["name"] == "features.0" and data["layers"][0]["output_shape"] == [32, 26, 26]
    csv = render_summary(summary, "csv").splitlines()
    assert csv[0].startswith("name,type,kernel") and len(csv) == len(summary.layers) + 1
    assert render_summary(summary, "markdown").count("| features.0 ") == 1
    assert "MACs per image" in render_summary(summary, "table")


@pytest.mark.parametrize("args, message", [
    (["resnt18"], "unknown model 'resnt18'"),
    (["resnet18", "--input-size", "3", "16", "16"], "at least 32x32"),
    (["resnet18", "--input-size", "3", "0", "224"], "must be positive"),
    (["resnet18", "--input-size", "3", "-224", "224"], "must be positive"),
    (["resnet18", "--aux"], "no auxiliary heads"),
    (["resnet18", "--depth", "0"], "must be positive"),
    (["resnet18", "--format", "xml"], "unknown format"),
])
def test_cli_errors_are_one_line_and_exit_2(args: list[str], message: str, monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["zoo", "summary", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err


@pytest.mark.parametrize("name, size, code", [
    ("autoencoder", (1, 28, 28), (32,)), ("conv_autoencoder", (1, 28, 28), (8, 7, 7)),
    ("conv_autoencoder", (1, 32, 48), (8, 8, 12)), ("deep_conv_autoencoder", (3, 64, 64), (16, 4, 4)),
])
def test_an_autoencoders_summary_gives_its_code(name: str, size: tuple[int, int, int], code: tuple[int, ...]) -> None:
    summary = summarize(name, input_size=size)
    assert summary.code_shape == code
    assert {r.name.split(".")[0] for r in summary.layers} == {"encoder", "decoder"}
    assert summary.layers[-1].output_shape == size  # the picture back
    values = f"{math.prod(code):,}"
    assert f"\ncode: {' x '.join(map(str, code))} ({values} values)" in render_summary(summary)
    assert json.loads(render_summary(summary, "json"))["code_shape"] == list(code)


def test_an_autoencoder_has_no_classes_to_summarize() -> None:
    with pytest.raises(ZooError, match=r"^conv_autoencoder rebuilds pictures and has no classes; leave out --num-cl"):
        summarize("conv_autoencoder", num_classes=10)
    with pytest.raises(ZooError, match=r"^autoencoder rebuilds 28x28 inputs only, got 32x32; set data.input_size"):
        summarize("autoencoder", input_size=(1, 32, 32))


def test_cli_prints_json_in_a_subprocess() -> None:
    result = run_zoo("summary", "lenet5", "--format", "json", "--depth", "1", cwd=None, check=True)
    assert json.loads(result.stdout)["totals"]["params"] == 61_706
