"""Loads MNIST and Fashion-MNIST as uint8 arrays from a folder, an npz file or the download cache."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from mnist_zoo.data import download, idx
from mnist_zoo.data.arrays import read_npz
from mnist_zoo.data.catalog import CLASS_NAMES, IDX_FILES
from mnist_zoo.errors import DataError

DATA_DIR_ENV = "MNIST_ZOO_DATA_DIR"


@dataclass(frozen=True)
class Dataset:
    """A data set's arrays (uint8 images of shape (n, 28, 28), uint8 labels) and where they came from."""

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str

    @property
    def class_names(self) -> tuple[str, ...]:
        return CLASS_NAMES[self.name]

    def checksum(self) -> str:
        """sha256 of the four arrays' bytes: the same for the IDX files and Keras's npz."""
        digest = hashlib.sha256()
        for array in (self.train_images, self.train_labels, self.test_images, self.test_labels):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()


def _find_idx_file(folder: Path, stem: str) -> Path | None:
    dotted = stem.replace("-idx", ".idx", 1)
    for name in (f"{stem}.gz", stem, f"{dotted}.gz", dotted):
        if (folder / name).is_file():
            return folder / name
    return None


def _resolve_folder(data_dir: Path, dataset: str) -> Path:
    """The folder holding the files: `data_dir` itself, or its `<dataset>/` subfolder."""
    if not data_dir.exists():
        raise DataError(f"data folder {data_dir} does not exist; pass --data-dir DIR with the MNIST files")
    if data_dir.is_file():
        return data_dir
    has_files = _find_idx_file(data_dir, IDX_FILES["train_images"]) or (data_dir / "mnist.npz").is_file()
    if not has_files and (data_dir / dataset).is_dir():
        return data_dir / dataset
    return data_dir


def load_idx_folder(folder: Path, dataset: str) -> Dataset:
    """Reads the four IDX files of a folder."""
    paths = {key: _find_idx_file(folder, stem) for key, stem in IDX_FILES.items()}
    missing = [f"{IDX_FILES[key]}[.gz]" for key, path in paths.items() if path is None]
    if missing:
        raise DataError(f"{folder}: missing {', '.join(missing)}; expected the four IDX files of {dataset}")
    arrays = {
        key: (idx.read_images(path) if key.endswith("images") else idx.read_labels(path))
        for key, path in paths.items()
    }
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if len(images) != len(labels):
            raise DataError(
                f"{folder}: {len(images)} {split} images but {len(labels)} {split} labels; "
                "the files do not belong together"
            )
    return Dataset(name=dataset, source=str(folder), **arrays)


def load_npz(path: Path, dataset: str) -> Dataset:
    """Reads Keras's `mnist.npz` (keys x_train, y_train, x_test, y_test)."""
    try:
        arrays = read_npz(path, ("x_train", "y_train", "x_test", "y_test"))
    except DataError as error:
        raise DataError(f"not a valid mnist.npz: {error}") from None
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if (images.shape[1:] != (28, 28) or images.dtype != np.uint8 or labels.ndim != 1
                or labels.dtype.kind not in "ui" or len(images) != len(labels)):
            raise DataError(
                f"{path}: x_{split} {images.shape} {images.dtype} and y_{split} {labels.shape} "
                "do not look like MNIST (expected (n, 28, 28) uint8 and (n,) integers)"
            )
        idx.check_labels(labels, str(path))
    return Dataset(
        name=dataset,
        train_images=arrays["x_train"], train_labels=arrays["y_train"].astype(np.uint8),
        test_images=arrays["x_test"], test_labels=arrays["y_test"].astype(np.uint8),
        source=str(path),
    )


def load_dataset(
    dataset: str, data_dir: str | None = None, report: Callable[[str], None] | None = None,
    progressbar: bool = False,
) -> Dataset:
    """Loads a data set.

    Args:
        dataset: 'mnist' or 'fashion_mnist'.
        data_dir: a folder with the IDX files or mnist.npz (or its parent holding a
            `<dataset>/` folder), or an .npz file. None: `$MNIST_ZOO_DATA_DIR`, else the
            download cache (downloading what is missing).
        report: receives one-line progress messages (downloads).
        progressbar: show download progress bars on stderr (for a terminal).

    Returns:
        The `Dataset`.
    """
    data_dir = data_dir or os.environ.get(DATA_DIR_ENV) or None
    if data_dir is None:
        return load_idx_folder(download.ensure_downloaded(dataset, report, progressbar), dataset)
    location = _resolve_folder(Path(data_dir).expanduser(), dataset)
    if location.is_file():
        return load_npz(location, dataset)
    if _find_idx_file(location, IDX_FILES["train_images"]) is None and (location / "mnist.npz").is_file():
        return load_npz(location / "mnist.npz", dataset)
    return load_idx_folder(location, dataset)


@dataclass(frozen=True)
class Splits:
    """Training, validation (held out from training) and test arrays."""

    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def validation_seed(config) -> int:
    """The seed that chooses a run's validation images: `data.validation_seed`, else `train.seed`."""
    return config.train.seed if config.data.validation_seed is None else config.data.validation_seed


def validation_split(config, dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """The validation images (n, 28, 28) and labels (n,) that a run with `config` held out of `dataset`.

    Raises:
        DataError: the run held nothing out (`data.validation_size` 0, or a fraction that rounds to 0).
    """
    data = config.data
    splits = split_dataset(dataset, data.validation_size, validation_seed(config), data.train_limit, data.test_limit)
    if not len(splits.val_labels):
        raise DataError(f"the run trained on every training image (data.validation_size: {data.validation_size}): "
                        "it held no validation images out; evaluate it on the test set")
    return splits.val_images, splits.val_labels


def images_fingerprint(images: np.ndarray, labels: np.ndarray) -> str:
    """sha256 of images and labels: runs that held out the same images, from the same files, share it."""
    digest = hashlib.sha256()
    for array in (images, labels):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def split_dataset(
    dataset: Dataset,
    validation_size: int | float,
    seed: int,
    train_limit: int | None = None,
    test_limit: int | None = None,
) -> Splits:
    """Holds a seeded random validation set out of the training images; the test set stays untouched.

    Args:
        dataset: the loaded data set.
        validation_size: a count, or a fraction (float < 1) of the training images.
        seed: seeds the choice of validation images.
        train_limit: use only the first N training images (before the split).
        test_limit: use only the first N test images.

    Returns:
        The `Splits`.
    """
    images, labels = dataset.train_images[:train_limit], dataset.train_labels[:train_limit]
    count = round(validation_size * len(images)) if isinstance(validation_size, float) else validation_size
    if count >= len(images):
        raise DataError(
            f"data.validation_size {validation_size} leaves no training images out of {len(images)}; "
            "lower it or raise data.train_limit"
        )
    order = np.random.default_rng(seed).permutation(len(images))
    train_index, val_index = np.sort(order[count:]), np.sort(order[:count])
    return Splits(
        train_images=images[train_index], train_labels=labels[train_index],
        val_images=images[val_index], val_labels=labels[val_index],
        test_images=dataset.test_images[:test_limit], test_labels=dataset.test_labels[:test_limit],
    )
