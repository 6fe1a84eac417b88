"""The input pipeline: every image once per epoch, in an order fixed by (seed, epoch)."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_zoo.data.batches import EpochShuffledDataset, make_dataset
from mnist_zoo.training.fast_paths import gathered_in_train_step
from mnist_zoo.models.registry import MODELS


def _numbered(count: int):
    """Images whose pixels all hold their own index (mod 256), and labels index mod 10."""
    images = np.broadcast_to((np.arange(count) % 256).astype(np.uint8)[:, None, None], (count, 28, 28)).copy()
    return images, (np.arange(count) % 10).astype(np.uint8)


def _epoch(data: EpochShuffledDataset, epoch: int):
    data.set_epoch(epoch)
    return [(images.numpy(), labels.numpy()) for images, labels in data.dataset]


@pytest.mark.parametrize("count, batch_size", [(256, 64), (250, 64), (50, 64), (64, 1)])
def test_each_epoch_holds_every_image_once_in_batches(count, batch_size):
    images, labels = _numbered(count)
    data = EpochShuffledDataset(images, labels, batch_size, one_hot=False, seed=3)
    batches = _epoch(data, 0)
    sizes = [len(batch_labels) for _, batch_labels in batches]
    assert len(batches) == data.steps_per_epoch == -(-count // batch_size)
    assert sizes[:-1] == [batch_size] * (len(sizes) - 1) and sizes[-1] == count - batch_size * (len(sizes) - 1)
    pixels = np.concatenate([batch_images[:, 0, 0, 0] for batch_images, _ in batches])
    seen = np.concatenate([batch_labels for _, batch_labels in batches])
    assert sorted(np.round(pixels * 255).astype(int)) == sorted(np.arange(count) % 256)
    # Each image still travels with its own label.
    assert np.array_equal(np.round(pixels * 255).astype(int) % 10, seen)


def test_the_order_is_a_function_of_seed_and_epoch_only():
    images, labels = _numbered(200)
    first = EpochShuffledDataset(images, labels, 32, one_hot=False, seed=5)
    second = EpochShuffledDataset(images, labels, 32, one_hot=False, seed=5, first_epoch=2)
    order = lambda batches: np.concatenate([batch_labels for _, batch_labels in batches])  # noqa: E731
    epoch_2 = order(_epoch(first, 2))
    assert np.array_equal(order(_epoch(second, 2)), epoch_2)  # another object, another history
    assert np.array_equal(order(_epoch(first, 2)), epoch_2)  # the same epoch again
    assert not np.array_equal(order(_epoch(first, 3)), epoch_2)
    other_seed = EpochShuffledDataset(images, labels, 32, one_hot=False, seed=6)
    assert not np.array_equal(order(_epoch(other_seed, 2)), epoch_2)


def test_unshuffled_data_keeps_its_stored_order():
    images, labels = _numbered(100)
    data = EpochShuffledDataset(images, labels, 32, one_hot=False, shuffle=False)
    seen = np.concatenate([batch_labels for _, batch_labels in _epoch(data, 4)])
    assert np.array_equal(seen, labels)


@pytest.mark.parametrize("one_hot", [True, False])
def test_batches_are_scaled_float32_images_with_a_channel(one_hot):
    images, labels = _numbered(40)
    for dataset in (EpochShuffledDataset(images, labels, 16, one_hot).dataset, make_dataset(images, labels, 16, one_hot)):
        batch_images, batch_labels = next(iter(dataset))
        assert batch_images.shape == (16, 28, 28, 1) and batch_images.dtype.name == "float32"
        assert 0.0 <= float(batch_images.numpy().min()) and float(batch_images.numpy().max()) <= 1.0
        if one_hot:
            assert batch_labels.shape == (16, 10) and np.allclose(batch_labels.numpy().sum(axis=1), 1)
        else:
            assert batch_labels.shape == (16,) and batch_labels.dtype.name == "int32"


def test_the_index_view_holds_the_same_batches():
    images, labels = _numbered(100)
    data = EpochShuffledDataset(images, labels, 32, one_hot=True, seed=2)
    data.set_epoch(1)
    for indices, (batch_images, batch_labels) in zip(data.index_dataset, data.dataset):
        gathered_images, gathered_labels = data.batch_for(indices)
        assert np.array_equal(gathered_images.numpy(), batch_images.numpy())
        assert np.array_equal(gathered_labels.numpy(), batch_labels.numpy())


def _compiled(model_type: str):
    import keras

    from mnist_zoo.config.loading import validate_config
    from mnist_zoo.models.registry import build_model
    from mnist_zoo.training.stage import compile_model

    config = validate_config({"model": {"type": model_type}, "train": {"batch_size": 16, "epochs": 2}}, "test")
    keras.utils.set_random_seed(3)
    model = build_model(config.model)
    compile_model(model, config, steps_per_epoch=4)
    return model


@pytest.mark.parametrize("model_type", sorted(MODELS))
def test_gathering_in_the_training_step_trains_exactly_like_the_mapped_dataset(model_type):
    images, labels = _numbered(64)
    images = (images * 37 % 251).astype(np.uint8)  # pixels that vary, so the weights do too
    results = []
    for gathered in (False, True):
        model = _compiled(model_type)
        data = EpochShuffledDataset(images, labels, 16, one_hot=True, seed=4)
        if gathered:
            with gathered_in_train_step(model, data):
                history = model.fit(data.index_dataset, epochs=2, verbose=0)
        else:
            history = model.fit(data.dataset, epochs=2, verbose=0)
        results.append((history.history, [w.copy() for w in model.get_weights()]))
    (plain_history, plain_weights), (gathered_history, gathered_weights) = results
    assert gathered_history == plain_history
    for plain, gathered in zip(plain_weights, gathered_weights):
        np.testing.assert_array_equal(gathered, plain)


def test_the_model_takes_image_batches_again_after_the_with():
    images, labels = _numbered(32)
    model = _compiled("linear")
    data = EpochShuffledDataset(images, labels, 16, one_hot=True)
    with gathered_in_train_step(model, data):
        model.fit(data.index_dataset, epochs=1, verbose=0)
    assert "train_step" not in vars(model)
    model.fit(data.dataset, epochs=1, verbose=0)  # an index-taking step would fail on images
    model.evaluate(data.dataset, verbose=0)
