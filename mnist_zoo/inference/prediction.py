"""The predict stage: user images and arrays -> MNIST-style inputs -> top-k classes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mnist_zoo import rundir
from mnist_zoo.inference import pictures
from mnist_zoo.errors import DataError


@dataclass
class PreparedInput:
    """One image to predict: where it came from, and the 28x28 image or why it could not be read."""

    path: Path
    index: int | None = None
    """Position in a stacked .npy array (None: the file is one image)."""
    image: np.ndarray | None = None
    error: str | None = None
    top_k: list[tuple[int, float]] = field(default_factory=list)

    @property
    def name(self) -> str:
        """How the user sees it: the path, with [i] for an image of a stack."""
        return str(self.path) if self.index is None else f"{self.path}[{self.index}]"


def expand_paths(paths: list[Path]) -> list[Path]:
    """Files to read: each path itself, or a folder's images and .npy files (sorted, not recursive)."""
    suffixes = pictures.IMAGE_SUFFIXES + pictures.ARRAY_SUFFIXES
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(item for item in path.iterdir() if item.is_file() and item.suffix.lower() in suffixes)
        else:
            files.append(path)
    return files


def prepare(files: list[Path]) -> list[PreparedInput]:
    """Reads and preprocesses every file; a file that fails becomes an input with an `error`."""
    inputs = []
    for path in files:
        try:
            if not path.exists():
                raise DataError(f"{path}: no such file")
            if path.suffix.lower() in pictures.ARRAY_SUFFIXES:
                array = pictures.read_array(path)
                indices = [None] if len(array) == 1 else range(len(array))
                inputs += [PreparedInput(path, index, image) for index, image in zip(indices, array)]
            else:
                image = pictures.mnist_style(pictures.read_grayscale(path), str(path))
                inputs.append(PreparedInput(path, image=image))
        except DataError as error:
            inputs.append(PreparedInput(path, error=str(error)))
    return inputs


def predict_top_k(model, inputs: list[PreparedInput], top_k: int) -> None:
    """Fills each readable input's `top_k` with (class index, probability), most likely first."""
    from mnist_zoo.inference.modelfile import Predictor

    readable = [item for item in inputs if item.image is not None]
    if not readable:
        return
    # The model's input convention: 0-255 pixel values, as the Predictor feeds uint8 batches.
    pixels = np.round(np.stack([item.image for item in readable]) * 255).astype(np.uint8)
    probabilities = Predictor(model).probabilities(pixels)
    for item, row in zip(readable, probabilities):
        best = np.argsort(row)[::-1][:top_k]
        item.top_k = [(int(index), float(row[index])) for index in best]


def save_preprocessed(inputs: list[PreparedInput], folder: Path) -> list[Path]:
    """Writes each readable input's 28x28 image as a PNG (what the model saw); returns the paths."""
    from PIL import Image

    written = []
    for index, item in enumerate(inputs):
        if item.image is None:
            continue
        suffix = "" if item.index is None else f"-{item.index}"
        path = Path(folder) / f"{index:03d}-{item.path.stem}{suffix}.png"
        with rundir.atomic_path(path) as temporary:
            Image.fromarray(np.round(item.image * 255).astype(np.uint8), mode="L").save(temporary, format="PNG")
        written.append(path)
    return written
