"""The `activation` builder argument: every family takes any name in zoo.models.layers.ACTIVATIONS, the default is
the paper's and builds today's network, and a bad name is one line (exit code 2 from the CLI).

Structure is checked for every registered model on the meta device; forward and backward passes for one or two
models per family, all activations sharing one set of weights (activations have none, so state dicts agree).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import build_on_meta
from helpers import run_zoo
from torch import nn
from torch.overrides import TorchFunctionMode

import zoo
from zoo.models.layers import ACTIVATIONS, SqueezeExcite, activation_layer

ROOT = Path(__file__).resolve().parents[1]
CHOICES = "sigmoid, tanh, relu, leaky_relu, elu, selu, silu, swish, mish, gelu"
# the papers' non-linearity where it is not ReLU; None: the model's own mix (MobileNet: ReLU6, or ReLU and hard-swish)
DEFAULTS = {"lenet": "tanh", "mobilenet": None}
# Real passes: each family once, with the variants whose code differs (BN, the CIFAR and bottleneck ResNets).
FORWARD = ["lenet5", "alexnet", "alexnet_owt", "zfnet", "vgg11", "vgg11_bn", "googlenet", "resnet18", "resnet20",
           "resnet50", "se_resnet18", "mnist_cnn", "mlp"]


def _default(name: str) -> str:
    return DEFAULTS.get(zoo.get_model_info(name).family, "relu")


def _activations(model: nn.Module, kind: type[nn.Module]) -> int:
    return sum(type(module) is kind for module in model.modules())


class _FunctionNames(TorchFunctionMode):
    """The names of the torch functions and tensor methods a forward pass calls, functional ReLUs included."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.names.add(getattr(func, "__name__", ""))
        return func(*args, **(kwargs or {}))


def test_the_table_has_the_choices_and_builds_in_place_where_torch_can():
    assert ", ".join(ACTIVATIONS) == CHOICES
    assert ACTIVATIONS["swish"] is ACTIVATIONS["silu"] is nn.SiLU
    assert activation_layer("relu").inplace and not activation_layer("relu", inplace=False).inplace
    assert activation_layer("mish").inplace and type(activation_layer("gelu")) is nn.GELU  # GELU has no in-place form
    assert all(not list(activation_layer(name).parameters()) for name in ACTIVATIONS)


@pytest.mark.parametrize("name", zoo.list_models())
def test_every_model_takes_every_activation_with_the_same_state_dict(name):
    """Each choice replaces every activation module (no ReLU module left) and changes no parameter."""
    default = build_on_meta(name)
    shapes = {key: value.shape for key, value in default.state_dict().items()}
    for activation, kind in ACTIVATIONS.items():
        model = build_on_meta(name, activation=activation)
        if activation != "relu":  # (GoogLeNet's default ReLU is no module)
            assert _activations(model, kind) > 0 and _activations(model, nn.ReLU) == 0, activation
        assert {key: value.shape for key, value in model.state_dict().items()} == shapes, activation


@pytest.mark.parametrize("name", zoo.list_models())
def test_the_default_is_the_papers_and_builds_the_same_network(name):
    default, explicit = build_on_meta(name), build_on_meta(name, activation=_default(name))
    assert str(explicit) == str(default)
    assert ([(path, type(m)) for path, m in explicit.named_modules()]
            == [(path, type(m)) for path, m in default.named_modules()])


def test_default_modules_are_todays():
    assert _activations(build_on_meta("lenet5"), nn.Tanh) == 4 and _activations(build_on_meta("lenet5"), nn.ReLU) == 0
    resnet18 = build_on_meta("resnet18")
    assert _activations(resnet18, nn.ReLU) == 1 + 8 and resnet18.relu.inplace  # the stem's and one per block
    assert _activations(build_on_meta("vgg11"), nn.ReLU) == 8 + 2
    assert _activations(build_on_meta("mlp"), nn.ReLU) == 2 and not build_on_meta("mlp").features[1].inplace
    # GoogLeNet's and SE's default ReLUs are functions, as in torchvision's tree; another choice adds modules.
    googlenet = build_on_meta("googlenet", aux_logits=True)
    assert _activations(googlenet, nn.ReLU) == 0 and googlenet.conv1.act is None and googlenet.aux1.act is None
    assert build_on_meta("se_resnet18").layer1[0].se.act is None
    convs = sum(type(m).__name__ == "BasicConv2d" for m in googlenet.modules())
    assert _activations(build_on_meta("googlenet", aux_logits=True, activation="elu"), nn.ELU) == convs + 2  # + aux FCs


@pytest.mark.parametrize("name", FORWARD)
def test_forward_and_backward_with_each_activation(name):
    """Every choice runs forward and backward (in-place ones included) and calls no ReLU but where asked."""
    info = zoo.get_model_info(name)
    kwargs = {"aux_logits": True} if name == "googlenet" else {}
    state = zoo.create_model(name, num_classes=3, **kwargs).state_dict()
    x = torch.randn(2, info.input_size[0], info.min_input_size, info.min_input_size)
    for activation, kind in ACTIVATIONS.items():
        model = build_on_meta(name, num_classes=3, activation=activation, **kwargs)
        model.load_state_dict(state, assign=True)  # the same weights for every choice
        with _FunctionNames() as calls:
            logits, aux = model.train()(x, return_aux=True)
        assert logits.shape == (2, 3) and len(aux) == (2 if name == "googlenet" else 0)
        sum(out.sum() for out in [logits, *aux]).backward()
        first = next(model.parameters()).grad  # the first layer's, furthest from the loss
        assert torch.isfinite(first).all() and first.abs().sum() > 0, activation
        if activation != "relu":
            assert _activations(model, kind) > 0 and not calls.names & {"relu", "relu_"}, activation


def test_squeeze_excite_follows_the_activation_and_keeps_its_sigmoid_gate():
    se = SqueezeExcite(32, reduction=16, activation="gelu")
    assert type(se.act) is nn.GELU
    x = torch.randn(4, 32, 5, 5).abs()
    gate = se(x) / x
    assert torch.allclose(gate, gate[:, :, :1, :1].expand_as(gate), atol=1e-5) and ((gate > 0) & (gate < 1)).all()
    with _FunctionNames() as calls:
        se(x)
    assert "sigmoid" in calls.names and not calls.names & {"relu", "relu_"}


@pytest.mark.parametrize("name", FORWARD)
def test_a_bad_name_is_one_line_with_the_choices_and_a_near_match(name):
    with pytest.raises(zoo.ZooError) as error:
        build_on_meta(name, activation="rellu")
    assert str(error.value) == f"unknown activation 'rellu'; choose one of {CHOICES}; did you mean relu?"
    with pytest.raises(zoo.ZooError, match=r"^unknown activation 'bogus'; choose one of [a-z_, ]+$"):
        build_on_meta(name, activation="bogus")


def test_an_empty_mlp_still_checks_the_name():
    with pytest.raises(zoo.ZooError, match="unknown activation 'sigmod'"):
        zoo.create_model("mlp", hidden_sizes=[], activation="sigmod")


def test_the_summary_lists_the_chosen_activation():
    from zoo.summary import summarize_model

    types = [layer.type for layer in summarize_model(build_on_meta("lenet5", activation="silu"), (1, 32, 32)).layers]
    assert types.count("SiLU") == 4 and "Tanh" not in types


def test_config_takes_the_key_and_rejects_a_bad_value_in_one_line(tmp_path):
    config = zoo.load_config(ROOT / "configs" / "lenet5_digits.yaml", ["model.activation=swish"])
    assert config.model.kwargs == {"activation": "swish"}
    assert _activations(config.model.build(), nn.SiLU) == 4
    with pytest.raises(zoo.ZooError, match=r"^--set model: activation: input should be a valid string"):
        zoo.load_config(ROOT / "configs" / "lenet5_digits.yaml", ["model.activation=1"])


@pytest.mark.parametrize("command", [["config", "show"], ["train"]])
def test_cli_exits_2_with_one_line_for_a_bad_activation(command):
    result = run_zoo(*command, "-c", "configs/lenet5_digits.yaml", "--set", "model.activation=rellu")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == ("error: --set model: unknown activation 'rellu'; "  # the override wrote it, not the file
                             f"choose one of {CHOICES}; did you mean relu?\n")


def test_sigmoid_vanishes_the_first_layers_gradient_in_a_plain_vgg():
    """The course's lesson: sigmoid's derivative is at most 1/4, so eleven layers of it shrink the gradient that
    reaches conv1 by orders of magnitude; ReLU passes it through. Same weights, same batch, one backward pass.
    Measured over seeds 0-2: sigmoid / relu = 4.3e-6 to 5.0e-6; the bound leaves a factor of 200."""
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    state = zoo.create_model("vgg11", num_classes=10).state_dict()
    norms = {}
    for activation in ("relu", "sigmoid"):
        model = build_on_meta("vgg11", num_classes=10, activation=activation)
        model.load_state_dict(state, assign=True)
        nn.functional.cross_entropy(model(x), y).backward()
        norms[activation] = model.features[0].weight.grad.norm().item()
    assert norms["sigmoid"] / norms["relu"] < 1e-3
