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
    weight_block,
)
from mnist_zoo.fields import Activation, Fraction, Frozen, PositiveInt


class ConvLayerConfig(Frozen):
    """One convolution block: Conv2D, then optional pooling and spatial dropout."""

    filters: PositiveInt
    """Number of convolution filters (required)."""
    kernel_size: PositiveInt | tuple[PositiveInt, PositiveInt] = 5
    """Kernel size: n for n x n, or [height, width]."""
    strides: PositiveInt = 1
    """Convolution stride."""
    padding: Padding = "valid"
    """valid (no padding, the map shrinks) or same."""
    activation: Activation | None = None
    """Activation of this convolution; null: the model's activation."""
    pool_size: PositiveInt | None = 2
    """Pooling window after the convolution; null: no pooling."""
    dropout_rate: Fraction = 0.0
    """Dropout after the block (of whole feature maps or of single values: model.conv_dropout)."""


class CNNConfig(DenseHeadConfig):
    """Config of the CNN (default 32c5-pool-64c5-pool-1024-dropout(0.5)-10)."""

    type: Literal["cnn"] = "cnn"
    """Selects this builder."""
    conv_layers: tuple[ConvLayerConfig, ...] = (ConvLayerConfig(filters=32), ConvLayerConfig(filters=64))
    """The convolution blocks, in order (keys below under model.conv_layers[])."""
    pooling: Literal["max", "average"] = "max"
    """Pooling type of every block."""
    conv_dropout: Literal["spatial", "standard"] = "spatial"
    """What a block's dropout drops: spatial, whole feature maps (SpatialDropout2D); standard, single values (Dropout)."""
    hidden_units: tuple[PositiveInt, ...] = (1024,)
    """Widths of the Dense layers after Flatten."""
    dropout_rate: Fraction | tuple[Fraction, ...] = 0.5
    """Dropout after each hidden Dense layer: one rate, or one per layer."""

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
        x = weight_block(
            x, keras.layers.Conv2D, f"conv_{index}", layer.activation or config.activation, config,
            filters=layer.filters, kernel_size=layer.kernel_size, strides=layer.strides, padding=layer.padding,
        )
        if layer.pool_size:
            x = pool_class(pool_size=layer.pool_size, name=f"pool_{index}")(x)
        if layer.dropout_rate > 0:
            dropout_class = keras.layers.SpatialDropout2D if config.conv_dropout == "spatial" else keras.layers.Dropout
            x = dropout_class(layer.dropout_rate, name=f"conv_dropout_{index}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = dense_stack(x, config)
    return keras.Model(inputs, output_layer(x, config), name="cnn")
