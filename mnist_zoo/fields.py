"""Building blocks of the typed config: strict frozen models and named specs."""

from __future__ import annotations

import difflib
from typing import Annotated, Any, ClassVar, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, lt=1)]
Probability = Annotated[float, Field(ge=0, le=1)]

Activation = Literal[
    "linear", "sigmoid", "hard_sigmoid", "tanh", "relu", "relu6", "softplus", "softsign",
    "leaky_relu", "elu", "selu", "gelu", "silu", "swish", "mish",
]
OutputActivation = Literal["softmax", "linear", "sigmoid"]


def did_you_mean(received: str, choices) -> str:
    """Returns ' (did you mean 'x'?)' when `received` is close to one of `choices`, else ''."""
    matches = difflib.get_close_matches(str(received), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


def _quoted(names) -> str:
    return ", ".join(f"'{name}'" for name in names)


class Frozen(BaseModel):
    """A frozen config section that rejects unknown keys with a did-you-mean hint."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, use_attribute_docstrings=True)

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = list(cls.model_fields)
            for key in data:
                if key not in cls.model_fields:
                    raise ValueError(
                        f"unknown key '{key}'{did_you_mean(key, known)}; "
                        f"valid keys are {_quoted(known)}"
                    )
            data = _with_default_names(cls, data)
        return data


def _with_default_names(section: type[BaseModel], data: dict) -> dict:
    """Gives a named-spec mapping without `name` its field's default name.

    `--set train.loss.label_smoothing=0.1` on a config that leaves `train.loss` at its default
    arrives as `{label_smoothing: 0.1}`: it means the default loss with that parameter, as it
    would if the file had spelled the default out.
    """
    filled = dict(data)
    for key, value in data.items():
        default = section.model_fields[key].default
        if isinstance(value, dict) and "name" not in value and isinstance(default, NamedSpec):
            filled[key] = {"name": default.name, **value}
    return filled


class Param(NamedTuple):
    """One parameter of a named spec: the type (with range) it is validated against, and its default."""

    type: Any
    default: Any


class NamedSpec(BaseModel):
    """A `name` plus the parameters that name accepts, written `name` or `{name: ..., param: ...}`.

    Subclasses list their names and each name's parameters (type, range and default) in
    `KINDS`, the one table of names: builders hand the name to Keras's own resolver
    (`keras.optimizers.get`, ...) with `arguments`. Parameters not listed are rejected.
    """

    model_config = ConfigDict(extra="allow", frozen=True)
    KIND: ClassVar[str] = "name"
    KINDS: ClassVar[dict[str, dict[str, Param]]] = {}

    name: str

    @model_validator(mode="before")
    @classmethod
    def _validate_name_and_params(cls, data: Any) -> Any:
        if isinstance(data, str):
            data = {"name": data}
        if not isinstance(data, dict):
            raise ValueError(
                f"expected a {cls.KIND} name or a mapping with 'name', received {data!r}"
            )
        if "name" not in data:
            raise ValueError(f"a {cls.KIND} mapping needs a 'name' key, received {dict(data)!r}")
        name = data["name"]
        if not isinstance(name, str) or name not in cls.KINDS:  # a list or mapping is no name (and unhashable)
            raise ValueError(
                f"unknown {cls.KIND} '{name}'{did_you_mean(name, cls.KINDS)}; "
                f"expected one of {_quoted(cls.KINDS)}"
            )
        allowed = cls.KINDS[name]
        params = {}
        for key, value in data.items():
            if key == "name":
                continue
            if key not in allowed:
                accepted = _quoted(allowed) if allowed else "no parameters"
                raise ValueError(
                    f"{cls.KIND} '{name}' has no parameter '{key}'{did_you_mean(key, allowed)}; "
                    f"it accepts {accepted}"
                )
            try:
                params[key] = TypeAdapter(allowed[key].type).validate_python(value)
            except ValidationError as error:
                reason = error.errors()[0]["msg"]
                raise ValueError(f"{cls.KIND} '{name}' parameter '{key}': {reason}, received {value!r}")
        return {"name": name, **params}

    @property
    def params(self) -> dict[str, Any]:
        """The parameters given besides `name`."""
        return dict(self.model_extra or {})

    @property
    def arguments(self) -> dict[str, Any]:
        """Every parameter of this name: the given ones, and the spec's default for the others."""
        return {key: param.default for key, param in self.KINDS[self.name].items()} | self.params


_SEED = Param(NonNegativeInt | None, None)  # null: drawn from the run's seed (train.seed)
_MEAN, _STDDEV = Param(float, 0.0), Param(PositiveFloat, 0.05)


class InitializerSpec(NamedSpec):
    """A Keras weight initializer, e.g. `he_normal` or `{name: random_normal, stddev: 0.05}`."""

    KIND: ClassVar[str] = "initializer"
    KINDS: ClassVar[dict[str, dict[str, Param]]] = {
        "zeros": {},
        "ones": {},
        "constant": {"value": Param(float, 0.0)},
        "identity": {"gain": Param(float, 1.0)},
        "normal": {"mean": _MEAN, "stddev": _STDDEV, "seed": _SEED},
        "random_normal": {"mean": _MEAN, "stddev": _STDDEV, "seed": _SEED},
        "truncated_normal": {"mean": _MEAN, "stddev": _STDDEV, "seed": _SEED},
        "uniform": {"minval": Param(float, -0.05), "maxval": Param(float, 0.05), "seed": _SEED},
        "random_uniform": {"minval": Param(float, -0.05), "maxval": Param(float, 0.05), "seed": _SEED},
        "glorot_uniform": {"seed": _SEED},
        "glorot_normal": {"seed": _SEED},
        "he_uniform": {"seed": _SEED},
        "he_normal": {"seed": _SEED},
        "lecun_uniform": {"seed": _SEED},
        "lecun_normal": {"seed": _SEED},
        "orthogonal": {"gain": Param(float, 1.0), "seed": _SEED},
        "variance_scaling": {
            "scale": Param(PositiveFloat, 1.0),
            "mode": Param(Literal["fan_in", "fan_out", "fan_avg"], "fan_in"),
            "distribution": Param(Literal["truncated_normal", "untruncated_normal", "uniform"], "truncated_normal"),
            "seed": _SEED,
        },
    }


_AXIS = Param(int, 0)


class ConstraintSpec(NamedSpec):
    """A Keras weight constraint, e.g. `{name: max_norm, max_value: 3}`."""

    KIND: ClassVar[str] = "constraint"
    KINDS: ClassVar[dict[str, dict[str, Param]]] = {
        "max_norm": {"max_value": Param(PositiveFloat, 2.0), "axis": _AXIS},
        "min_max_norm": {
            "min_value": Param(NonNegativeFloat, 0.0),
            "max_value": Param(PositiveFloat, 1.0),
            "rate": Param(Probability, 1.0),
            "axis": _AXIS,
        },
        "non_neg": {},
        "unit_norm": {"axis": _AXIS},
    }


class RegularizerSpec(Frozen):
    """L1 and/or L2 penalty factors, e.g. `{l2: 0.0005}`."""

    l1: NonNegativeFloat = 0.0
    """L1 penalty factor."""
    l2: NonNegativeFloat = 0.0
    """L2 penalty factor (weight decay in the loss)."""


class LayerOptions(Frozen):
    """Options shared by every weight layer of a model (hidden and output)."""

    use_bias: bool = True
    """Give every Dense/Conv2D layer a bias."""
    kernel_initializer: InitializerSpec = InitializerSpec(name="glorot_uniform")
    """Weight initializer: a name or {name, params} (see the initializer table)."""
    bias_initializer: InitializerSpec = InitializerSpec(name="zeros")
    """Bias initializer, same form as kernel_initializer."""
    kernel_regularizer: RegularizerSpec | None = None
    """Penalty on the weights, e.g. {l2: 0.0005}."""
    bias_regularizer: RegularizerSpec | None = None
    """Penalty on the biases."""
    activity_regularizer: RegularizerSpec | None = None
    """Penalty on the layer outputs."""
    kernel_constraint: ConstraintSpec | None = None
    """Weight constraint, e.g. {name: max_norm, max_value: 3}."""
    bias_constraint: ConstraintSpec | None = None
    """Bias constraint."""
