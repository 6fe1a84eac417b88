"""The input pipeline: every image once per epoch, in an order fixed by (seed, epoch)."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_zoo.pipeline import EpochShuffledDataset, make_dataset


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
