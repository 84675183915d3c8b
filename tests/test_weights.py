"""Weights users bring as finetune.source: state_dicts saved through a wrapper (DataParallel, torch.compile,
AveragedModel, a Lightning module), inside other tools' training checkpoints, and from before PyTorch 0.4.1.
Each file is written with torch.save in the format those tools write; `zoo evaluate` takes none of them.
Tests zoo.training.finetune's reading of foreign weight files."""

import collections
import contextlib
import io
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

import zoo
from zoo.config import FinetuneConfig, load_config
from zoo.errors import ZooError
from zoo.evaluation.evaluate import evaluate_checkpoint
from zoo.training import train
from zoo.training.finetune import head_keys, read_source, transplant, unwrap

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "configs" / "lenet5_digits.yaml"


class LitClassifier(nn.Module):
    """What a LightningModule's state_dict looks like: the network is its `model` attribute."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model


@pytest.fixture
def lenet():
    return zoo.create_model("lenet5", num_classes=10)


def backbone(model):
    return {k: v for k, v in model.state_dict().items() if k not in head_keys(model)}


def fine_tune(path, model_name="lenet5", strict=True, source_key=None):
    """A fresh 5-class model with `path`'s weights: (model, source, report)."""
    model = zoo.create_model(model_name, num_classes=5)
    source = read_source(str(path), model_name, source_key)
    return model, source, transplant(model, source, strict)


def assert_loaded(model, reference):
    for key, value in backbone(reference).items():
        assert torch.equal(model.state_dict()[key], value), key


# ---- wrapper prefixes -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("wrap", "note"), [
    (nn.DataParallel, "stripped the prefix 'module.' (DataParallel/DDP) from 10 keys"),
    # torch.compile compiles nothing until a forward
    (torch.compile, "stripped the prefix '_orig_mod.' (torch.compile) from 10 keys"),
    (lambda m: nn.DataParallel(torch.compile(m)),
     "stripped the prefix 'module._orig_mod.' (DataParallel/DDP, torch.compile) from 10 keys"),
    (AveragedModel,
     "stripped the prefix 'module.' (AveragedModel, torch's SWA/EMA) from 10 keys and dropped n_averaged"),
    (LitClassifier, "stripped the prefix 'model.' (a Lightning module's attribute) from 10 keys"),
])
def test_a_wrappers_prefix_is_stripped_and_named(lenet, wrap, note, tmp_path):
    torch.save(wrap(lenet).state_dict(), tmp_path / "wrapped.pth")
    model, _, report = fine_tune(tmp_path / "wrapped.pth")
    assert report.notes == [note] and len(report.loaded) == 8 and not report.problems and not report.missing
    assert_loaded(model, lenet)


def test_keys_that_fit_as_they_are_keep_their_prefix():
    state = {"module.weight": torch.zeros(1)}
    assert unwrap(state, {"module.weight", "weight"}) == (state, [])  # a tie: the network's own attribute is `module`
    assert unwrap(state, {"weight"})[0] == {"weight": state["module.weight"]}


def test_strict_false_that_loads_almost_nothing_is_refused_and_the_model_is_unchanged(lenet, tmp_path):
    # Another network's layers under a prefix: stripping it fits nothing either (a prefix alone is stripped: below).
    torch.save({"encoder.conv.weight": torch.zeros(6, 1, 5, 5), "encoder.conv.bias": torch.zeros(6),
                "encoder.fc.weight": torch.zeros(10, 84)}, tmp_path / "encoder.pth")
    model = zoo.create_model("lenet5", num_classes=5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    source = read_source(str(tmp_path / "encoder.pth"), "lenet5")
    with pytest.raises(ZooError, match=r"^state_dict .*encoder.pth fits only 0.0% of lenet5's backbone parameters "
                                       r"\(0 of 8 tensors; none matched; first misfit: encoder.conv.weight is not in "
                                       r"lenet5\), too few to fine-tune from even with finetune.strict: false; choose "
                                       r"weights saved from a lenet5, or remove finetune"):
        transplant(model, source, strict=False)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())


def test_the_threshold_is_half_the_backbones_parameters_not_its_tensors(lenet, tmp_path):
    # F5 (classifier.0) holds 48,120 of LeNet-5's 60,856 backbone parameters in 2 of its 8 tensors.
    keys = list(backbone(lenet))
    f5 = [k for k in keys if k.startswith("classifier.0.")]
    torch.save({k: lenet.state_dict()[k] for k in f5}, tmp_path / "f5.pth")
    torch.save({k: lenet.state_dict()[k] for k in keys if k not in f5}, tmp_path / "all_but_f5.pth")
    model, _, report = fine_tune(tmp_path / "f5.pth", strict=False)  # 2 of 8 tensors, 79% of the parameters
    assert report.loaded == f5 and report.missing == [k for k in keys if k not in f5]
    with pytest.raises(ZooError, match=r"fits only 20.9% of lenet5's backbone parameters \(6 of 8 tensors; matched "
                                       r"features.0.weight, features.0.bias, features.3.weight ...\), too few"):
        fine_tune(tmp_path / "all_but_f5.pth", strict=False)


def test_a_pruned_networks_file_is_refused_though_its_batch_norms_fit(tmp_path):
    # torch.nn.utils.prune leaves weight_orig and weight_mask where the weights were: every batch-norm tensor
    # still fits, no convolution does.
    from torch.nn.utils import prune

    network = zoo.create_model("resnet20")
    for module in network.modules():
        if isinstance(module, nn.Conv2d):
            prune.l1_unstructured(module, "weight", amount=0.5)
    torch.save(network.state_dict(), tmp_path / "pruned.pth")
    with pytest.raises(ZooError, match=r"fits only 1.0% of resnet20's backbone parameters \(95 of 114 tensors"):
        fine_tune(tmp_path / "pruned.pth", "resnet20", strict=False)


# ---- state_dicts inside other tools' checkpoints ----------------------------------------------------------

def test_a_tutorial_style_checkpoint_loads_from_model_state_dict(lenet, tmp_path):
    optimizer = torch.optim.SGD(lenet.parameters(), lr=0.1, momentum=0.9)
    torch.save({"epoch": 3, "model_state_dict": lenet.state_dict(), "optimizer_state_dict": optimizer.state_dict(),
                "loss": 0.25}, tmp_path / "tutorial.pt")
    model, source, report = fine_tune(tmp_path / "tutorial.pt")
    assert source.description.endswith("tutorial.pt['model_state_dict']")
    assert source.notes == ("the weights are the file's 'model_state_dict' entry (PyTorch's tutorial on saving a "
                            "general checkpoint)",)
    assert len(report.loaded) == 8
    assert_loaded(model, lenet)


def test_a_lightning_checkpoint_loads_from_state_dict_without_its_model_prefix(lenet, tmp_path):
    torch.save({"epoch": 2, "global_step": 100, "pytorch-lightning_version": "2.4.0",
                "state_dict": LitClassifier(lenet).state_dict(), "optimizer_states": [], "lr_schedulers": []},
               tmp_path / "last.ckpt")
    model, source, report = fine_tune(tmp_path / "last.ckpt")
    assert source.notes == ("the weights are the file's 'state_dict' entry (PyTorch Lightning, MMPretrain, timm's "
                            "train.py)",)
    assert report.notes == ["stripped the prefix 'model.' (a Lightning module's attribute) from 10 keys"]
    assert_loaded(model, lenet)


def test_a_timm_train_checkpoint_with_its_argparse_namespace_loads(lenet, tmp_path):
    # timm's train.py (and torchvision's reference scripts) pickle their command line beside the weights.
    import argparse

    torch.save({"epoch": 3, "arch": "lenet5", "state_dict": lenet.state_dict(), "optimizer": {},
                "args": argparse.Namespace(model="lenet5", lr=0.1, aa=None), "metric": 0.9, "version": 2},
               tmp_path / "model_best.pth.tar")
    model, source, _ = fine_tune(tmp_path / "model_best.pth.tar")
    assert source.notes == ("the weights are the file's 'state_dict' entry (PyTorch Lightning, MMPretrain, timm's "
                            "train.py)",)
    assert_loaded(model, lenet)


def test_state_dict_wins_over_its_ema_unless_source_key_says(lenet, tmp_path):
    ema = zoo.create_model("lenet5", num_classes=10)
    torch.save({"epoch": 9, "arch": "lenet5", "state_dict": lenet.state_dict(), "state_dict_ema": ema.state_dict()},
               tmp_path / "timm.pth.tar")
    model, source, _ = fine_tune(tmp_path / "timm.pth.tar")
    assert source.notes == ("the weights are the file's 'state_dict' entry (PyTorch Lightning, MMPretrain, timm's "
                            "train.py); it also holds 'state_dict_ema': set finetune.source_key to fine-tune from "
                            "another",)
    assert_loaded(model, lenet)
    model, source, _ = fine_tune(tmp_path / "timm.pth.tar", source_key="state_dict_ema")
    assert source.notes == ("the weights are the file's 'state_dict_ema' entry (finetune.source_key); it also holds "
                            "'state_dict': set finetune.source_key to fine-tune from another",)
    assert_loaded(model, ema)


def test_entries_no_tool_writes_are_listed_for_the_user_to_choose(lenet, tmp_path):
    torch.save({"encoder": lenet.state_dict(), "teacher": lenet.state_dict(), "step": 7}, tmp_path / "custom.pt")
    with pytest.raises(ZooError, match=r"^finetune.source .*custom.pt holds no state_dict under a known key "
                                       r"\(state_dict, model_state_dict, model, net, weights, state_dict_ema, "
                                       r"model_ema\); its entries holding tensors are 'encoder', 'teacher': set "
                                       r"finetune.source_key to one$"):
        fine_tune(tmp_path / "custom.pt")
    model, _, _ = fine_tune(tmp_path / "custom.pt", source_key="teacher")
    assert_loaded(model, lenet)
    with pytest.raises(ZooError, match=r"^finetune.source_key: .*custom.pt has no entry 'student' holding a "
                                       r"state_dict; its entries holding tensors are 'encoder', 'teacher'$"):
        fine_tune(tmp_path / "custom.pt", source_key="student")


@pytest.mark.parametrize(("content", "source_key", "message"), [
    ({"epoch": 3, "loss": 0.25}, None, "is neither a zoo checkpoint nor a state_dict of tensors$"),
    ({"epoch": 3, "loss": 0.25}, "state_dict",
     "has no entry 'state_dict' holding a state_dict; no entry holds tensors: choose another source$"),
    ("bare", "state_dict",
     "has no entry 'state_dict' holding a state_dict; the file is a state_dict itself: remove finetune.source_key$"),
])
def test_files_without_a_state_dict_where_looked(lenet, content, source_key, message, tmp_path):
    torch.save(lenet.state_dict() if content == "bare" else content, tmp_path / "file.pt")
    with pytest.raises(ZooError, match=message):
        fine_tune(tmp_path / "file.pt", source_key=source_key)


def test_a_pytorch_cifar_checkpoint_loads_through_entry_and_prefix_with_the_report_printed(lenet, tmp_path):
    """kuangliu/pytorch-cifar saves {'net': DataParallel(net).state_dict(), 'acc', 'epoch'}."""
    torch.save({"net": nn.DataParallel(lenet).state_dict(), "acc": 91.5, "epoch": 40}, tmp_path / "ckpt.pth")
    config = load_config(DIGITS, [f"train.output_dir={tmp_path / 'runs'}", "data.classes=[5,6,7,8,9]", "train.epochs=1",
                                  "train.max_steps_per_epoch=1", f"finetune.source={tmp_path / 'ckpt.pth'}"])
    with contextlib.redirect_stdout(io.StringIO()) as out:
        train(config, quiet=True)
    assert (f"fine-tuning lenet5 from state_dict {tmp_path / 'ckpt.pth'}['net']\n"
            "  the weights are the file's 'net' entry (hand-written scripts such as pytorch-cifar)\n"
            "  stripped the prefix 'module.' (DataParallel/DDP) from 10 keys\n"
            "  keys loaded 8, skipped 2 (classifier.4.weight, classifier.4.bias), missing 0\n") in out.getvalue()


def test_finetune_source_key_reaches_read_source(lenet, tmp_path):
    torch.save({"state_dict": lenet.state_dict(), "state_dict_ema": lenet.state_dict()}, tmp_path / "timm.pth.tar")
    config = load_config(DIGITS, [f"train.output_dir={tmp_path / 'runs'}", "data.classes=[5,6,7,8,9]", "train.epochs=1",
                                  "train.max_steps_per_epoch=1", f"finetune.source={tmp_path / 'timm.pth.tar'}",
                                  "finetune.source_key=state_dict_ema"])
    with contextlib.redirect_stdout(io.StringIO()) as out:
        train(config, quiet=True)
    assert "the weights are the file's 'state_dict_ema' entry (finetune.source_key)" in out.getvalue()


def test_source_key_is_validated_in_the_config():
    assert FinetuneConfig(source="last.ckpt", source_key="state_dict_ema").source_key == "state_dict_ema"
    with pytest.raises(ValueError, match="torchvision weights have none: remove it"):
        FinetuneConfig(source="torchvision:ResNet18_Weights.IMAGENET1K_V1", source_key="state_dict")


def test_a_zoo_checkpoint_takes_no_source_key(lenet, tmp_path):
    torch.save({"model": lenet.state_dict(), "config": {}, "model_name": "lenet5"}, tmp_path / "best.pt")
    with pytest.raises(ZooError, match="is a zoo checkpoint, its weights are known: remove finetune.source_key"):
        fine_tune(tmp_path / "best.pt", source_key="model")


# ---- batch norm saved before PyTorch 0.4.1 ---------------------------------------------------------------

def without_batch_counts(state, version):
    """`state` as PyTorch < 0.4.1 saved it when version is 1: no num_batches_tracked, batch norm's version 1."""
    old = collections.OrderedDict((k, v) for k, v in state.items() if not k.endswith("num_batches_tracked"))
    old._metadata = collections.OrderedDict((k, dict(v, version=version) if "bn" in k.rsplit(".", 1)[-1] else v)
                                            for k, v in state._metadata.items())
    return old


@pytest.mark.parametrize(("version", "wrap"), [(1, False), (None, False), (1, True), (2, False), (2, True)])
def test_batch_norm_without_num_batches_tracked_loads_exactly_when_torch_accepts_it(version, wrap, tmp_path):
    reference = zoo.create_model("resnet20", num_classes=10)
    state = (nn.DataParallel(reference) if wrap else reference).state_dict()
    old = without_batch_counts(state, version)
    if version is None:  # no versions at all: a dict rebuilt by hand, or safetensors
        old = dict(old)
    torch.save(old, tmp_path / "old.pth")
    loaded = torch.load(tmp_path / "old.pth", weights_only=True)
    try:
        (nn.DataParallel(zoo.create_model("resnet20", num_classes=10)) if wrap
         else zoo.create_model("resnet20", num_classes=10)).load_state_dict(loaded)
        torch_accepts = True
    except RuntimeError:
        torch_accepts = False
    assert torch_accepts == (version != 2)
    if not torch_accepts:
        with pytest.raises(ZooError, match=r"^state_dict .*old.pth does not fit resnet20: bn1.num_batches_tracked is "
                                           r"missing from the source; layer1.0.bn1.num_batches_tracked is missing "
                                           r".*; choose the matching model.name, or set finetune.strict: false to "
                                           r"load what fits$"):
            fine_tune(tmp_path / "old.pth", "resnet20")
        return
    model, _, report = fine_tune(tmp_path / "old.pth", "resnet20")
    assert not report.missing and len(report.loaded) == 116 - 19 - 2
    assert report.notes[-1] == ("19 tensors the source predates were filled in as torch's load_state_dict does "
                                "(bn1.num_batches_tracked, layer1.0.bn1.num_batches_tracked ...)")
    assert_loaded(model, reference)


# ---- zoo evaluate takes zoo checkpoints only ---------------------------------------------------------------

@pytest.mark.parametrize("content", [
    lambda m: nn.DataParallel(m).state_dict(),
    lambda m: {"epoch": 3, "state_dict": m.state_dict()},
    lambda m: {"model_state_dict": m.state_dict(), "optimizer_state_dict": {}},
])
def test_evaluate_refuses_weights_files_in_one_line(lenet, content, tmp_path):
    torch.save(content(lenet), tmp_path / "weights.pt")
    with pytest.raises(ZooError, match=r"weights.pt is not a zoo checkpoint \(no model, config, num_classes and "
                                       r"normalization inside\); use a runs/.../checkpoints/\*.pt file$"):
        evaluate_checkpoint(tmp_path / "weights.pt")


@pytest.mark.parametrize(("prefix", "extra", "note"), [
    ("net.", {}, "stripped the prefix 'net.' (shared by 10 of 10 keys) from 10 keys"),
    ("backbone.", {"loss.weight": torch.ones(10)},
     "stripped the prefix 'backbone.' (shared by 10 of 11 keys) from 10 keys and dropped loss.weight"),
])
def test_a_prefix_no_table_names_is_stripped_where_the_rest_fits(lenet, tmp_path, prefix, extra, note):
    torch.save({"state_dict": {**{prefix + k: v for k, v in lenet.state_dict().items()}, **extra}},
               tmp_path / "tool.ckpt")
    model, _, report = fine_tune(tmp_path / "tool.ckpt")  # strict: it loads without finetune.strict: false
    assert report.notes == [note] and len(report.loaded) == 8
    assert_loaded(model, lenet)
