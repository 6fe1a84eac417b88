"""What the layers saw: feature maps of the convolutions and poolings, kernels and weight templates."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAP_LAYERS = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "MaxPooling2D", "AveragePooling2D")
"""Layers whose outputs are pictured as feature maps: each channel an image."""

STRONGEST_UNITS = 16
"""How many of a hidden Dense layer's units are pictured: those with the largest incoming weights."""


@dataclass(frozen=True)
class LayerMaps:
    """One layer's output for a batch of inputs: (n, height, width, channels)."""

    name: str
    kind: str
    maps: np.ndarray
    activation: str | None
    """The layer's own activation ('relu', 'linear', ...), None for a pooling layer."""


def map_layers(model) -> list:
    """The model's layers pictured as feature maps, in order (4-D outputs only)."""
    return [layer for layer in model.layers
            if type(layer).__name__ in MAP_LAYERS and len(layer.output.shape) == 4]


def feature_maps(model, inputs: np.ndarray) -> list[LayerMaps]:
    """Every convolution's and pooling's output for `inputs` (float32 model inputs), in layer order.

    Raises:
        ValueError: the model has no convolution or pooling layer.
    """
    import keras

    layers = map_layers(model)
    if not layers:
        raise ValueError("the model has no convolution or pooling layer, so it has no feature maps; "
                         "its weights and attributions are pictured instead")
    outputs = keras.Model(model.inputs, [layer.output for layer in layers])([inputs], training=False)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return [LayerMaps(layer.name, type(layer).__name__, np.asarray(output, np.float32),
                      getattr(getattr(layer, "activation", None), "__name__", None))
            for layer, output in zip(layers, outputs)]


@dataclass(frozen=True)
class WeightImages:
    """A layer's weights as small images: class templates, hidden units or kernels."""

    layer: str
    kind: str
    """'templates' (a Dense layer straight to the 10 classes), 'units' (a hidden Dense layer's
    strongest units), 'kernels' (a convolution on the image) or 'kernels_summed' (a deeper
    convolution, summed over its input channels)."""
    images: np.ndarray
    """(count, height, width)."""
    labels: list[str]


def _first_dense_on_pixels(model):
    """The first Dense layer that reads the 784 pixels directly (after a Flatten or Reshape), or None."""
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Dense":
            return layer if int(layer.kernel.shape[0]) == 784 else None
        if kind not in ("InputLayer", "Flatten", "Reshape", "Rescaling"):
            return None
    return None


def weight_images(model, class_names) -> list[WeightImages]:
    """The weights that read the image itself, as pictures (empty if the model has none it can picture).

    A Dense layer on the pixels gives one 28x28 template per unit: the ten class templates of a
    linear model, or a hidden layer's `STRONGEST_UNITS` units with the largest weights. The
    first convolution gives its kernels; the second, its kernels summed over the input channels.
    """
    pictures = []
    dense = _first_dense_on_pixels(model)
    if dense is not None:
        kernel = np.asarray(dense.kernel, np.float32)  # (784, units)
        if kernel.shape[1] == len(class_names):
            pictures.append(WeightImages(dense.name, "templates", kernel.T.reshape(-1, 28, 28), list(class_names)))
        else:
            strongest = np.argsort(-np.linalg.norm(kernel, axis=0))[:STRONGEST_UNITS]
            pictures.append(WeightImages(dense.name, "units", kernel[:, strongest].T.reshape(-1, 28, 28),
                                         [f"unit {index}" for index in strongest]))
    convolutions = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    if convolutions:
        first = np.asarray(convolutions[0].kernel, np.float32)  # (k, k, channels in, filters)
        if first.shape[2] == 1:
            pictures.append(WeightImages(convolutions[0].name, "kernels", np.moveaxis(first[:, :, 0, :], -1, 0),
                                         [str(index) for index in range(first.shape[-1])]))
            if len(convolutions) > 1:
                second = np.asarray(convolutions[1].kernel, np.float32)
                pictures.append(WeightImages(convolutions[1].name, "kernels_summed",
                                             np.moveaxis(second.sum(axis=2), -1, 0),
                                             [str(index) for index in range(second.shape[-1])]))
    return pictures


def confident_mistakes(probabilities: np.ndarray, labels: np.ndarray, count: int = 16) -> np.ndarray:
    """Indices of the wrong answers given with the highest probability, most confident first."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    confidence = probabilities[wrong, predicted[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")][:count]
