"""The `dropout` and `batch_norm` builder arguments of the course's teaching models, `mlp` and `mnist_cnn`: off by
default, where the networks are exactly the older ones (modules, parameter counts, state_dict keys, so checkpoints
load); on, the layers sit where the lessons put them; a bad probability is one line; the config types both keys.

Tests zoo.models.teaching's options (the networks themselves: test_models.py, test_param_counts.py).
"""

from __future__ import annotations

import math

import pytest
import torch
from conftest import count_params
from helpers import digits_config
from torch import nn

import zoo
from zoo.config import load_config

# The networks as they were before the options: what old checkpoints hold.
DEFAULT_KEYS = ["features.0.weight", "features.0.bias", "features.3.weight", "features.3.bias", "fc.weight", "fc.bias"]
DEFAULTS = {
    "mlp": (269_322, [*DEFAULT_KEYS[:2], "features.2.weight", "features.2.bias", "fc.weight", "fc.bias"],
            ["MLP", "Sequential", "Linear", "ReLU", "Linear", "ReLU", "Linear"]),
    "mnist_cnn": (34_826, DEFAULT_KEYS,
                  ["MnistCNN", "Sequential", "Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d",
                   "FitAvgPool2d", "Linear"]),
}
# Each batch norm adds a weight and a bias per channel: 2 x (256 + 256) for the MLP, 2 x (32 + 64) for the CNN.
WITH_BATCH_NORM = {"mlp": 269_322 + 1_024, "mnist_cnn": 34_826 + 192}
NORM = {"mlp": nn.BatchNorm1d, "mnist_cnn": nn.BatchNorm2d}
WEIGHTED = {"mlp": nn.Linear, "mnist_cnn": nn.Conv2d}


@pytest.mark.parametrize("name", ["mlp", "mnist_cnn"])
@pytest.mark.parametrize("options", [{}, {"dropout": 0.0, "batch_norm": False}, {"dropout": 0}])
def test_the_defaults_build_the_older_network(name, options):
    params, keys, modules = DEFAULTS[name]
    model = zoo.create_model(name, **options)
    assert count_params(model) == params
    assert list(model.state_dict()) == keys
    assert [type(m).__name__ for m in model.modules()] == modules
    assert list(model.buffers()) == []


@pytest.mark.parametrize("name", ["mlp", "mnist_cnn"])
def test_an_older_checkpoint_loads_and_a_seed_draws_the_same_weights_with_the_options(name):
    """Dropout and batch norm draw no random numbers when built: the lesson's networks start from the same weights."""
    torch.manual_seed(0)
    old = zoo.create_model(name).state_dict()
    torch.manual_seed(0)
    both = zoo.create_model(name, dropout=0.5, batch_norm=True)
    weighted = [m for m in both.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    drawn = [tensor for module in weighted for tensor in (module.weight, module.bias)]
    assert all(torch.equal(a, b) for a, b in zip(drawn, old.values(), strict=True))
    zoo.create_model(name, dropout=0.0, batch_norm=False).load_state_dict(old)  # strict: every key, no other


def test_mlp_dropout_follows_every_hidden_activation():
    model = zoo.create_model("mlp", hidden_sizes=[64, 32, 16], activation="tanh", dropout=0.25)
    kinds = [type(m) for m in model.features]
    assert kinds == [nn.Linear, nn.Tanh, nn.Dropout] * 3
    assert all(m.p == 0.25 for m in model.features if isinstance(m, nn.Dropout))
    assert count_params(model) == count_params(zoo.create_model("mlp", hidden_sizes=[64, 32, 16]))


def test_mnist_cnn_dropout_is_on_the_flattened_features_before_the_dense_layer():
    model = zoo.create_model("mnist_cnn", dropout=0.5)
    assert isinstance(model.dropout, nn.Dropout) and model.dropout.p == 0.5
    assert not any(isinstance(m, nn.Dropout) for m in model.features)
    seen = []
    model.fc.register_forward_pre_hook(lambda _module, args: seen.append(args[0].detach().clone()))
    x = torch.rand(4, 1, 28, 28)
    torch.manual_seed(0)
    model.train()(x)
    model.eval()(x)
    trained, evaluated = seen
    kept = trained != 0
    # Inverted dropout: each feature zeroed or scaled by 1 / (1 - p); nothing else differs without batch norm.
    assert torch.allclose(trained[kept], 2 * evaluated[kept])
    live = evaluated != 0
    assert 0.4 < (~kept & live).sum() / live.sum() < 0.6  # about p of the 4 x 1600 features


@pytest.mark.parametrize("name", ["mlp", "mnist_cnn"])
def test_dropout_is_active_in_training_and_the_identity_in_evaluation(name):
    torch.manual_seed(0)
    plain = zoo.create_model(name).eval()
    torch.manual_seed(0)
    model = zoo.create_model(name, dropout=0.5)
    x = torch.rand(8, 1, 28, 28)
    with torch.no_grad():
        model.train()
        assert not torch.allclose(model(x), model(x))  # a new mask each pass
        model.eval()
        assert torch.equal(model(x), model(x))
        assert torch.allclose(model(x), plain(x))  # the same weights, so the same network in evaluation


@pytest.mark.parametrize("name", ["mlp", "mnist_cnn"])
def test_batch_norm_follows_every_hidden_layer_before_its_activation(name):
    model = zoo.create_model(name, batch_norm=True, activation="elu")
    layers = list(model.features)
    norms = [i for i, m in enumerate(layers) if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d)]
    assert len(norms) == 2 and all(isinstance(layers[i], NORM[name]) for i in norms)
    for i in norms:
        weighted = layers[i - 1]
        assert isinstance(weighted, WEIGHTED[name]) and isinstance(layers[i + 1], nn.ELU)
        assert layers[i].num_features == weighted.weight.shape[0]
    assert count_params(model) == WITH_BATCH_NORM[name]
    assert len(list(model.buffers())) == 3 * 2  # running mean, running variance, batches seen


def test_the_mlp_has_one_batch_norm_per_hidden_layer():
    model = zoo.create_model("mlp", hidden_sizes=[8] * 5, batch_norm=True)
    assert [m.num_features for m in model.modules() if isinstance(m, nn.BatchNorm1d)] == [8] * 5


def test_the_bias_kept_before_a_batch_norm_gets_no_gradient_in_training():
    """Why keeping it costs nothing but its parameters: the norm's mean subtraction cancels it (Ioffe, Szegedy 3.2)."""
    model = zoo.create_model("mlp", input_size=8, hidden_sizes=[32], batch_norm=True).train()
    model(torch.rand(16, 1, 8, 8)).square().sum().backward()
    assert model.features[0].bias.grad.abs().max() < 1e-5 * model.features[0].weight.grad.abs().max() + 1e-7
    assert model.fc.bias.grad.abs().max() > 1e-3  # the head's bias, with no norm after it, does learn


@pytest.mark.parametrize("name", ["mlp", "mnist_cnn"])
@pytest.mark.parametrize("dropout", [-0.1, 1.0, 1.5, math.nan, "0.5"])
def test_a_dropout_outside_zero_to_one_is_refused_in_one_line(name, dropout):
    refusal = r"^dropout must be a probability in \[0, 1\), got .*; set it below 1"
    with pytest.raises(zoo.ZooError, match=refusal) as error:
        zoo.create_model(name, dropout=dropout)
    assert "\n" not in str(error.value)


def test_an_mlp_without_hidden_layers_checks_dropout_too():
    assert count_params(zoo.create_model("mlp", hidden_sizes=[], dropout=0.5, batch_norm=True)) == 784 * 10 + 10
    with pytest.raises(zoo.ZooError, match="dropout must be"):
        zoo.create_model("mlp", hidden_sizes=[], dropout=1.0)


def test_a_config_types_both_keys_from_the_builders(tmp_path):
    path = tmp_path / "mlp_digits.yaml"
    path.write_text("model:\n  name: mlp\n  input_size: 8\n  hidden_sizes: [64, 64]\n  dropout: '0.5'\n"
                    "  batch_norm: yes\ndata:\n  name: digits\n  input_size: 8\n")
    config = load_config(path)
    assert config.model.kwargs == {"input_size": 8, "hidden_sizes": [64, 64], "dropout": 0.5, "batch_norm": True}
    model = config.model.build()
    assert sum(isinstance(m, nn.BatchNorm1d) for m in model.modules()) == 2
    assert sum(isinstance(m, nn.Dropout) for m in model.modules()) == 2

    config = digits_config(tmp_path, "model.name=mnist_cnn", "model.dropout=0.5", "model.batch_norm=true")
    assert config.model.kwargs == {"dropout": 0.5, "batch_norm": True}
    model = config.model.build(num_classes=10, in_channels=1)
    assert model.dropout.p == 0.5 and sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 2


@pytest.mark.parametrize(("setting", "message"), [
    ("model.dropout=1.5", r"--set model: dropout must be a probability in \[0, 1\), got 1.5"),
    ("model.dropout=half", r"--set model: dropout: input should be a valid number"),
    ("model.batch_norm=maybe", r"--set model: batch_norm: input should be a valid boolean"),
])
def test_a_config_with_a_bad_value_names_the_key(tmp_path, setting, message):
    with pytest.raises(zoo.ZooError, match=message):
        digits_config(tmp_path, "model.name=mnist_cnn", setting)
