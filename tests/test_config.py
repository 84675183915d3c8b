"""zoo.config: YAML and --set into one frozen, typed Config, each problem one line naming its key; `zoo config`."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import run_zoo
from pydantic import ValidationError

from zoo.config import Config, load_config, validate_config
from zoo.errors import ZooError

ROOT = Path(__file__).resolve().parents[1]
BASE = "model: {name: lenet5}\ndata: {name: digits}\n"


@pytest.fixture
def write(tmp_path):
    def _write(text: str) -> Path:
        path = tmp_path / "config.yaml"
        path.write_text(text)
        return path
    return _write


def error_of(path: Path, overrides=()) -> str:
    with pytest.raises(ZooError) as caught:
        load_config(path, list(overrides))
    message = str(caught.value)
    assert "\n" not in message
    return message.removeprefix(f"{path}: ")


def test_defaults_fill_every_section(write):
    config = load_config(write(BASE))
    assert config.optimizer.name == "sgd" and config.scheduler.name == "none" and config.init == "default"
    assert config.train.device == "auto" and config.train.output_dir == Path("runs")
    assert config.run_name == "lenet5_digits"
    assert config.loss.aux_weight == 0.3


def test_yaml_quirks_are_handled(write):
    # PyYAML reads 1e-3 (no dot) as a string and `16` as a number.
    config = load_config(write(BASE + "optimizer: {name: adam, lr: 1e-3}\ntrain: {precision: 16}\n"))
    assert config.optimizer.lr == pytest.approx(0.001) and isinstance(config.optimizer.lr, float)
    assert config.train.precision == "16"


def test_the_config_is_frozen(write):
    config = load_config(write(BASE))
    with pytest.raises(ValidationError, match="frozen"):  # pydantic's frozen_instance error
        config.optimizer.lr = 1.0


@pytest.mark.parametrize(("text", "expected"), [
    (BASE + "optimizr: {lr: 0.1}\n", "optimizr: unknown key; did you mean optimizer?"),
    (BASE + "optimizer: {lrr: 0.1}\n", "optimizer.lrr: unknown key; did you mean optimizer.lr?"),
    ("model: {name: lenet5}\ndata: {name: digits, batch_sise: 3}\n",
     "data.batch_sise: unknown key; did you mean data.batch_size?"),
    (BASE + "optimizer: {lr: -0.1}\n", "optimizer.lr: input should be greater than 0 (got -0.1)"),
    (BASE + "optimizer: {lr: 0}\n", "optimizer.lr: input should be greater than 0 (got 0)"),
    (BASE + "train: {epochs: 0}\n", "train.epochs: input should be greater than 0 (got 0)"),
    (BASE + "train: {epochs: ten}\n", "train.epochs: input should be a valid integer"),
    ("model: {name: lenet5}\ndata: {name: digits, batch_size: -4}\n",
     "data.batch_size: input should be greater than 0 (got -4)"),
    (BASE + "optimizer: {name: sgdd}\n",
     "optimizer.name: unknown name 'sgdd'; choose one of sgd, adagrad, rmsprop, adam, adamw; did you mean sgd?"),
    (BASE + "scheduler: {name: cosin}\n",
     "scheduler.name: unknown name 'cosin'; choose one of none, step, multistep, cosine, onecycle; "
     "did you mean cosine?"),
    (BASE + "init: kaiming\n",
     "init: unknown init 'kaiming'; choose one of default, xavier_uniform, xavier_normal, he_uniform, he_normal"),
    ("model: {name: lenet5}\ndata: {name: imagenet}\n", "data.name: unknown name 'imagenet'; choose one of mnist"),
    ("model: {name: resnet19}\ndata: {name: digits}\n", "model.name: unknown model 'resnet19'; did you mean resnet18"),
    ("model: {name: resnet18, widht: 2}\ndata: {name: digits}\n", "model: resnet18 takes no argument 'widht'"),
    ("model: {name: resnet20, small_input: false}\ndata: {name: digits}\n",
     "model: resnet20 sets 'small_input' itself; leave it out"),
    (BASE + "train: {device: gpu}\n", "train.device: must be auto, cpu, cuda, cuda:N or mps"),
    (BASE + "train: {run_name: 'a/b'}\n", "train.run_name: use letters, digits"),
    (BASE + "optimizer: {name: adam, nesterov: true}\n", "optimizer: nesterov needs name: sgd and a momentum above 0"),
    (BASE + "scheduler: {name: multistep}\n", "scheduler: multistep needs milestones"),
    ("data: {name: digits}\n", "model: required"),
    ("model: {name: lenet5}\ndata: {name: digits, mean: [0.5]}\n", "data: give both mean and std, or neither"),
])
def test_each_problem_is_one_line_naming_the_key(write, text, expected):
    assert error_of(write(text)).startswith(expected)


def test_several_problems_are_all_reported(write):
    message = error_of(write(BASE + "optimizer: {lr: -1}\ntrain: {epochs: 0, device: gpu}\n"))
    assert "optimizer.lr" in message and "train.epochs" in message and "train.device" in message


def test_not_yaml_and_missing_files(write, tmp_path):
    assert error_of(write("model: [1, 2\n")).startswith("not valid YAML at line 2")
    with pytest.raises(ZooError, match="not found; the shipped ones are in configs/"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ZooError, match="expected a mapping of sections"):
        validate_config([1, 2])


def test_overrides_reach_any_key_and_are_typed(write):
    config = load_config(write(BASE), ["optimizer.lr=1e-2", "train.epochs=3", "model.small_input=true",
                                       "model.name=resnet18", "data.classes=[0, 1, 2]"])
    assert config.optimizer.lr == 0.01 and config.train.epochs == 3
    assert config.model.name == "resnet18" and config.model.kwargs == {"small_input": True}
    assert config.data.classes == (0, 1, 2)


@pytest.mark.parametrize(("override", "expected"), [
    ("optimizer.lr", "--set 'optimizer.lr': write key.path=value"),
    ("optimizer.lr.x=1", "--set optimizer.lr.x: lr is a value, not a section"),
    ("optimizer.lr=-1", "optimizer.lr: input should be greater than 0"),
    ("optimiser.lr=1", "optimiser: unknown key; did you mean optimizer?"),
])
def test_bad_overrides(write, override, expected):
    path = write(BASE + "optimizer: {lr: 0.1}\n")
    with pytest.raises(ZooError) as caught:
        load_config(path, [override])
    assert expected in str(caught.value)


def test_resolved_config_round_trips_through_yaml(write):
    # One model section: a second one is refused now (test_a_key_written_twice_is_refused_naming_both_lines).
    config = load_config(write("model: {name: mlp, hidden_sizes: [10, 10], activation: sigmoid}\n"
                               "data: {name: digits}\n"))
    again = validate_config(yaml.safe_load(config.to_yaml()))
    assert again == config and isinstance(again, Config)


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_is_valid(path):
    config = load_config(path)
    assert config.model.name and config.data.name


def test_shipped_configs_cover_the_issue():
    names = {p.stem for p in (ROOT / "configs").glob("*.yaml")}
    assert names >= {
        "lenet5_digits", "lenet5_mnist", "mnist_cnn_mnist", "mlp_mnist", "xor_mlp_sigmoid_deep", "xor_mlp_relu_he",
        "alexnet_cifar10", "zfnet_cifar10", "vgg16_cifar10", "googlenet_cifar10", "resnet18_cifar10",
        "resnet56_cifar10", "se_resnet18_cifar10", "resnet50_imagefolder",
    }


def test_config_show_prints_the_resolved_config():
    result = run_zoo("config", "show", "--config", "configs/lenet5_digits.yaml", "--set", "train.epochs=2")
    assert result.returncode == 0, result.stderr
    shown = yaml.safe_load(result.stdout)
    assert shown["train"]["epochs"] == 2 and shown["model"]["name"] == "lenet5"
    assert shown["optimizer"]["nesterov"] is False and shown["scheduler"]["min_lr"] == 0.0  # defaults are shown too


def test_config_validate_exit_codes(tmp_path):
    assert (run_zoo("config", "validate", "configs/lenet5_digits.yaml").stdout.strip()
            == "configs/lenet5_digits.yaml: ok")
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE + "optimizer: {lr: -1}\n")
    result = run_zoo("config", "validate", str(bad))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == f"error: {bad}: optimizer.lr: input should be greater than 0 (got -1)"


def test_config_validate_takes_config_as_the_other_commands_do_and_set(tmp_path):
    named = run_zoo("config", "validate", "--config", "configs/lenet5_digits.yaml", "--set", "train.epochs=3")
    assert named.returncode == 0 and named.stdout.strip() == "configs/lenet5_digits.yaml: ok"
    bad = run_zoo("config", "validate", "-c", "configs/lenet5_digits.yaml", "--set", "model.name=resnet-18")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --set model.name: unknown model 'resnet-18'")
    twice = run_zoo("config", "validate", "configs/lenet5_digits.yaml", "--config", "configs/lenet5_digits.yaml")
    assert twice.returncode == 2 and twice.stderr.strip().startswith("error: give the config once")
    across = run_zoo("config", "validate", "configs/finetune_resnet18_imagefolder.yaml", "--set", "train.epochs=2")
    assert across.stderr.strip() == ("error: configs/finetune_resnet18_imagefolder.yaml with --set train.epochs=2: "
                                     "finetune.unfreeze_at_epoch 4 is after the last epoch (train.epochs 2), so the "
                                     "frozen layers would never train; set it to 2 (or remove it)")


def test_config_validate_prints_one_line_per_problem_and_train_agrees(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE + "optimizer: {lr: -1, lrr: 3}\ntrain: {epochs: 0}\n")
    lines = [f"error: {bad}: optimizer.lr: input should be greater than 0 (got -1)",
             f"error: {bad}: optimizer.lrr: unknown key; did you mean optimizer.lr?",
             f"error: {bad}: train.epochs: input should be greater than 0 (got 0)"]
    result = run_zoo("config", "validate", str(bad))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == lines
    result = run_zoo("train", "--config", str(bad), "--set", "data.batch_size=-3")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [*lines,
                                          "error: --set data.batch_size: input should be greater than 0 (got -3)"]
    with pytest.raises(ZooError) as caught:  # the library's message stays one line
        load_config(bad)
    assert str(caught.value) == "; ".join(line.removeprefix("error: ") for line in lines)


def test_the_config_imports_no_torch():
    # zoo.config reads the data sets' table (zoo.datasets); neither may pull in torch, so `zoo --help` stays fast.
    code = "import sys, zoo.config, zoo.datasets; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.stdout.strip() == "False", result.stderr


@pytest.mark.parametrize(("text", "expected"), [
    ("model: {name: lenet5}\ndata: {name: digits}\noptimizer: {lr: 0.01}\ntrain: {epochs: 1}\n"
     "optimizer: {weight_decay: 0.1}\n",
     "optimizer is written twice (lines 3 and 5); keep one"),
    ("model: {name: lenet5}\ndata: {name: digits, batch_size: 32, batch_size: 8}\n",
     "data.batch_size is written twice (line 2, columns 22 and 38); keep one"),
    ("model:\n  name: lenet5\ndata:\n  name: digits\n  augment: true\n  augment: false\n",
     "data.augment is written twice (lines 5 and 6); keep one"),
])
def test_a_key_written_twice_is_refused_naming_both_lines(write, text, expected):
    path = write(text)
    with pytest.raises(ZooError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: {expected}"
    result = run_zoo("config", "validate", str(path))
    assert result.returncode == 2 and result.stderr.strip() == f"error: {path}: {expected}"


def test_yaml_1_1_surprises_read_as_written(write):
    # YAML 1.1 (PyYAML's default) reads 2024_01 as 202401, 007 as 7, 2024-01-02 as a date, 010 as 8, 0x10 as 16
    # and no/off as False; zoo reads YAML 1.2's core schema, and keys that take text get the text as written.
    config = load_config(write(
        "model: {name: lenet5}\n"
        "data: {name: digits, root: 2024-01-02, batch_size: 010, augment: no}\n"
        "train: {run_name: 2024_01, output_dir: 007, epochs: 0x10, deterministic: off}\n"
        "finetune: {source: 2024, freeze: backbone}\n"))
    assert config.train.run_name == "2024_01" and config.train.output_dir == Path("007")
    assert config.data.root == Path("2024-01-02") and config.finetune.source == "2024"
    assert config.data.batch_size == 10 and config.train.epochs == 16
    assert config.data.augment is False and config.train.deterministic is False  # a bool key still reads no/off
    overridden = load_config(write(BASE), ["train.run_name=007", "data.root=2024-01-02", "train.epochs=010"])
    assert (overridden.train.run_name, overridden.data.root, overridden.train.epochs) == ("007", Path("2024-01-02"), 10)


def test_sexagesimal_numbers_are_refused_not_read_as_seconds(write):
    with pytest.raises(ZooError, match=r"train.seed: input should be a valid integer, unable to parse string as an "
                                       r"integer \(got '1:30'\)"):
        load_config(write(BASE + "train: {seed: 1:30}\n"))  # YAML 1.1: 90


def test_unfreezing_after_the_last_epoch_is_refused():
    from zoo.config import load_config

    config = Path(__file__).resolve().parents[1] / "configs" / "finetune_resnet18_imagefolder.yaml"
    with pytest.raises(ZooError, match=r"finetune.unfreeze_at_epoch 30 is after the last epoch \(train.epochs 5\), so "
                                       r"the frozen layers would never train"):
        load_config(config, ["train.epochs=5", "finetune.unfreeze_at_epoch=30", "finetune.freeze=backbone"])
