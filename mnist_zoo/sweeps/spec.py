"""The sweep file: a base config, a search space over its keys, the objective, the budget; validated before any training."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PositiveFloat, PositiveInt, StrictInt, StrictStr, model_validator

from mnist_zoo.errors import ConfigError
from mnist_zoo.fields import Frozen

OBJECTIVES = {"val_accuracy": "maximize", "val_loss": "minimize"}
KINDS = ("uniform", "log_uniform", "int", "log_int", "choice")
VARIANT = "variant"
"""The grid key of a sweep's named variants (no config key has this name: config keys are dotted)."""
MAX_VARIANTS = 64
MAX_GRID_POINTS = 10_000
"""A grid's combinations are listed in full (by Optuna's GridSampler, and by the queue of a full
grid): a few choices over many keys would otherwise be billions of them."""


class Dimension(Frozen):
    """One key's range: exactly one of `uniform`, `log_uniform`, `int`, `log_int` ([low, high]) or `choice` (a list)."""

    uniform: tuple[float, float] | None = None
    """Floats drawn evenly between low and high."""
    log_uniform: tuple[PositiveFloat, PositiveFloat] | None = None
    """Positive floats drawn evenly on a log scale (learning rates, weight decay)."""
    int: tuple[StrictInt, StrictInt] | None = None
    """Whole numbers from low to high, both included."""
    log_int: tuple[PositiveInt, PositiveInt] | None = None
    """Positive whole numbers on a log scale (widths: 32 ... 1024)."""
    choice: list[Any] | None = Field(default=None, min_length=1)
    """One of the values listed: numbers, strings, or lists such as layer widths ([256, 64])."""
    step: PositiveFloat | None = None
    """With `uniform` or `int`: only low, low + step, ... are drawn."""

    @model_validator(mode="after")
    def _exactly_one_kind(self):
        given = [kind for kind in KINDS if getattr(self, kind) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(KINDS)}, received {', '.join(given) or 'none'}")
        if self.kind != "choice":
            low, high = getattr(self, self.kind)
            if not low < high:
                raise ValueError(f"{self.kind}: low must be below high, received [{low}, {high}]")
        elif len(set(map(repr, self.choice))) != len(self.choice):
            raise ValueError(f"choice: every value once, received {self.choice}")
        if self.step is not None and self.kind not in ("uniform", "int"):
            raise ValueError(f"step goes with uniform or int, not {self.kind}")
        return self

    @property
    def kind(self) -> str:
        return next(kind for kind in KINDS if getattr(self, kind) is not None)

    def edges(self) -> list:
        """The values that must each make a valid config: both ends of a range, every choice."""
        return list(self.choice) if self.kind == "choice" else list(getattr(self, self.kind))

    @property
    def options(self) -> list:
        """The choices as Optuna takes them: scalars as they are, anything else (a list) as its JSON text."""
        return [value if isinstance(value, (bool, int, float, str)) or value is None else json.dumps(value)
                for value in self.choice]

    def decode(self, option):
        """The choice an Optuna parameter value stands for (`options` back to `choice`); other values as they are."""
        if self.kind == "choice" and option in self.options:
            return self.choice[self.options.index(option)]
        return option

    def suggest(self, trial, name: str):
        """Draws this key's value for an Optuna trial."""
        if self.kind == "choice":
            return self.decode(trial.suggest_categorical(name, self.options))
        low, high = getattr(self, self.kind)
        if self.kind in ("int", "log_int"):
            step = int(self.step) if self.step else 1
            return trial.suggest_int(name, low, high, step=step, log=self.kind == "log_int")
        return trial.suggest_float(name, low, high, step=self.step, log=self.kind == "log_uniform")


class Variant(Frozen):
    """One named variant of a grid sweep: its own base config (optional) and the overrides that make it."""

    base: StrictStr | None = None
    """A bundled config name or an absolute path; null: the sweep's `base`."""
    set: dict[str, Any] = {}
    """Overrides applied on top of the sweep's `set` (like --set): `train.optimizer: {name: sgd}`."""


class SweepSpec(Frozen):
    """A sweep: which config to start from, what to vary, what to optimize, and how long."""

    base: StrictStr
    """A bundled config name (`cnn`, `seeds/lab_mlp`) or a config file's path (relative to the sweep file;
    such a file is copied into the sweep directory as base.yaml)."""
    set: dict[str, Any] = {}
    """Overrides applied to every trial (like --set): `train.epochs: 5`, `data.train_limit: 10000`."""
    space: dict[str, Dimension] = {}
    """The keys to vary, each with its range: `train.optimizer.learning_rate: {log_uniform: [1e-4, 1e-2]}`."""
    variants: dict[str, Variant] = {}
    """Named variants, each a set of overrides (and maybe its own base config), for comparisons that
    one key cannot express ("sgd with momentum", "the CNN"); grid sampler only, crossed with `space`."""
    objective: Literal["val_accuracy", "val_loss"] = "val_accuracy"
    """The best epoch's validation figure: accuracy maximized, or loss minimized."""
    trials: PositiveInt | None = None
    """How many trials to finish (completed or pruned), over every worker; a grid's size by default."""
    time_budget_minutes: PositiveFloat | None = None
    """Stop starting trials after this long (per worker); with `trials`, whichever comes first."""
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    """tpe: Optuna's Tree-structured Parzen Estimator; random; grid: every combination (choice keys only)."""
    pruner: Literal["median", "none"] = "median"
    """median: stop a trial whose epoch falls below the median of earlier trials at that epoch."""
    seed: StrictInt = 0
    """The sampler's seed (each local worker adds its index, so that workers do not draw alike)."""
    heartbeat_seconds: PositiveInt = 10
    """A running trial's worker records a heartbeat this often; a trial silent for three times as
    long (its worker was killed, its machine lost) is marked failed and run again, at most twice."""

    @model_validator(mode="after")
    def _budget(self):
        if not self.space and not self.variants:
            raise ValueError("give a space (the keys to vary), variants, or both")
        if self.variants:
            if self.sampler != "grid":
                raise ValueError(f"variants need sampler: grid, received sampler: {self.sampler}")
            if len(self.variants) > MAX_VARIANTS:
                raise ValueError(f"{len(self.variants)} variants; at most {MAX_VARIANTS}")
            for name in self.variants:
                if not name.strip() or len(name) > 60 or not name.isprintable():
                    raise ValueError(f"variant name {name!r}: expected 1-60 printable characters")
        if self.sampler == "grid":
            not_choice = [key for key, dimension in self.space.items() if dimension.kind != "choice"]
            if not_choice:
                raise ValueError(f"sampler grid needs choice lists only; not a choice: {', '.join(not_choice)}")
            size = math.prod(len(dimension.choice) for dimension in self.space.values()) * max(len(self.variants), 1)
            if size > MAX_GRID_POINTS:
                raise ValueError(f"the grid has {size:,} combinations; at most {MAX_GRID_POINTS:,}: vary fewer keys "
                                 "or give fewer choices")
            if self.trials is not None and self.trials > size:
                raise ValueError(f"trials {self.trials} is more than the grid's {size} combinations")
        elif self.trials is None and self.time_budget_minutes is None:
            raise ValueError("give trials, time_budget_minutes, or both")
        return self

    @property
    def grid(self) -> dict[str, list]:
        """The grid of a grid sweep: the variants' names (under `variant`), then every key's choices."""
        variants = {VARIANT: list(self.variants)} if self.variants else {}
        return {**variants, **{key: dimension.options for key, dimension in self.space.items()}}

    @property
    def trial_count(self) -> int | None:
        """How many trials the sweep finishes (None: until the time budget ends)."""
        if self.trials is not None:
            return self.trials
        if self.sampler == "grid":
            return math.prod(len(choices) for choices in self.grid.values())
        return None

    def suggest(self, trial) -> dict[str, Any]:
        """Draws a trial's values: its variant's name (if the sweep has variants), then every key's."""
        variant = {VARIANT: trial.suggest_categorical(VARIANT, list(self.variants))} if self.variants else {}
        return {**variant, **{key: dimension.suggest(trial, key) for key, dimension in self.space.items()}}

    @property
    def direction(self) -> str:
        return OBJECTIVES[self.objective]


def base_config_path(spec: SweepSpec, sweep_file: Path | None, base_copies: dict[str, Path] | None = None) -> Path:
    """The base config's file: a bundled config's, a sweep directory's copy, or a path relative to the sweep file.

    Args:
        spec: the sweep.
        sweep_file: the sweep file (None: a relative path is taken from the working directory).
        base_copies: files to read instead of the paths they were copied from, by the `base`
            text they stand for (a sweep directory's copy of its base config).

    Returns:
        The base config's path.

    Raises:
        ConfigError: neither a bundled config nor an existing file.
    """
    from mnist_zoo.config.loading import bundled_config_names, bundled_config_path

    if spec.base in bundled_config_names():
        return bundled_config_path(spec.base)
    copy = (base_copies or {}).get(spec.base)
    if copy is not None and Path(copy).is_file():
        return Path(copy)
    candidate = Path(spec.base)
    if not candidate.is_absolute() and sweep_file is not None:
        candidate = Path(sweep_file).parent / candidate
    if candidate.is_file():
        return candidate
    return bundled_config_path(spec.base)  # raises, with did-you-mean over the bundled names


def load_sweep(path: Path, base_copies: dict[str, Path] | None = None) -> tuple[SweepSpec, Path]:
    """Reads and validates a sweep file, and checks every range against the base config.

    Each variant, and each end of every range and every choice with each variant, is applied to
    the base config (with `set`) and validated as a config, so a key that is not in it, or a value
    outside the key's own range, is an error now rather than in trial 17.

    Args:
        path: the sweep file.
        base_copies: copies of base configs to read instead of the paths they were copied from
            (see `base_config_path`).

    Returns:
        (the sweep, its base config's path).

    Raises:
        ConfigError: one line per problem, naming the file and the key.
    """
    from pydantic import ValidationError

    from mnist_zoo.config.loading import format_validation_error, load_config, read_yaml

    data = read_yaml(path)
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, str(path))) from None
    base = base_config_path(spec, path, base_copies)
    # Each variant alone, then each range's ends with each variant (or the base alone).
    try:
        setups = {name: (variant_base(spec, name, base), {**spec.set, **variant.set})
                  for name, variant in spec.variants.items()} or {None: (base, dict(spec.set))}
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    for name, (variant_file, overrides) in setups.items():
        where = f"variants.{name}" if name is not None else "set"
        try:
            load_config(variant_file, overrides)
        except ConfigError as error:
            reason = str(error).splitlines()[0].split(": ", 1)[-1]
            raise ConfigError(f"{path}: {where}: does not make a valid config: {reason}") from None
        for key, dimension in spec.space.items():
            if key in overrides:
                raise ConfigError(f"{path}: space.{key}: also fixed in {where}; vary it or fix it, not both")
            for value in dimension.edges():
                try:
                    load_config(variant_file, {**overrides, key: value})
                except ConfigError as error:
                    reason = str(error).splitlines()[0].split(": ", 1)[-1]
                    made = f"the {name!r} variant's" if name is not None else f"a valid {spec.base}"
                    raise ConfigError(f"{path}: space.{key}: {value!r} does not make {made} config: "
                                      f"{reason}") from None
    return spec, base


def variant_base(spec: SweepSpec, name: str, base: Path) -> Path:
    """The base config file of the variant `name`: its own `base`, else the sweep's.

    A variant's own base is a bundled config's name or an absolute path: the sweep directory keeps
    a copy of the sweep file only, which every worker (on any machine) reads.

    Raises:
        ConfigError: neither a bundled config name nor an existing absolute path.
    """
    from mnist_zoo.config.loading import bundled_config_names, bundled_config_path

    own = spec.variants[name].base
    if own is None:
        return Path(base)
    if own in bundled_config_names():
        return bundled_config_path(own)
    if Path(own).is_absolute() and Path(own).is_file():
        return Path(own)
    raise ConfigError(f"variants.{name}.base: {own!r} is neither a bundled config (mnist-zoo config list) nor an "
                      "existing file's absolute path; give one of those")


def trial_config(spec: SweepSpec, base: Path, params: dict[str, Any], name: str, data_dir: str | None = None):
    """The validated run config of one trial: the base (its variant's), `set`, the variant's `set`, the trial's values.

    Args:
        params: the trial's values, as `SweepSpec.suggest` draws them (with `variant` if the sweep has variants).
        data_dir: where this machine has the data (`sweep --data-dir`), recorded in the trial's config.
    """
    from mnist_zoo.config.loading import data_dir_setting, load_config

    params = dict(params)
    variant = params.pop(VARIANT, None)
    overrides = dict(spec.set)
    if variant is not None:
        base = variant_base(spec, variant, base)
        overrides.update(spec.variants[variant].set)
    machine = {"data.data_dir": data_dir_setting(data_dir)} if data_dir else {}
    # Quiet unless the sweep asks otherwise: several workers' progress bars would interleave.
    return load_config(base, {"train.verbose": 0, **overrides, **params, **machine, "name": name})
