"""Convolutional network: Conv2D/pooling blocks, then a dense head (LeNet-style by default)."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator

from mnist_zoo.models.common import (
    DenseHeadConfig,
    Padding,
    dense_stack,
    image_input,
    output_layer,
    weight_kwargs,
)
from mnist_zoo.schema import Activation, Fraction, Frozen, PositiveInt


class ConvLayerConfig(Frozen):
    """One convolution block: Conv2D, then optional pooling and spatial dropout."""

    filters: PositiveInt
    kernel_size: PositiveInt | tuple[PositiveInt, PositiveInt] = 5
    strides: PositiveInt = 1
    padding: Padding = "valid"
    activation: Activation | None = None  # None: the model's `activation`
    pool_size: PositiveInt | None = 2  # None: no pooling after this convolution
    dropout_rate: Fraction = 0.0


class CNNConfig(DenseHeadConfig):
    """Config of the CNN (default 32c5-pool-64c5-pool-1024-dropout(0.5)-10)."""

    type: Literal["cnn"] = "cnn"
    conv_layers: tuple[ConvLayerConfig, ...] = (ConvLayerConfig(filters=32), ConvLayerConfig(filters=64))
    pooling: Literal["max", "average"] = "max"
    hidden_units: tuple[PositiveInt, ...] = (1024,)
    dropout_rate: Fraction | tuple[Fraction, ...] = 0.5

    @field_validator("conv_layers")
    @classmethod
    def _at_least_one_conv(cls, conv_layers):
        if not conv_layers:
            raise ValueError("a CNN needs at least one entry in conv_layers")
        return conv_layers


def build(config: CNNConfig):
    """Builds the CNN.

    Args:
        config: the validated model config.

    Returns:
        An uncompiled `keras.Model` taking (28, 28, 1) images in [0, 1].
    """
    import keras

    pool_class = keras.layers.MaxPooling2D if config.pooling == "max" else keras.layers.AveragePooling2D
    inputs = image_input()
    x = inputs
    for index, layer in enumerate(config.conv_layers, start=1):
        x = keras.layers.Conv2D(
            layer.filters,
            layer.kernel_size,
            strides=layer.strides,
            padding=layer.padding,
            activation=layer.activation or config.activation,
            name=f"conv_{index}",
            **weight_kwargs(config),
        )(x)
        if layer.pool_size:
            x = pool_class(pool_size=layer.pool_size, name=f"pool_{index}")(x)
        if layer.dropout_rate > 0:
            x = keras.layers.SpatialDropout2D(layer.dropout_rate, name=f"conv_dropout_{index}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = dense_stack(x, config)
    return keras.Model(inputs, output_layer(x, config), name="cnn")
