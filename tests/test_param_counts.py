"""Parameter counts at the paper's input and class count, biases included, against the published figures.

The figures are written here, independently of the registry's references, which are checked too.

Tests zoo.models against the papers, and zoo.models.registry's references.
"""

import pytest
from conftest import build_on_meta, count_params
from torch import nn

import zoo

EXACT = {
    "lenet5": 61_706,  # course 002
    "alexnet": 62_378_344,  # course 002, single tower
    "alexnet_owt": 61_100_840,  # torchvision alexnet
    "zfnet": 62_357_608,
    "zfnet_wide": 107_627_624,  # course table 8.1
    "vgg16": 138_357_544,
    "googlenet": 6_624_904,
    "inception_v3": 23_834_568,  # torchvision inception_v3 without its aux head (27,161,264 with)
    "resnet18": 11_689_512,
    "resnet50": 25_557_032,
    "resnet152": 60_192_808,
    "se_resnet50": 28_088_024,
    "se_resnet101": 49_326_872,
    "se_resnet152": 66_821_848,
    "densenet121": 7_978_856,  # torchvision's, as the next three
    "densenet161": 28_681_000,
    "densenet169": 14_149_480,
    "densenet201": 20_013_928,
    "densenet_bc_100": 769_162,  # Huang et al. 2017, Table 2: 0.8M
    "mobilenet_v2": 3_504_872,  # torchvision's, as the V3s
    "mobilenet_v3_large": 5_483_032,
    "mobilenet_v3_small": 2_542_856,
    "mnist_cnn": 34_826,  # course 004
    "mlp": 784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10,  # course 004's 784-256-256-10
    "autoencoder": 784 * 32 + 32 + 32 * 784 + 784,  # the Keras blog's 784-32-784: 50,992
}

# He et al. 2015, Table 6, printed to two significant figures.
CIFAR_MILLIONS = {"resnet20": 0.27, "resnet32": 0.46, "resnet44": 0.66, "resnet56": 0.85, "resnet110": 1.7}


@pytest.mark.parametrize(("name", "expected"), EXACT.items())
def test_exact_parameter_count(name, expected):
    assert count_params(build_on_meta(name)) == expected


@pytest.mark.parametrize(("name", "millions"), CIFAR_MILLIONS.items())
def test_cifar_resnets_match_the_papers_table(name, millions):
    assert f"{count_params(build_on_meta(name)) / 1e6:.2g}" == f"{millions:.2g}"


def test_googlenet_with_auxiliary_heads():
    assert count_params(build_on_meta("googlenet", aux_logits=True)) == 13_004_888


def _weighted_layers(model: nn.Module) -> list[int]:
    return [count_params(m) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def test_lenet5_per_layer():
    assert _weighted_layers(build_on_meta("lenet5")) == [156, 2_416, 48_120, 10_164, 850]


def test_alexnet_per_layer():
    assert _weighted_layers(build_on_meta("alexnet")) == [
        34_944, 614_656, 885_120, 1_327_488, 884_992, 37_752_832, 16_781_312, 4_097_000]


def test_mnist_cnn_per_layer():
    assert _weighted_layers(build_on_meta("mnist_cnn")) == [320, 18_496, 16_010]


def test_conv_autoencoder_is_the_keras_blogs_without_its_third_stage():
    """The blog's layers, 3x3 with biases: 16, 8, [8] maps down, [8], 8, 16 up, 1 out (4,385 in all); ours drop the
    bracketed pair of 8 -> 8 convolutions (584 each) with the third stage."""
    blog = [1 * 9 * 16 + 16, 16 * 9 * 8 + 8, 8 * 9 * 8 + 8, 8 * 9 * 8 + 8, 8 * 9 * 8 + 8, 8 * 9 * 16 + 16, 16 * 9 + 1]
    assert sum(blog) == 4_385
    assert _weighted_layers(build_on_meta("conv_autoencoder")) == blog[:2] + blog[3:4] + blog[5:] == [
        160, 1_160, 584, 1_168, 145]


def test_deep_conv_autoencoder_per_layer():
    """Convolutions without biases before each batch norm (2 x channels more for the norm); the 1x1 code and the
    last convolution have theirs."""
    convs = [3 * 9 * 32, 32 * 9 * 64, 64 * 9 * 128, 128 * 9 * 256, 256 * 16 + 16,  # encoder
             16 * 256, 256 * 9 * 128, 128 * 9 * 64, 64 * 9 * 32, 32 * 9 * 32, 32 * 9 * 3 + 3]  # decoder
    norms = 2 * (32 + 64 + 128 + 256 + 256 + 128 + 64 + 32 + 32)
    model = build_on_meta("deep_conv_autoencoder")
    assert _weighted_layers(model) == convs
    assert count_params(model) == sum(convs) + norms == 795_283


@pytest.mark.parametrize("name", zoo.list_models())
def test_registry_reference_matches_the_built_model(name):
    info = zoo.get_model_info(name)
    if info.reference is None:
        # no published figure for these: the SE-ResNets the paper does not count, the autoencoders of our own layout
        # and TextCNN, whose count is its data's vocabulary's (test_textcnn.py checks the formula)
        assert name in {"se_resnet18", "se_resnet34", "conv_autoencoder", "deep_conv_autoencoder", "textcnn"}
        return
    assert info.reference.matches(count_params(build_on_meta(name)))
