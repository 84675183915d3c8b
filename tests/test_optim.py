"""zoo.training.optim: optimizers and schedulers built from the config, parameter groups, fused kernels."""

import pytest
import torch
from torch import nn

from zoo.config import OptimizerConfig, SchedulerConfig
from zoo.errors import ZooError
from zoo.training.optim import build_optimizer, build_scheduler


def net() -> nn.Module:
    """A conv, a batch norm and a linear layer, new at each call (a test may need two): not test_googlenet's fixture."""
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8, 2))


@pytest.mark.parametrize(("name", "cls"), [("sgd", torch.optim.SGD), ("adagrad", torch.optim.Adagrad),
                                           ("rmsprop", torch.optim.RMSprop), ("adam", torch.optim.Adam),
                                           ("adamw", torch.optim.AdamW)])
def test_every_optimizer_is_built_with_the_lr(name, cls):
    optimizer = build_optimizer(net(), OptimizerConfig(name=name, lr=0.02,
                                                       momentum=0.5 if name in ("sgd", "rmsprop") else 0.9))
    assert isinstance(optimizer, cls)
    assert all(group["lr"] == 0.02 for group in optimizer.param_groups)


def test_sgd_momentum_and_nesterov():
    optimizer = build_optimizer(net(), OptimizerConfig(name="sgd", lr=0.1, momentum=0.8, nesterov=True))
    assert optimizer.defaults["momentum"] == 0.8 and optimizer.defaults["nesterov"] is True


def test_weight_decay_can_spare_biases_and_norm_weights():
    model = net()
    optimizer = build_optimizer(model, OptimizerConfig(weight_decay=5e-4, decay_bias_and_norm=False))
    decay = {id(p) for g in optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decay == {id(model[0].weight), id(model[3].weight)}
    everything = build_optimizer(model, OptimizerConfig(weight_decay=5e-4))
    assert all(g["weight_decay"] == 5e-4 for g in everything.param_groups)
    assert sum(len(g["params"]) for g in everything.param_groups) == len(list(model.parameters()))


def test_frozen_parameters_are_not_optimized():
    model = net()
    model[0].requires_grad_(False)
    optimizer = build_optimizer(model, OptimizerConfig())
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters())) - 2


def _lrs(scheduler_config: SchedulerConfig, epochs: int = 4, steps: int = 10, lr: float = 0.1) -> list[float]:
    optimizer = build_optimizer(net(), OptimizerConfig(lr=lr))
    scheduler = build_scheduler(optimizer, scheduler_config, epochs, steps)
    values = []
    for _ in range(epochs * steps):
        values.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return values


def test_step_and_multistep_decay_at_epoch_boundaries():
    step = _lrs(SchedulerConfig(name="step", step_size=2, gamma=0.5))
    assert step[19] == pytest.approx(0.1) and step[20] == pytest.approx(0.05)
    multi = _lrs(SchedulerConfig(name="multistep", milestones=(1, 3), gamma=0.1))
    assert multi[9] == pytest.approx(0.1) and multi[10] == pytest.approx(0.01) and multi[30] == pytest.approx(0.001)


def test_cosine_with_linear_warmup():
    lrs = _lrs(SchedulerConfig(name="cosine", warmup_epochs=1, min_lr=0.001))
    assert lrs[0] == pytest.approx(0.001)  # warmup starts at lr / 100
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:11]))  # rising through the first epoch
    assert max(lrs) == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # then only falling
    assert lrs[-1] == pytest.approx(0.001, abs=1e-3)


def test_onecycle_rises_then_falls():
    lrs = _lrs(SchedulerConfig(name="onecycle", pct_start=0.25))
    peak = lrs.index(max(lrs))
    assert 8 <= peak <= 11 and max(lrs) == pytest.approx(0.1, rel=1e-3)
    assert lrs[0] < 0.01 and lrs[-1] < 1e-3


def test_none_keeps_the_lr():
    assert set(_lrs(SchedulerConfig(name="none"))) == {0.1}


@pytest.mark.parametrize(("name", "fused"),
                         [("sgd", True), ("adam", True), ("adamw", True), ("adagrad", True), ("rmsprop", None)])
def test_optimizers_with_a_fused_kernel_use_it_on_the_cpu(name, fused):
    optimizer = build_optimizer(net(), OptimizerConfig(name=name))
    assert optimizer.defaults.get("fused") == fused
    assert not build_optimizer(net(), OptimizerConfig(name=name, fused=False)).defaults.get("fused")


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_the_fused_step_matches_the_loop_to_float_rounding(name):
    # In float64: in float32 Adam's division by sqrt(v) carries the two kernels' different rounding from step to step,
    # and the gap after 20 steps depends on the CPU and the thread count (5e-6 to 1.1e-5 measured), not on the kernels.
    torch.manual_seed(0)
    models = [net().double(), net().double()]
    models[1].load_state_dict(models[0].state_dict())
    start = [p.detach().clone() for p in models[0].parameters()]
    optimizers = [build_optimizer(m, OptimizerConfig(name=name, lr=0.05, weight_decay=5e-4, fused=f))
                  for m, f in zip(models, (True, False))]
    x, y = torch.randn(16, 3, 3, 3, dtype=torch.float64), torch.randint(0, 2, (16,))
    for _ in range(20):
        for model, optimizer in zip(models, optimizers):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    moved = max((p - q).abs().max().item() for p, q in zip(start, models[0].parameters()))
    gap = max((p - q).abs().max().item() for p, q in zip(*(m.parameters() for m in models)))
    assert moved > 1e-2 and gap < 1e-12


def test_fused_true_needs_an_optimizer_torch_fuses():
    with pytest.raises(ValueError, match="torch has no fused rmsprop"):
        OptimizerConfig(name="rmsprop", fused=True)


def test_fused_true_on_a_device_without_the_kernel_fails_in_one_line():
    model = net().to("meta")
    with pytest.raises(ZooError, match="runs on cpu, cuda, not on meta"):
        build_optimizer(model, OptimizerConfig(name="sgd", fused=True))
    assert not build_optimizer(model, OptimizerConfig(name="sgd")).defaults.get("fused")  # auto: torch's default


def test_parameters_that_join_later_keep_sgd_unfused():
    # torch's fused SGD steps every momentum buffer or none: an unfrozen layer's first step would fail
    model = net()
    model[0].requires_grad_(False)
    optimizer = build_optimizer(model, OptimizerConfig(name="sgd"), include_frozen=True)
    for _ in range(2):  # a step with the first layer frozen, then one with it unfrozen
        optimizer.zero_grad()
        model(torch.randn(4, 3, 3, 3)).sum().backward()
        optimizer.step()
        model[0].requires_grad_(True)
    assert not optimizer.defaults["fused"] and len(optimizer.state) == len(list(model.parameters()))
    assert build_optimizer(model, OptimizerConfig(name="adam"), include_frozen=True).defaults["fused"]


def test_fused_sgd_is_refused_where_torch_gets_it_wrong():
    from zoo.config import Config

    raw = {"model": {"name": "lenet5"}, "data": {"name": "digits"}, "optimizer": {"fused": True},
           "train": {"precision": "16"}}
    with pytest.raises(ValueError, match="gradient scaler skips"):
        Config.model_validate(raw)
    Config.model_validate({**raw, "optimizer": {"fused": "auto"}})
    with pytest.raises(ZooError, match="cannot step parameters that start training later"):
        build_optimizer(net(), OptimizerConfig(name="sgd", fused=True), include_frozen=True)
