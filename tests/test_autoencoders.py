"""The autoencoders (zoo.models.autoencoder, zoo.models.base.Autoencoder): pictures in, the same pictures' logits out,
through a code whose shape they state; parametrized over list_models(task="reconstruction") so a new one is tested at
once. The classifiers' interface is test_models.py's.

Tests zoo.models.autoencoder and the Autoencoder part of zoo.models.base, with `zoo summary` and `zoo list` on them.
"""

from __future__ import annotations

import json

import pytest
import torch
from conftest import build_on_meta, count_params
from helpers import run_zoo
from torch import nn

import zoo
from zoo.models.base import Autoencoder, Classifier
from zoo.models.registry import argument_types, get_model_info

AUTOENCODERS = zoo.list_models(task="reconstruction")
CONVOLUTIONAL = ["conv_autoencoder", "deep_conv_autoencoder"]
# Another size each takes, not square where it can be: the rule is per side.
OTHER_SIZES = {"autoencoder": None, "conv_autoencoder": (16, 24), "deep_conv_autoencoder": (32, 96)}
DEFAULT_CODES = {"autoencoder": (32,), "conv_autoencoder": (8, 7, 7), "deep_conv_autoencoder": (16, 4, 4)}


def _pictures(name: str, height: int | None = None, width: int | None = None, n: int = 2) -> torch.Tensor:
    channels, side, _ = get_model_info(name).input_size
    return torch.rand(n, channels, height or side, width or height or side)  # [0, 1] pixels, as the task feeds them


def test_the_three_are_registered_for_reconstruction():
    assert AUTOENCODERS == ["autoencoder", "conv_autoencoder", "deep_conv_autoencoder"]
    for name in AUTOENCODERS:
        model = build_on_meta(name)
        assert isinstance(model, Autoencoder) and not isinstance(model, Classifier)
        assert not hasattr(model, "reset_classifier") and model.num_classes == 0
        assert isinstance(model.encoder, nn.Module) and isinstance(model.decoder, nn.Module)
        assert model.out_channels == model.in_channels == get_model_info(name).input_size[0]


@pytest.mark.parametrize("name", AUTOENCODERS)
@torch.no_grad()
def test_the_output_has_the_inputs_shape_at_the_default_size(name):
    model = zoo.create_model(name).eval()
    x = _pictures(name)
    logits = model(x)
    assert logits.shape == x.shape and torch.isfinite(logits).all()
    assert not any(isinstance(m, nn.Sigmoid) for m in model.modules())  # logits: the task applies the sigmoid
    logits, aux = model(x, return_aux=True)
    assert logits.shape == x.shape and aux == []


@pytest.mark.parametrize("name", CONVOLUTIONAL)
@torch.no_grad()
def test_a_convolutional_one_takes_any_multiple_of_its_halvings(name):
    model = zoo.create_model(name).eval()
    height, width = OTHER_SIZES[name]
    x = _pictures(name, height, width)
    assert model(x).shape == x.shape
    step = 2 ** len(model.channels)
    assert model.size_multiple == model.min_input_size == step == get_model_info(name).min_input_size
    assert model(_pictures(name, step)).shape[-2:] == (step, step)  # the smallest: a 1x1 code


@pytest.mark.parametrize("name", AUTOENCODERS)
@torch.no_grad()
def test_code_shape_and_code_size_are_what_encode_gives(name):
    model = zoo.create_model(name).eval()
    channels, side, _ = get_model_info(name).input_size
    assert model.code_shape(side) == DEFAULT_CODES[name]
    sides = [side] if OTHER_SIZES[name] is None else [side, OTHER_SIZES[name][0]]
    for side in sides:
        code = model.encode(_pictures(name, side, n=3))
        assert code.shape == (3, *model.code_shape(side))
        assert model.code_size(side) == code[0].numel() < channels * side * side  # smaller than the picture


@pytest.mark.parametrize("name", AUTOENCODERS)
@torch.no_grad()
def test_encode_then_decode_is_forward(name):
    model = zoo.create_model(name).eval()
    x = _pictures(name)
    assert torch.equal(model.decode(model.encode(x)), model(x))


def test_the_dense_one_has_the_keras_blogs_parameter_count_and_its_deep_version():
    assert count_params(build_on_meta("autoencoder")) == 50_992 == 784 * 32 + 32 + 32 * 784 + 784
    assert get_model_info("autoencoder").reference.count == 50_992
    deep = build_on_meta("autoencoder", hidden_sizes=(128, 64))  # the blog's deep autoencoder, 784-128-64-32-...-784
    widths = [784, 128, 64, 32, 64, 128, 784]
    assert [m.out_features for m in deep.modules() if isinstance(m, nn.Linear)] == widths[1:]
    assert count_params(deep) == sum(a * b + b for a, b in zip(widths, widths[1:]))


@pytest.mark.parametrize(("name", "size", "message"), [  # the first side breaks the rule
    ("autoencoder", (32, 32), "autoencoder rebuilds 28x28 inputs only, got 32x32; set data.input_size to 28, or "
                              "model.input_size to 32"),
    ("autoencoder", (32, 28), "autoencoder rebuilds 28x28 inputs only, got 32x28; set data.input_size to 28"),
    ("conv_autoencoder", (30, 30), "conv_autoencoder rebuilds inputs whose height and width are multiples of 4, got "
                                   "30x30; set data.input_size to such a size, e.g. 32"),
    ("conv_autoencoder", (26, 28), "conv_autoencoder rebuilds inputs whose height and width are multiples of 4, got "
                                   "26x28; set data.input_size to such a size, e.g. 28"),
    ("deep_conv_autoencoder", (8, 8), "deep_conv_autoencoder rebuilds inputs whose height and width are multiples of "
                                      "16, got 8x8; set data.input_size to such a size, e.g. 16"),
    ("deep_conv_autoencoder", (72, 64), "deep_conv_autoencoder rebuilds inputs whose height and width are multiples of"
                                        " 16, got 72x64; set data.input_size to such a size, e.g. 80"),
])
def test_a_size_it_cannot_rebuild_is_one_line_before_any_layer_runs(name, size, message):
    model = build_on_meta(name)  # meta: a layer that ran would not fail, so only the check can
    with pytest.raises(zoo.ZooError) as error:
        model(torch.empty(1, get_model_info(name).input_size[0], *size, device="meta"))
    assert str(error.value) == message
    with pytest.raises(zoo.ZooError, match="^" + message.split(",")[0]):  # the same rule
        model.code_shape(size[0])


def test_the_check_skips_input_that_is_not_a_batch_of_pictures():
    model = zoo.create_model("conv_autoencoder")
    model.check_input(torch.zeros(30, 30))  # no error: not 4-D, so not the check's to judge
    with pytest.raises(zoo.ZooError):
        model.check_input(torch.zeros(1, 1, 30, 30))


@pytest.mark.parametrize("name", AUTOENCODERS)
def test_the_gradient_reaches_every_parameter(name):
    model = zoo.create_model(name).train()
    x = _pictures(name, n=4)
    nn.functional.binary_cross_entropy_with_logits(model(x), x).backward()
    for path, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), path
        assert parameter.grad.abs().sum() > 0, path


@pytest.mark.parametrize("name", AUTOENCODERS)
@torch.no_grad()
def test_one_channel_in_three_out_colourizes(name):
    side = get_model_info(name).input_size[1]
    model = zoo.create_model(name, in_channels=1, out_channels=3).eval()
    assert (model.in_channels, model.out_channels) == (1, 3)
    assert model(torch.rand(2, 1, side, side)).shape == (2, 3, side, side)
    assert model.decode(model.encode(torch.rand(2, 1, side, side))).shape == (2, 3, side, side)


@pytest.mark.parametrize("name", AUTOENCODERS)
def test_num_classes_is_taken_and_ignored(name):
    default, given = build_on_meta(name), build_on_meta(name, num_classes=10)
    assert given.num_classes == 0
    assert {k: v.shape for k, v in given.state_dict().items()} == {k: v.shape for k, v in default.state_dict().items()}


def test_the_options_shape_the_code():
    assert build_on_meta("autoencoder", code_size=2).code_shape(28) == (2,)
    assert build_on_meta("autoencoder", input_size=8).code_shape(8) == (32,)  # scikit-learn's 8x8 digits
    conv = build_on_meta("conv_autoencoder", channels=(32, 16, 8))
    assert conv.code_shape(24) == (8, 3, 3) and conv.min_input_size == 8
    assert [m.out_channels for m in conv.modules() if isinstance(m, nn.Conv2d)] == [32, 16, 8, 8, 16, 32, 1]
    deep = build_on_meta("deep_conv_autoencoder", channels=(16, 32), code_channels=4)
    assert deep.code_shape(64) == (4, 16, 16) and deep.code_size(64) == 1_024 and deep.min_input_size == 4
    with torch.device("meta"):
        assert deep.encode(torch.empty(1, 3, 64, 64)).shape == (1, 4, 16, 16)


@pytest.mark.parametrize(("name", "options", "message"), [
    ("conv_autoencoder", {"channels": ()}, "channels must be one or more positive integers, got []"),
    ("deep_conv_autoencoder", {"code_channels": 0}, "code_channels must be one or more positive integers, got [0]"),
    ("autoencoder", {"hidden_sizes": [64, -1]}, "hidden_sizes must be zero or more positive integers, got [64, -1]"),
    ("autoencoder", {"activation": "rellu"}, "unknown activation 'rellu'"),
    ("conv_autoencoder", {"widths": (8,)}, "conv_autoencoder takes no argument 'widths'"),
])
def test_a_bad_option_is_one_line(name, options, message):
    with pytest.raises(zoo.ZooError) as error:
        build_on_meta(name, **options)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_the_config_can_read_every_option():
    """zoo.config converts a builder argument from YAML by its annotation, read from the model class."""
    dense = {"out_channels", "input_size", "code_size", "hidden_sizes", "activation"}
    assert dense <= set(argument_types("autoencoder"))
    assert {"out_channels", "channels", "activation"} <= set(argument_types("conv_autoencoder"))
    assert {"out_channels", "channels", "code_channels"} <= set(argument_types("deep_conv_autoencoder"))


def test_first_conv_is_the_encoders_first_and_the_dense_one_has_none():
    assert zoo.create_model("conv_autoencoder").first_conv()[0] == "encoder.0"
    name, conv = zoo.create_model("deep_conv_autoencoder").first_conv()
    assert name == "encoder.0.0" and conv.in_channels == 3 and conv.stride == (2, 2)
    with pytest.raises(zoo.ZooError, match=r"^--filters: autoencoder has no convolution"):
        zoo.create_model("autoencoder").first_conv()


def test_a_few_steps_lower_the_reconstruction_loss():
    """Logits and BCE-with-logits learn: 40 Adam steps on 16 fixed blobs take the conv autoencoder's loss close to its
    floor (the pictures' own entropy, where the reconstruction is exact). Measured over seeds 0-2: 0.67-0.73 ->
    0.136-0.148, the floor 0.13: 1-3% of the starting excess is left; the bound allows 10%."""
    grid = torch.stack(torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij"))
    centres = torch.randint(6, 22, (16, 2, 1, 1)).float()
    x = torch.exp(-((grid - centres) ** 2).sum(1, keepdim=True) / 20)  # 16 x 1 x 28 x 28 in [0, 1]
    floor = nn.functional.binary_cross_entropy(x, x).item()
    model = zoo.create_model("conv_autoencoder")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.binary_cross_entropy_with_logits(model(x), x)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] - floor < (losses[0] - floor) / 10, (losses[0], losses[-1], floor)


def test_zoo_summary_shows_the_encoder_the_decoder_and_the_code():
    result = run_zoo("summary", "conv_autoencoder", check=True)
    lines = result.stdout.splitlines()
    assert "code: 8 x 7 x 7 (392 values), the encoder's output, the decoder's input" in lines
    rows = [line.split()[0] for line in lines if line.startswith(("encoder.", "decoder."))]
    assert rows[0] == "encoder.0" and rows[-1] == "decoder.6" and len(rows) == 13
    decoder_out = next(line for line in lines if line.startswith("decoder.6 ")).split()
    assert decoder_out[:2] == ["decoder.6", "Conv2d"] and "1x28x28" in decoder_out
    dense = run_zoo("summary", "autoencoder", "--input-size", "1", "28", "28", check=True).stdout
    assert "\ncode: 32 (32 values)" in dense and "reference count: 50,992" in dense and "matches" in dense


def test_zoo_summary_refuses_classes_for_an_autoencoder():
    result = run_zoo("summary", "autoencoder", "--num-classes", "10")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == "error: autoencoder rebuilds pictures and has no classes; leave out --num-classes\n"


def test_zoo_list_json_gives_the_task():
    rows = json.loads(run_zoo("list", "--filter", "*autoencoder", "-f", "json", check=True).stdout)
    assert [(r["name"], r["task"], r["params"]) for r in rows] == [
        ("autoencoder", "reconstruction", 50_992), ("conv_autoencoder", "reconstruction", 3_217),
        ("deep_conv_autoencoder", "reconstruction", 795_283)]
    assert rows[0]["paper count"] is True and rows[1]["paper count"] is None and rows[2]["input"] == "3x64x64"
