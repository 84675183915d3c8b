"""zoo.models.googlenet's auxiliary heads, and zoo.loop.aux_loss, which weighs them in training."""

import pytest
import torch
from torch import nn

import zoo
from zoo.loop import AUX_WEIGHT, aux_loss


@pytest.fixture(scope="module")
def net():
    return zoo.create_model("googlenet", num_classes=5, aux_logits=True, dropout=0.0, aux_dropout=0.0)


def test_auxiliary_heads_exist_only_when_asked_for():
    plain = zoo.create_model("googlenet")
    assert plain.aux1 is None and plain.aux2 is None
    assert not any(k.startswith("aux") for k in plain.state_dict())


def test_auxiliary_outputs_only_in_training(net):
    x = torch.randn(2, 3, 64, 64)
    net.train()
    logits, aux = net(x, return_aux=True)
    assert logits.shape == (2, 5) and [a.shape for a in aux] == [(2, 5), (2, 5)]
    assert isinstance(net(x), torch.Tensor)  # plain forward: logits, whatever the mode
    net.eval()
    with torch.no_grad():
        logits, aux = net(x, return_aux=True)
        assert aux == [] and logits.shape == (2, 5)
        assert isinstance(net(x), torch.Tensor)


def test_training_loss_is_main_plus_point_three_times_the_auxiliary_losses(net):
    criterion = nn.CrossEntropyLoss()
    x, y = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 2, 3])
    net.train()
    loss, logits = aux_loss(net, x, y, criterion)
    main, (aux1, aux2) = net(x, return_aux=True)  # deterministic: no dropout, batch statistics
    expected = criterion(main, y) + 0.3 * (criterion(aux1, y) + criterion(aux2, y))
    assert AUX_WEIGHT == 0.3
    assert torch.allclose(loss, expected) and torch.allclose(logits, main)
    assert loss > criterion(main, y)
    loss.backward()
    assert net.aux1.fc2.weight.grad is not None and net.aux2.conv.conv.weight.grad is not None


def test_evaluation_loss_is_the_main_head_alone(net):
    criterion = nn.CrossEntropyLoss()
    x, y = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 2, 3])
    net.eval()
    with torch.no_grad():
        loss, logits = aux_loss(net, x, y, criterion)
        assert torch.allclose(loss, criterion(net(x), y))


def test_reset_classifier_resets_the_auxiliary_heads_too(net):
    net.reset_classifier(3)
    assert net.fc.out_features == net.aux1.fc2.out_features == net.aux2.fc2.out_features == 3
    assert net.aux1.fc1.out_features == 1024  # only the final layers change


def test_the_papers_5x5_branch_is_a_choice():
    paper = zoo.create_model("googlenet", branch3_kernel_size=5)
    assert paper.inception3a.branch3[1].conv.kernel_size == (5, 5)
    assert zoo.create_model("googlenet").inception3a.branch3[1].conv.kernel_size == (3, 3)
    with torch.no_grad():
        assert paper.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 1000)
