"""Multi-layer perceptron: Dense hidden layers on the flattened pixels."""

from __future__ import annotations

from typing import Literal

from mnist_zoo.models.common import DenseHeadConfig, dense_stack, image_input, output_layer
from mnist_zoo.fields import PositiveInt


class MLPConfig(DenseHeadConfig):
    """Config of the MLP (default 784-256-64-10, ReLU)."""

    type: Literal["mlp"] = "mlp"
    """Selects this builder."""
    hidden_units: tuple[PositiveInt, ...] = (256, 64)
    """Widths of the hidden Dense layers."""
    # The lab report's 392-feature MLP: averaging horizontal pixel pairs (28x14) is our
    # reading of its unnamed features; done inside the model so it still takes raw images.
    input_features: Literal["pixels", "pooled_pairs"] = "pixels"
    """pixels: the 784 pixels; pooled_pairs: 392 averages of horizontal pixel pairs."""


def build(config: MLPConfig):
    """Builds the MLP.

    Args:
        config: the validated model config.

    Returns:
        An uncompiled `keras.Model` taking (28, 28, 1) images in [0, 1].
    """
    import keras

    inputs = image_input()
    x = inputs
    if config.input_features == "pooled_pairs":
        x = keras.layers.AveragePooling2D(pool_size=(1, 2), name="pooled_pairs")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = dense_stack(x, config)
    return keras.Model(inputs, output_layer(x, config), name="mlp")
