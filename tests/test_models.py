"""Behaviour of every registered classifier, parametrized over list_models(task="classification") so a new model is
tested at once (the autoencoders' own interface: test_autoencoders.py).

The module-scoped `model` fixture builds each network once (VGG and ResNet-152 are large); pytest
runs all tests of one model before building the next, so only one is alive at a time.

Tests zoo.models (every family module, zoo.models.base).
"""

from pathlib import Path

import pytest
import torch
from conftest import build_on_meta

import zoo


@pytest.fixture(scope="module", params=zoo.list_models(task="classification", input="image"))  # text: test_textcnn.py
def model(request):
    return zoo.create_model(request.param).eval()


def _info(model):
    return zoo.get_model_info(model.name)


def _batch(model, size, n=2):
    return torch.randn(n, _info(model).input_size[0], size, size)


@torch.no_grad()
def test_forward_at_default_size(model):
    info = _info(model)
    logits = model(_batch(model, info.input_size[1], n=1))  # batch 1: VGG19 at 224 is 20 GMACs
    assert logits.shape == (1, info.num_classes)
    assert torch.isfinite(logits).all()


@torch.no_grad()
def test_forward_at_minimum_size(model):
    info = _info(model)
    logits = model(_batch(model, info.min_input_size))
    assert logits.shape == (2, info.num_classes)
    assert torch.isfinite(logits).all()


def test_below_minimum_size_fails_before_the_forward_pass(model):
    info = _info(model)
    if model.name == "mlp":
        message = r"mlp expects 784 input features .* got 729"
    else:
        size = info.min_input_size
        message = rf"{model.name} needs inputs of at least {size}x{size}, got {size - 1}x{size - 1}"
    with pytest.raises(zoo.ZooError, match=message):
        model(_batch(model, info.min_input_size - 1))


def test_instance_and_registry_agree_on_the_minimum(model):
    assert model.min_input_size == _info(model).min_input_size


def _probe_features(meta_model, channels: int, size: int) -> tuple[int, int] | None:
    """Spatial size of the last feature map, or None where a layer has no output (meta: shapes only)."""
    try:
        with torch.device("meta"):
            return tuple(meta_model.forward_features(torch.empty(2, channels, size, size)).shape[-2:])
    except RuntimeError:
        return None


def test_minimum_size_is_exactly_what_the_layers_need(model):
    """Either a layer has no output one pixel below the minimum, or the minimum is the network's total
    downsampling: the last map is 1x1 at the minimum and 2x2 at twice it."""
    if model.name == "mlp":  # no spatial layers: it takes exactly C x H x W features at its input size
        assert model.in_features == 1 * 28 * 28 and model.min_input_size == 28
        return
    info = _info(model)
    meta = build_on_meta(model.name).eval()
    size, channels = info.min_input_size, info.input_size[0]
    assert _probe_features(meta, channels, size) is not None
    tight = _probe_features(meta, channels, size - 1) is None
    total_stride = (_probe_features(meta, channels, size) == (1, 1)
                    and _probe_features(meta, channels, 2 * size) == (2, 2))
    assert tight or total_stride


def test_forward_features_and_head_compose_to_forward(model):
    x = _batch(model, _info(model).min_input_size)
    with torch.no_grad():
        assert torch.equal(model.forward_head(model.forward_features(x)), model(x))


def test_return_aux_gives_logits_and_no_aux_for_plain_models(model):
    x = _batch(model, _info(model).min_input_size)
    with torch.no_grad():
        logits, aux = model(x, return_aux=True)
    assert logits.shape == (2, _info(model).num_classes) and aux == []


def test_reset_classifier(model):  # last: it changes the shared model's head
    model.reset_classifier(7)
    assert model.num_classes == 7 and model.get_classifier().out_features == 7
    with torch.no_grad():
        assert model(_batch(model, _info(model).min_input_size)).shape == (2, 7)


@pytest.mark.parametrize("name", ["lenet5", "mlp", "mnist_cnn", "alexnet"])
def test_initialize_draws_nothing_where_the_layers_initialized_themselves(name):
    """Models without their own init_weights keep their layers' draws, so a seed gives the same weights."""
    torch.manual_seed(0)
    model = zoo.create_model(name)
    state, next_draw = {k: v.clone() for k, v in model.state_dict().items()}, torch.rand(1)
    torch.manual_seed(0)
    again = zoo.create_model(name)
    again.initialize()
    assert torch.equal(torch.rand(1), next_draw)
    assert all(torch.equal(v, state[k]) for k, v in again.state_dict().items())


@pytest.mark.parametrize("name", ["lenet5", "resnet20", "vgg11", "alexnet", "googlenet", "se_resnet18", "mnist_cnn"])
def test_in_channels_and_num_classes_are_honoured(name):
    channels = 1 if zoo.get_model_info(name).input_size[0] == 3 else 3  # the other one
    model = zoo.create_model(name, num_classes=5, in_channels=channels).eval()
    with torch.no_grad():
        assert model(torch.randn(2, channels, 96, 96)).shape == (2, 5)


def test_resnet_small_input_stem_for_32x32_data():
    model = zoo.create_model("resnet18", num_classes=10, small_input=True).eval()
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, torch.nn.Identity)
    with torch.no_grad():
        assert model.forward_features(torch.randn(2, 3, 32, 32)).shape == (2, 512, 4, 4)
        assert model(torch.randn(2, 3, 8, 8)).shape == (2, 10)
    assert model.min_input_size == 8


def test_se_blocks_are_an_option_of_the_resnet_blocks():
    from zoo.models.layers import SqueezeExcite
    from zoo.models.resnet import Bottleneck, ResNet

    model = zoo.create_model("se_resnet50")
    assert type(model) is ResNet
    blocks = [m for m in model.modules() if isinstance(m, Bottleneck)]
    assert len(blocks) == 16 and all(isinstance(b.se, SqueezeExcite) for b in blocks)
    assert blocks[0].se.fc1.out_features == 256 // 16
    assert all(b.se is None for b in zoo.create_model("resnet50").modules() if isinstance(b, Bottleneck))


def test_squeeze_excite_rescales_channels_by_a_sigmoid_gate():
    from zoo.models.layers import SqueezeExcite

    se = SqueezeExcite(32, reduction=16)
    x = torch.randn(4, 32, 5, 5).abs()
    y = se(x)
    gate = y / x
    assert torch.allclose(gate, gate[:, :, :1, :1].expand_as(gate), atol=1e-5)  # one scale per channel
    assert ((gate > 0) & (gate < 1)).all()


def test_cifar_resnet_shortcuts_are_parameter_free_zero_padding():
    from zoo.models.resnet import ZeroPadShortcut

    model = zoo.create_model("resnet20")
    shortcuts = [m for m in model.modules() if isinstance(m, ZeroPadShortcut)]
    assert len(shortcuts) == 2
    x = torch.randn(1, 16, 8, 8)
    y = shortcuts[0](x)
    assert y.shape == (1, 32, 4, 4)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2]) and not y[:, 16:].any()


def test_mlp_builds_the_course_xor_networks():
    deep_sigmoid = zoo.create_model("mlp", num_classes=2, in_features=2, hidden_sizes=[10] * 7, activation="sigmoid")
    linears = [m for m in deep_sigmoid.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 8 and linears[0].in_features == 2
    assert sum(isinstance(m, torch.nn.Sigmoid) for m in deep_sigmoid.modules()) == 7
    xor = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    assert deep_sigmoid(xor).shape == (4, 2)
    with pytest.raises(zoo.ZooError, match="unknown activation 'sigmod'"):
        zoo.create_model("mlp", activation="sigmod")


def test_the_fixed_grid_pool_passes_a_map_at_its_size_through_and_pools_any_other():
    from zoo.models.layers import FitAvgPool2d

    pool, reference = FitAvgPool2d((6, 6)), torch.nn.AdaptiveAvgPool2d((6, 6))
    native = torch.randn(2, 3, 6, 6, requires_grad=True)
    assert pool(native) is native  # no copy, no backward node
    larger = torch.randn(2, 3, 13, 9)
    assert torch.equal(pool(larger), reference(larger))
    assert FitAvgPool2d(5)(torch.randn(1, 1, 5, 5)).shape == (1, 1, 5, 5)
    lenet = zoo.create_model("lenet5")
    assert isinstance(lenet.pool, FitAvgPool2d) and isinstance(lenet.pool, torch.nn.AdaptiveAvgPool2d)


@pytest.mark.parametrize("name", ["resnet20", "resnet50", "se_resnet18"])
def test_stochastic_depth_rises_linearly_to_drop_path_and_is_the_identity_in_eval(name):
    import zoo

    model = zoo.create_model(name, num_classes=10, drop_path=0.2)
    blocks = [block for stage in range(1, model.num_stages + 1) for block in getattr(model, f"layer{stage}")]
    rates = [0.0 if block.drop_path is None else block.drop_path.p for block in blocks]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.2)
    assert rates == pytest.approx([0.2 * i / (len(blocks) - 1) for i in range(len(blocks))])
    assert model.state_dict().keys() == zoo.create_model(name, num_classes=10).state_dict().keys()  # no new weights
    x = torch.randn(4, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
        model.train()
        assert not torch.equal(model(x), model(x))  # branches dropped per image


def test_drop_path_out_of_range_or_on_a_network_without_residual_blocks_is_one_line(tmp_path):
    from zoo.config import load_config
    from zoo.errors import ZooError

    config = Path(__file__).resolve().parents[1] / "configs" / "lenet5_digits.yaml"
    with pytest.raises(ZooError,
                       match=r"model: resnet20 does not accept these arguments \(drop_path is 1.5; give a probability"):
        load_config(config, ["model.name=resnet20", "model.drop_path=1.5"])
    with pytest.raises(ZooError, match=r"model: lenet5 takes no argument .drop_path."):
        load_config(config, ["model.drop_path=0.1"])
