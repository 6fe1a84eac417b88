"""Renders the config reference (every key, type, default) as Markdown from the config classes."""

from __future__ import annotations

import types
import typing

import annotated_types
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from mnist_zoo.data.augmentation import AugmentationConfig
from mnist_zoo.config.run import DataConfig, EarlyStoppingConfig, LossSpec, OptimizerSpec, ReferenceConfig, RunConfig, ScheduleSpec, TrainConfig
from mnist_zoo.fields import ConstraintSpec, Frozen, InitializerSpec, NamedSpec
from mnist_zoo.models.registry import MODELS

_BOUNDS = ((annotated_types.Gt, "gt", ">"), (annotated_types.Ge, "ge", ">="),
           (annotated_types.Lt, "lt", "<"), (annotated_types.Le, "le", "<="))


def _bounds(metadata) -> str:
    # Field(gt=0) inside Annotated arrives as a FieldInfo holding the annotated_types bounds.
    metadata = [bound for item in metadata for bound in (getattr(item, "metadata", None) or [item])]
    parts = [f"{symbol} {getattr(item, attribute)}" for item in metadata
             for kind, attribute, symbol in _BOUNDS if isinstance(item, kind)]
    return f" ({', '.join(parts)})" if parts else ""


def type_name(annotation, metadata=()) -> str:
    """A short, readable rendering of a field's type for the reference tables."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_name(args[0], [*metadata, *args[1:]])
    if origin is typing.Literal:
        return " \\| ".join(str(value) for value in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(type_name(arg) for arg in args))
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list of {type_name(args[0])}"
        return f"[{', '.join(type_name(arg) for arg in args)}]"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, NamedSpec):
        return f"{annotation.KIND} name or mapping"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    return getattr(annotation, "__name__", str(annotation)) + _bounds(metadata)


def _default(field) -> str:
    if field.default is PydanticUndefined:
        return "required"
    value = field.default
    if isinstance(value, NamedSpec):
        return f"`{value.name}`"
    if isinstance(value, BaseModel):
        return "(see below)"
    if isinstance(value, tuple) and value and isinstance(value[0], BaseModel):
        return "(see below)"
    return _value(value)


def _value(value) -> str:
    """A default as it is written in YAML."""
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple):
        value = list(value)
    return "`null`" if value is None else f"`{value}`"


def fields_table(model_class: type[BaseModel], prefix: str) -> str:
    rows = ["| key | type | default | description |", "|---|---|---|---|"]
    for name, field in model_class.model_fields.items():
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{prefix}{name}` | {type_name(field.annotation, field.metadata)} | {_default(field)} | {description} |")
    return "\n".join(rows)


def named_spec_table(spec_class: type[NamedSpec]) -> str:
    rows = [f"| {spec_class.KIND} | parameters (type, default) |", "|---|---|"]
    for name, params in spec_class.KINDS.items():
        rendered = ", ".join(f"`{key}` ({type_name(param.type)}, {_value(param.default)})"
                             for key, param in params.items()) or "none"
        rows.append(f"| `{name}` | {rendered} |")
    return "\n".join(rows)


def _sections_inside(annotation) -> list[type[Frozen]]:
    """The config sections (not named specs) a field's type holds: in a list, an option, or itself."""
    if isinstance(annotation, type):
        return [annotation] if issubclass(annotation, Frozen) else []
    return [found for arg in typing.get_args(annotation) for found in _sections_inside(arg)]


def model_sections() -> list[tuple[str, str]]:
    """A table per registered model, then one per nested section any of them has (each once).

    Everything comes from the registry's config classes, so a new model type documents itself.
    """
    sections, nested = [], {}
    for name, entry in MODELS.items():
        sections.append((f"`model` with `type: {name}`", fields_table(entry.config_class, "model.")))
        for key, field in entry.config_class.model_fields.items():
            for section in _sections_inside(field.annotation):
                list_marker = "[]" if typing.get_origin(field.annotation) is tuple else ""
                nested.setdefault(section, []).append(f"model.{key}{list_marker}")
    for section, keys in nested.items():
        where = ", ".join(f"`{key}`" for key in dict.fromkeys(keys))
        summary = (section.__doc__ or "").strip().splitlines()[0].rstrip(".")
        sections.append((f"{where}: {summary}", fields_table(section, "")))
    return sections


def render_reference() -> str:
    """The whole reference: sections per config part, then the named choices with their parameters."""
    sections = [("Top level", fields_table(RunConfig, "")), *model_sections()]
    sections += [
        ("`data`", fields_table(DataConfig, "data.")),
        ("`data.augmentation`", fields_table(AugmentationConfig, "data.augmentation.")),
        ("`train`", fields_table(TrainConfig, "train.")),
        ("`train.early_stopping`", fields_table(EarlyStoppingConfig, "train.early_stopping.")),
        ("`reference`", fields_table(ReferenceConfig, "reference.")),
        ("Optimizers (`train.optimizer`)", named_spec_table(OptimizerSpec)),
        ("Losses (`train.loss`)", named_spec_table(LossSpec)),
        ("Learning-rate schedules (`train.schedule`, stepped every batch)", named_spec_table(ScheduleSpec)),
        ("Initializers (`model.kernel_initializer`, `model.bias_initializer`)", named_spec_table(InitializerSpec)),
        ("Constraints (`model.kernel_constraint`, `model.bias_constraint`)", named_spec_table(ConstraintSpec)),
    ]
    return "\n\n".join(f"#### {title}\n\n{body}" for title, body in sections) + "\n"
