"""zoo export: a network of every family to ONNX and pt2 within 1e-4 of eager (scripts/export_all.py: every
registered model), the metadata, the check, the refusals."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import onnx
import pytest
import torch

import zoo
from zoo.checkpoint import Normalization, TrainingState, save_checkpoint
from zoo.config import validate_config
from zoo.errors import ExportMismatch, ZooError
from zoo.inference.export import TOLERANCE, export_checkpoint
from zoo.models.registry import get_model_info, list_models

# One network of each family, and of each kind of block: the others take 3-25 s each on 2 cores (VGG's
# 100-million-weight classifier serializes slowly), 6 minutes in all, which the default suite cannot afford;
# scripts/export_all.py runs every registered model and prints the table.
COVERING = ("lenet5", "mlp", "mnist_cnn", "alexnet_owt", "zfnet", "googlenet", "resnet20", "resnet18", "resnet50",
            "se_resnet18", "vgg11_bn", "densenet_bc_100", "inception_v3", "mobilenet_v3_small")
QUICK = ("lenet5", "mlp", "mnist_cnn", "resnet20")  # under 3 s each: the default suite; the rest run with -m slow
# The export's tolerance is 1e-4 of the largest logit: random Inception v3 weights (torchvision's initialization, a
# truncated normal of std 0.1) give logits near 300, where the others stay under 100
LOGIT_SCALE = {"inception_v3": 10}


def small_side(name: str) -> int:
    """The smallest side a network takes, at least 32 (LeNet-5's and the CIFAR ResNets' own)."""
    info = get_model_info(name)
    return max(info.min_input_size, min(32, info.input_size[1]))


def checkpoint_of(name: str, folder: Path, side: int | None = None, **model: object) -> Path:
    """A zoo checkpoint of `name` with its initial weights and batch norm statistics of one batch of random
    images; the config names FakeData at the given side, so the export's check runs on its test images."""
    side = side or small_side(name)
    info = get_model_info(name)
    config = validate_config({"model": {"name": name, **model},
                              "data": {"name": "synthetic", "input_size": side, "synthetic_classes": 10,
                                       "synthetic_size": 64}})
    network = config.model.build(10, info.input_size[0])
    norms = [module for module in network.modules() if isinstance(module, torch.nn.BatchNorm2d)]
    for norm in norms:  # statistics of real activations, as after training: eval-mode batch norm is not the identity
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average
    with torch.no_grad():
        network.train()(torch.randn(16, info.input_size[0], side, side, generator=torch.Generator().manual_seed(0)))
    normalization = Normalization((0.5,) * info.input_size[0], (0.25,) * info.input_size[0], side, info.input_size[0])
    state = TrainingState.of_network(network, config.to_dict(), [f"class {i}" for i in range(10)], normalization)
    path = folder / f"{name}.pt"
    save_checkpoint(state, path)
    return path


def test_the_exported_networks_cover_every_family():
    # the autoencoders' exports (every one registered) are tests/test_autoencoder_inference.py's, TextCNN's
    # tests/test_textcnn.py's
    families = {get_model_info(name).family for name in list_models(task="classification", input="image")}
    assert {get_model_info(name).family for name in COVERING} == families, "add the new family's smallest network"


@pytest.mark.parametrize("name", [name if name in QUICK else pytest.param(name, marks=pytest.mark.slow)
                                  for name in COVERING])
def test_a_network_of_each_family_exports_to_onnx_and_pt2_within_tolerance(name, tmp_path):
    path = checkpoint_of(name, tmp_path)
    for format in ("onnx", "pt2"):
        report = export_checkpoint(path, format)
        assert report.path == path.with_suffix(f".{format}") and report.path.is_file()
        assert report.max_abs_diff <= report.tolerance <= TOLERANCE * 100 * LOGIT_SCALE.get(name, 1)
        assert report.top1_agreement == 1.0
        assert report.images == 8 and report.inputs == "test images of synthetic" and report.batch is None
        report.path.unlink()  # the large ones take disk


@pytest.mark.slow
def test_onnx_metadata_static_batch_and_opset(tmp_path):
    path = checkpoint_of("resnet20", tmp_path)
    report = export_checkpoint(path, "onnx", tmp_path / "fixed.onnx", opset=18, batch=4)
    assert report.opset == 18 and report.batch == 4 and report.images == 8
    model = onnx.load(str(report.path))
    props = {entry.key: json.loads(entry.value) for entry in model.metadata_props}
    assert props["classes"] == [f"class {i}" for i in range(10)] and props["model_name"] == "resnet20"
    assert props["mean"] == [0.5] * 3 and props["std"] == [0.25] * 3 and props["input_size"] == 32
    assert props["zoo_version"] == zoo.__version__ and props["config"]["model"]["name"] == "resnet20"
    assert [dim.dim_value for dim in model.graph.input[0].type.tensor_type.shape.dim] == [4, 3, 32, 32]
    predictor = zoo.load(report.path)
    assert predictor.fixed_batch == 4
    assert predictor.predict(torch.randn(6, 3, 32, 32), top_k=1)[5].classes[0].startswith("class ")  # padded batches
    assert export_checkpoint(path, "pt2", tmp_path / "fixed.pt2", batch=4).batch == 4  # checked in padded batches of 4
    dynamic = onnx.load(str(export_checkpoint(path, "onnx").path))
    assert dynamic.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # a named, free batch dimension


@pytest.mark.slow
def test_googlenet_exports_its_main_head_and_safetensors_keeps_every_tensor(tmp_path):
    path = checkpoint_of("googlenet", tmp_path, side=64, aux_logits=True)
    onnx_report = export_checkpoint(path, "onnx")
    outputs = onnx.load(str(onnx_report.path)).graph.output
    assert [output.name for output in outputs] == ["logits"]
    report = export_checkpoint(path, "safetensors")
    from safetensors import safe_open

    with safe_open(str(report.path), "pt") as file:
        assert any(key.startswith("aux1.") for key in file.keys())
    loaded = zoo.load(report.path)
    images = torch.randn(3, 3, 64, 64)
    eager = zoo.load(path)
    assert torch.equal(loaded.logits(images), eager.logits(images))


def test_the_export_check_removes_a_file_that_computes_otherwise(tmp_path, monkeypatch):
    path = checkpoint_of("lenet5", tmp_path)
    output = tmp_path / "lenet5.onnx"
    output.write_bytes(b"the previous export")
    monkeypatch.setattr("zoo.inference.export.TOLERANCE", -1.0)  # every difference, even 0, is above it
    with pytest.raises(ExportMismatch, match="computes other logits than the checkpoint"):
        export_checkpoint(path, "onnx", output)
    assert output.read_bytes() == b"the previous export"
    assert sorted(item.name for item in tmp_path.iterdir()) == ["lenet5.onnx", "lenet5.pt"]  # no temporary left


def test_the_cli_exits_1_when_the_check_fails(tmp_path, monkeypatch, capsys):
    from zoo.cli import main

    path = checkpoint_of("lenet5", tmp_path)
    monkeypatch.setattr("zoo.inference.export.TOLERANCE", -1.0)
    monkeypatch.setattr(sys, "argv", ["zoo", "export", str(path), "--format", "pt2"])
    with pytest.raises(SystemExit) as stopped:
        main()
    assert stopped.value.code == 1
    assert capsys.readouterr().err.startswith("error: the export of lenet5.pt2 computes other logits")
    assert not path.with_suffix(".pt2").exists()


def test_the_check_runs_on_random_inputs_when_the_data_is_not_here(tmp_path):
    config = validate_config({"model": {"name": "lenet5"}, "data": {"name": "mnist", "root": str(tmp_path / "none"),
                                                                    "download": False}})
    network = config.model.build(10, 1)
    state = TrainingState.of_network(network, config.to_dict(), [str(i) for i in range(10)],
                                     Normalization((0.1307,), (0.3081,), 32, 1))
    save_checkpoint(state, tmp_path / "mnist.pt")
    report = export_checkpoint(tmp_path / "mnist.pt", "safetensors")
    assert report.inputs == "random inputs (mnist is not at hand)" and report.max_abs_diff == 0.0


@pytest.mark.parametrize("kwargs, message", [
    ({"format": "onnx", "opset": 11}, "--opset 11: torch's exporter writes opset 18 to"),
    ({"format": "pt2", "opset": 18}, "--opset is for ONNX; pt2 has none"),
    ({"format": "tflite"}, "unknown format 'tflite'"),
    ({"format": "onnx", "batch": "0"}, "--batch 0: give dynamic or a batch size of 1 or more"),
])
def test_bad_export_options_are_refused_before_anything_is_written(tmp_path, kwargs, message):
    path = checkpoint_of("lenet5", tmp_path)
    with pytest.raises(ZooError, match=message):
        export_checkpoint(path, **kwargs)
    assert [item.name for item in tmp_path.iterdir()] == ["lenet5.pt"]


def test_onnx_without_the_export_extra_names_it(tmp_path, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "onnxscript" else find_spec(name, *args))
    with pytest.raises(ZooError, match=r"--format onnx needs onnxscript: pip install 'zoo\[export\]'"):
        export_checkpoint(checkpoint_of("lenet5", tmp_path), "onnx")


def test_files_zoo_did_not_write_are_refused_by_zoo_load(tmp_path):
    from safetensors.torch import save_file

    save_file({"weight": torch.zeros(2)}, tmp_path / "plain.safetensors")
    with pytest.raises(ZooError, match="plain.safetensors has no zoo metadata .* not written by zoo export"):
        zoo.load(tmp_path / "plain.safetensors")
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(ZooError, match="junk.onnx is damaged or not an ONNX model"):
        zoo.load(tmp_path / "junk.onnx")
    program = export_checkpoint(checkpoint_of("lenet5", tmp_path), "pt2").path  # a good one: refused all the same
    with pytest.raises(ZooError,
                       match=r"lenet5.pt2: zoo does not load .pt2 programs, since torch.export.load unpickles"):
        zoo.load(program)
