"""The course's lessons, configs/lessons/*.yaml: each a sweep on the digits that `zoo sweep FILE` runs as shipped.
Every file reads as a config, plans as a sweep (every grid point validated, nothing trained), varies two or more
settings over 5 seeds, says in its opening comment the command that runs it, and has its measured result in
docs/lessons.md. The sweeps themselves are tested in test_sweep.py; the results are measured, not tested.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import ROOT

import zoo
from zoo.experiments.sweep import make_plan

LESSONS = sorted((ROOT / "configs" / "lessons").glob("*.yaml"))
# The course's lessons (vanishing_gradients_vgg11.yaml, the longer CNN version, is also checked by the glob)
NAMES = {"vanishing_gradients", "initializers", "optimizers", "batch_norm", "dropout", "augmentation"}


def test_every_lesson_is_shipped():
    assert NAMES <= {path.stem for path in LESSONS}


@pytest.mark.parametrize("path", LESSONS, ids=lambda path: path.stem)
def test_a_lesson_is_a_five_seed_sweep_on_the_digits(path: Path):
    config = zoo.load_config(path)
    assert config.sweep is not None, "a lesson carries its sweep section"
    assert config.data.name == "digits", "a lesson runs offline, on scikit-learn's digits"
    # The arguments of `zoo sweep FILE` with no option: params, seeds, workers, trials, storage, output, --set, prune,
    # quiet. It validates every grid point as zoo train would read it, and writes nothing.
    plan = make_plan(Path(path), (), None, 1, None, None, None, (), None, True)
    assert plan.space.is_grid and plan.space.grid_size() >= 2, "two or more variants or values to compare"
    assert plan.space.seeds == (0, 1, 2, 3, 4)


@pytest.mark.parametrize("path", LESSONS, ids=lambda path: path.stem)
def test_a_lesson_says_how_to_run_it_and_is_measured(path: Path):
    lines = path.read_text().splitlines()
    header = "\n".join(lines[:next(i for i, line in enumerate(lines) if not line.startswith("#"))])
    assert header.startswith("# Lesson: ") and "course 0" in header.lower(), "the claim, and where the course makes it"
    assert f"zoo sweep configs/lessons/{path.name}" in header
    assert f"configs/lessons/{path.name}" in (ROOT / "docs" / "lessons.md").read_text()
