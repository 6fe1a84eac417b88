"""The tf.data input pipeline: uint8 images in memory, scaled to [0, 1] per batch."""

from __future__ import annotations

import numpy as np

from mnist_zoo.models.common import NUM_CLASSES


def _prepare(one_hot: bool):
    import tensorflow as tf

    def prepare(batch_images, batch_labels):
        # Scaling a whole batch at once is one vectorised op instead of one per image.
        batch_images = tf.cast(batch_images, tf.float32)[..., tf.newaxis] / 255.0
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
    (seed, k). Call `set_epoch` before each epoch starts (`callbacks.EpochCommitter` does); the dataset
    reads it when Keras opens the epoch's iterator.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int, one_hot: bool,
                 shuffle: bool = True, seed: int = 0, first_epoch: int = 0):
        import tensorflow as tf

        self.epoch = tf.Variable(first_epoch, dtype=tf.int64, trainable=False, name="data_epoch")
        self.steps_per_epoch = -(-len(images) // batch_size)
        all_images, all_labels = tf.constant(images), tf.constant(labels)
        count = len(images)
        full_batches = count // batch_size
        prepare = _prepare(one_hot)

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

        def gather(indices):
            # One gather per batch: cheaper than slicing and shuffling single images.
            return prepare(tf.gather(all_images, indices), tf.gather(all_labels, indices))

        dataset = tf.data.Dataset.from_tensors(0).flat_map(epoch_batches)
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(self.steps_per_epoch))
        self.dataset = dataset.map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    def set_epoch(self, epoch: int) -> None:
        """Selects the order of `epoch` (0-based) for the next pass over the data."""
        self.epoch.assign(epoch)
