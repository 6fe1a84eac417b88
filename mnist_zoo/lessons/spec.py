"""The lesson file: a grid sweep plus a `lesson:` block (the question, the plots, how the answer is ranked, the quick mode)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, StrictStr, model_validator

from mnist_zoo.errors import ConfigError
from mnist_zoo.fields import Frozen
from mnist_zoo.sweeps.spec import Dimension

EPOCH_METRICS = ("val_accuracy", "accuracy", "val_loss", "loss")
"""What a `curves` plot can draw per epoch (Keras's history names)."""
RUN_MEASURES = ("test_accuracy", "best_val_accuracy", "final_val_accuracy", "final_accuracy", "final_val_loss",
                "generalization_gap",
                "parameters", "forward_macs", "train_seconds", "seconds_per_epoch", "epochs", "train_images",
                "hidden_layers")
"""What a `points` plot, the table and the answer can use per run (`measures.MEASURES` says what each is)."""


class ReferencePoint(Frozen):
    """A figure from the course material, drawn beside ours as a hollow marker."""

    label: StrictStr
    x: float
    y: float


class PlotSpec(Frozen):
    """One figure of a lesson."""

    kind: Literal["curves", "points"]
    """curves: an epoch metric per epoch, one line per variant; points: one run measure against another."""
    y: StrictStr
    """curves: val_accuracy, accuracy, val_loss or loss; points: a run measure."""
    x: StrictStr = "epoch"
    """points: a run measure, a config key (`train.batch_size`), or `variant` (one slot per variant)."""
    file: StrictStr
    """The PNG's name in the lesson folder."""
    title: StrictStr | None = None
    """Default: the lesson's question."""
    training_too: bool = False
    """curves: the training metric too, dashed, in the variant's colour (under- and over-fitting)."""
    log_x: bool = False
    log_y: bool = False
    config_references: bool = False
    """points: also each variant's `reference:` figures (the material's parameters and test accuracy)."""
    references: list[ReferencePoint] = []
    """points: the material's figures, drawn beside ours."""

    @model_validator(mode="after")
    def _known_measures(self):
        if self.kind == "curves" and self.y not in EPOCH_METRICS:
            raise ValueError(f"curves y: {self.y!r} is not an epoch metric; expected one of {', '.join(EPOCH_METRICS)}")
        if self.kind == "points":
            if self.y not in RUN_MEASURES:
                raise ValueError(f"points y: {self.y!r} is not a run measure; expected one of {', '.join(RUN_MEASURES)}")
            if self.x not in RUN_MEASURES and self.x != "variant" and "." not in self.x:
                raise ValueError(f"points x: {self.x!r}: expected a run measure ({', '.join(RUN_MEASURES)}), "
                                 "a config key such as train.batch_size, or variant")
        if not self.file.endswith(".png") or "/" in self.file or "\\" in self.file or self.file.startswith("."):
            raise ValueError(f"file: {self.file!r}: expected a plain name ending in .png")
        return self


class AnswerSpec(Frozen):
    """How the measured answer ranks the variants."""

    by: StrictStr
    """The run measure that ranks them."""
    higher_is_better: bool = True
    per: StrictStr | None = None
    """A space key: one ranking per value of it (the data-size lesson: one per training-set size)."""
    per_shown_as: StrictStr | None = None
    """A run measure that names each `per` group better than the key's value ('500 training images')."""
    also: list[StrictStr] = []
    """More run measures for the table."""

    @model_validator(mode="after")
    def _known_measures(self):
        for name in (self.by, *self.also, *([self.per_shown_as] if self.per_shown_as else [])):
            if name not in RUN_MEASURES:
                raise ValueError(f"{name!r} is not a run measure; expected one of {', '.join(RUN_MEASURES)}")
        return self


class QuickSpec(Frozen):
    """What `--quick` changes: fewer epochs and images, maybe fewer variants or values."""

    set: dict[str, Any] = {}
    """Overrides on top of the lesson's `set`."""
    space: dict[str, Dimension] = {}
    """Keys whose choices the quick mode replaces."""
    variants: list[StrictStr] | None = None
    """The variants the quick mode keeps (default: all)."""


class LessonSpec(Frozen):
    """The `lesson:` block."""

    question: StrictStr = Field(min_length=1)
    """The question the lesson answers: its plots' title."""
    plots: list[PlotSpec] = Field(min_length=1)
    answer: AnswerSpec
    quick: QuickSpec = QuickSpec()
    minutes: dict[Literal["quick", "full"], float] = {}
    """How long each mode takes on 2 CPU cores, as measured (`scripts/lesson_times.py --write`)."""
    measured_on: StrictStr = ""
    """Where and when `minutes` were measured."""
    notes: list[StrictStr] = []
    """Sentences printed with the answer: what the material reports, what to look for."""

    @model_validator(mode="after")
    def _unique_files(self):
        files = [plot.file for plot in self.plots]
        if len(set(files)) != len(files):
            raise ValueError(f"plots: each file once, received {files}")
        return self


class Lesson:
    """A loaded lesson: its `lesson:` block and the grid sweep that trains it, for one mode."""

    def __init__(self, name: str, path: Path, spec: LessonSpec, sweep: dict, quick: bool):
        self.name = name
        self.path = path
        self.spec = spec
        self.sweep = sweep
        """The sweep file's mapping (the lesson file without `lesson:`, the mode and --set applied)."""
        self.quick = quick

    @property
    def sweep_text(self) -> str:
        return yaml.safe_dump(self.sweep, sort_keys=False, allow_unicode=True)


def bundled_lesson_dir() -> Path:
    from mnist_zoo.config.loading import LESSONS_FOLDER, bundled_config_dir

    return bundled_config_dir() / LESSONS_FOLDER


def bundled_lesson_names() -> list[str]:
    """The bundled lessons' names (`mnist-zoo lesson list`)."""
    return sorted(path.stem for path in bundled_lesson_dir().glob("*.yaml"))


def lesson_path(name_or_file: str | Path) -> Path:
    """The lesson file a name ('activations') or a path stands for.

    Raises:
        ConfigError: neither an existing file nor a bundled lesson's name.
    """
    from mnist_zoo.fields import did_you_mean

    candidate = Path(name_or_file)
    if candidate.is_file():
        return candidate
    names = bundled_lesson_names()
    if str(name_or_file) in names:
        return bundled_lesson_dir() / f"{name_or_file}.yaml"
    raise ConfigError(f"no lesson file or bundled lesson named {str(name_or_file)!r}"
                      f"{did_you_mean(str(name_or_file), names)}; available: {', '.join(names)}")


def load_lesson(name_or_file: str | Path, quick: bool = False, overrides: dict[str, Any] | None = None) -> Lesson:
    """Reads a lesson file and makes the grid sweep of one mode; both validated before any training.

    Args:
        name_or_file: a bundled lesson's name or a lesson file.
        quick: the quick mode (the `quick:` block applied).
        overrides: config overrides for every trial, applied last (`--set`).

    Returns:
        The `Lesson`.

    Raises:
        ConfigError: one line naming the file and the key.
    """
    from pydantic import ValidationError

    from mnist_zoo.config.loading import bundled_config_names, format_validation_error, read_yaml

    path = lesson_path(name_or_file)
    data = read_yaml(path)
    if not isinstance(data, dict) or "lesson" not in data:
        raise ConfigError(f"{path}: not a lesson file (no lesson: block); a sweep file goes to mnist-zoo sweep")
    data = dict(data)
    try:
        spec = LessonSpec.model_validate(data.pop("lesson"))
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, f"{path}: lesson")) from None
    if data.get("sampler", "grid") != "grid":
        raise ConfigError(f"{path}: sampler: a lesson trains every variant (sampler: grid), received {data['sampler']}")
    for key, allowed in (("pruner", "none"), ("trials", None), ("time_budget_minutes", None)):
        if key in data and data[key] != allowed:
            raise ConfigError(f"{path}: {key}: a lesson trains every variant to the end, so it takes no {key} "
                              f"(received {data[key]!r}); remove it")
    sweep = {"sampler": "grid", "pruner": "none", **data}
    # The sweep file is written into the lesson's folder: a relative base must still be found.
    if isinstance(sweep.get("base"), str) and sweep["base"] not in bundled_config_names() \
            and not Path(sweep["base"]).is_absolute():
        sweep["base"] = str((path.parent / sweep["base"]).resolve())
    # The quick block is checked in either mode: a mistake in it should not wait for the first --quick.
    unknown_keys = sorted(set(spec.quick.space) - set(sweep.get("space") or {}))
    if unknown_keys:
        raise ConfigError(f"{path}: lesson.quick.space: {', '.join(unknown_keys)} not in space")
    unknown_variants = sorted(set(spec.quick.variants or ()) - set(sweep.get("variants") or {}))
    if unknown_variants:
        raise ConfigError(f"{path}: lesson.quick.variants: {', '.join(unknown_variants)} not in variants")
    if quick:
        sweep["set"] = {**(sweep.get("set") or {}), **spec.quick.set}
        if spec.quick.space:
            sweep["space"] = {**sweep["space"], **{key: dimension.model_dump(exclude_none=True)
                                                   for key, dimension in spec.quick.space.items()}}
        if spec.quick.variants is not None:
            sweep["variants"] = {name: sweep["variants"][name] for name in spec.quick.variants}
    if overrides:
        varied = {key for variant in (sweep.get("variants") or {}).values() if isinstance(variant, dict)
                  for key in (variant.get("set") or {})} | set(sweep.get("space") or {})

        def overlaps(a: str, b: str) -> bool:  # the same key, or one inside the other (train.optimizer)
            return a == b or a.startswith(b + ".") or b.startswith(a + ".")

        fixed = sorted(key for key in overrides if any(overlaps(key, other) for other in varied))
        if fixed:
            raise ConfigError(f"--set {', '.join(fixed)}: the lesson varies {'it' if len(fixed) == 1 else 'them'} "
                              "itself (its variants or space); --set changes what every variant shares")
        sweep["set"] = {**(sweep.get("set") or {}), **overrides}
    if spec.answer.per is not None and spec.answer.per not in sweep.get("space", {}):
        raise ConfigError(f"{path}: lesson.answer.per: {spec.answer.per!r} is not a key of space")
    lesson = Lesson(path.stem, path, spec, sweep, quick)
    sweep_spec, base = _validate_as_sweep(path, lesson.sweep_text)
    _check_plot_keys(path, spec, sweep_spec, base)
    if not quick and not overrides and spec.quick.set:
        load_lesson(path, quick=True)  # the quick block's overrides too, before anything trains
    return lesson


def _check_plot_keys(path: Path, spec: LessonSpec, sweep_spec, base: Path) -> None:
    """Each `points` plot's config-key axis names a number in every variant's config."""
    from mnist_zoo.config.loading import config_to_dict
    from mnist_zoo.sweeps.spec import VARIANT, trial_config

    keys = [plot.x for plot in spec.plots if plot.kind == "points" and plot.x not in RUN_MEASURES
            and plot.x != "variant"]
    if not keys:
        return
    first = {key: dimension.edges()[0] for key, dimension in sweep_spec.space.items()}
    for variant in list(sweep_spec.variants) or [None]:
        config = config_to_dict(trial_config(sweep_spec, base, {**first, **({VARIANT: variant} if variant else {})},
                                             "check"))
        for key in keys:
            node = config
            for part in key.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, bool) or not isinstance(node, (int, float)):
                raise ConfigError(f"{path}: lesson.plots: x {key!r} is not a number in the config"
                                  f"{f' of the variant {variant!r}' if variant else ''}; expected a run measure "
                                  f"({', '.join(RUN_MEASURES)}), a numeric config key, or variant")


def _validate_as_sweep(path: Path, text: str):
    """Validates the mode's sweep file with the sweep engine's own checks (every variant, every choice)."""
    import tempfile

    from mnist_zoo.sweeps.spec import load_sweep

    with tempfile.TemporaryDirectory() as folder:
        sweep_file = Path(folder) / f"{path.stem}.yaml"
        sweep_file.write_text(text, encoding="utf-8")
        try:
            return load_sweep(sweep_file)
        except ConfigError as error:
            raise ConfigError(str(error).replace(str(sweep_file), str(path))) from None
