"""Augmentation, batch norm and weight averaging: what they change, what they must not, and exact resume."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from mnist_zoo import rundir
from mnist_zoo.config.loading import validate_config
from mnist_zoo.errors import ConfigError
from mnist_zoo.data.augmentation import (AugmentationConfig, Augmenter, _step_seed_class, composed_transform,
                                        elastic_displacements, warp)
from mnist_zoo.models.registry import MODELS, build_model
from mnist_zoo.models.summary import summarize
from mnist_zoo.training.stage import train_run
from tests.helpers import SignalAt, fresh_run_dir, history_without_times, interrupted, make_config, weights

RECORD_AUGMENTATION = {"rotation": 12, "translation": 2, "zoom": 0.1}
HIDDEN_MODELS = [name for name in MODELS if name != "linear"]


def _digits(count=8, seed=0):
    images = np.zeros((count, 28, 28, 1), "float32")
    images[:, 8:20, 12:16] = np.random.default_rng(seed).uniform(0.5, 1.0, (count, 12, 4, 1))
    return tf.constant(images)


def test_augmentation_is_a_pure_function_of_seed_and_step():
    images = _digits()
    augment = Augmenter(AugmentationConfig(**RECORD_AUGMENTATION), seed=3)
    graph = tf.function(augment)
    step = tf.constant(7, tf.int64)
    first, again = augment(images, step).numpy(), graph(images, step).numpy()
    np.testing.assert_array_equal(first, again)  # eager and graph, two calls: the same batch
    other_step = augment(images, tf.constant(8, tf.int64)).numpy()
    other_seed = Augmenter(AugmentationConfig(**RECORD_AUGMENTATION), seed=4)(images, step).numpy()
    assert not np.array_equal(first, other_step) and not np.array_equal(first, other_seed)
    assert first.shape == images.shape and first.dtype == np.float32
    assert first.min() >= 0 and first.max() <= 1
    # Every image of the batch gets its own change.
    assert len({first[index].tobytes() for index in range(len(first))}) == len(first)


def test_one_resampling_is_keras_layers_in_turn_where_bilinear_sampling_is_exact():
    # A quarter turn, a zoom out to a third and a whole-pixel shift land every sample on a pixel
    # centre, so the three Keras layers applied in turn lose nothing, and the composed transform
    # must give exactly their image.
    images = _digits(count=4)
    rotation = keras.layers.RandomRotation(0.25, fill_mode="constant")
    zoom = keras.layers.RandomZoom(0.5, fill_mode="constant")  # its factor is unused: the zoom is given
    translation = keras.layers.RandomTranslation(0.5, 0.5, fill_mode="constant")
    quarter_turn = rotation.get_random_transformation(images, seed=0)
    quarter_turn["rotation_matrix"] = rotation._compute_affine_matrix(
        0.5, 0.5, tf.fill([4], 90.0), tf.zeros([4]), tf.zeros([4]), tf.ones([4]), tf.zeros([4]), tf.zeros([4]), 28, 28)
    a_third = {"height_zoom": tf.fill([4, 1], 3.0), "width_zoom": tf.fill([4, 1], 3.0)}
    shifts = {"translations": tf.constant([[5.0, -2.0], [0.0, 3.0], [-4.0, 0.0], [1.0, 1.0]])}
    in_turn = images
    for layer, drawn in [(rotation, quarter_turn), (zoom, a_third), (translation, shifts)]:
        in_turn = layer.transform_images(in_turn, drawn, training=True)
    transform = composed_transform(quarter_turn["rotation_matrix"], a_third["height_zoom"], shifts["translations"])
    once = keras.ops.image.affine_transform(images, transform, fill_mode="constant")
    assert float(tf.reduce_sum(in_turn)) > 0  # the digits stay in the picture
    np.testing.assert_allclose(once.numpy(), in_turn.numpy(), atol=1e-5)


def test_the_three_changes_are_drawn_in_order_and_applied_as_one_transform():
    images = _digits()
    augment = Augmenter(AugmentationConfig(**RECORD_AUGMENTATION), seed=2)
    step = tf.constant(11, tf.int64)
    seed = _step_seed_class()(augment.seed, step)
    rotation = augment.rotation.get_random_transformation(images, seed=seed)["rotation_matrix"]
    zoom = augment.zoom.get_random_transformation(images, seed=seed)["height_zoom"]
    translation = augment.translation.get_random_transformation(images, seed=seed)["translations"]
    expected = keras.ops.image.affine_transform(images, composed_transform(rotation, zoom, translation),
                                                fill_mode="constant")
    np.testing.assert_allclose(augment(images, step).numpy(), expected.numpy(), atol=1e-6)


def test_augmented_images_stay_float32_in_a_bf16_run():
    images = _digits()
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")  # as the training step sees it in a bf16 run
    try:
        augment = Augmenter(AugmentationConfig(**RECORD_AUGMENTATION, probability=0.5), seed=0)
        changed = augment(images, tf.constant(0, tf.int64))
    finally:
        keras.config.set_dtype_policy(previous)
    assert changed.dtype == tf.float32
    reference = Augmenter(AugmentationConfig(**RECORD_AUGMENTATION, probability=0.5), seed=0)(
        images, tf.constant(0, tf.int64))
    np.testing.assert_array_equal(changed.numpy(), reference.numpy())  # not rounded to bf16's 8 bits


@pytest.mark.parametrize("change", ["rotation", "zoom", "translation"])
def test_one_change_alone_is_the_keras_layer_itself(change):
    images = _digits()
    augment = Augmenter(AugmentationConfig(**{change: RECORD_AUGMENTATION[change]}), seed=5)
    step = tf.constant(3, tf.int64)
    layer = getattr(augment, change)
    drawn = layer.get_random_transformation(images, seed=_step_seed_class()(augment.seed, step))
    np.testing.assert_allclose(augment(images, step).numpy(), layer.transform_images(images, drawn).numpy(), atol=1e-5)


@pytest.mark.parametrize("setting, largest_shift", [({"translation": 3}, 3), ({"translation": 0.1}, 2.8)])
def test_translation_moves_a_dot_by_at_most_the_configured_pixels(setting, largest_shift):
    images = np.zeros((64, 28, 28, 1), "float32")
    images[:, 14, 14] = 1.0
    moved = Augmenter(AugmentationConfig(**setting), seed=0)(tf.constant(images), tf.constant(0, tf.int64)).numpy()
    rows, columns = np.indices((28, 28))
    mass = moved[..., 0].sum(axis=(1, 2))
    centre_rows = (moved[..., 0] * rows).sum(axis=(1, 2)) / mass
    centre_columns = (moved[..., 0] * columns).sum(axis=(1, 2)) / mass
    shifts = np.maximum(abs(centre_rows - 14), abs(centre_columns - 14))
    assert shifts.max() <= largest_shift + 1e-3
    assert shifts.max() > largest_shift / 2  # 64 draws reach well into the range


def test_rotation_keeps_the_angle_within_the_configured_degrees():
    # A horizontal bar through the centre: its principal axis after the change is the rotation angle.
    images = np.zeros((64, 28, 28, 1), "float32")
    images[:, 13:15, 4:24] = 1.0
    rotated = Augmenter(AugmentationConfig(rotation=20), seed=1)(tf.constant(images), tf.constant(0, tf.int64)).numpy()
    rows, columns = np.indices((28, 28))
    angles = []
    for image in rotated[..., 0]:
        weights_ = image / image.sum()
        row_mean, column_mean = (weights_ * rows).sum(), (weights_ * columns).sum()
        cov = np.cov(np.stack([(columns - column_mean).ravel(), (rows - row_mean).ravel()]), aweights=weights_.ravel())
        values, vectors = np.linalg.eigh(cov)
        major = vectors[:, np.argmax(values)]
        angles.append(np.degrees(np.arctan(major[1] / major[0])))
    angles = np.abs(angles)
    assert angles.max() <= 20.5 and angles.max() > 10


def test_probability_leaves_the_rest_untouched():
    images = _digits(count=200)
    augment = Augmenter(AugmentationConfig(rotation=30, probability=0.25), seed=0)
    changed = augment(images, tf.constant(0, tf.int64)).numpy()
    untouched = sum(np.array_equal(changed[index], images[index].numpy()) for index in range(200))
    assert 120 <= untouched <= 180  # about 150 of 200 pass as they are


@pytest.mark.parametrize("value, message", [
    ({"rotation": -1}, "greater than or equal to 0"),
    ({"translation": 0.6}, "translation"),
    ({"translation": 15}, "translation"),
    ({"zoom": 1.0}, "less than 1"),
    ({"shear": 0.2}, "shear"),
    ({"elastic_alpha": -1}, "elastic_alpha"),
    ({"elastic_sigma": 0.5}, "elastic_sigma"),
])
def test_bad_augmentation_settings_are_refused(value, message):
    with pytest.raises(ConfigError, match=message):
        validate_config({"model": {"type": "cnn"}, "data": {"augmentation": value}}, "bad")


def test_warp_without_displacement_samples_as_keras_affine_transform():
    images = _digits()
    augment = Augmenter(AugmentationConfig(**RECORD_AUGMENTATION), seed=6)
    step = tf.constant(4, tf.int64)
    seed = _step_seed_class()(augment.seed, step)
    transform = composed_transform(
        augment.rotation.get_random_transformation(images, seed=seed)["rotation_matrix"],
        augment.zoom.get_random_transformation(images, seed=seed)["height_zoom"],
        augment.translation.get_random_transformation(images, seed=seed)["translations"])
    expected = keras.ops.image.affine_transform(images, transform, fill_mode="constant")
    np.testing.assert_allclose(warp(images, transform, tf.zeros((8, 28, 28, 2))).numpy(), expected.numpy(), atol=1e-5)
    # A whole-pixel displacement field is a shift: each output pixel takes its neighbour's value.
    shift = tf.concat([tf.fill((8, 28, 28, 1), 2.0), tf.fill((8, 28, 28, 1), -1.0)], axis=-1)
    moved = warp(images, None, shift).numpy()
    np.testing.assert_array_equal(moved[:, 1:, :26], images.numpy()[:, :27, 2:])
    assert not moved[:, 0].any() and not moved[:, :, 26:].any()  # black where the picture ends


def test_elastic_fields_are_simards_smoothed_noise():
    # scipy.ndimage.gaussian_filter(noise, 4, mode="constant") * 34, written out: a Gaussian cut
    # at 4 sigma, normalised, applied along each axis with zeros outside the picture.
    offsets = np.arange(-16, 17)
    kernel = np.exp(-0.5 * (offsets / 4) ** 2)
    kernel /= kernel.sum()

    def blur(line):  # the middle 28 of the full convolution ("same" would keep the kernel's 33)
        return np.convolve(line, kernel, "full")[16:16 + 28]

    def smooth(noise):
        return np.apply_along_axis(blur, 0, np.apply_along_axis(blur, 1, noise))

    uniform = tf.random.stateless_uniform((2, 28, 28, 2), seed=[1, 2], minval=-1.0, maxval=1.0)
    fields = elastic_displacements(uniform, 34, 4).numpy()
    for image in range(2):
        for axis in range(2):  # each field smoothed on its own
            expected = smooth(uniform.numpy()[image, ..., axis].astype("float64")) * 34
            np.testing.assert_allclose(fields[image, ..., axis], expected, atol=1e-5)


def test_elastic_distortion_bends_each_image_its_own_way_and_repeats():
    images = _digits(count=64)
    config = AugmentationConfig(elastic_alpha=34, elastic_sigma=4)
    augment = Augmenter(config, seed=1)
    step = tf.constant(2, tf.int64)
    graph = tf.function(augment)
    changed = graph(images, step).numpy()
    np.testing.assert_array_equal(changed, graph(images, step).numpy())  # training runs it as a graph
    # Eagerly, the convolutions may add in another order: the same images to float32 rounding.
    np.testing.assert_allclose(augment(images, step).numpy(), changed, atol=1e-5)
    assert changed.min() >= 0 and changed.max() <= 1
    assert len({changed[index].tobytes() for index in range(64)}) == 64
    # The x and y fields are drawn apart: not every pixel moves along a diagonal (Keras 3.15's
    # RandomElasticTransform draws both from one seed, so its shifts have dx == dy).
    uniform = tf.random.stateless_uniform((1, 28, 28, 2), seed=[0, 1], minval=-1.0, maxval=1.0)
    fields = elastic_displacements(uniform, 34, 4).numpy()
    assert np.abs(fields[..., 0] - fields[..., 1]).mean() > 0.5
    # A smooth field moves the mass of a digit by about a pixel, not across the picture.
    rows = np.arange(28)[:, None]
    centres = lambda batch: (batch[..., 0] * rows).sum(axis=(1, 2)) / batch[..., 0].sum(axis=(1, 2))  # noqa: E731
    assert np.abs(centres(changed) - centres(images.numpy())).max() < 3
    assert "elastic α 34 σ 4 px" in config.describe() and config.enabled


def test_augmentation_is_off_by_default_and_described():
    assert not AugmentationConfig().enabled and AugmentationConfig().describe() == "none"
    described = AugmentationConfig(rotation=10, translation=2, zoom=0.1).describe()
    assert described == "rotation ±10°, shift ±2 px, zoom ±10 %"


def test_augmentation_changes_training_but_not_validation_test_or_the_saved_model(tmp_path, small_mnist_dir):
    plain = make_config(small_mnist_dir, "cnn", train={"epochs": 1})
    augmented = make_config(small_mnist_dir, "cnn", train={"epochs": 1},
                            data={"augmentation": RECORD_AUGMENTATION})
    plain_result = train_run(plain, fresh_run_dir(tmp_path, "plain"))
    augmented_result = train_run(augmented, fresh_run_dir(tmp_path, "augmented"))
    assert plain_result.metrics["test_loss"] != augmented_result.metrics["test_loss"]  # training saw other images
    # The saved model is a plain Keras model without augmentation layers, and a plain Keras
    # script's evaluation agrees with the run's own test figure: nothing augments at test time.
    model = keras.saving.load_model(tmp_path / "augmented" / "best.keras")
    assert not [layer for layer in model.layers if "Random" in type(layer).__name__]
    from mnist_zoo.data.datasets import load_dataset, split_dataset

    splits = split_dataset(load_dataset("mnist", str(small_mnist_dir)), 200, 42)
    probabilities = model.predict(splits.test_images[..., None].astype("float32") / 255, verbose=0)
    accuracy = float(np.mean(probabilities.argmax(axis=1) == splits.test_labels))
    assert accuracy == pytest.approx(augmented_result.metrics["test_accuracy"], abs=1e-6)


@pytest.mark.parametrize("model", HIDDEN_MODELS)
@pytest.mark.parametrize("position", ["before_activation", "after_activation"])
def test_batch_norm_follows_every_hidden_layer(model, position):
    config = validate_config({"model": {**MODELS[model].tiny, "type": model, "batch_norm": True,
                                        "batch_norm_position": position}}, "bn")
    built = build_model(config.model)
    names = [layer.name for layer in built.layers]
    hidden = [layer for layer in built.layers if type(layer).__name__ in ("Dense", "Conv2D") and layer.name != "output"]
    assert hidden
    for layer in hidden:
        position_of_bn = names.index(f"{layer.name}_bn")
        if position == "before_activation":
            assert layer.activation.__name__ == "linear" and not layer.use_bias
            assert names[position_of_bn + 1] == f"{layer.name}_{config.model.activation}"
        else:
            assert layer.activation.__name__ == config.model.activation and layer.use_bias
            assert names.index(layer.name) + 1 == position_of_bn
    rows = {row.name: row for row in summarize(built)}
    assert all(rows[f"{layer.name}_bn"].macs == 0 for layer in hidden)  # a foldable scale and shift
    assert sum(row.macs for row in rows.values()) > 0


def test_weight_averaging_is_what_validation_and_the_saved_model_see(tmp_path, small_mnist_dir):
    from mnist_zoo.training import checkpoint

    config = make_config(small_mnist_dir, "mlp", train={
        "epochs": 2, "optimizer": {"name": "adam", "learning_rate": 0.01, "use_ema": True, "ema_momentum": 0.9}})
    run_dir = fresh_run_dir(tmp_path, "ema")
    snapshots = []

    class Snapshot(keras.callbacks.Callback):  # runs after the commit: what the model then holds
        def on_epoch_end(self, epoch, logs=None):
            optimizer = self.model.optimizer
            snapshots.append(([keras.ops.convert_to_numpy(v) for v in optimizer._trainable_variables],
                              [keras.ops.convert_to_numpy(v) for v in optimizer._model_variables_moving_average]))

    train_run(config, run_dir, extra_callbacks=[Snapshot()])
    model_weights, optimizer_copies = snapshots[-1]
    # At the end of an epoch the model holds the averages and the optimizer keeps the raw weights,
    # which differ after a step at learning rate 0.01.
    assert any(not np.array_equal(a, b) for a, b in zip(model_weights, optimizer_copies))
    saved = keras.saving.load_model(run_dir / "last.keras", compile=False)
    for ours, theirs in zip(saved.trainable_weights, model_weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours), theirs)


@pytest.mark.parametrize("model", HIDDEN_MODELS)
def test_resume_is_exact_with_augmentation_batch_norm_and_weight_averaging(tmp_path, small_mnist_dir, model):
    # Every training option of the record recipe at once (weight decay, a per-epoch decay, EMA), and more.
    config = make_config(
        small_mnist_dir, model,
        train={"optimizer": {"name": "adam", "learning_rate": 0.003, "weight_decay": 0.05, "use_ema": True,
                             "ema_momentum": 0.9},
               "schedule": {"name": "exponential", "decay_rate": 0.9},
               "loss": {"name": "categorical_crossentropy", "label_smoothing": 0.1}},
        model_options={"batch_norm": True},
        data={"augmentation": {**RECORD_AUGMENTATION, "elastic_alpha": 34}},
    )
    unbroken = fresh_run_dir(tmp_path, "unbroken")
    train_run(config, unbroken)
    broken = fresh_run_dir(tmp_path, "broken")
    interrupted(config, broken, SignalAt(epoch=1, step=5))  # in the middle of epoch 2
    result = train_run(config, broken, resume=True)
    assert history_without_times(broken) == history_without_times(unbroken)
    for name in ("last.keras", "best.keras"):
        for ours, theirs in zip(weights(broken / name), weights(unbroken / name)):
            np.testing.assert_array_equal(ours, theirs)
    expected = json.loads((unbroken / rundir.METRICS_FILE).read_text())
    assert result.metrics["test_accuracy"] == expected["test_accuracy"]
    assert result.metrics["test_loss"] == expected["test_loss"]


def test_preview_augmentation_draws_the_training_changes(tmp_path, small_mnist_dir):
    from click.testing import CliRunner

    from mnist_zoo.cli import cli

    output = tmp_path / "grid.png"
    result = CliRunner().invoke(cli, ["config", "preview-augmentation", "--model", "cnn", "--set",
                                      "data.augmentation.rotation=15", "--data-dir", str(small_mnist_dir),
                                      "-o", str(output), "--images", "3", "--variants", "4"])
    assert result.exit_code == 0, result.output
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    off = CliRunner().invoke(cli, ["config", "preview-augmentation", "--model", "cnn", "--data-dir",
                                   str(small_mnist_dir), "-o", str(tmp_path / "none.png")])
    assert off.exit_code != 0 and "changes nothing" in off.output and not (tmp_path / "none.png").exists()


def test_preview_shows_what_training_step_k_draws():
    from mnist_zoo.data.augmentation import preview_batches

    images = (np.random.default_rng(0).uniform(0, 255, (3, 28, 28))).astype(np.uint8)
    config = AugmentationConfig(rotation=15)
    grid = preview_batches(config, 42, images, 2)
    step_one = Augmenter(config, 42)(tf.constant(images[..., None].astype("float32") * np.float32(1 / 255)),
                                     tf.constant(1, tf.int64)).numpy()[..., 0]
    np.testing.assert_allclose(grid[:, 1], step_one, atol=1e-6)


def test_plain_keras_training_augments_in_its_step_too(tmp_path, small_mnist_dir):
    seen = []

    class FirstBatch(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen.append("train_step" in vars(self.model))  # the step is ours, not a tf.data map's

    common = {"epochs": 1, "fast_paths": False}
    plain = train_run(make_config(small_mnist_dir, "mlp", train=common), fresh_run_dir(tmp_path, "plain"))
    augmented = train_run(make_config(small_mnist_dir, "mlp", train=common, data={"augmentation": {"rotation": 20}}),
                          fresh_run_dir(tmp_path, "augmented"), extra_callbacks=[FirstBatch()])
    assert seen == [True]
    assert plain.metrics["test_loss"] != augmented.metrics["test_loss"]
