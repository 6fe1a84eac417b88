"""Test-time augmentation: a model's probabilities averaged over changed copies of each test image."""

from __future__ import annotations

from pathlib import Path

import numpy as np

MAX_VIEWS = 32
DEFAULT_AUGMENTATION = {"rotation": 10, "zoom": 0.1, "translation": 0.1}
"""For a model whose run did not augment (or a file without a run): the record recipe's changes."""

_BATCH = 1000


def tta_augmentation(run_dir: Path | None):
    """The changes to apply: the run's own `data.augmentation` if it trained with one, else `DEFAULT_AUGMENTATION`."""
    from mnist_zoo.data.augmentation import AugmentationConfig

    if run_dir is not None:
        from mnist_zoo import rundir
        from mnist_zoo.config.loading import load_config

        augmentation = load_config(Path(run_dir) / rundir.CONFIG_FILE).data.augmentation
        if augmentation.enabled:
            return augmentation
    return AugmentationConfig(**DEFAULT_AUGMENTATION)


def tta_probabilities(classifier, images: np.ndarray, augmentation, views: int, seed: int = 0,
                      plain: np.ndarray | None = None) -> np.ndarray:
    """The mean probabilities of `views` copies of each image: the image itself, then `views - 1` changed ones.

    The changed copies are drawn as training draws them (`data.augmentation.Augmenter`, fixed seed:
    a second evaluation gives the same figure) and rounded back to uint8 pixels, so that any
    runtime (Keras, LiteRT, ONNX, an ensemble) takes them as it takes the test images.

    Args:
        classifier: anything with `probabilities(uint8 images (n, 28, 28))`.
        images: uint8 (n, 28, 28).
        augmentation: an `AugmentationConfig`.
        views: 1 to `MAX_VIEWS`.
        plain: the classifier's probabilities of `images` themselves, where the caller has them
            already (the first view; computed here otherwise).
    """
    import tensorflow as tf

    from mnist_zoo.data.augmentation import Augmenter

    if not 1 <= views <= MAX_VIEWS:
        raise ValueError(f"views={views}: expected 1 to {MAX_VIEWS}")
    augmenter = Augmenter(augmentation, seed)
    total = (classifier.probabilities(images) if plain is None else plain).astype(np.float64)
    for view in range(1, views):
        for start in range(0, len(images), _BATCH):
            batch = tf.constant(images[start:start + _BATCH, :, :, None].astype(np.float32) / 255)
            # A step number of its own for each view and batch: every copy is changed differently.
            step = tf.constant(view * 1_000_000 + start, tf.int64)
            changed = augmenter(batch, step).numpy()[..., 0]
            pixels = np.clip(np.round(changed * 255), 0, 255).astype(np.uint8)
            total[start:start + len(pixels)] += classifier.probabilities(pixels)
    return (total / views).astype(np.float32)
