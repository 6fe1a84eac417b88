"""The tf.data input pipeline: uint8 images in memory, scaled to [0, 1] per batch."""

from __future__ import annotations

import numpy as np

from mnist_zoo.models.common import NUM_CLASSES


def make_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    one_hot: bool,
    shuffle: bool = False,
    seed: int = 0,
):
    """Builds a batched, prefetched `tf.data.Dataset` of (images, labels).

    Args:
        images: uint8 array (n, 28, 28); stays uint8 in memory (4x smaller than float32).
        labels: uint8 class indices (n,).
        batch_size: examples per batch.
        one_hot: one-hot labels (for categorical losses) instead of class indices.
        shuffle: reshuffle every epoch (seeded).
        seed: the shuffle seed.

    Returns:
        A `tf.data.Dataset` yielding (float32 images (b, 28, 28, 1), labels).
    """
    import tensorflow as tf

    def prepare(batch_images, batch_labels):
        # Scaling a whole batch at once is one vectorised op instead of one per image.
        batch_images = tf.cast(batch_images, tf.float32)[..., tf.newaxis] / 255.0
        if one_hot:
            return batch_images, tf.one_hot(tf.cast(batch_labels, tf.int32), NUM_CLASSES)
        return batch_images, tf.cast(batch_labels, tf.int32)

    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    if shuffle:
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size).map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)
