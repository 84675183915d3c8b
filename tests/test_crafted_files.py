"""Files that load safely but hold wrong values: a checkpoint (zoo.checkpoint.TrainingState.from_dict) or an
export's zoo metadata (zoo.inference.load.Metadata.from_strings) whose fields have the wrong type, range or size
for the weights, or weights that are not finite, are refused where they are read, in one line naming the file
and the field, whichever command reads them (evaluate, predict, explain, export, resume, fine-tune).
Tests zoo.checkpoint.FieldCheck and its two readers."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from bad_input_cases import run_zoo
from conftest import build_on_meta
from helpers import digits_config
from PIL import Image
from safetensors.torch import save_file

import zoo
from zoo.checkpoint import FieldCheck, read_safetensors, read_state
from zoo.errors import ZooError
from zoo.inference.load import Metadata, open_checkpoint
from zoo.models.registry import create_model


@pytest.fixture(scope="module")
def last(tmp_path_factory) -> dict:
    """last.pt of LeNet-5 on digits after 2 steps, as loaded: a real checkpoint to damage field by field."""
    from zoo.training import train

    run = train(digits_config(tmp_path_factory.mktemp("crafted"), "train.epochs=1", "train.max_steps_per_epoch=2"),
                quiet=True)
    path = run.run_dir / "checkpoints" / "last.pt"
    return {"path": path, "data": torch.load(path, weights_only=True)}


def crafted(tmp_path: Path, data: dict, name: str = "crafted.pt", **fields) -> Path:
    changed = copy.deepcopy(data)
    changed.update(fields)
    torch.save(changed, tmp_path / name)
    return tmp_path / name


def normalization(data: dict, **fields) -> dict:
    return {**data["normalization"], **fields}


def times(data: dict, factor: float) -> dict:
    return {key: tensor * factor if tensor.is_floating_point() else tensor for key, tensor in data["model"].items()}


CHECKPOINT_CASES = {  # name: (fields, what the one line says)
    "model a list": (lambda d: {"model": [1, 2, 3]}, "its model is a list ([1, 2, 3]), not a mapping"),
    "a weight that is no tensor": (lambda d: {"model": {**d["model"], "fc3.bias": [0.0] * 10}},
                                   "its model holds a list"),
    "classes an int": (lambda d: {"classes": 5}, "its classes is an int (5), not a list"),
    "classes too few": (lambda d: {"classes": ["a"]}, "its classes has 1 name for the 10 outputs of its head"),
    "classes not text": (lambda d: {"classes": list(range(10))}, "its classes holds an int (0), not a name"),
    "classes twice": (lambda d: {"classes": ["a"] * 10}, "its classes names 'a' twice"),
    "num_classes -1": (lambda d: {"num_classes": -1}, "its num_classes is -1, not 1 or more"),
    "num_classes 1e9": (lambda d: {"num_classes": 10**9},
                        "its num_classes is 1,000,000,000, but no tensor of its weights has as many rows"),
    "num_classes text": (lambda d: {"num_classes": "10"}, "its num_classes is a str ('10'), not a whole number"),
    "num_classes None": (lambda d: {"num_classes": None}, "its num_classes is empty (None)"),
    "std 0": (lambda d: {"normalization": normalization(d, std=[0.0])}, "its normalization.std is 0.0, not above 0"),
    "mean NaN": (lambda d: {"normalization": normalization(d, mean=[math.nan])},
                 "its normalization.mean is nan, not a finite number"),
    "mean text": (lambda d: {"normalization": normalization(d, mean="0.5")}, "its normalization.mean is a str"),
    "three means for one channel": (lambda d: {"normalization": normalization(d, mean=[0.1, 0.2, 0.3],
                                                                              std=[1.0, 1.0, 1.0])},
                                    "its normalization.mean and std have 3 and 3 values for 1 channel"),
    "no std": (lambda d: {"normalization": {"mean": [0.5]}}, "its normalization has no mean and std"),
    "input_size 1e5": (lambda d: {"normalization": normalization(d, input_size=100000)},
                       "its normalization.input_size is 100,000, not 1 to 8,192"),
    "input_size other than trained": (lambda d: {"normalization": normalization(d, input_size=64)},
                                      "its normalization.input_size is 64, but its config trains the network at 32 x "
                                      "32"),
    "in_channels 1e9": (lambda d: {"normalization": normalization(d, in_channels=10**9)},
                        "its normalization.in_channels is 1,000,000,000, but no tensor of its weights has as many "
                        "input channels"),
    "NaN weights": (lambda d: {"model": times(d, math.nan)}, "its model tensor features.0.weight holds NaN"),
    "infinite weights": (lambda d: {"model": times(d, math.inf)}, "holds NaN or infinite values"),
    "config a list": (lambda d: {"config": ["lenet5"]}, "its config is a list"),
    "model_name a number": (lambda d: {"model_name": 5}, "its model_name is an int (5), not text"),
}


@pytest.mark.parametrize("case", CHECKPOINT_CASES, ids=list(CHECKPOINT_CASES))
def test_a_checkpoint_field_holding_a_wrong_value_is_one_line_naming_it(case, last, tmp_path):
    fields, message = CHECKPOINT_CASES[case]
    path = crafted(tmp_path, last["data"], **fields(last["data"]))
    needs = ["evaluate"] + (["resume"] if case != "num_classes None" else [])  # resuming reads no num_classes
    for read in [lambda: zoo.load(path), *(lambda need=need: read_state(path, need) for need in needs)]:
        with pytest.raises(ZooError) as error:
            read()
        assert str(error.value).startswith(f"{path} is damaged: ") and message in str(error.value)
        assert str(error.value).endswith("; use another checkpoint") and "\n" not in str(error.value)


def rank(data: dict, **fields) -> list:
    return [{**data["ranks"][0], **fields}]


def rng(data: dict, **fields) -> list:
    return rank(data, rng={**data["ranks"][0]["rng"], **fields})


RESUME_CASES = {  # name: (fields, what the one line says)
    "negative epoch": (lambda d: {"epoch": -5, "batch": -3, "step": -1}, "its epoch is -5, not 0 or more"),
    "step a float": (lambda d: {"step": 2.5}, "its step is a float (2.5), not a whole number"),
    "progress without its counts": (lambda d: {"progress": {"seconds": 0.0}},
                                    "its progress has no images, epochs_run, best_accuracy, best_epoch"),
    "progress a list": (lambda d: {"progress": [1]}, "its progress is a list ([1]), not a mapping"),
    "negative images": (lambda d: {"progress": {**d["progress"], "images": -1}},
                        "its progress.images is -1, not 0 or more"),
    "optimizer a list": (lambda d: {"optimizer": [1]}, "its optimizer is a list ([1]), not a mapping"),
    "ranks a dict": (lambda d: {"ranks": {"0": {}}}, "its ranks is a dict"),
    "a rank without its rng": (lambda d: {"ranks": [{"loader": {}}]}, "its ranks[0] has no rng and loader state"),
    "torch's random state a list": (lambda d: {"ranks": rng(d, torch=[1, 2])},
                                    "its ranks[0].rng.torch is a list ([1, 2]), not a generator's state (bytes)"),
    "torch's random state cut short": (lambda d: {"ranks": rng(d, torch=d["ranks"][0]["rng"]["torch"][:100])},
                                       "its ranks[0].rng.torch has 100 bytes, not a CPU generator's"),
    "Python's random state a number": (lambda d: {"ranks": rng(d, python=5)},
                                       "its ranks[0].rng.python is an int (5), not a list"),
    "NumPy's random state without its key": (lambda d: {"ranks": rng(d, numpy={"pos": 0})},
                                             "its ranks[0].rng.numpy has no key of 624 words"),
    "mid-epoch without the epoch's sums": (lambda d: {"batch": 1, "ranks": rank(d, meter=None)},
                                           "its ranks[0].meter holds no 10 x 10 confusion matrix for the epoch it "
                                           "stopped in (batch 1)"),
    "world_size 0": (lambda d: {"world_size": 0}, "its world_size is 0, not 1 or more"),
    "weights neither raw nor ema": (lambda d: {"weights": "best"}, "its weights is 'best', not one of raw, ema"),
    "NaN in the average": (lambda d: {"ema": {f"module.{key}": value for key, value in times(d, math.nan).items()}},
                           "its ema tensor module.features.0.weight holds NaN"),
    "an average of another shape": (lambda d: {"ema": {"module.features.0.weight": torch.zeros(2, 1, 5, 5)}},
                                    "its ema has no module.features.0.weight of (6, 1, 5, 5), the network's"),
}


@pytest.mark.parametrize("case", RESUME_CASES, ids=list(RESUME_CASES))
def test_a_training_state_field_holding_a_wrong_value_is_refused_before_resuming(case, last, tmp_path):
    fields, message = RESUME_CASES[case]
    path = crafted(tmp_path, last["data"], **fields(last["data"]))
    with pytest.raises(ZooError, match="^" + str(path) + " is damaged: ") as error:
        read_state(path, "resume")
    assert message in str(error.value)


def _momentum_of_another_shape(data: dict) -> dict:
    optimizer = copy.deepcopy(data["optimizer"])
    first = optimizer["state"][0]
    first["momentum_buffer"] = first["momentum_buffer"][:1]
    return {"optimizer": optimizer}


def _nan_momentum(data: dict) -> dict:
    optimizer = copy.deepcopy(data["optimizer"])
    optimizer["state"][0]["momentum_buffer"] *= math.nan
    return {"optimizer": optimizer}


def _past_the_epoch(data: dict) -> dict:
    meter = {"confusion": torch.zeros(10, 10, dtype=torch.int64), "loss_sum": torch.zeros((), dtype=torch.float64),
             "top5_correct": torch.zeros((), dtype=torch.int64)}
    return {"epoch": 0, "batch": 10**6, "ranks": rank(data, meter=meter)}


def _text_for_a_number(data: dict) -> dict:
    return {"scheduler": {**data["scheduler"], "last_epoch": "x"}}


@pytest.mark.parametrize(("fields", "message"), [
    (_momentum_of_another_shape, "its optimizer's momentum_buffer is (1, 1, 5, 5) for a parameter of (6, 1, 5, 5)"),
    (_text_for_a_number, "its scheduler.last_epoch is 'x', where the run's scheduler holds a number"),
    (_nan_momentum, "its optimizer state tensor 0.momentum_buffer holds NaN or infinite values"),
    (_past_the_epoch, "its batch is 1,000,000, past the end of an epoch of 2 optimizer steps"),
], ids=["a momentum buffer of another shape", "text in the schedule", "a NaN momentum buffer",
         "a position past the end of the epoch"])
def test_zoo_train_resume_refuses_a_state_that_does_not_fit_the_run_in_one_line(fields, message, last, tmp_path):
    """Checked against the optimizer, schedule and data when they are built, before anything is written (a
    momentum buffer of another shape trained on without a word; text in the schedule was a TypeError at its
    first step; a batch past the epoch's end was a RuntimeError)."""
    data = copy.deepcopy(last["data"])
    data["config"]["train"]["epochs"] = 3  # one epoch of three done: the schedule is restored as saved
    path = crafted(tmp_path, data, "last.pt", **fields(data))
    result = run_zoo(["train", "--resume", str(path)], tmp_path)
    assert result.returncode == 2 and result.stdout == "", result.stderr
    assert result.stderr == f"error: {path} is damaged: {message}; use another checkpoint\n"
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["last.pt"]


def test_a_head_wider_than_the_data_predicts_with_its_extra_outputs_named_by_index(last, tmp_path):
    """model.num_classes 12 on the 10 digits: a checkpoint with 10 class names for 12 outputs is right, not short,
    and predict names the 2 outputs no class has by their index (it raised IndexError). The checks refuse none
    of the checkpoints zoo writes."""
    for need in ("weights", "evaluate", "resume"):
        assert read_state(last["path"], need).epoch == 1
    data = copy.deepcopy(last["data"])
    data["config"]["model"]["num_classes"] = 12
    model = create_model("lenet5", num_classes=12, in_channels=1).state_dict()
    path = crafted(tmp_path, data, model=model, num_classes=12)
    predictor = zoo.load(path)
    assert predictor.classes == [*data["classes"], "10", "11"]
    assert len(predictor.predict(torch.zeros(1, 1, 32, 32), top_k=12)[0].classes) == 12


def test_non_finite_weights_are_refused_by_predict_and_evaluate_in_one_line(last, tmp_path):
    path = crafted(tmp_path, last["data"], "nan.pt", model=times(last["data"], math.nan))
    Image.new("L", (32, 32), 128).save(tmp_path / "0.png")
    for args in (("predict", path, tmp_path / "0.png"), ("evaluate", path, "--device", "cpu")):
        result = run_zoo([str(arg) for arg in args], tmp_path)  # the CLI, forked from a process that imported it
        assert result.returncode == 2 and result.stdout == "", result.stderr
        assert result.stderr == (f"error: {path} is damaged: its model tensor features.0.weight holds NaN or infinite "
                                 "values; use another checkpoint\n")


# an autoencoder has no class rows; a text model's first tensor takes token ids (test_textcnn.py)
@pytest.mark.parametrize("name", zoo.list_models(task="classification", input="image"))
def test_the_size_checks_accept_every_registered_network(name):
    """Any network zoo builds has its class count as some tensor's rows and its input channels (or, flattened
    pixels, a multiple of them: mlp) along some tensor's second dimension, so FieldCheck.fits refuses none."""
    check = FieldCheck("a checkpoint")
    for classes, channels in ((7, 1), (13, 3)):
        weights = build_on_meta(name, num_classes=classes, in_channels=channels).state_dict()
        check.fits("num_classes", classes, weights, 0, "as many rows")
        check.fits("in_channels", channels, weights, 1, "as many input channels", flat=True)
    with pytest.raises(ZooError, match="its num_classes is 1,000,000,000, but no tensor of its weights has"):
        check.fits("num_classes", 10**9, weights, 0, "as many rows")


# ---- exports: the same checks at the metadata reader --------------------------------------------

@pytest.fixture(scope="module")
def export(last, tmp_path_factory) -> dict:
    """The checkpoint's tensors and zoo metadata, as zoo export --format safetensors writes them."""
    state, config, model = open_checkpoint(last["path"])
    return {"tensors": model.state_dict(), "strings": Metadata.of_checkpoint(state, config).to_strings()}


def exported(tmp_path: Path, export: dict, tensors: dict | None = None, **strings: str) -> Path:
    path = tmp_path / "crafted.safetensors"
    save_file(tensors or export["tensors"], path, metadata={**export["strings"], **strings})
    return path


METADATA_CASES = {
    "classes too few": ({"classes": '["a"]'}, "its zoo metadata's classes has 1 name for the 10 outputs"),
    "unknown data": ({"data": '"x"'}, "its zoo metadata's data is 'x', not one of"),
    "mean text": ({"mean": '"x"'}, "its zoo metadata's mean is a str ('x'), not a list"),
    "std 0": ({"std": "[0]"}, "its zoo metadata's std is 0, not above 0"),
    "num_classes -1": ({"num_classes": "-1"}, "its zoo metadata's num_classes is -1, not 1 or more"),
    "num_classes 1e9": ({"num_classes": "1000000000"}, "but no tensor of its weights has as many rows"),
    "num_classes 10.5": ({"num_classes": "10.5"}, "its zoo metadata's num_classes is a float (10.5), not a whole"),
    "input_size 1e9": ({"input_size": "1000000000"}, "its zoo metadata's input_size is 1,000,000,000, not 1 to 8,192"),
    "in_channels 1e9": ({"in_channels": "1000000000"}, "no tensor of its weights has as many input channels"),
    "config a number": ({"config": "3"}, "its zoo metadata's config is an int (3), not a mapping"),
    "no classes": ({"classes": "null"}, "its zoo metadata's classes is a NoneType (None), not a list"),
}


@pytest.mark.parametrize("case", METADATA_CASES, ids=list(METADATA_CASES))
def test_export_metadata_holding_a_wrong_value_is_one_line_naming_it(case, export, tmp_path):
    strings, message = METADATA_CASES[case]
    path = exported(tmp_path, export, **strings)
    with pytest.raises(ZooError) as error:
        zoo.load(path)
    assert str(error.value).startswith(f"{path} is damaged: ") and message in str(error.value)
    assert str(error.value).endswith("; export it again with zoo export")


def test_an_export_with_a_missing_field_or_non_finite_weights_is_one_line(export, tmp_path):
    path = exported(tmp_path, export)
    assert zoo.load(path).num_classes == 10
    strings = {key: value for key, value in export["strings"].items() if key != "input_size"}
    save_file(export["tensors"], path, metadata=strings)
    with pytest.raises(ZooError, match="its zoo metadata's input_size is missing; export it again"):
        zoo.load(path)
    nan = {key: tensor * math.nan for key, tensor in export["tensors"].items()}
    path = exported(tmp_path, export, nan)
    with pytest.raises(ZooError, match=r"damaged: its weights tensor \S+ holds NaN or infinite values; use another "):
        read_safetensors(path)


def test_predict_on_a_damaged_export_is_one_line_exit_2(export, tmp_path):
    path = exported(tmp_path, export, classes='["a"]')
    Image.new("L", (32, 32), 128).save(tmp_path / "0.png")
    result = run_zoo(["predict", str(path), str(tmp_path / "0.png")], tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (f"error: {path} is damaged: its zoo metadata's classes has 1 name for the 10 outputs "
                             "of its head; export it again with zoo export\n")
