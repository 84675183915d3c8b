"""The `zoo` command as a user runs it: subprocesses, exit codes, stdout and stderr."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import zoo

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, entry: tuple[str, ...] = (sys.executable, "-m", "zoo")) -> subprocess.CompletedProcess:
    return subprocess.run([*entry, *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_list_shows_every_model_with_its_facts():
    result = run("list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:5] == ["name", "family", "year", "params", "input"]
    rows = {line.split()[0]: line for line in lines[2:]}
    assert sorted(rows) == zoo.list_models()
    assert rows["vgg16"].split()[1:5] == ["vgg", "2014", "138,357,544", "3x224x224"]
    assert rows["lenet5"].split()[1:5] == ["lenet", "1998", "61,706", "1x32x32"]
    assert "MISMATCH" not in result.stdout


def test_list_filter_and_json():
    result = run("list", "--filter", "resnet*", "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == zoo.list_models("resnet*")
    by_name = {r["name"]: r for r in rows}
    assert by_name["resnet50"]["params"] == 25_557_032 and by_name["resnet50"]["torchvision weights"] == "resnet50"
    assert list(by_name["resnet50"]) == ["name", "family", "year", "params", "input", "paper count",
                                         "torchvision weights", "task"]
    assert {r["task"] for r in rows} == {"classification"}


def test_list_shows_the_autoencoders_task():
    result = run("list", "--filter", "*autoencoder")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[-1] == "task"
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert list(rows) == ["autoencoder", "conv_autoencoder", "deep_conv_autoencoder"]
    assert rows["autoencoder"][1:6] == ["autoencoder", "2006", "50,992", "1x28x28", "matches"]
    assert rows["conv_autoencoder"][3] == "3,217" and rows["deep_conv_autoencoder"][3:5] == ["795,283", "3x64x64"]
    assert {row[-1] for row in rows.values()} == {"reconstruction"}


def test_list_markdown_pastes_into_a_readme():
    lines = run("list", "--filter", "vgg16*", "-f", "markdown").stdout.splitlines()
    assert lines[0].startswith("| name") and set(lines[1]) <= set("|-:")
    assert len(lines) == 4 and lines[2].startswith("| vgg16 ")


def test_cli_shim_and_console_script_are_the_same_app():
    expected = run("list", "--filter", "lenet*").stdout
    assert expected and run("list", "--filter", "lenet*", entry=(sys.executable, "cli.py")).stdout == expected
    console = shutil.which("zoo")
    assert console, "the package is installed with its 'zoo' console script (pip install -e .)"
    assert run("list", "--filter", "lenet*", entry=(console,)).stdout == expected


@pytest.mark.parametrize(("args", "message"), [
    (("list", "--format", "yaml"), "error: unknown format 'yaml'; choose one of table, markdown, csv, json"),
    (("list", "--filter", "transformer*"), "error: no model matches 'transformer*'; run 'zoo list' to see them all"),
    (("summary", "lenet5", "-f", "xml"), "error: unknown format 'xml'; choose one of table, markdown, csv, json"),
    (("evaluate", "missing.pt", "--format", "markdown"), "error: unknown format 'markdown'; choose table or json"),
    (("evaluate", "missing.pt", "--split", "validation"),
     "error: unknown split 'validation'; choose one of test, val, train"),
])
def test_bad_input_is_one_line_and_exit_code_2(args, message):
    result = run(*args)
    assert result.returncode == 2
    assert result.stderr.strip() == message
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_help_lists_the_choices():
    assert "<table|markdown|csv|json>" in run("list", "--help").stdout
    evaluate = run("evaluate", "--help").stdout
    assert "<test|val|train>" in evaluate and "<table|json>" in evaluate


def test_evaluate_offers_the_splits_the_library_knows():
    from zoo.cli import Split
    from zoo.evaluation.evaluate import SPLITS

    assert sorted(split.value for split in Split) == sorted(SPLITS)  # the order is --help's: test, val, train


def test_usage_errors_exit_2():
    result = run("lst")
    assert result.returncode == 2 and "No such command 'lst'" in result.stderr


def test_help_does_not_import_torch():
    code = ("import sys; sys.argv = ['zoo', '--help']\nfrom zoo.cli import main\ntry:\n    main()\nexcept SystemExit:\n"
            "    pass\nprint('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert "list" in result.stdout and result.stdout.strip().endswith("False")


def test_the_models_page_table_is_what_zoo_list_prints():
    page = (ROOT / "docs" / "models.md").read_text()
    table = run("list", "--format", "markdown").stdout.strip()
    assert f"<!-- zoo list -f markdown -->\n{table}\n" in page
    count = len(table.splitlines()) - 2  # the header and its rule
    assert f"`zoo list` prints the table of the {count} models" in (ROOT / "README.md").read_text()


def test_ci_runs_the_readmes_test_command():
    readme = (ROOT / "README.md").read_text()
    command = ('pip install -c constraints.txt -e ".[dev,export,sweep,serve]" && python -m pytest '
               '&& python -m pytest -m slow')
    assert f"<!-- test command: .ci/run runs this line -->\n```bash\n{command}\n" in readme  # the slow tests too
    assert "grep -A 2 '<!-- test command' README.md" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("loader", ["memory", "torchvision"])  # no workers left, and workers left by the loader
def test_a_run_that_skips_the_teardown_has_written_and_closed_everything(tmp_path, loader):
    result = run("train", "--config", "configs/lenet5_digits.yaml", "--quiet", "--set", f"train.output_dir={tmp_path}",
                 "--set", "train.epochs=2", "--set", f"data.loader={loader}", "--set", "data.workers=1")
    assert result.returncode == 0, result.stderr
    run_dir = next((tmp_path / "lenet5_digits").iterdir())
    assert json.loads((run_dir / "metrics.json").read_text())["epochs_run"] == 2
    assert len((run_dir / "history.csv").read_text().splitlines()) == 3  # the header and a row per epoch
    assert not (run_dir / ".lock").exists() and not (run_dir.parent / ".lock").exists()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir))
    events.Reload()
    assert [event.step for event in events.Scalars("test/accuracy")] == [2]  # written last, before the exit


def test_a_config_given_as_an_argument_is_read_as_with_config():
    # Before: Typer's "Got unexpected extra argument" (train) and "Missing option '--config'" (config show)
    shown = run("config", "show", "configs/lenet5_digits.yaml")
    assert shown.returncode == 0 and shown.stdout.startswith("model:\n  name: lenet5\n"), shown.stderr
    for command in (("train",), ("lr-find",), ("finetune",)):  # each reads it, then refuses the lr of 0
        result = run(*command, "configs/lenet5_digits.yaml", "--set", "optimizer.lr=0")
        assert (result.returncode, result.stderr) == (2, "error: --set optimizer.lr: input should be greater than 0 "
                                                         "(got 0)\n"), command
    twice = run("config", "show", "configs/lenet5_digits.yaml", "-c", "configs/lenet5_digits.yaml")
    assert twice.returncode == 2 and twice.stderr == (
        "error: give the config once: zoo config show configs/lenet5_digits.yaml (or --config "
        "configs/lenet5_digits.yaml)\n")
    none = run("config", "show")
    assert none.returncode == 2 and none.stderr == ("error: give a config: zoo config show configs/lenet5_digits.yaml "
                                                    "(or --config configs/lenet5_digits.yaml)\n")
