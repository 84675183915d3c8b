"""What a sweep varies: `--param KEY=SPEC` and the config's `sweep` section read into a Space, every point of it
checked as zoo train would read it, before the first trial starts.

    KEY=sgd,adam              a grid dimension: each value, as YAML reads it (`model.hidden_sizes=[10,10],[256]`)
    KEY=0.001..0.1            a search range, uniform (whole numbers at both ends: an integer range)
    KEY=log:1e-4..1e-1        a search range, uniform in the logarithm (Optuna's log=True)
    KEY=int:16..128           an integer range, written so when the ends read as floats

A space of lists only is a grid (every point runs); one with a range is a search: Optuna's TPE sampler chooses
`trials` points, lists being its categorical choices. `variants` (the config's sweep section only) is one more
dimension whose values are names of settings that change together (`momentum: {optimizer.momentum: 0.9}`).
Seeds repeat every point: `--seeds 0-4`, `0,2,7` or `3`.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.config import Config, SweepConfig, load_config
from zoo.errors import ConfigError, ZooError

VARIANT = "variant"  # the variants' dimension: its column in results.csv
# Keys a sweep sets itself: each trial's seed, and where its run goes
MANAGED = {"train.seed": "give the seeds with --seeds 0-4", "train.run_id": "each trial's run is named by the sweep",
           "train.output_dir": "give the sweep's folder with --output", "train.run_name": "give the sweep's folder "
           "with --output", "sweep": "a sweep does not sweep sweeps"}
RANGE = re.compile(r"(?:(log|int|int-log):)?\s*([^.\s][^\s]*?)\s*\.\.\s*([^\s]+)")
MAX_POINTS = 10_000  # grid points checked and planned at most: more is a search's job


@dataclass(frozen=True)
class Param:
    """One swept key: its grid `values` (as written, each read by the config as `--set KEY=VALUE` would) or a
    range `low`..`high` (`log` scale, `integer`)."""

    key: str
    values: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False

    @property
    def is_range(self) -> bool:
        return self.low is not None

    def distribution(self) -> Any:
        """Optuna's distribution of this key: FloatDistribution, IntDistribution or CategoricalDistribution."""
        import optuna

        if not self.is_range:
            return optuna.distributions.CategoricalDistribution(self.values)
        if self.integer:
            return optuna.distributions.IntDistribution(int(self.low), int(self.high), log=self.log)
        return optuna.distributions.FloatDistribution(self.low, self.high, log=self.log)

    def setting(self, value: Any) -> str:
        """`value` of this key as an override, KEY=VALUE."""
        if self.is_range:
            return f"{self.key}={int(value) if self.integer else repr(float(value))}"
        return f"{self.key}={value}"


@dataclass(frozen=True)
class Space:
    """The swept keys, the variants (name -> settings, in order) and the seeds."""

    params: tuple[Param, ...]
    variants: dict[str, tuple[str, ...]] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)

    @property
    def is_grid(self) -> bool:
        return not any(param.is_range for param in self.params)

    @property
    def keys(self) -> list[str]:
        """The swept dimensions' names, results.csv's columns: each key, then `variant` where there are variants."""
        return [param.key for param in self.params] + ([VARIANT] if self.variants else [])

    def distributions(self) -> dict[str, Any]:
        import optuna

        found = {param.key: param.distribution() for param in self.params}
        if self.variants:
            found[VARIANT] = optuna.distributions.CategoricalDistribution(tuple(self.variants))
        return found

    def points(self) -> Iterator[dict[str, Any]]:
        """A grid's points in order (the first key slowest), each {dimension: value}."""
        names = self.keys
        choices = [list(param.values) for param in self.params] + ([list(self.variants)] if self.variants else [])
        for values in itertools.product(*choices):
            yield dict(zip(names, values))

    def grid_size(self) -> int:
        size = len(self.variants) or 1
        for param in self.params:
            size *= len(param.values)
        return size

    def settings(self, point: dict[str, Any]) -> list[str]:
        """The overrides (KEY=VALUE) that make `point` of the config."""
        found = [param.setting(point[param.key]) for param in self.params]
        return found + list(self.variants.get(point.get(VARIANT), ()))

    def describe(self, point: dict[str, Any]) -> str:
        """`point` in a line: 'optimizer.name=adam init=he_normal'."""
        return " ".join(f"{key}={_short(point[key])}" for key in self.keys)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def parse_param(text: str) -> Param:
    """`--param KEY=SPEC` (see the module docstring) as a Param; ZooError for a malformed one or an empty range."""
    key, sep, spec = text.partition("=")
    key, spec = key.strip(), spec.strip()
    if not sep or not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", key) or not spec:
        raise ZooError(f"--param {text!r}: write KEY=V1,V2 or KEY=LOW..HIGH, e.g. --param optimizer.name=sgd,adam "
                       "or --param 'optimizer.lr=log:1e-4..1e-1'")
    if key in MANAGED or key.split(".")[0] in MANAGED:
        raise ZooError(f"--param {key}: {MANAGED.get(key) or MANAGED[key.split('.')[0]]}")
    match = RANGE.fullmatch(spec)
    if match and not spec.startswith(("[", "{", '"', "'")):
        return _range(key, *match.groups())
    values = tuple(value.strip() for value in _split(spec))
    if any(not value for value in values):
        raise ZooError(f"--param {key}={spec}: a value is empty; write KEY=V1,V2 (no empty value between commas)")
    if len(set(values)) != len(values):
        raise ZooError(f"--param {key}={spec}: a value is given twice; give each once")
    return Param(key, values)


def _range(key: str, scale: str | None, low_text: str, high_text: str) -> Param:
    try:
        low, high = float(low_text), float(high_text)
    except ValueError:
        raise ZooError(f"--param {key}={scale + ':' if scale else ''}{low_text}..{high_text}: the ends of a range "
                       "are numbers, e.g. log:1e-4..1e-1") from None
    integer = scale in ("int", "int-log") or all(re.fullmatch(r"[-+]?\d+", end) for end in (low_text, high_text))
    log = scale in ("log", "int-log")
    if not low < high:
        raise ZooError(f"--param {key}: the range {low_text}..{high_text} is empty; give LOW..HIGH with LOW < HIGH")
    if log and low <= 0:
        raise ZooError(f"--param {key}: a log range starts above 0 (got {low_text}); e.g. log:1e-4..1e-1")
    if integer and (low != int(low) or high != int(high)):
        raise ZooError(f"--param {key}: an integer range has whole ends (got {low_text}..{high_text})")
    return Param(key, (), low, high, log, integer)


def _split(spec: str) -> list[str]:
    """`spec` split at the commas outside brackets and quotes: '[10,10],[256]' -> ['[10,10]', '[256]']."""
    parts, depth, quote, current = [], 0, "", ""
    for char in spec:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        current += char
    return [*parts, current]


def parse_seeds(text: str | int | Sequence[int] | None, default: int) -> tuple[int, ...]:
    """`--seeds 0-4` (0 to 4), `0,2,7`, `3`, a list, or None (the config's train.seed); ZooError for an empty range,
    a seed given twice, or text that is none of these."""
    if text is None:
        return (default,)
    if isinstance(text, int):
        return (text,)
    if not isinstance(text, str):
        seeds = tuple(text)
    else:
        seeds = ()
        for part in text.split(","):
            match = re.fullmatch(r"\s*(-?\d+)\s*(?:-\s*(-?\d+)\s*)?", part)
            if not match:
                raise ZooError(f"--seeds {text!r}: write a range 0-4, a list 0,2,7 or one seed")
            first, last = int(match[1]), int(match[2]) if match[2] is not None else int(match[1])
            if last < first:
                raise ZooError(f"--seeds {text}: the range {first}-{last} is empty; write FIRST-LAST with "
                               "FIRST <= LAST")
            seeds += tuple(range(first, last + 1))
    if not seeds:
        raise ZooError("--seeds: no seed given; write a range 0-4, a list 0,2,7 or one seed")
    if len(set(seeds)) != len(seeds):
        raise ZooError(f"--seeds {text}: a seed is given twice; give each once")
    return seeds


def build_space(section: SweepConfig | None, params: Sequence[str], seeds: str | None, default_seed: int) -> Space:
    """The space from the config's sweep section and the command line: a --param replaces the section's key of the
    same name, --seeds its seeds. ZooError where nothing is swept (no key, no variant, one seed)."""
    section = section or SweepConfig()
    written = {key: value if isinstance(value, str) else ",".join(_yaml(item) for item in value)
               for key, value in section.params.items()}
    given: set[str] = set()
    for text in params:
        param = parse_param(text)
        if param.key in given:
            raise ZooError(f"--param {param.key} is given twice; give its values once: {param.key}=V1,V2,V3")
        given.add(param.key)
        written.pop(param.key, None)
        written[param.key] = text.partition("=")[2]
    swept = tuple(parse_param(f"{key}={spec}") for key, spec in written.items())
    variants = {name: tuple(f"{key}={_yaml(value)}" for key, value in settings.items())
                for name, settings in section.variants.items()}
    for name, settings in section.variants.items():
        for key in settings:
            if key in MANAGED or key.split(".")[0] in MANAGED:
                raise ZooError(f"sweep.variants.{name}: {key}: {MANAGED.get(key) or MANAGED[key.split('.')[0]]}")
    space = Space(swept, variants, parse_seeds(seeds if seeds is not None else section.seeds, default_seed))
    if not space.keys and len(space.seeds) == 1:
        raise ZooError("nothing to sweep: give --param KEY=V1,V2 (or a range), --seeds 0-4, or a config with a "
                       "sweep section (configs/lessons/)")
    return space


def _yaml(value: Any) -> str:
    """A value from YAML written back as override text (JSON is YAML: 'sgd' -> "sgd", [10, 10] -> [10, 10])."""
    return json.dumps(value) if not isinstance(value, str) else value


def check_space(config: Path, overrides: Sequence[str], space: Space) -> None:
    """Read every grid point (a search: each choice and each range's ends) as zoo train would, before the first
    trial: ConfigError with one line per point that does not validate, its problem as the config says it."""
    problems: list[str] = []
    for point in _checked_points(space):
        settings = space.settings(point)
        try:
            load_config(config, [*overrides, *settings])
        except ZooError as error:
            for line in error.lines():
                line = line.replace("--set ", "--param ", 1) if line.startswith("--set ") else line
                if line not in problems:
                    where = "" if space.is_grid or len(settings) < 2 else f" (at {space.describe(point)})"
                    problems.append(line + where)
    if problems:
        raise ConfigError(*problems)


def _checked_points(space: Space) -> Iterator[dict[str, Any]]:
    if space.is_grid:
        if space.grid_size() > MAX_POINTS:
            raise ZooError(f"the grid has {space.grid_size():,} points, more than {MAX_POINTS:,}; search it instead "
                           "(a range KEY=LOW..HIGH and --trials N)")
        yield from space.points()
        return
    first = {param.key: param.values[0] if not param.is_range else param.low for param in space.params}
    if space.variants:
        first[VARIANT] = next(iter(space.variants))
    yield first
    for param in space.params:  # each choice and each end, the others at their first
        for value in param.values or (param.low, param.high):
            yield {**first, param.key: value}
    for name in space.variants:
        yield {**first, VARIANT: name}


def trial_config(config: Path, overrides: Sequence[str], settings: Sequence[str]) -> Config:
    """The config of one trial: the file, the command's --set, the point's settings, and the sweep's own keys
    (seed, run directory) last; no sweep section, so the run's config.yaml trains again as itself."""
    return load_config(config, [*overrides, *settings, "sweep=null"])
