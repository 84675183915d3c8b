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
    (BASE + "run_name: mine\n", "run_name: unknown key; did you mean train.run_name?"),  # one section has it
    ("model: {name: lenet5}\ndata: {name: digits, epochs: 3}\n",
     "data.epochs: unknown key; did you mean train.epochs?"),
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


LAUGHS = ('a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
          + "".join(f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi"))
          + BASE)  # 1 KB that PyYAML would expand to 9^9 values (the "billion laughs")


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param(BASE.replace("digits}", "digits, root: " + "[" * 5000 + "]" * 5000 + "}"),
                 "nested more than 32 levels deep (line 2, column 59); a config is sections of keys, a few levels: "
                 "flatten it", id="brackets"),
    pytest.param(BASE + "".join(f"{'  ' * level}k{level}:\n" for level in range(40)) + "  " * 40 + "x: 1\n",
                 "nested more than 32 levels deep (line 34, column 63);", id="blocks"),  # the composer's check
    pytest.param("a: &a [1]\n" + "".join(f"x{i}: &x{i} [*{'a' if i == 0 else f'x{i - 1}'}]\n" for i in range(40))
                 + BASE, "nested more than 32 levels deep through its aliases (line 30, column 6);", id="aliases"),
    pytest.param("a: &a [1, *a]\n" + BASE, "the alias *a is inside the value it names, a loop (line 1, column 11); "
                 "point it at a value written before it", id="loop"),
    pytest.param(LAUGHS, "its aliases repeat more than 10,000 values in all, as an alias bomb does (line 5, column "
                 "8); a config needs far fewer: alias smaller values, or write them out", id="laughs"),
    pytest.param(BASE.replace("digits", "digits\x07"),
                 "not valid YAML at line 2, column 20: the control character '\\x07' is not allowed; remove it",
                 id="control"),
])
def test_yaml_that_would_not_read_quickly_is_refused_in_one_line_quickly(write, text, expected):
    # Before: RecursionError tracebacks from the composer, and a walk of 9^9 values for the alias bomb.
    import time

    start = time.perf_counter()
    message = error_of(write(text))
    assert time.perf_counter() - start < 0.5
    assert message.startswith(expected), message


def test_an_alias_bomb_is_refused_at_once_and_the_aliases_a_config_uses_still_read(write, tmp_path):
    path = tmp_path / "laughs.yaml"
    path.write_text(LAUGHS)
    result = run_zoo("config", "validate", path, timeout=60)  # before: busy until killed
    assert result.returncode == 2 and result.stderr.startswith(f"error: {path}: its aliases repeat more than 10,000")
    config = load_config(write("model: {name: lenet5}\ndata: {name: digits, mean: &m [0.5], std: *m}\n"
                               "optimizer: {lr: &lr 0.01, weight_decay: *lr}\n"))
    assert config.data.mean == config.data.std == (0.5,) and config.optimizer.weight_decay == 0.01


def test_a_config_that_is_not_utf8_is_one_line_naming_the_byte(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"model:\n  name: lenet5\xff\xfe\ndata:\n  name: digits\n")  # before: UnicodeDecodeError
    assert error_of(path) == "not UTF-8 text (byte 0xff at line 2, column 15); save it as UTF-8"


@pytest.mark.parametrize("override", [f"train.seed={2**63}", "train.seed=99999999999999999999",
                                      f"train.seed={-2**63 - 1}", f"data.classes=[0, {2**64}]",
                                      f"model.num_classes={10**20}", f"data.input_size={2**64}"])
def test_whole_numbers_beyond_64_bits_are_refused_at_load(write, override):
    # Before: train.seed 2**64 passed and the run ended in "Overflow when unpacking long long".
    key, value = override.split("=")
    number = value.strip("[]").split(", ")[-1]
    assert error_of(write(BASE), [override]) == (f"--set {key}: {number} does not fit in 64 bits; give a whole number "
                                                 "from -2**63 to 2**63 - 1 (9223372036854775807)")


def test_the_seeds_allowed_are_seeds_torch_takes_with_rank_and_epoch_added(write):
    import torch

    with pytest.raises(ZooError, match="train.seed: 9223372036854775808 does not fit in 64 bits"):
        load_config(write(BASE), [f"train.seed={2**63}"])
    for seed in (-2**63, 2**63 - 1):
        assert load_config(write(BASE), [f"train.seed={seed}"]).train.seed == seed
        torch.manual_seed(seed)
        torch.Generator().manual_seed(seed + 1024 + 10**6)  # + rank + epoch, as the samplers seed


def test_an_input_size_the_model_cannot_take_is_refused_at_load(write):
    # Before: refused only in the run, after its directory was made (data.input_size=1: not at all, until the step)
    for overrides, expected in (
            (["data.input_size=1"], "--set data.input_size: lenet5 needs inputs of at least 16x16, got 1x1"),
            (["model.name=resnet18", "model.small_input=false", "data.input_size=16"],
             "--set data.input_size: resnet18 needs inputs of at least 32x32, got 16x16"),
            (["model.name=mlp", "data.input_size=32"], "--set data.input_size: mlp expects 784 input features")):
        assert error_of(write(BASE), overrides).startswith(expected)
    assert load_config(write(BASE), ["data.input_size=16"]).data.input_size == 16
    assert load_config(ROOT / "configs" / "xor_mlp_relu_he.yaml").data.name == "xor"


def test_keys_written_twice_come_with_every_other_problem_at_once(write):
    path = write("model: {name: lenet5}\ndata: {name: digits, batch_size: 32, batch_size: 8}\noptimizr: {lr: 0.1}\n"
                 "train: {epochs: 0}\ntrain: {epochs: 0}\n")
    result = run_zoo("config", "validate", path, "--set", "model.name=resnet19")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [  # before: the first line alone, the rest in later rounds
        f"error: {path}: data.batch_size is written twice (line 2, columns 22 and 38); keep one",
        f"error: {path}: train is written twice (lines 4 and 5); keep one",
        f"error: {path}: train.epochs: input should be greater than 0 (got 0)",
        f"error: {path}: optimizr: unknown key; did you mean optimizer?",
        "error: --set model.name: unknown model 'resnet19'; did you mean resnet18, resnet152, resnet110?"]
    assert error_of(write(BASE), ["optimizer={lr: 1, lr: 2}"]) == (  # in a --set value, as before
        "--set optimizer: lr is written twice (line 1, columns 2 and 9); keep one")


def test_what_a_config_path_names_instead_is_said(tmp_path):
    run = tmp_path / "runs" / "lenet5_digits" / "1"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text(BASE)
    (tmp_path / "mine.yaml").write_text(BASE)
    (tmp_path / "best.pt").write_bytes(b"PK\x03\x04")
    cases = {run: f"{run} is a run directory, not a config file; its config is {run / 'config.yaml'} "
                  f"(zoo train --resume {run} continues the run)",  # before: "config file ... not found"
             tmp_path: f"{tmp_path} is a folder, not a config file; give one of its 1 YAML files, e.g. "
                       f"{tmp_path / 'mine.yaml'}",
             tmp_path / "mien.yaml": f"config file '{tmp_path / 'mien.yaml'}' not found; did you mean "
                                     f"{tmp_path / 'mine.yaml'}?",
             tmp_path / "best.pt": f"{tmp_path / 'best.pt'} is a checkpoint or an export, not a config; zoo train "
                                   f"--resume {tmp_path / 'best.pt'} continues the run of a checkpoint"}
    for path, expected in cases.items():
        with pytest.raises(ZooError) as caught:
            load_config(path)
        assert str(caught.value) == expected
