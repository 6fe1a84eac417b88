"""Data loading: IDX parsing, folder layouts, npz, corrupt files, and the validation split."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from mnist_zoo.data import idx
from mnist_zoo.data.datasets import load_dataset, split_dataset
from mnist_zoo.errors import DataError
from tests.helpers import idx_bytes, random_mnist_folder, write_idx


@pytest.mark.parametrize("compress", [True, False])
def test_reads_gzipped_and_plain_idx(tmp_path, compress):
    folder = random_mnist_folder(tmp_path / "d", train=20, test=10, compress=compress)
    data = load_dataset("mnist", str(folder))
    assert data.train_images.shape == (20, 28, 28) and data.train_images.dtype == np.uint8
    assert data.test_labels.shape == (10,) and data.test_labels.max() <= 9


def test_reads_dotted_file_names(tmp_path):
    folder = random_mnist_folder(tmp_path / "d", compress=False)
    for path in folder.iterdir():
        path.rename(folder / path.name.replace("-idx", ".idx"))
    assert len(load_dataset("mnist", str(folder)).train_images) == 64


def test_parent_folder_with_dataset_subfolders(tmp_path):
    random_mnist_folder(tmp_path / "mnist", train=10, seed=1)
    random_mnist_folder(tmp_path / "fashion_mnist", train=12, seed=2)
    assert len(load_dataset("mnist", str(tmp_path)).train_images) == 10
    assert len(load_dataset("fashion_mnist", str(tmp_path)).train_images) == 12


def test_environment_variable_names_the_folder(tmp_path, monkeypatch):
    random_mnist_folder(tmp_path / "mnist", train=11)
    monkeypatch.setenv("MNIST_ZOO_DATA_DIR", str(tmp_path))
    assert len(load_dataset("mnist").train_images) == 11


def test_keras_npz(tmp_path):
    folder = random_mnist_folder(tmp_path / "idx", train=30, test=10)
    idx_data = load_dataset("mnist", str(folder))
    npz = tmp_path / "npz" / "mnist.npz"
    npz.parent.mkdir()
    np.savez(npz, x_train=idx_data.train_images, y_train=idx_data.train_labels,
             x_test=idx_data.test_images, y_test=idx_data.test_labels)
    for location in (npz, npz.parent):
        data = load_dataset("mnist", str(location))
        assert np.array_equal(data.train_images, idx_data.train_images)
        assert data.checksum() == idx_data.checksum()


def test_real_mnist_has_the_published_sizes(real_mnist):
    assert real_mnist.train_images.shape == (60000, 28, 28)
    assert real_mnist.test_images.shape == (10000, 28, 28)
    assert np.bincount(real_mnist.test_labels).tolist()[:2] == [980, 1135]


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("mnist", str(tmp_path / "nope"))


def test_missing_file(tmp_path):
    folder = random_mnist_folder(tmp_path / "d")
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="missing t10k-labels-idx1-ubyte"):
        load_dataset("mnist", str(folder))


def test_truncated_gzip(tmp_path):
    folder = random_mnist_folder(tmp_path / "d")
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match="corrupt or truncated gzip"):
        load_dataset("mnist", str(folder))


@pytest.mark.parametrize(
    "file_name, content, message",
    [
        # A labels file where the images file should be.
        ("train-images-idx3-ubyte.gz", np.zeros(64, np.uint8), "wrong IDX magic number 0x00000801, expected 0x00000803"),
        ("train-labels-idx1-ubyte.gz", np.full(64, 11, np.uint8), "label 11 is outside 0-9"),
        ("train-labels-idx1-ubyte.gz", np.zeros(63, np.uint8), "64 train images but 63 train labels"),
        ("t10k-images-idx3-ubyte.gz", np.zeros((32, 32, 32), np.uint8), "expected 28x28"),
    ],
)
def test_inconsistent_file_is_refused(tmp_path, file_name, content, message):
    folder = random_mnist_folder(tmp_path / "d")
    write_idx(folder / file_name, content)
    with pytest.raises(DataError, match=message):
        load_dataset("mnist", str(folder))


def test_header_count_disagrees_with_content(tmp_path):
    folder = random_mnist_folder(tmp_path / "d")
    content = idx_bytes(np.zeros((64, 28, 28), np.uint8))
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(content[:-784]))
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_dataset("mnist", str(folder))


def test_too_short_file(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match="too short"):
        idx.read_labels(path)


def test_not_an_npz(tmp_path):
    bad = tmp_path / "mnist.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a valid mnist.npz"):
        load_dataset("mnist", str(bad))


def test_split_is_seeded_disjoint_and_leaves_test_alone(tmp_path):
    data = load_dataset("mnist", str(random_mnist_folder(tmp_path / "d", train=100, test=20)))
    first = split_dataset(data, 0.2, seed=3)
    again = split_dataset(data, 20, seed=3)
    other = split_dataset(data, 20, seed=4)
    assert len(first.val_images) == 20 and len(first.train_images) == 80
    assert np.array_equal(first.val_images, again.val_images)
    assert not np.array_equal(first.val_images, other.val_images)
    train_rows = {row.tobytes() for row in first.train_images}
    assert not any(row.tobytes() in train_rows for row in first.val_images)
    assert np.array_equal(first.test_images, data.test_images)


def test_split_limits_and_too_large_validation(tmp_path):
    data = load_dataset("mnist", str(random_mnist_folder(tmp_path / "d", train=100, test=20)))
    limited = split_dataset(data, 10, seed=0, train_limit=50, test_limit=5)
    assert len(limited.train_images) == 40 and len(limited.test_images) == 5
    with pytest.raises(DataError, match="leaves no training images"):
        split_dataset(data, 100, seed=0)
