"""torchvision's state_dicts load into ours key for key (strict) and give the same outputs.

torchvision's weights are randomized first (weights, biases and batch-norm statistics, scaled to keep
activations of order one), so that equal logits mean equal networks and not two near-zero outputs.

Tests zoo.models' attribute names against torchvision's.
"""

import math

import pytest
import torch
import torchvision.models as tvm
from conftest import build_on_meta
from torch import nn

import zoo

COMPATIBLE = [name for name in zoo.list_models() if zoo.get_model_info(name).torchvision]


def test_the_shared_architectures_claim_compatibility():
    assert set(COMPATIBLE) == {
        "alexnet_owt", "googlenet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
        "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
        "densenet121", "densenet161", "densenet169", "densenet201", "inception_v3",
        "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small",
    }


@torch.no_grad()
def randomize(model: nn.Module) -> nn.Module:
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            fan_in = module.weight[0].numel()
            module.weight.normal_(0, math.sqrt(2 / fan_in))
            if module.bias is not None:
                module.bias.normal_(0, 0.1)
        elif isinstance(module, nn.BatchNorm2d):
            module.weight.uniform_(0.5, 1.5)
            module.bias.normal_(0, 0.1)
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model


def torchvision_model(name: str, **kwargs) -> nn.Module:
    if name in ("googlenet", "inception_v3"):
        kwargs = {"aux_logits": False, "init_weights": False, **kwargs}
    return randomize(getattr(tvm, name)(weights=None, **kwargs))


def load_into_ours(name: str, reference: nn.Module, **kwargs) -> nn.Module:
    ours = build_on_meta(name, **kwargs)  # no init cost: the state_dict's tensors are assigned
    result = ours.load_state_dict(reference.state_dict(), strict=True, assign=True)
    assert not result.missing_keys and not result.unexpected_keys
    return ours


@pytest.mark.parametrize("name", COMPATIBLE)
def test_torchvision_weights_load_and_give_the_same_outputs(name):
    info = zoo.get_model_info(name)
    reference = torchvision_model(info.torchvision).eval()
    ours = load_into_ours(name, reference).eval()
    assert list(ours.state_dict()) == list(reference.state_dict())  # same keys, same order
    x = torch.randn(1, *info.input_size)
    with torch.no_grad():
        expected, actual = reference(x), ours(x)
    assert expected.std() > 0.1  # a meaningful comparison, not two vanishing outputs
    assert (actual - expected).abs().max() < 1e-4


def test_googlenet_auxiliary_heads_match_torchvision_in_training():
    reference = torchvision_model("googlenet", aux_logits=True, dropout=0.0, dropout_aux=0.0).train()
    ours = load_into_ours("googlenet", reference, aux_logits=True, dropout=0.0, aux_dropout=0.0).train()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        expected = reference(x)  # GoogLeNetOutputs(logits, aux_logits2, aux_logits1)
        logits, (aux1, aux2) = ours(x, return_aux=True)
    for a, b in [(logits, expected.logits), (aux1, expected.aux_logits1), (aux2, expected.aux_logits2)]:
        assert (a - b).abs().max() < 1e-4


def test_a_mismatched_state_dict_is_refused():
    reference = torchvision_model("resnet34")
    with pytest.raises(RuntimeError, match=r"Unexpected key\(s\) in state_dict: \"layer1.2.conv1.weight\""):
        build_on_meta("resnet18").load_state_dict(reference.state_dict(), strict=True, assign=True)
