"""The run config: YAML in, a validated, frozen, typed object out."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

import yaml
from pydantic import Discriminator, Field, Tag, ValidationError, model_validator

from mnist_zoo.errors import ConfigError
from mnist_zoo.registry import MODELS
from mnist_zoo.schema import (
    Fraction,
    Frozen,
    NamedSpec,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Probability,
    did_you_mean,
)


def _model_type(data: Any) -> str | None:
    return data.get("type") if isinstance(data, dict) else getattr(data, "type", None)


ModelConfig = Annotated[
    Union[tuple(Annotated[entry.config_class, Tag(name)] for name, entry in MODELS.items())],
    Discriminator(_model_type),
]

_LEARNING_RATE = {"learning_rate": PositiveFloat}
_EPSILON = {"epsilon": PositiveFloat}
_WEIGHT_DECAY = {"weight_decay": NonNegativeFloat}
_CLIP = {"clipnorm": PositiveFloat, "clipvalue": PositiveFloat}
_BETAS = {"beta_1": Fraction, "beta_2": Fraction}


class OptimizerSpec(NamedSpec):
    """A Keras optimizer and its arguments, e.g. `{name: sgd, learning_rate: 0.1, momentum: 0.9}`."""

    KIND: ClassVar[str] = "optimizer"
    KINDS: ClassVar[dict[str, dict[str, Any]]] = {
        "sgd": {**_LEARNING_RATE, "momentum": Fraction, "nesterov": bool, **_WEIGHT_DECAY, **_CLIP},
        "rmsprop": {
            **_LEARNING_RATE, "rho": Fraction, "momentum": Fraction, **_EPSILON,
            "centered": bool, **_WEIGHT_DECAY, **_CLIP,
        },
        "adagrad": {
            **_LEARNING_RATE, "initial_accumulator_value": NonNegativeFloat, **_EPSILON,
            **_WEIGHT_DECAY, **_CLIP,
        },
        "adadelta": {**_LEARNING_RATE, "rho": Fraction, **_EPSILON, **_WEIGHT_DECAY, **_CLIP},
        "adam": {**_LEARNING_RATE, **_BETAS, **_EPSILON, "amsgrad": bool, **_WEIGHT_DECAY, **_CLIP},
        "adamw": {**_LEARNING_RATE, **_BETAS, **_EPSILON, "amsgrad": bool, **_WEIGHT_DECAY, **_CLIP},
        "adamax": {**_LEARNING_RATE, **_BETAS, **_EPSILON, **_WEIGHT_DECAY, **_CLIP},
        "nadam": {**_LEARNING_RATE, **_BETAS, **_EPSILON, **_WEIGHT_DECAY, **_CLIP},
    }
    DEFAULT_LEARNING_RATE: ClassVar[dict[str, float]] = {"adadelta": 1.0}

    @property
    def learning_rate(self) -> float:
        """The base (or, for one-cycle, peak) learning rate; Keras's default when not given."""
        return float(self.params.get("learning_rate", self.DEFAULT_LEARNING_RATE.get(self.name, 0.001)))


class LossSpec(NamedSpec):
    """The training loss, e.g. `categorical_crossentropy` or `{name: ..., label_smoothing: 0.1}`."""

    KIND: ClassVar[str] = "loss"
    KINDS: ClassVar[dict[str, dict[str, Any]]] = {
        "categorical_crossentropy": {"label_smoothing": Fraction},
        "sparse_categorical_crossentropy": {},
        "mean_squared_error": {},
        "hinge": {},
        "categorical_hinge": {},
    }

    @property
    def one_hot_labels(self) -> bool:
        """Whether this loss wants one-hot labels (everything but the sparse loss)."""
        return self.name != "sparse_categorical_crossentropy"


class ScheduleSpec(NamedSpec):
    """How the learning rate changes during training (stepped once per batch)."""

    KIND: ClassVar[str] = "schedule"
    KINDS: ClassVar[dict[str, dict[str, Any]]] = {
        "constant": {},
        # Multiply by `factor` every `step_epochs` epochs.
        "step": {"step_epochs": PositiveInt, "factor": Annotated[float, Field(gt=0, le=1)]},
        # Multiply by `decay_rate` per epoch, smoothly.
        "exponential": {"decay_rate": Annotated[float, Field(gt=0, le=1)]},
        # Optional linear warm-up, then cosine decay to `alpha` x the base rate.
        "cosine": {"warmup_epochs": NonNegativeFloat, "alpha": Probability},
        # Linear warm-up from rate/initial_divisor to the peak rate over `warmup_fraction`
        # of training, then cosine annealing to `final_fraction` x the peak.
        "one_cycle": {
            "warmup_fraction": Fraction,
            "initial_divisor": Annotated[float, Field(ge=1)],
            "final_fraction": Probability,
        },
    }


class EarlyStoppingConfig(Frozen):
    """Stop when `monitor` has not improved by `min_delta` for `patience` epochs."""

    enabled: bool = False
    """Turn early stopping on."""
    monitor: Literal["val_accuracy", "val_loss"] = "val_accuracy"
    """The validation figure watched."""
    patience: PositiveInt = 3
    """Epochs without improvement before stopping."""
    min_delta: NonNegativeFloat = 0.0
    """Smallest change that counts as an improvement."""
    restore_best_weights: bool = True
    """End with the best epoch's weights (last.keras)."""


class DataConfig(Frozen):
    """Which data set, where it comes from, and how much of it to use."""

    dataset: Literal["mnist", "fashion_mnist"] = "mnist"
    """Which data set."""
    data_dir: str | None = None
    """Folder with the IDX files or mnist.npz; null: $MNIST_ZOO_DATA_DIR, else download."""
    validation_size: NonNegativeInt | Annotated[float, Field(gt=0, lt=1)] = 5000
    """Held out from the training set (seeded): a count, or a fraction < 1."""
    train_limit: PositiveInt | None = None
    """Use only the first N training images (quick experiments)."""
    test_limit: PositiveInt | None = None
    """Use only the first N test images."""


class TrainConfig(Frozen):
    """How the model is fitted."""

    epochs: PositiveInt = 10
    """Passes over the training set."""
    batch_size: PositiveInt = 128
    """Images per gradient step."""
    seed: NonNegativeInt = 42
    """Seeds weights, dropout, shuffling and the validation split."""
    shuffle: bool = True
    """Reshuffle the training images every epoch (the order of epoch k depends only on seed and k)."""
    deterministic: bool = False
    """Deterministic TensorFlow ops: identical histories from identical runs (see README, Repeatability)."""
    optimizer: OptimizerSpec = OptimizerSpec(name="adam")
    """A name or {name, params} (see the optimizer table)."""
    loss: LossSpec = LossSpec(name="categorical_crossentropy")
    """A name or {name, params} (see the loss table)."""
    schedule: ScheduleSpec = ScheduleSpec(name="constant")
    """Learning-rate schedule: a name or {name, params} (see the schedule table)."""
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()
    """Stop when validation stops improving (keys below)."""
    device: Literal["auto", "cpu", "gpu"] = "auto"
    """auto: a GPU if TensorFlow sees one, else the CPU."""
    precision: Literal["auto", "float32", "mixed_bfloat16", "mixed_float16"] = "auto"
    """auto: mixed_float16 on tensor-core GPUs; mixed_bfloat16 on CPUs with native bf16 for models of 1 M+ MACs per image; else float32. A resumed run keeps its own."""
    steps_per_execution: PositiveInt = 1
    """Training steps per TensorFlow call; > 1 cuts per-step overhead (progress updates less often)."""
    verbose: Literal["auto", 0, 1, 2] = "auto"
    """Keras verbosity; auto: progress bar on a terminal, one line per epoch otherwise."""


class ReferenceConfig(Frozen):
    """What the course material reports for this network (documentation; checked by the tests)."""

    source: str = ""
    """Where the network comes from."""
    parameters: PositiveInt | None = None
    """Parameter count the material reports."""
    test_accuracy: Probability | None = None
    """Test accuracy the material reports (0-1)."""
    notes: str = ""
    """Anything else worth knowing."""


class RunConfig(Frozen):
    """Everything a training run needs: the model, the data and the training recipe."""

    name: str = "unnamed"
    """Config name (default: the file name); names the run directory."""
    description: str = ""
    """One line shown by `config list`."""
    reference: ReferenceConfig = ReferenceConfig()
    """What the course material reports for this network (keys below)."""
    model: ModelConfig
    """The network (required); model.type picks the builder."""
    data: DataConfig = DataConfig()
    """The data (keys below)."""
    train: TrainConfig = TrainConfig()
    """The training recipe (keys below)."""

    @model_validator(mode="before")
    @classmethod
    def _check_model_type(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("model"), dict):
            model_type = data["model"].get("type")
            if model_type not in MODELS:
                raise ValueError(
                    f"model.type: unknown model {model_type!r}{did_you_mean(model_type, MODELS)}; "
                    f"expected one of {', '.join(repr(name) for name in MODELS)}"
                )
        return data

    @model_validator(mode="after")
    def _check_combinations(self):
        if self.train.loss.name.endswith("crossentropy") and self.model.output_activation == "sigmoid":
            raise ValueError(
                f"train.loss: {self.train.loss.name} needs model.output_activation softmax (or linear "
                "for logits), received sigmoid"
            )
        if self.train.early_stopping.enabled and self.data.validation_size == 0:
            raise ValueError(
                "train.early_stopping monitors validation data but data.validation_size is 0; "
                "hold out validation images or disable early stopping"
            )
        return self


# ----------------------------------------------------------------------------- loading


def bundled_config_dir() -> Path:
    """The folder of the configs shipped with the package (top-level configs/ in a checkout)."""
    package_dir = Path(__file__).resolve().parent
    installed = package_dir / "configs"  # where pyproject.toml installs configs/
    return installed if installed.is_dir() else package_dir.parent / "configs"


def bundled_config_names() -> list[str]:
    """Names accepted by `--model`: bundled configs, e.g. 'cnn' or 'seeds/lab_cnn'."""
    root = bundled_config_dir()
    return sorted(str(path.relative_to(root).with_suffix("")) for path in root.rglob("*.yaml"))


def bundled_config_path(name: str) -> Path:
    """The path of the bundled config `name` ('cnn', 'seeds/lab_cnn', ...)."""
    names = bundled_config_names()
    if not names:
        raise ConfigError(f"no bundled configs found in {bundled_config_dir()}; is mnist-zoo installed completely?")
    if name not in names:
        raise ConfigError(
            f"no bundled config named {name!r}{did_you_mean(name, names)}; "
            f"available: {', '.join(names)} (or pass --config PATH)"
        )
    return bundled_config_dir() / f"{name}.yaml"


def read_yaml(path: Path) -> dict:
    """Reads a YAML mapping with the safe loader.

    Raises:
        ConfigError: the file is missing, unreadable, not YAML, or not a mapping.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read config file ({error})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.constructor.ConstructorError as error:
        raise ConfigError(
            f"{path}: tag {error.problem.split()[-1] if error.problem else ''} is not allowed; "
            "configs are plain YAML (mappings, lists, numbers, strings) read with a safe loader"
        ) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"{path}: YAML syntax error{where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a YAML mapping at the top level, received {type(data).__name__}")
    return data


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """Parses `key.path=value` strings into {key path: value}, values read as YAML.

    Raises:
        ConfigError: an override is not of the form `key.path=value`.
    """
    parsed = {}
    for override in overrides:
        key_path, sep, raw_value = override.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", key_path.strip()):
            raise ConfigError(
                f"--set {override!r}: expected KEY.PATH=VALUE, e.g. --set train.epochs=3"
            )
        try:
            parsed[key_path.strip()] = yaml.safe_load(raw_value) if raw_value.strip() else None
        except yaml.YAMLError:
            parsed[key_path.strip()] = raw_value
    return parsed


def apply_overrides(data: dict, overrides: list[str] | dict[str, Any]) -> dict:
    """Returns a copy of `data` with overrides applied.

    Args:
        data: the raw config mapping.
        overrides: `key.path=value` strings (values read as YAML), or {key path: value}
            with values used as they are.
    """
    data = copy.deepcopy(data)
    if not isinstance(overrides, dict):
        overrides = parse_overrides(overrides)
    for key_path, value in overrides.items():
        *parents, leaf = key_path.split(".")
        node = data
        for part in parents:
            child = node.get(part)
            if isinstance(child, str):  # a named spec's short form: `optimizer: adam`
                child = {"name": child}
            elif not isinstance(child, dict):
                child = {}
            node[part] = child
            node = child
        node[leaf] = value
    return data


def format_validation_error(error: ValidationError, source: str) -> str:
    """One line per problem: `source: key.path: message (received X)`."""
    lines = []
    for item in error.errors(include_url=False):
        location = ".".join(str(part) for part in item["loc"] if not _is_union_tag(part))
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "literal_error":
            expected = re.findall(r"'([^']*)'", item["ctx"].get("expected", ""))
            message += did_you_mean(item["input"], expected)
        received = "" if item["type"] in ("value_error", "assertion_error") else f" (received {item['input']!r})"
        prefix = f"{location}: " if location else ""
        lines.append(f"{source}: {prefix}{message}{received}")
    return "\n".join(lines)


def _is_union_tag(part) -> bool:
    return isinstance(part, str) and part in MODELS


def validate_config(data: dict, source: str) -> RunConfig:
    """Validates a raw mapping into a `RunConfig`.

    Raises:
        ConfigError: naming the source, the key path, what was received and what was expected.
    """
    try:
        return RunConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, source)) from None


def load_config(path: str | Path, overrides: list[str] | dict[str, Any] = ()) -> RunConfig:
    """Reads, overrides and validates a config file.

    Args:
        path: a YAML file.
        overrides: `key.path=value` strings, or {key path: value}, applied after reading.

    Returns:
        The validated, frozen `RunConfig`; `name` defaults to the file's stem.
    """
    data = read_yaml(Path(path))
    data.setdefault("name", Path(path).stem)
    return validate_config(apply_overrides(data, overrides), str(path))


def config_to_dict(config: RunConfig) -> dict:
    """The fully resolved config as plain data (what `config.yaml` in a run holds)."""
    return config.model_dump(mode="json")


def config_to_yaml(config: RunConfig) -> str:
    return yaml.safe_dump(config_to_dict(config), sort_keys=False, default_flow_style=None)
