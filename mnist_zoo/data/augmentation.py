"""Random rotations, shifts, zooms and elastic distortions of training batches, seeded per step."""

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
    elastic_alpha: Annotated[float, Field(ge=0, le=100)] = 0.0
    """Strength of the elastic distortion, Simard et al. (2003)'s alpha (34 in the paper); 0: off."""
    elastic_sigma: Annotated[float, Field(ge=1, le=10)] = 4.0
    """Smoothness of the elastic distortion: the Gaussian's standard deviation in pixels (the paper's sigma)."""
    probability: Annotated[float, Field(gt=0, le=1)] = 1.0
    """Share of training images changed; the rest pass as they are."""

    @property
    def enabled(self) -> bool:
        """Whether any change is configured."""
        return bool(self.rotation or self.translation or self.zoom or self.elastic_alpha)

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
        if self.elastic_alpha:
            parts.append(f"elastic α {self.elastic_alpha:g} σ {self.elastic_sigma:g} px")
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


def composed_transform(rotation=None, zoom=None, translation=None):
    """One projective transform that rotates, then zooms, then shifts: the geometry of Keras's layers in turn.

    Each argument is one Keras layer's drawn transformation, or None where that change is off:
    `rotation` is `RandomRotation`'s (b, 8) `rotation_matrix`, `zoom` is `RandomZoom`'s (b, 1)
    `height_zoom` (the zoom is the same on both axes), `translation` is `RandomTranslation`'s
    (b, 2) `translations` in pixels (x, y). Keras's transforms map an output pixel to the input
    point it samples, so the three layers in sequence sample the image at R·Z·T applied to the
    output pixel, and that product is what this returns. Unlike the layers in turn, nothing is
    cropped to the frame between the changes: a part that the rotation moves out and the zoom
    brings back stays in the picture.

    Returns:
        float32 tensor (b, 8): the transform in `keras.ops.image.affine_transform`'s layout.
    """
    import tensorflow as tf

    def as_matrix(vector):  # (b, 8) -> (b, 3, 3), the implicit last entry being 1
        return tf.reshape(tf.concat([vector, tf.ones_like(vector[:, :1])], axis=1), (-1, 3, 3))

    matrices = []
    if rotation is not None:
        matrices.append(as_matrix(tf.cast(rotation, tf.float32)))
    if zoom is not None:
        # Keras's zoom matrix: [[z, 0, c(1 - z)], [0, z, c(1 - z)]], c the centre (side - 1) / 2.
        z = tf.cast(zoom[:, 0], tf.float32)
        offset = (IMAGE_SIZE - 1) / 2 * (1 - z)
        zero = tf.zeros_like(z)
        matrices.append(as_matrix(tf.stack([z, zero, offset, zero, z, offset, zero, zero], axis=1)))
    if translation is not None:
        shift = tf.cast(translation, tf.float32)
        one, zero = tf.ones_like(shift[:, 0]), tf.zeros_like(shift[:, 0])
        matrices.append(as_matrix(tf.stack([one, zero, -shift[:, 0], zero, one, -shift[:, 1], zero, zero], axis=1)))
    product = matrices[0]
    for matrix in matrices[1:]:
        product = tf.linalg.matmul(product, matrix)
    # Rotations, zooms and shifts leave the bottom row (0, 0, 1): no division needed.
    return tf.reshape(product, (-1, 9))[:, :8]


def elastic_displacements(uniform, alpha: float, sigma: float):
    """Simard et al. (2003)'s elastic displacement fields from uniform noise.

    Each pixel's random shift, drawn uniformly in [-1, 1] per axis, is smoothed by a Gaussian of
    standard deviation `sigma` (zero outside the picture, the kernel cut at 4 sigma as in
    `scipy.ndimage.gaussian_filter(..., mode="constant")`) and scaled by `alpha`: neighbouring
    pixels move together, so strokes bend instead of breaking up.

    Args:
        uniform: float32 tensor (b, 28, 28, 2) in [-1, 1]: the x and y noise, drawn independently.
        alpha: the strength.
        sigma: the smoothness, in pixels.

    Returns:
        float32 tensor (b, 28, 28, 2): each output pixel's shift (x, y), in pixels.
    """
    import numpy as np
    import tensorflow as tf

    radius = int(4 * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = (kernel / kernel.sum()).astype(np.float32)
    # One separable pass per axis, each field smoothed on its own (a depthwise convolution).
    along_rows = tf.constant(np.tile(kernel[:, None, None, None], (1, 1, 2, 1)))
    along_columns = tf.constant(np.tile(kernel[None, :, None, None], (1, 1, 2, 1)))
    smooth = tf.nn.depthwise_conv2d(uniform, along_rows, [1, 1, 1, 1], "SAME")
    smooth = tf.nn.depthwise_conv2d(smooth, along_columns, [1, 1, 1, 1], "SAME")
    return alpha * smooth


def warp(images, transform, displacements):
    """Samples `images` bilinearly at `transform` applied to each output pixel moved by `displacements`.

    The one resampling of a batch whose changes include an elastic distortion: output pixel
    (x, y) takes the input's value at transform·((x, y) + displacement), black outside the
    picture, as `keras.ops.image.affine_transform` samples (it has no displacement field).

    Args:
        images: float32 tensor (b, 28, 28, 1).
        transform: float32 tensor (b, 8), `composed_transform`'s layout, or None for the identity.
        displacements: float32 tensor (b, 28, 28, 2), each output pixel's shift (x, y) in pixels.

    Returns:
        float32 tensor (b, 28, 28, 1).
    """
    import tensorflow as tf

    batch = tf.shape(images)[0]
    rows, columns = tf.meshgrid(tf.range(IMAGE_SIZE, dtype=tf.float32), tf.range(IMAGE_SIZE, dtype=tf.float32),
                                indexing="ij")
    x = columns[tf.newaxis] + displacements[..., 0]
    y = rows[tf.newaxis] + displacements[..., 1]
    if transform is not None:
        # An affine transform: `composed_transform`'s bottom row is (0, 0, 1), so entries 6 and 7
        # (a projective transform's) are zero and no division is needed.
        a = transform[:, :, tf.newaxis, tf.newaxis]
        x, y = a[:, 0] * x + a[:, 1] * y + a[:, 2], a[:, 3] * x + a[:, 4] * y + a[:, 5]
    x0, y0 = tf.floor(x), tf.floor(y)
    flat = tf.reshape(images, [-1])
    first = tf.reshape(tf.range(batch) * IMAGE_SIZE * IMAGE_SIZE, (-1, 1, 1))

    def pixel(column, row):  # the four neighbours' values, 0 outside the picture
        inside = (column >= 0) & (column <= IMAGE_SIZE - 1) & (row >= 0) & (row <= IMAGE_SIZE - 1)
        index = first + tf.cast(tf.clip_by_value(row, 0, IMAGE_SIZE - 1) * IMAGE_SIZE
                                + tf.clip_by_value(column, 0, IMAGE_SIZE - 1), tf.int32)
        return tf.where(inside, tf.gather(flat, index), 0.0)

    wx, wy = x - x0, y - y0
    value = ((1 - wx) * (1 - wy) * pixel(x0, y0) + wx * (1 - wy) * pixel(x0 + 1, y0)
             + (1 - wx) * wy * pixel(x0, y0 + 1) + wx * wy * pixel(x0 + 1, y0 + 1))
    return value[..., tf.newaxis]


class Augmenter:
    """Applies a config's augmentation to float32 image batches (b, 28, 28, 1) in [0, 1].

    The random changes are drawn by Keras's preprocessing layers (`RandomRotation`,
    `RandomZoom`, `RandomTranslation`), each asked with a `StepSeed`; none of them becomes part
    of a model. The drawn changes are then composed into one transform and the image resampled
    once (`composed_transform`), bilinear with black fill, in float32 whatever the run's
    precision. Letting each layer resample in turn would blur each digit three times and cost
    three times as much (docs/benchmarks.md, "The cost of augmentation").
    An elastic distortion (`elastic_displacements`) moves each output pixel before the transform,
    in the same one resampling (`warp`). Keras 3.15's `RandomElasticTransform` is not used: it
    draws the horizontal and vertical displacement fields from one seed, so every pixel moves
    along the diagonal, and it needs a static batch size.

    Args:
        config: the augmentation settings.
        seed: the run's seed (`train.seed`).
    """

    def __init__(self, config: AugmentationConfig, seed: int):
        import keras

        self.config = config
        self.seed = (seed ^ _SEED_SALT) & 0x7FFF_FFFF_FFFF_FFFF
        common = {"fill_mode": "constant", "fill_value": 0.0, "interpolation": "bilinear"}
        self.rotation = keras.layers.RandomRotation(config.rotation / 360, **common) if config.rotation else None
        self.zoom = keras.layers.RandomZoom(config.zoom, **common) if config.zoom else None
        fraction = config.translation_fraction
        self.translation = keras.layers.RandomTranslation(fraction, fraction, **common) if config.translation else None

    def __call__(self, images, step, start=None, total=None):
        """Returns `images` changed at random, as drawn for training step `step`.

        Args:
            images: float32 tensor (b, 28, 28, 1) in [0, 1].
            step: the training step (int tensor): the same step always gets the same changes.
            start, total: under a distribution strategy, where this replica's rows start in the
                global batch, and that batch's size (int tensors); None: `images` is the whole batch.

        Returns:
            A tensor of the same shape and dtype, values kept in [0, 1].
        """
        import keras
        import tensorflow as tf

        if not self.config.enabled:
            return images
        seed = _step_seed_class()(self.seed, step)
        drawn_for, share = images, lambda drawn: drawn
        if total is not None:
            # Drawing for this replica's rows alone would give every replica the same draws (same
            # seed, same step); drawing for the global batch and keeping this replica's rows gives
            # each image the change it would get on one device. The layers read only the shape of
            # what they draw for.
            drawn_for = tf.zeros(tf.concat([[total], tf.shape(images)[1:]], axis=0), images.dtype)

            def share(drawn):
                return drawn[start:start + tf.shape(images)[0]]
        drawn = {}
        # The draws keep this order (rotation, zoom, shift): a step's random draws depend on it.
        if self.rotation is not None:
            drawn["rotation"] = share(self.rotation.get_random_transformation(drawn_for, seed=seed)["rotation_matrix"])
        if self.zoom is not None:
            drawn["zoom"] = share(self.zoom.get_random_transformation(drawn_for, seed=seed)["height_zoom"])
        if self.translation is not None:
            drawn["translation"] = share(
                self.translation.get_random_transformation(drawn_for, seed=seed)["translations"])
        transform = composed_transform(**drawn) if drawn else None
        if self.config.elastic_alpha:
            noise_shape = tf.concat([tf.shape(drawn_for)[:3], [2]], axis=0)
            uniform = share(tf.random.stateless_uniform(noise_shape, seed=seed.next(), minval=-1.0, maxval=1.0))
            displacements = elastic_displacements(uniform, self.config.elastic_alpha, self.config.elastic_sigma)
            changed = warp(images, transform, displacements)
        else:
            changed = keras.ops.image.affine_transform(
                images, transform, interpolation="bilinear", fill_mode="constant", fill_value=0.0)
        if self.config.probability < 1:
            draws = share(tf.random.stateless_uniform([tf.shape(drawn_for)[0], 1, 1, 1], seed=seed.next()))
            changed = tf.where(draws >= self.config.probability, images, changed)
        return changed


def augmented_batches(augmenter: Augmenter, model):
    """A function from an (images, labels) batch to (changed images, labels), for `model`'s training step.

    The step is read from the model's optimizer (`iterations`), which checkpoints restore. Under
    a distribution strategy each replica changes its share of the global batch as one device
    would change those images.
    """
    import tensorflow as tf

    def augment(batch):
        images, labels = batch
        context = tf.distribute.get_replica_context()  # the default one (1 replica) without a strategy
        if context is None:
            raise RuntimeError("augmentation runs inside a training step (a replica context), not in a "
                               "strategy's scope: call it from the model's train_step")
        if context.num_replicas_in_sync == 1:
            return augmenter(images, model.optimizer.iterations), labels
        # The replicas' shares of a batch differ by a row when it does not divide evenly (128 over
        # 3 devices: 43, 43, 42), so each replica learns every share's size to find its first row.
        replica, replicas = context.replica_id_in_sync_group, context.num_replicas_in_sync
        own_size = tf.cast(tf.shape(images)[0], tf.float32)
        sizes = tf.cast(context.all_reduce("sum", tf.one_hot(replica, replicas) * own_size), tf.int32)
        start, total = tf.reduce_sum(sizes[:replica]), tf.reduce_sum(sizes)
        return augmenter(images, model.optimizer.iterations, start, total), labels

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
