"""Batches for training and validation: uint8 images in memory, scaled to [0, 1] per batch."""

from __future__ import annotations

import functools

import numpy as np

from mnist_zoo.data.catalog import NUM_CLASSES

HOST_DEVICE = "/device:CPU:0"
"""Where the training images live in memory and are gathered into batches."""

PIXEL_SCALE = 1 / 255
"""uint8 pixels times this are the models' [0, 1] inputs. A multiplication, not a division by 255:
TensorFlow's graph optimizer may turn a division into a multiplication by the reciprocal in one
graph and not in another, and then the same batch differs in its last bit between the two."""


def steps_per_epoch(num_images: int, batch_size: int) -> int:
    """Batches per epoch: the last one may be smaller (Keras's convention, and the schedules')."""
    return -(-num_images // batch_size)


def scale_pixels(images):
    """uint8 pixel values as the models' float32 inputs in [0, 1]: the one place that converts them.

    Training, evaluation and prediction all call it, so every path feeds a model the same values.
    """
    import tensorflow as tf

    return tf.cast(images, tf.float32) * PIXEL_SCALE


def _prepare(one_hot: bool):
    import tensorflow as tf

    def prepare(batch_images, batch_labels):
        # Scaling a whole batch at once is one vectorised op instead of one per image.
        batch_images = scale_pixels(batch_images)[..., tf.newaxis]
        if one_hot:
            return batch_images, tf.one_hot(tf.cast(batch_labels, tf.int32), NUM_CLASSES)
        return batch_images, tf.cast(batch_labels, tf.int32)

    return prepare


def make_dataset(images: np.ndarray, labels: np.ndarray, batch_size: int, one_hot: bool):
    """Builds a batched, prefetched `tf.data.Dataset` of (images, labels) in their stored order.

    Args:
        images: uint8 array (n, 28, 28); stays uint8 in memory (4x smaller than float32).
        labels: uint8 class indices (n,).
        batch_size: examples per batch.
        one_hot: one-hot labels (for categorical losses) instead of class indices.

    Returns:
        A `tf.data.Dataset` yielding (float32 images (b, 28, 28, 1), labels).
    """
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size)
    return dataset.map(_prepare(one_hot), num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


class EpochShuffledDataset:
    """Training batches whose order is a pure function of (seed, epoch).

    A resumed run must see, in epoch k, exactly the batches an uninterrupted run saw. A
    `reshuffle_each_iteration` shuffle cannot promise that (its order depends on how many epochs
    this process has iterated), so the order of epoch k is a stateless shuffle seeded with
    (seed, k). Call `set_epoch` before each epoch starts (`train.callbacks.EpochOrder` does); the dataset
    reads it when Keras opens the epoch's iterator.

    Two views of the same batches: `dataset` yields (images, labels); `index_dataset` yields only
    each batch's indices, for a training step that gathers its own batch (`batch_for`, see
    `train.fast_paths.gathered_in_train_step`).
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int, one_hot: bool,
                 shuffle: bool = True, seed: int = 0, first_epoch: int = 0):
        import tensorflow as tf

        self.epoch = tf.Variable(first_epoch, dtype=tf.int64, trainable=False, name="data_epoch")
        self.steps_per_epoch = steps_per_epoch(len(images), batch_size)
        # The uint8 table and its gathers stay in host memory: TensorFlow has no GPU gather kernel
        # for uint8, so on a GPU they would be placed on the CPU anyway, op by op, with a copy of
        # the table; pinned, only each gathered batch goes to the GPU.
        with tf.device(HOST_DEVICE):
            self._images, self._labels = tf.constant(images), tf.constant(labels)
        self._prepare = _prepare(one_hot)
        count = len(images)
        full_batches = count // batch_size

        def epoch_batches(_):
            order = tf.range(count, dtype=tf.int64)
            if shuffle:
                order = tf.random.experimental.stateless_shuffle(
                    order, seed=tf.stack([tf.constant(seed, tf.int64), self.epoch.read_value()])
                )
            # One element per batch of indices: batching 54,000 single indices was the
            # pipeline's largest cost, on cores the model's training step needs.
            batches = tf.data.Dataset.from_tensor_slices(
                tf.reshape(order[: full_batches * batch_size], [full_batches, batch_size])
            )
            if count % batch_size:
                batches = batches.concatenate(tf.data.Dataset.from_tensors(order[full_batches * batch_size:]))
            return batches

        index_dataset = tf.data.Dataset.from_tensors(0).flat_map(epoch_batches)
        self.index_dataset = index_dataset.apply(tf.data.experimental.assert_cardinality(self.steps_per_epoch))

    @functools.cached_property
    def dataset(self):
        """The batches as (images, labels), from a tf.data map; built on first use (training gathers in its step)."""
        import tensorflow as tf

        return self.index_dataset.map(self.batch_for, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    def batch_for(self, indices):
        """The (images, labels) batch of `indices`: one gather each, then scaled like `make_dataset`'s."""
        import tensorflow as tf

        with tf.device(HOST_DEVICE):
            images, labels = tf.gather(self._images, indices), tf.gather(self._labels, indices)
        return self._prepare(images, labels)

    def set_epoch(self, epoch: int) -> None:
        """Selects the order of `epoch` (0-based) for the next pass over the data."""
        self.epoch.assign(epoch)
