"""The inference engine: class probabilities from uint8 images through one traced TensorFlow function."""

from __future__ import annotations

import numpy as np


class Predictor:
    """Fast inference for uint8 images: one traced TensorFlow function, reused for every call.

    `model.predict` builds a data pipeline and dispatch loop on every call, which costs
    milliseconds even for one image; calling a traced function costs well under one.
    """

    # Measured on the CNN (2 cores): 256-384 images per call evaluate ~9,000 images/s, 2,048 about
    # 7,100 and one 10,000-image call 4,400: small batches keep the activations in cache.
    def __init__(self, model, batch_size: int = 256):
        import tensorflow as tf

        from mnist_zoo.data.batches import scale_pixels

        self.model = model
        self.batch_size = batch_size
        self.output_kind = output_kind(model)
        self.output_dtype = str(getattr(model.outputs[0], "dtype", "float32"))
        input_shape = tuple(model.inputs[0].shape[1:])

        def forward(images):
            # Scaling and reshaping inside the graph: the uint8 batch is the only copy made.
            scaled = tf.reshape(scale_pixels(images), (-1, *input_shape))
            return tf.cast(model(scaled, training=False), tf.float32)

        # Public: the traced graph, uint8 (n, 28, 28) -> raw outputs (n, 10) float32; other traced
        # functions call it (serve's JointKerasCall runs every model's in one call).
        self.forward = tf.function(forward, input_signature=[tf.TensorSpec((None, 28, 28), tf.uint8)])

    def scores(self, images: np.ndarray) -> np.ndarray:
        """The model's raw outputs (n, 10) for uint8 images (n, 28, 28)."""
        batches = [self.forward(images[start:start + self.batch_size]).numpy()
                   for start in range(0, len(images), self.batch_size)]
        return np.concatenate(batches) if batches else np.zeros((0, 10), np.float32)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities (n, 10); softmax applied to logits."""
        return to_probabilities(self.scores(images), self.output_kind, self.output_dtype)


def output_kind(model) -> str | None:
    """What the model's output layer declares it outputs: 'probabilities', 'logits', or None.

    A softmax output (a Dense or Activation layer with softmax, or a Softmax layer) gives
    probabilities; a linear one gives logits. Any other activation declares neither.
    """
    layer = model.layers[-1] if model.layers else None
    if layer is None:
        return None
    if type(layer).__name__ == "Softmax":
        return "probabilities"
    activation = getattr(getattr(layer, "activation", None), "__name__", None)
    return {"softmax": "probabilities", "linear": "logits"}.get(activation)


# How far from 1 the rows of a softmax computed in each dtype may sum: float32 rounds each of the
# 10 values to 2^-24, bf16 to 2^-8 and float16 to 2^-11, relative, and the softmax's own sum is
# rounded too. Used only where the output layer does not declare what it outputs.
_SUM_TOLERANCE = {"float32": 1e-3, "float64": 1e-3, "float16": 1e-2, "bfloat16": 3e-2}


def to_probabilities(scores: np.ndarray, kind: str | None = None, dtype: str = "float32") -> np.ndarray:
    """Class probabilities from a model's outputs.

    Args:
        scores: the outputs (n, 10).
        kind: 'probabilities' or 'logits' where the model declares it (`output_kind`); None:
            rows that are non-negative and sum to 1 within the rounding of `dtype` are taken
            as probabilities, anything else as logits.
        dtype: the dtype the model computed its outputs in.

    Returns:
        Rows that sum to 1: probabilities renormalized (as Keras's cross-entropy does, so that
        bf16-rounded rows give Keras's loss), or the softmax of logits.
    """
    scores = scores.astype(np.float64)
    if kind is None:
        tolerance = _SUM_TOLERANCE.get(dtype, 1e-3)
        sums_to_one = np.allclose(scores.sum(axis=1), 1.0, atol=tolerance)
        kind = "probabilities" if (scores >= 0).all() and sums_to_one else "logits"
    if kind == "probabilities":
        sums = scores.sum(axis=1, keepdims=True)
        return np.divide(scores, sums, out=np.full_like(scores, 1 / scores.shape[1]), where=sums > 0)
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def predict_probabilities(model, images: np.ndarray) -> np.ndarray:
    """Class probabilities (n, 10) for uint8 images (n, 28, 28).

    Args:
        model: a Keras model (run through a `Predictor`), or anything with a `probabilities`
            method for uint8 images, such as a `runtimes.Classifier` (a file in its runtime).
    """
    engine = model if hasattr(model, "probabilities") else Predictor(model)
    return engine.probabilities(images)
