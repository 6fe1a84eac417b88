"""The model every export holds: uint8 28x28 images in, class probabilities out, computed in float32."""

from __future__ import annotations

INPUT_NAME = "image"
"""The exported models' one input: (batch, 28, 28) uint8 pixels, 0-255, a light digit on black."""
OUTPUT_NAME = "probabilities"
"""Their one output: (batch, 10) float32 class probabilities."""


def float32_copy(model):
    """A copy of `model` whose every layer computes in float32, with the same weights.

    Mixed-precision runs keep float32 variables and compute in bf16 or fp16; runtimes outside
    Keras (LiteRT on a phone, onnxruntime) want one dtype, and float32 is the one every runtime
    runs everywhere. Rebuilding each layer from its config with `dtype: float32` is all it takes.
    """
    import keras

    def rebuilt(layer):
        config = layer.get_config()
        if "dtype" in config:
            config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=rebuilt)
    copy.set_weights(model.get_weights())
    return copy


def inference_model(model):
    """`model` (an MNIST classifier `load_classifier` accepts, computing in float32: see
    `float32_copy`) as the exported contract.

    In: (batch, 28, 28) uint8 images, the MNIST files' own format and what `predict` prepares
    from a picture: the app hands over pixels, and the scaling to [0, 1] travels inside the
    file, so it cannot be done twice or forgotten. Out: (batch, 10) float32 probabilities (a
    softmax is added to a model that outputs logits or undeclared scores). Only Keras's own
    layers: every runtime and converter knows them.
    """
    import keras

    from mnist_zoo.data.batches import PIXEL_SCALE
    from mnist_zoo.inference.predictor import output_kind

    inputs = keras.Input(shape=(28, 28), dtype="uint8", name=INPUT_NAME)
    # Rescaling casts to float32, then multiplies by 1/255: the same operation as training's scale_pixels.
    x = keras.layers.Rescaling(PIXEL_SCALE, name="scale_pixels")(inputs)
    x = keras.layers.Reshape(tuple(model.inputs[0].shape[1:]), name="model_input")(x)
    x = model(x)
    if output_kind(model) != "probabilities":
        x = keras.layers.Softmax(name="softmax")(x)
    outputs = keras.layers.Identity(name=OUTPUT_NAME)(x)
    return keras.Model(inputs, outputs, name=f"{model.name}_inference")
