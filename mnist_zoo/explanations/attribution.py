"""Which pixels decided an answer: gradients, SmoothGrad, integrated gradients and Grad-CAM.

All four differentiate the score of one class (a logit, `network.explainable_model`) with
respect to the input pixels, or to the last convolution's maps for Grad-CAM, with
`tf.GradientTape`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COMPLETENESS_TOLERANCE = 0.01
"""Integrated gradients must add up to f(x) - f(baseline) within this fraction of it."""

SCORE_FLOOR = 0.01
"""Score differences smaller than this (in logits) count as this much in the completeness check:
1 % of a difference near zero is out of float32's reach, and such a class has nothing to explain."""

MAX_STEPS = 1024


def class_scores_and_gradients(model, inputs: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The score of `classes[i]` for `inputs[i]`, and its gradient with respect to the input.

    Returns:
        (scores (n,), gradients shaped like `inputs`).
    """
    import tensorflow as tf

    x = tf.convert_to_tensor(inputs, tf.float32)
    chosen_classes = tf.convert_to_tensor(np.asarray(classes, np.int32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        scores = tf.cast(model(x, training=False), tf.float32)
        chosen = tf.gather(scores, chosen_classes, axis=1, batch_dims=1)
    gradients = tape.gradient(chosen, x)
    if gradients is None:
        raise ValueError("the model's output does not depend on its input through differentiable layers; "
                         "there is no gradient to explain it with")
    return chosen.numpy(), gradients.numpy()


def gradient_saliency(model, inputs: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """|d score / d pixel| (Simonyan et al. 2013): where a small change moves the score most."""
    return np.abs(class_scores_and_gradients(model, inputs, classes)[1])


def smoothgrad(model, inputs: np.ndarray, classes: np.ndarray, samples: int = 32, noise: float = 0.15,
               seed: int = 0) -> np.ndarray:
    """|mean gradient over noisy copies| (Smilkov et al. 2017): the gradient map without its speckle.

    Args:
        samples: noisy copies per input.
        noise: standard deviation of the Gaussian noise, as a fraction of the pixel range [0, 1].
        seed: the noise's seed, so that a picture repeats.
    """
    generator = np.random.default_rng(seed)
    averages = []
    for single, target in zip(inputs, np.asarray(classes)):
        # All noisy copies of one input in one batch: one call instead of `samples`.
        noisy = single[None] + generator.normal(0, noise, (samples, *single.shape)).astype(np.float32)
        gradients = class_scores_and_gradients(model, noisy, np.full(samples, target))[1]
        averages.append(np.abs(gradients.mean(axis=0)))
    return np.stack(averages).astype(np.float32)


@dataclass(frozen=True)
class IntegratedGradients:
    """Integrated gradients of one input and class, and how well they add up."""

    attributions: np.ndarray
    """Per-pixel contributions, shaped like the input; they sum to about score - baseline_score."""
    score: float
    baseline_score: float
    steps: int

    @property
    def completeness_error(self) -> float:
        """|sum(attributions) - (score - baseline_score)|, relative to |score - baseline_score|."""
        difference = self.score - self.baseline_score
        return abs(float(self.attributions.sum()) - difference) / max(abs(difference), SCORE_FLOOR)

    @property
    def complete(self) -> bool:
        """The attributions add up within `COMPLETENESS_TOLERANCE`."""
        return self.completeness_error <= COMPLETENESS_TOLERANCE


def integrated_gradients(model, inputs: np.ndarray, classes: np.ndarray, baseline: np.ndarray | None = None,
                         steps: int = 64) -> list[IntegratedGradients]:
    """Integrated gradients (Sundararajan et al. 2017) against a black image, one per input.

    The gradients are averaged along the straight path from the baseline to the input (the
    trapezoidal rule) and multiplied by input - baseline. Their sum must equal the score
    difference (the method's completeness axiom); where it does not within
    `COMPLETENESS_TOLERANCE`, the path is walked again with twice the steps, up to `MAX_STEPS`
    (then `complete` is False and the caller says so).

    Args:
        inputs: (n, ...) float32 model inputs.
        classes: (n,) the class explained for each input.
        baseline: the input that means "no evidence"; default all zeros, a black image: the
            MNIST background, with no ink anywhere.
        steps: the first number of steps along the path.
    """
    baseline = np.zeros_like(inputs[:1]) if baseline is None else np.asarray(baseline, np.float32)
    results = []
    for index, single in enumerate(inputs):
        target = np.full(1, classes[index])
        baseline_score = class_scores_and_gradients(model, baseline, target)[0][0]
        score = class_scores_and_gradients(model, single[None], target)[0][0]
        count = steps
        while True:
            alphas = np.linspace(0.0, 1.0, count + 1, dtype=np.float32).reshape(-1, *([1] * single.ndim))
            path = baseline + alphas * (single[None] - baseline)
            gradients = np.concatenate([
                class_scores_and_gradients(model, path[start:start + 256], np.repeat(target, len(path[start:start + 256])))[1]
                for start in range(0, len(path), 256)])
            average = ((gradients[:-1] + gradients[1:]) / 2).mean(axis=0)
            result = IntegratedGradients((single - baseline[0]) * average, float(score), float(baseline_score), count)
            if result.complete or count >= MAX_STEPS:
                break
            count *= 2
        results.append(result)
    return results


GRAD_CAM_MIN_SIDE = 4
"""Grad-CAM's layer must keep at least 4x4 positions: a 1x1 map (a convolution used as the head) says nothing about where."""


def last_convolution(model):
    """Grad-CAM's layer: the last convolution whose maps are at least `GRAD_CAM_MIN_SIDE` on a side, or None."""
    candidates = [layer for layer in model.layers
                  if type(layer).__name__ in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D")
                  and len(layer.output.shape) == 4 and min(layer.output.shape[1:3]) >= GRAD_CAM_MIN_SIDE]
    return candidates[-1] if candidates else None


def grad_cam(model, inputs: np.ndarray, classes: np.ndarray, layer=None) -> np.ndarray:
    """Grad-CAM (Selvaraju et al. 2017): the last convolution's maps weighted by their mean gradient.

    Returns:
        (n, 28, 28) maps >= 0, upsampled bilinearly from the layer's resolution.

    Raises:
        ValueError: the model has no convolution.
    """
    import keras
    import tensorflow as tf

    layer = layer or last_convolution(model)
    if layer is None:
        raise ValueError("Grad-CAM needs a convolution layer; this model has none")
    both = keras.Model(model.inputs, [layer.output, model.outputs[0]])
    x = tf.convert_to_tensor(inputs, tf.float32)
    with tf.GradientTape() as tape:
        maps, scores = both(x, training=False)
        maps = tf.cast(maps, tf.float32)
        chosen = tf.gather(tf.cast(scores, tf.float32), np.asarray(classes, np.int32), axis=1, batch_dims=1)
    gradients = tape.gradient(chosen, maps)
    if gradients is None:
        raise ValueError(f"the output does not depend on {layer.name} through differentiable layers: no Grad-CAM")
    weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * maps, axis=-1, keepdims=True))
    return tf.image.resize(cam, (28, 28), method="bilinear").numpy()[..., 0]
