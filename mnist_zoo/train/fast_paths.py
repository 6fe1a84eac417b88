"""Training-step shortcuts installed on plain Keras objects: a fused Adam update, accuracy from logits.

Both keep the objects what they were (a `keras.optimizers.Adam`, a `keras.metrics.*Accuracy`),
so a saved `.keras` file names only Keras classes and loads, compiled, in plain Keras. Only
the TensorFlow ops that run each step change; the arithmetic is the same.
"""

from __future__ import annotations

import types


def fuse_adam_update(optimizer):
    """Makes a Keras Adam (or AdamW) update each variable with one fused TensorFlow kernel.

    Keras's `Adam.update_step` is written with backend-neutral ops: about ten elementwise
    kernels per variable, each reading and writing the whole tensor. On the MLP they took
    40 % of a training step's kernel time on a 2-core CPU. TensorFlow's `ResourceApplyAdam`
    does the same update (the same formula, `epsilon` added after the square root) in one pass.
    AMSGrad, sparse gradients and non-TensorFlow backends keep Keras's own update.

    Args:
        optimizer: a `keras.optimizers.Optimizer`; anything but Adam/AdamW is left as is.

    Returns:
        The same optimizer.
    """
    import keras

    adam_update = keras.optimizers.Adam.update_step
    if (
        keras.backend.backend() != "tensorflow"
        or not isinstance(optimizer, keras.optimizers.Adam)
        or type(optimizer).update_step is not adam_update  # a subclass with its own update rule
        or optimizer.amsgrad
    ):
        return optimizer
    optimizer.update_step = types.MethodType(_fused_adam_update_step, optimizer)
    return optimizer


def _fused_adam_update_step(self, gradient, variable, learning_rate):
    import keras
    import tensorflow as tf

    if isinstance(gradient, tf.IndexedSlices):
        return keras.optimizers.Adam.update_step(self, gradient, variable, learning_rate)
    dtype = variable.dtype
    local_step = tf.cast(self.iterations + 1, dtype)
    beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
    index = self._get_variable_index(variable)
    tf.raw_ops.ResourceApplyAdam(
        var=variable.handle,
        m=self._momentums[index].handle,
        v=self._velocities[index].handle,
        beta1_power=tf.pow(beta_1, local_step),
        beta2_power=tf.pow(beta_2, local_step),
        lr=tf.cast(learning_rate, dtype),
        beta1=beta_1,
        beta2=beta_2,
        epsilon=tf.cast(self.epsilon, dtype),
        grad=tf.cast(gradient, dtype),
    )


def accuracy_from_logits(metric):
    """Makes an accuracy metric take the arg-max of the output layer's logits, not of its softmax.

    The loss already reads the logits Keras keeps beside a softmax output (`_keras_logits`).
    When the accuracy reads them too, nothing in the training step uses the softmax, and
    TensorFlow drops it from the step. That matters on CPUs where it runs as oneDNN's softmax:
    0.4 ms per 128x10 batch, half of the linear model's kernel time. Softmax is monotonic, so
    the arg-max is the same, except that logits break a tie the rounded probabilities cannot.

    Args:
        metric: a `keras.metrics.SparseCategoricalAccuracy` or `CategoricalAccuracy`.

    Returns:
        The same metric.
    """
    plain_update_state = metric.update_state

    def update_state(y_true, y_pred, sample_weight=None):
        return plain_update_state(y_true, getattr(y_pred, "_keras_logits", y_pred), sample_weight)

    metric.update_state = update_state
    return metric
