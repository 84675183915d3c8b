"""zoo.models.weight_init: each scheme's weight statistics, the model's own default, every layer reached."""

import math
import subprocess
import sys

import pytest
import torch
from torch import nn

import zoo
from zoo.models.weight_init import SCHEMES, init_weights

FAN_IN, FAN_OUT = 256 * 3 * 3, 512 * 3 * 3


def big_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(256, 512, 3), nn.BatchNorm2d(512), nn.ReLU(), nn.Flatten(), nn.Linear(2048, 1024))


def _scramble(model: nn.Module) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(3.0, 1.0)


@pytest.mark.parametrize(("scheme", "conv_std", "linear_std", "uniform"), [
    ("he_normal", math.sqrt(2 / FAN_IN), math.sqrt(2 / 2048), False),
    ("he_uniform", math.sqrt(2 / FAN_IN), math.sqrt(2 / 2048), True),
    ("xavier_normal", math.sqrt(2 / (FAN_IN + FAN_OUT)), math.sqrt(2 / (2048 + 1024)), False),
    ("xavier_uniform", math.sqrt(2 / (FAN_IN + FAN_OUT)), math.sqrt(2 / (2048 + 1024)), True),
])
def test_weight_statistics_match_the_scheme(scheme, conv_std, linear_std, uniform):
    net = big_net()
    _scramble(net)
    init_weights(net, scheme)
    conv, bn, linear = net[0], net[1], net[4]
    for weight, std in [(conv.weight, conv_std), (linear.weight, linear_std)]:
        assert abs(weight.mean().item()) < 0.05 * std
        assert weight.std().item() == pytest.approx(std, rel=0.05)
        if uniform:  # U(-b, b) has std b / sqrt(3)
            assert weight.abs().max().item() <= std * math.sqrt(3) + 1e-6
    assert not conv.bias.any() and not linear.bias.any()
    assert torch.equal(bn.weight, torch.ones(512)) and not bn.bias.any()


def test_default_re_applies_the_models_own_init():
    model = zoo.create_model("resnet18")
    _scramble(model)
    init_weights(model, "default")
    conv = model.layer3[0].conv1  # torchvision's ResNet init: He normal, fan_out
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (256 * 9)), rel=0.05)
    assert torch.equal(model.bn1.weight, torch.ones(64))

    lenet = zoo.create_model("lenet5")  # PyTorch's layer defaults: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    _scramble(lenet)
    init_weights(lenet, "default")
    assert lenet.classifier[0].weight.abs().max().item() <= 1 / math.sqrt(400) + 1e-6


def test_every_conv_and_linear_layer_of_a_zoo_model_is_initialized():
    model = zoo.create_model("googlenet", aux_logits=True)
    _scramble(model)
    init_weights(model, "he_normal")
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            assert abs(module.weight.mean().item()) < 0.5  # scrambled weights had mean 3
            if module.bias is not None:
                assert not module.bias.any()


def test_unknown_scheme_names_the_choices():
    assert set(SCHEMES) == {"default", "xavier_uniform", "xavier_normal", "he_uniform", "he_normal"}
    with pytest.raises(zoo.ZooError, match="unknown init 'kaiming'; choose one of default, xavier_uniform"):
        init_weights(big_net(), "kaiming")


def test_the_scheme_names_come_without_torch():  # so the config schema can import them
    code = "import sys, zoo.models.weight_init as w; assert 'torch' not in sys.modules; print(len(w.SCHEMES))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "5\n"
