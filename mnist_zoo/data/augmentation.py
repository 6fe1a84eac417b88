"""Random rotations, shifts and zooms of training batches, seeded per step."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from mnist_zoo.fields import Frozen, NonNegativeFloat

IMAGE_SIZE = 28

# Pixels or a fraction of the image side: the same convention as data.validation_size (a count,
# or a fraction below 1). 14 pixels moves a digit half out of the picture; more is never wanted.
Translation = Annotated[int, Field(ge=1, le=14)] | Annotated[float, Field(ge=0, lt=0.5)]


class AugmentationConfig(Frozen):
    """Random changes to each training image, drawn anew every step; all off by default.

    Applied inside the training step to training batches only: validation, test, evaluate,
    predict and serve see the images as they are, and saved models hold no augmentation layer.
    """

    rotation: Annotated[float, Field(ge=0, le=180)] = 0.0
    """Largest rotation either way, in degrees (e.g. 10)."""
    translation: Translation = 0.0
    """Largest shift either way, per axis: pixels (an integer 1-14) or a fraction of the side below 0.5."""
    zoom: Annotated[float, Field(ge=0, lt=1)] = 0.0
    """Largest zoom in or out, as a fraction (0.1: 90-110 % of the size)."""
    probability: Annotated[float, Field(gt=0, le=1)] = 1.0
    """Share of training images changed; the rest pass as they are."""

    @property
    def enabled(self) -> bool:
        """Whether any change is configured."""
        return bool(self.rotation or self.translation or self.zoom)

    @property
    def translation_fraction(self) -> float:
        """The shift as a fraction of the image side."""
        if isinstance(self.translation, int):
            return self.translation / IMAGE_SIZE
        return float(self.translation)

    def describe(self) -> str:
        """One line for logs, e.g. 'rotation ±10°, shift ±2 px, zoom ±10 %'."""
        parts = []
        if self.rotation:
            parts.append(f"rotation ±{self.rotation:g}°")
        if self.translation:
            shift = (f"{self.translation} px" if isinstance(self.translation, int)
                     else f"{self.translation:g} of the side ({self.translation * IMAGE_SIZE:.1f} px)")
            parts.append(f"shift ±{shift}")
        if self.zoom:
            parts.append(f"zoom ±{self.zoom * 100:g} %")
        if self.probability < 1 and parts:
            parts.append(f"on {self.probability * 100:g} % of images")
        return ", ".join(parts) or "none"


def _step_seed_class():
    import keras
    import tensorflow as tf

    class StepSeed(keras.random.SeedGenerator):
        """A seed generator whose n-th draw of a step is a pure function of (seed, step, n).

        Keras's own `SeedGenerator` keeps its state in a variable that advances with every draw,
        so a resumed run would need that variable saved beside the model. Deriving each draw from
        the optimizer's step counter (which the checkpoint already holds) makes the augmentation
        of step k the same in a resumed run as in an uninterrupted one, with nothing more to save.
        Its state is not a variable, so it works in any replica of a distribution strategy.
        """

        # Draws per step are counted when the step is traced: a handful per layer.
        _DRAWS_PER_STEP = 64

        def __init__(self, seed: int, step):  # no super().__init__: that would make a state variable
            self.name = "augmentation_seed"
            self.backend = keras.backend
            self._seed = tf.constant(seed, tf.int64)
            self._base = tf.cast(step, tf.int64) * self._DRAWS_PER_STEP
            self._draws = 0

        def next(self, ordered=True):
            self._draws += 1
            if self._draws > self._DRAWS_PER_STEP:
                raise RuntimeError("augmentation drew more random numbers per step than StepSeed allows")
            return tf.stack([self._seed, self._base + self._draws])

    return StepSeed


# Salt between the run's seed and its augmentation stream, so that no other seeded stream
# (the validation split, dropout, weights) shares its first key with this one.
_SEED_SALT = 0x6D7A_6175  # "mzau"


class Augmenter:
    """Applies a config's augmentation to float32 image batches (b, 28, 28, 1) in [0, 1].

    Each change is a Keras preprocessing layer (`RandomRotation`, `RandomZoom`,
    `RandomTranslation`) with constant black fill, asked for its random transformation with a
    `StepSeed`; none of them becomes part of a model. Keras 3.15's `RandomElasticTransform` is
    not offered: it draws the horizontal and vertical displacement fields from one seed, so every
    pixel moves along the diagonal, and it needs a static batch size.

    Args:
        config: the augmentation settings.
        seed: the run's seed (`train.seed`).
    """

    def __init__(self, config: AugmentationConfig, seed: int):
        import keras

        self.config = config
        self.seed = (seed ^ _SEED_SALT) & 0x7FFF_FFFF_FFFF_FFFF
        common = {"fill_mode": "constant", "fill_value": 0.0, "interpolation": "bilinear"}
        layers = []
        if config.rotation:
            layers.append(keras.layers.RandomRotation(config.rotation / 360, **common))
        if config.zoom:
            layers.append(keras.layers.RandomZoom(config.zoom, **common))
        if config.translation:
            fraction = config.translation_fraction
            layers.append(keras.layers.RandomTranslation(fraction, fraction, **common))
        self.layers = layers

    def __call__(self, images, step):
        """Returns `images` changed at random, as drawn for training step `step`.

        Args:
            images: float32 tensor (b, 28, 28, 1) in [0, 1].
            step: the training step (int tensor): the same step always gets the same changes.

        Returns:
            A tensor of the same shape and dtype, values kept in [0, 1].
        """
        import tensorflow as tf

        if not self.layers:
            return images
        seed = _step_seed_class()(self.seed, step)
        changed = images
        for layer in self.layers:
            transformation = layer.get_random_transformation(changed, training=True, seed=seed)
            changed = layer.transform_images(changed, transformation, training=True)
        if self.config.probability < 1:
            draws = tf.random.stateless_uniform([tf.shape(images)[0], 1, 1, 1], seed=seed.next())
            changed = tf.where(draws >= self.config.probability, images, changed)
        return changed


def augmented_batches(augmenter: Augmenter, model):
    """A function from an (images, labels) batch to (changed images, labels), for `model`'s training step.

    The step is read from the model's optimizer (`iterations`), which checkpoints restore.
    """

    def augment(batch):
        images, labels = batch
        return augmenter(images, model.optimizer.iterations), labels

    return augment


def preview_batches(config: AugmentationConfig, seed: int, images, variants: int):
    """The first `variants` training steps' changes of `images`, as training would draw them.

    Args:
        config: the augmentation settings.
        seed: the run's seed (`train.seed`).
        images: uint8 array (n, 28, 28), the digits to show.
        variants: how many steps to draw.

    Returns:
        float32 array (n, variants, 28, 28) in [0, 1]: image i as batch position i of steps 0, 1, ...
    """
    import numpy as np
    import tensorflow as tf

    from mnist_zoo.data.batches import scale_pixels

    augmenter = Augmenter(config, seed)
    batch = scale_pixels(tf.constant(images))[..., tf.newaxis]
    steps = [augmenter(batch, tf.constant(step, tf.int64)).numpy()[..., 0] for step in range(variants)]
    return np.stack(steps, axis=1)
