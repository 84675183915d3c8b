"""zoo export --quantize int8 (zoo.inference.export.quantize_checkpoint): the main job's int8 file keeps its test top-1
and carries the float export's metadata, so zoo.load and zoo predict take it; a broken calibration is refused with
both figures and nothing left; the refusals before anything is written. scripts/bench_int8.py prints the figures."""

from __future__ import annotations

import json
import re
import shutil
import sys

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

import zoo
from zoo.errors import ZooError
from zoo.inference.export import quantize_checkpoint
from zoo.inference.load import Metadata, open_checkpoint


@pytest.fixture(scope="module")
def run(digits_run, tmp_path_factory):
    """A copy of the main job's run directory: the int8 file goes beside its best.pt, as by default."""
    return shutil.copytree(digits_run.run_dir, tmp_path_factory.mktemp("int8") / "run")


@pytest.fixture(scope="module")
def quantized(run):
    return quantize_checkpoint(run)


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """60 of scikit-learn's digits as 32 x 32 gray PNGs, light on dark as the network learnt them."""
    from PIL import Image
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("pictures")
    digits = load_digits()
    for i in range(0, 1797, 30):
        pixels = (digits.images[i] * 255 / 16).round().astype(np.uint8)
        Image.fromarray(pixels).resize((32, 32), Image.Resampling.NEAREST).save(root / f"{i:04d}.png")
    return root


def test_the_main_jobs_int8_file_keeps_its_top1_at_a_third_of_the_size(quantized, run, digits_run):
    assert quantized.path == run / "checkpoints" / "best.int8.onnx" and quantized.path.is_file()
    assert not list(quantized.path.parent.glob("*.tmp")) and not (run / "checkpoints" / "best.onnx").exists()
    test = digits_run.metrics["test"]
    assert quantized.test_images == test["count"] and quantized.calibration_images == 256
    assert quantized.float32.accuracy == pytest.approx(test["accuracy"], abs=1.5 / test["count"])  # eager's figure
    assert abs(quantized.drop) <= 1.0 and quantized.agreement >= 0.97
    # LeNet-5's 61,706 weights take 247 KB as float32, and the int8 file's tensors 67 KB (0.27x: 61.5 KB of int8
    # weights, 5.6 KB of per-channel scales and int32 biases); with zoo's metadata (13.5 KB, 11.5 KB of it the
    # calibration) and the graph (6.6 KB) the file is 0.32x the float one
    weights = sum(numpy_helper.to_array(tensor).nbytes for tensor in onnx.load(str(quantized.path)).graph.initializer)
    assert weights <= 0.3 * 4 * sum(p.numel() for p in open_checkpoint(run / "checkpoints" / "best.pt")[2].parameters())
    assert quantized.int8.bytes == quantized.path.stat().st_size <= 0.33 * quantized.float32.bytes
    for figures in (quantized.float32, quantized.int8):
        assert sorted(figures.latency_ms) == [1, 32] and all(ms > 0 for ms in figures.latency_ms.values())


def test_the_int8_file_carries_the_float_exports_metadata_and_predicts_as_it(quantized, run, pictures, capsys,
                                                                           monkeypatch):
    from zoo.cli import main

    model = onnx.load(str(quantized.path))
    props = {entry.key: entry.value for entry in model.metadata_props}
    state, config, _ = open_checkpoint(run / "checkpoints" / "best.pt")
    assert props == {**Metadata.of_checkpoint(state, config).to_strings(), "quantization": '"int8"'}
    assert not any(node.metadata_props for node in model.graph.node)  # the exporter's stack traces: left out
    assert {node.op_type for node in model.graph.node} >= {"QuantizeLinear", "DequantizeLinear"}
    predictor = zoo.load(quantized.path)
    assert predictor.classes == zoo.load(run).classes and predictor.calibration is not None
    outputs = {}
    for source in (run, quantized.path):
        monkeypatch.setattr(sys, "argv", ["zoo", "predict", str(source), str(pictures), "-f", "json"])
        with pytest.raises(SystemExit) as done:
            main()
        assert done.value.code in (0, None)
        outputs[source] = [row["top_k"][0]["class"] for row in json.loads(capsys.readouterr().out)["predictions"]]
    checkpoint, int8 = outputs.values()
    assert len(int8) == 60 and sum(a == b for a, b in zip(checkpoint, int8)) >= 0.9 * len(int8)


def test_a_broken_calibration_is_refused_with_both_figures_and_no_file_left(run, tmp_path, capsys, monkeypatch):
    # On the main job the int8 file's top-1 equals the float file's (a drop of 0.00 points), so even --max-drop 0
    # keeps it: the calibration is broken instead, on blank pictures (every activation's range 0: they saturate)
    from zoo.cli import main

    monkeypatch.setattr("zoo.inference.export.calibration_images",
                        lambda splits, data: torch.zeros(32, 1, 32, 32))
    output = tmp_path / "broken.int8.onnx"
    monkeypatch.setattr(sys, "argv", ["zoo", "export", str(run), "--quantize", "int8", "--max-drop", "0", "-o",
                                      str(output)])
    with pytest.raises(SystemExit) as stopped:
        main()
    assert stopped.value.code == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert re.fullmatch(r"error: the int8 file's test top-1 is \d+\.\d\d%, \d+\.\d\d points below the float file's "
                        r"9\d\.\d\d% \(--max-drop 0\); nothing written", lines[0]), lines[0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("options, message", [
    ({"format": "pt2"}, "--quantize int8 writes ONNX .* --format pt2 has no int8 file: give --format onnx"),
    ({"max_drop": -0.5}, r"--max-drop -0.5: give the test top-1 the int8 file may lose, in percentage points, 0 or"),
    ({"batch": 4}, "--batch 4: an int8 file is written with a dynamic batch"),
    ({"quantization": "int4"}, "unknown quantization 'int4'; choose int8"),
])
def test_options_that_do_not_go_with_int8_are_refused_before_anything_is_written(run, tmp_path, options, message):
    with pytest.raises(ZooError, match=message):
        quantize_checkpoint(run, tmp_path / "model.onnx", **options)
    assert list(tmp_path.iterdir()) == []


def test_an_autoencoder_and_data_not_at_hand_are_refused_saying_what_to_do(tmp_path):
    from zoo.checkpoint import Normalization, TrainingState, save_checkpoint
    from zoo.config import validate_config

    for name, config, channels in (("ae", {"task": "reconstruction", "model": {"name": "autoencoder"},
                                           "data": {"name": "digits", "input_size": 28, "normalize": False}}, 0),
                                   ("mnist", {"model": {"name": "lenet5"}, "data": {
                                       "name": "mnist", "root": str(tmp_path / "none"), "download": False}}, 10)):
        config = validate_config(config)
        state = TrainingState.of_network(config.model.build(channels, 1), config.to_dict(), [str(i) for i in range(10)],
                                         Normalization((0.0,), (1.0,), 28 if name == "ae" else 32, 1))
        save_checkpoint(state, tmp_path / f"{name}.pt")
    with pytest.raises(ZooError, match=r"ae.pt is an autoencoder \(task reconstruction\); an int8 file is verified by"):
        quantize_checkpoint(tmp_path / "ae.pt")
    with pytest.raises(ZooError, match=r"mnist.pt's data cannot be read here \(MNIST not found .* run zoo export where "
                                       r"the data \(mnist\) is at hand, or export without --quantize"):
        quantize_checkpoint(tmp_path / "mnist.pt")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ae.pt", "mnist.pt"]
