"""The network as the explanations read it: float32, answering with class scores before any softmax."""

from __future__ import annotations

import numpy as np

_SOFTMAX_LAYERS = ("Softmax",)


def _is_softmax(layer) -> bool:
    if type(layer).__name__ in _SOFTMAX_LAYERS:
        return True
    return type(layer).__name__ == "Activation" and getattr(layer.activation, "__name__", "") == "softmax"


def explainable_model(model):
    """A float32 copy of `model` that outputs the class logits, and a note if that was not possible.

    Float32: a bf16 gradient keeps 8 bits of mantissa, too few for integrated gradients to add
    up to the score difference they explain. Logits: a softmax output near 1 is flat, so its
    gradients vanish exactly where the network is sure; the logit keeps the evidence visible.

    Args:
        model: a Keras model (any policy, any output head).

    Returns:
        (model, note): the copy, or `model` itself where it cannot be copied (a note says so);
        note is None when the copy is float32 and outputs logits.
    """
    import keras

    last = model.layers[-1]

    def float32_layer(layer):
        config = layer.get_config()
        if "dtype" in config and type(layer).__name__ != "InputLayer":
            config["dtype"] = "float32"
        if layer is last and config.get("activation") == "softmax":
            config["activation"] = "linear"
        return layer.__class__.from_config(config)

    try:
        copy = keras.models.clone_model(model, clone_function=float32_layer)
        copy.set_weights(model.get_weights())
        if _is_softmax(copy.layers[-1]):
            copy = keras.Model(copy.inputs, copy.layers[-1].input)
    except Exception as error:  # a foreign layer that does not round-trip its config
        return model, f"explained in the model's own precision and output ({type(error).__name__}: {error})"
    note = None
    if isinstance(copy.layers[-1], keras.Model):
        note = "the output is a nested model: attributions explain its output as it is (logits not checked)"
    elif getattr(getattr(copy.layers[-1], "activation", None), "__name__", "linear") not in ("linear", "softmax"):
        note = "the output layer is neither linear nor softmax: attributions explain its output as it is"
    return copy, note


def model_inputs(model, images: np.ndarray) -> np.ndarray:
    """uint8 images (n, 28, 28) as the model's float32 inputs: scaled to [0, 1], in its input shape."""
    from mnist_zoo.data.batches import PIXEL_SCALE

    shape = tuple(model.inputs[0].shape[1:])
    return (np.asarray(images, np.float32) * np.float32(PIXEL_SCALE)).reshape(-1, *shape)


def as_images(values: np.ndarray) -> np.ndarray:
    """Per-pixel values in a model's input shape, back as (n, 28, 28) for pictures."""
    return np.asarray(values).reshape(-1, 28, 28)
