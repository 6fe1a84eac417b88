"""Softmax regression: one Dense(10) layer on the 784 flattened pixels."""

from __future__ import annotations

from typing import Literal

from mnist_zoo.models.common import ModelConfigBase, image_input, output_layer


class LinearConfig(ModelConfigBase):
    """Config of the softmax-linear model (784-10)."""

    type: Literal["linear"] = "linear"
    """Selects this builder."""


def build(config: LinearConfig):
    """Builds the softmax-linear model.

    Args:
        config: the validated model config.

    Returns:
        An uncompiled `keras.Model` taking (28, 28, 1) images in [0, 1].
    """
    import keras

    inputs = image_input()
    x = keras.layers.Flatten(name="flatten")(inputs)
    return keras.Model(inputs, output_layer(x, config), name="linear")
