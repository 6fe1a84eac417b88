"""The training-step fast paths, the only code that touches Keras internals, behind one switch.

Four shortcuts, each installed on a plain Keras object: a fused Adam update, accuracy from the
output layer's logits, a fused batch normalisation, and a training step that gathers its own
batch. They keep the objects what they were (a `keras.optimizers.Adam`, a
`keras.metrics.*Accuracy`, a `keras.layers.BatchNormalization`, the model), so a saved `.keras`
file names only Keras classes and loads, compiled, in plain Keras. Only the TensorFlow ops that
run each step change; the arithmetic is the same.

They rely on Keras attributes that are not public API (`Adam._momentums`, `._velocities`,
`._get_variable_index`, a softmax output's `_keras_logits`, `Model.train_function`).
`missing_internals` checks them; where one is missing (another Keras version), training runs
plain Keras instead (`train.fast_paths: false` does the same on purpose).
"""

from __future__ import annotations

import contextlib
import functools
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


def fuse_batch_norm(model):
    """Makes the model's BatchNormalization layers normalise training batches with one fused kernel.

    Keras 3's TensorFlow backend trains BatchNormalization with `tf.nn.moments` and
    `tf.nn.batch_normalization`: a dozen elementwise and reduction kernels forwards and more
    backwards, each a pass over the activations. In the record recipe's training step they took
    about a third of the CPU time. TensorFlow's `FusedBatchNormV3` computes the batch statistics
    and normalises in one pass (its gradient in one more), in float32 as Keras does. It returns
    the unbiased batch variance; Keras updates its moving variance with the biased one, so the
    moving statistics get the `(n - 1) / n` factor back and follow Keras's to rounding. Inference
    (evaluate, predict, the validation pass) keeps Keras's own code.

    Only plain layers change: channels-last, on 2-D (Dense) or 4-D (Conv2D) activations, without
    renorm, synchronisation across replicas or a mask; any other call takes Keras's path.

    Args:
        model: a Keras model; its layers are changed in place, per instance.

    Returns:
        The same model.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return model
    for layer in _all_layers(model):
        if (type(layer) is keras.layers.BatchNormalization and "call" not in vars(layer)
                and not getattr(layer, "renorm", False) and not getattr(layer, "synchronized", False)):
            layer.call = types.MethodType(functools.partial(_fused_batch_norm_call, keras_call=layer.call.__func__),
                                          layer)
    return model


def _all_layers(model):
    for layer in getattr(model, "layers", ()):
        yield layer
        yield from _all_layers(layer)  # a nested model's own layers


# What _fused_batch_norm_call reads of a layer (missing_internals checks them).
_BATCH_NORM_ATTRIBUTES = ("axis", "momentum", "epsilon", "center", "scale", "gamma", "beta", "moving_mean",
                          "moving_variance", "trainable", "compute_dtype")


def _fused_batch_norm_call(self, inputs, training=None, mask=None, *, keras_call):
    import tensorflow as tf

    rank = len(inputs.shape)
    if not (training and self.trainable) or mask is not None or rank not in (2, 4) or self.axis not in (-1, rank - 1):
        return keras_call(self, inputs, training=training, mask=mask)
    channels = inputs.shape[-1]
    x = tf.cast(inputs, tf.float32)  # as Keras: bf16 and f16 batch statistics overflow or lose digits
    if rank == 2:
        x = tf.reshape(x, (1, -1, 1, channels))  # the batch as the height of one image: same statistics
    ones, zeros = tf.ones((channels,), tf.float32), tf.zeros((channels,), tf.float32)
    # The raw op, not tf.compat.v1.nn.fused_batch_norm: older releases of that wrapper raised an
    # epsilon below 1.001e-5 to it (a cuDNN limit), which would change the arithmetic silently.
    outputs, mean, unbiased_variance, *_ = tf.raw_ops.FusedBatchNormV3(
        x=x,
        scale=tf.cast(self.gamma, tf.float32) if self.scale else ones,
        offset=tf.cast(self.beta, tf.float32) if self.center else zeros,
        mean=tf.zeros((0,), tf.float32), variance=tf.zeros((0,), tf.float32),  # unused in training
        epsilon=self.epsilon, data_format="NHWC", is_training=True,
    )
    count = tf.cast(tf.size(x, out_type=tf.int64) // channels, tf.float32)
    variance = unbiased_variance * tf.maximum(count - 1.0, 0.0) / count
    momentum = self.momentum
    self.moving_mean.assign(tf.cast(self.moving_mean, tf.float32) * momentum + mean * (1.0 - momentum))
    self.moving_variance.assign(tf.cast(self.moving_variance, tf.float32) * momentum + variance * (1.0 - momentum))
    if rank == 2:
        outputs = tf.reshape(outputs, tf.shape(inputs))
    return tf.cast(outputs, self.compute_dtype)


@contextlib.contextmanager
def prepared_in_train_step(model, prepare):
    """Makes `model`'s training step call `prepare` on what the dataset yields, then train on its result.

    `Model.train_step` is Keras's documented place to change what a step does; only this model
    instance changes, and only inside the `with`.

    Args:
        model: a compiled Keras model.
        prepare: a function from the dataset's element to the (images, labels) batch to train on.
    """
    plain_train_step = model.train_step

    def train_step(data):
        return plain_train_step(prepare(data))

    model.train_step = train_step
    model.train_function = None  # Keras builds it from train_step at the next fit
    try:
        yield model
    finally:
        del model.train_step
        model.train_function = None


def gathered_in_train_step(model, data, augment=None):
    """Makes `model`'s training step take `data.index_dataset`'s index batches and gather its own batch.

    On two cores a tf.data map that gathers and scales each batch runs on threads of its own
    beside the training step, and per batch its work is as large as the whole linear model's
    step. Done inside the step, the same ops run in the step's own graph. The batches are the
    same, so training is too. Use it as a context manager (`prepared_in_train_step`).

    Args:
        model: a compiled Keras model; fit it on `data.index_dataset` inside the `with`.
        data: the `data.batches.EpochShuffledDataset` whose indices the step receives.
        augment: a function from the (images, labels) batch to the one to train on
            (`data.augmentation.augmented_batches`), or None.
    """
    if augment is None:
        return prepared_in_train_step(model, data.batch_for)
    return prepared_in_train_step(model, lambda indices: augment(data.batch_for(indices)))


@functools.cache
def missing_internals() -> tuple[str, ...]:
    """The Keras internals the fast paths need that this Keras lacks (empty: all there).

    Checked once per process on throw-away objects, before any training uses them.
    """
    import keras
    import numpy as np

    missing = []
    if keras.backend.backend() != "tensorflow":
        return ("the TensorFlow backend",)
    optimizer = keras.optimizers.Adam()
    optimizer.build([keras.Variable(np.zeros((1,), "float32"))])
    missing += [f"Adam.{name}" for name in ("_momentums", "_velocities", "_get_variable_index")
                if not hasattr(optimizer, name)]
    if not hasattr(keras.activations.softmax(keras.ops.zeros((1, 2))), "_keras_logits"):
        missing.append("the _keras_logits of a softmax output")
    normalization = keras.layers.BatchNormalization()
    normalization.build((None, 2))
    missing += [f"BatchNormalization.{name}" for name in _BATCH_NORM_ATTRIBUTES if not hasattr(normalization, name)]
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    if "train_function" not in vars(model) or "train_step" in vars(model):
        missing.append("Model.train_function")
    return tuple(missing)


def use_fast_paths(requested: bool) -> tuple[bool, str | None]:
    """Whether training takes the fast paths, and a warning to show when it cannot.

    Args:
        requested: the config's `train.fast_paths`.

    Returns:
        (True, None) to use them; (False, None) when switched off; (False, warning) when this
        Keras lacks an internal they need.
    """
    if not requested:
        return False, None
    missing = missing_internals()
    if missing:
        import keras

        return False, (f"Keras {keras.__version__} lacks {', '.join(missing)}: training with plain Keras "
                       "(the same numbers, slower steps); set train.fast_paths: false to silence this")
    return True, None
