"""Translates config specs into Keras layers' keyword arguments; shared by every builder."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from mnist_zoo.data.catalog import NUM_CLASSES
from mnist_zoo.fields import (
    Activation,
    ConstraintSpec,
    Fraction,
    InitializerSpec,
    LayerOptions,
    OutputActivation,
    PositiveInt,
    RegularizerSpec,
)

IMAGE_SHAPE = (28, 28, 1)


class ModelConfigBase(LayerOptions):
    """Fields every model has: the registry `type` and the output layer's activation."""

    type: str
    """The registered model type (`mnist-zoo models` lists them)."""
    output_activation: OutputActivation = "softmax"
    """Output layer activation; linear gives logits (cross-entropy then reads logits)."""


def expand_dropout(dropout_rate: float | tuple[float, ...], num_layers: int, where: str) -> list[float]:
    """Returns one dropout rate per hidden layer from a single rate or a per-layer list.

    Args:
        dropout_rate: one rate for every layer, or one per layer.
        num_layers: how many hidden layers there are.
        where: the config key, for the error message.

    Returns:
        A list of `num_layers` rates.
    """
    if isinstance(dropout_rate, (int, float)):
        return [float(dropout_rate)] * num_layers
    if len(dropout_rate) != num_layers:
        raise ValueError(
            f"{where} has {len(dropout_rate)} rates but there are {num_layers} hidden layers; "
            "give one rate per layer or a single rate for all"
        )
    return list(dropout_rate)


class DenseHeadConfig(ModelConfigBase):
    """Fields of models with hidden Dense layers: widths, activation and dropout after each."""

    hidden_units: tuple[PositiveInt, ...] = ()
    """Widths of the hidden Dense layers."""
    activation: Activation = "relu"
    """Activation of the hidden layers."""
    dropout_rate: Fraction | tuple[Fraction, ...] = 0.0
    """Dropout after each hidden Dense layer: one rate, or a list with one per layer."""

    @model_validator(mode="after")
    def _check_dropout_per_layer(self):
        expand_dropout(self.dropout_rate, len(self.hidden_units), "dropout_rate")
        return self

    def dropout_rates(self) -> list[float]:
        """One dropout rate per hidden layer."""
        return expand_dropout(self.dropout_rate, len(self.hidden_units), "dropout_rate")


def make_initializer(spec: InitializerSpec):
    import keras

    return keras.initializers.get({"class_name": spec.name, "config": spec.arguments})


def make_constraint(spec: ConstraintSpec | None):
    import keras

    if spec is None:
        return None
    return keras.constraints.get({"class_name": spec.name, "config": spec.arguments})


def make_regularizer(spec: RegularizerSpec | None):
    import keras

    if spec is None or (spec.l1 == 0 and spec.l2 == 0):
        return None
    return keras.regularizers.L1L2(l1=spec.l1, l2=spec.l2)


def weight_kwargs(options: LayerOptions) -> dict:
    """Keyword arguments for a Keras Dense or Conv2D layer from the shared layer options."""
    return {
        "use_bias": options.use_bias,
        "kernel_initializer": make_initializer(options.kernel_initializer),
        "bias_initializer": make_initializer(options.bias_initializer),
        "kernel_regularizer": make_regularizer(options.kernel_regularizer),
        "bias_regularizer": make_regularizer(options.bias_regularizer),
        "activity_regularizer": make_regularizer(options.activity_regularizer),
        "kernel_constraint": make_constraint(options.kernel_constraint),
        "bias_constraint": make_constraint(options.bias_constraint),
    }


def image_input():
    """The input every zoo model takes: a 28x28x1 image scaled to [0, 1]."""
    import keras

    return keras.Input(shape=IMAGE_SHAPE, name="image")


def dense_stack(x, config: DenseHeadConfig):
    """Applies a Dense layer (and Dropout, if its rate is > 0) per hidden width."""
    import keras

    for index, (units, rate) in enumerate(zip(config.hidden_units, config.dropout_rates()), start=1):
        x = keras.layers.Dense(
            units, activation=config.activation, name=f"dense_{index}", **weight_kwargs(config)
        )(x)
        if rate > 0:
            x = keras.layers.Dropout(rate, name=f"dropout_{index}")(x)
    return x


def output_layer(x, config: ModelConfigBase):
    """The 10-way classifier head; kept in float32 so the loss stays stable under mixed precision."""
    import keras

    return keras.layers.Dense(
        NUM_CLASSES,
        activation=config.output_activation,
        name="output",
        dtype="float32",
        **weight_kwargs(config),
    )(x)


Padding = Literal["valid", "same"]
