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
    batch_norm: bool = False
    """BatchNormalization after every hidden layer's weights (each convolution and hidden Dense)."""
    batch_norm_position: Literal["before_activation", "after_activation"] = "before_activation"
    """before_activation (Ioffe & Szegedy 2015; the layer then has no bias, BN's offset replaces it) or after_activation."""
    batch_norm_momentum: Fraction = 0.99
    """Momentum of BN's moving mean and variance (Keras's default); lower suits runs of a few hundred steps."""

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


def weight_block(x, layer_class, name: str, activation: str, config: DenseHeadConfig, **layer_arguments):
    """A Dense or Conv2D layer with its activation, and BatchNormalization where the config puts it.

    Args:
        x: the input tensor.
        layer_class: `keras.layers.Dense` or `keras.layers.Conv2D`.
        name: the weight layer's name; its BN and activation layers are named after it.
        activation: the block's activation.
        config: the model config (weight options and `batch_norm*`).
        **layer_arguments: the layer's own arguments (units, filters, kernel_size, ...).

    Returns:
        The block's output tensor.
    """
    import keras

    arguments = {**layer_arguments, **weight_kwargs(config)}
    if not config.batch_norm:
        return layer_class(activation=activation, name=name, **arguments)(x)
    normalization = keras.layers.BatchNormalization(momentum=config.batch_norm_momentum, name=f"{name}_bn")
    if config.batch_norm_position == "after_activation":
        return normalization(layer_class(activation=activation, name=name, **arguments)(x))
    # BN subtracts the batch mean right after the layer, so a bias there would be cancelled:
    # BN's own offset (beta) takes its place.
    arguments.update(use_bias=False, bias_regularizer=None, bias_constraint=None)
    x = normalization(layer_class(activation=None, name=name, **arguments)(x))
    return keras.layers.Activation(activation, name=f"{name}_{activation}")(x)


def dense_stack(x, config: DenseHeadConfig):
    """Applies a Dense layer (with BN if configured, and Dropout if its rate is > 0) per hidden width."""
    import keras

    for index, (units, rate) in enumerate(zip(config.hidden_units, config.dropout_rates()), start=1):
        x = weight_block(x, keras.layers.Dense, f"dense_{index}", config.activation, config, units=units)
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
