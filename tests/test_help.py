"""What a new user reads first: every command's --help as CI or a pipe shows it (no terminal, 80 columns), and
`zoo --version`. The commands are read from the app, so a new one is checked the moment it is added.
Tests zoo.cli's help texts."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import typer.main
import yaml
from helpers import run_zoo

from zoo.cli import app, version_line

ROOT = Path(__file__).resolve().parents[1]
TRUNCATED = re.compile(r"[a-z,;:)]\.\.\.|…")  # a description cut short ('and...'), not a metavar ('INPUT...')


def commands(group=None, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    """(argv, click command) of the app and every command under it, groups included."""
    group = group if group is not None else typer.main.get_command(app)
    found = [(path, group)]
    for name, command in getattr(group, "commands", {}).items():
        found += commands(command, (*path, name))
    return found


COMMANDS = commands()


def zoo(*args: str, columns: int = 80) -> subprocess.CompletedProcess:
    """`zoo *args` with its output a pipe, as in CI or `| less`, at `columns` wide; no variable that would force
    a terminal or colours."""
    unset = dict.fromkeys(("TERMINAL_WIDTH", "FORCE_COLOR", "PY_COLORS", "GITHUB_ACTIONS", "LINES"))
    return run_zoo(*args, env={**unset, "COLUMNS": str(columns)})


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("columns", [80, 200])
@pytest.mark.parametrize(("argv", "command"), COMMANDS, ids=[" ".join(argv) or "zoo" for argv, _ in COMMANDS])
def test_help_reads_in_full_without_a_terminal(argv, command, columns):
    result = zoo(*argv, "--help", columns=columns)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    text = result.stdout
    too_long = [line for line in text.splitlines() if len(line) > min(columns, 80)]
    assert not too_long, too_long
    assert not TRUNCATED.search(text), TRUNCATED.search(text)
    assert "<bool>" not in text and "\x1b[" not in text and "╭" not in text  # no flag as if it took a value, no panels
    for param in command.params:  # every option's names whole
        for name in (*param.opts, *param.secondary_opts) if param.param_type_name == "option" else ():
            assert re.search(rf"(^|[\s,]){re.escape(name)}([\s,]|$)", text, re.M), name
    for name, sub in getattr(command, "commands", {}).items():  # each listed command's summary whole
        summary = sub.help.split("\n\n")[0]
        assert flat(f"{name} {summary}") in flat(text), (name, summary)
    for example in re.findall(r"configs/[\w.-]+\.yaml", text):
        assert (ROOT / example).is_file(), example


def test_train_help_says_config_or_resume_is_required():
    text = flat(zoo("train", "--help").stdout)
    assert "Give --config" in text and "or --resume" in text and "one of the two is required" in text


def test_finetune_help_names_a_config_with_a_finetune_section():
    text = zoo("finetune", "--help").stdout
    examples = re.findall(r"configs/[\w.-]+\.yaml", text)
    assert examples
    for example in examples:
        assert "finetune" in yaml.safe_load((ROOT / example).read_text()), example


def test_evaluate_help_gives_a_set_example_evaluate_uses():
    text = flat(zoo("evaluate", "--help").stdout)
    assert "--set data.batch_size=256" in text and "optimizer." not in text


def test_version_names_zoo_torch_and_torchvision():
    import torch
    import torchvision

    for module in (torch, torchvision):  # the metadata is what imports (its __version__ may add a build: +cu130)
        assert str(module.__version__).split("+")[0] == metadata.version(module.__name__).split("+")[0]
    expected = (f"zoo {metadata.version('zoo')} (torch {metadata.version('torch')}, "
                f"torchvision {metadata.version('torchvision')})")
    for flag in ("--version", "-V"):
        result = zoo(flag)
        assert result.returncode == 0 and result.stderr == "", result.stderr
        assert result.stdout == expected + "\n"


def test_version_does_not_import_torch():
    code = ("import sys; sys.argv = ['zoo', '--version']\nfrom zoo.cli import main\ntry:\n    main()\n"
            "except SystemExit:\n    pass\nprint('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.stdout.startswith("zoo ") and result.stdout.strip().endswith("False"), result.stderr


def test_version_without_the_package_installed_says_so(monkeypatch):
    def version(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", version)
    assert version_line() == ("zoo (version unknown: not installed; pip install -e .) "
                              "(torch not installed, torchvision not installed)")


@pytest.mark.parametrize(("argv", "command"), COMMANDS, ids=[" ".join(argv) or "zoo" for argv, _ in COMMANDS])
def test_usage_names_arguments_as_click_does(argv, command):
    # Typer 0.29 wrote `zoo evaluate [OPTIONS] {checkpoint}` and `zoo predict [OPTIONS] {SOURCE} {INPUT...}...`
    usage = zoo(*argv, "--help").stdout.splitlines()[0]
    pieces = r"( COMMAND \[ARGS\]\.\.\.| \[?[A-Z_]+(\.\.\.)?\]?)*"  # one `...` at most, no braces
    assert re.fullmatch(r"Usage: (python -m )?zoo[a-z -]* \[OPTIONS\]" + pieces, usage), usage
    arguments = [param for param in command.params if param.param_type_name == "argument"]
    named = re.findall(r"[A-Z_]+(?:\.\.\.)?", usage.split("[OPTIONS]", 1)[1])
    assert named == [(param.metavar or param.name).upper() for param in arguments] or not arguments


def test_the_usage_lines_a_user_reads_first():
    for command, usage in (("evaluate", "evaluate [OPTIONS] CHECKPOINT"),
                           ("predict", "predict [OPTIONS] SOURCE [INPUT...]"), ("train", "train [OPTIONS] [CONFIG]")):
        assert zoo(command, "--help").stdout.splitlines()[0].endswith(f"zoo {usage}")


@pytest.mark.parametrize("command", ["evaluate", "export"])
def test_commands_that_take_a_checkpoint_say_a_run_directory_will_do(command):
    assert "or a run directory, runs/<name>/<time> (its best.pt)" in flat(zoo(command, "--help").stdout)
