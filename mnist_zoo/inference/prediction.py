"""The predict stage: user images and arrays -> MNIST-style uint8 inputs -> top-k classes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mnist_zoo import rundir
from mnist_zoo.errors import DataError
from mnist_zoo.inference import pictures


@dataclass
class PreparedInput:
    """One image to predict: where it came from, and the 28x28 uint8 image or why it could not be read."""

    path: Path
    index: int | None = None
    """Position in a stacked .npy array (None: the file is one image)."""
    image: np.ndarray | None = None
    """28x28 uint8 pixels, light digit on black, as in the MNIST files."""
    error: str | None = None
    top_k: list[tuple[int, float]] = field(default_factory=list)

    @property
    def name(self) -> str:
        """How the user sees it: the path, with [i] for an image of a stack."""
        return str(self.path) if self.index is None else f"{self.path}[{self.index}]"

    def record(self, class_names) -> dict:
        """The input's prediction (or error) as a JSON-ready dict."""
        if self.error:
            return {"input": self.name, "error": self.error}
        return {
            "input": self.name,
            "prediction": class_names[self.top_k[0][0]],
            "class_index": self.top_k[0][0],
            "top_k": [{"class": class_names[index], "class_index": index, "probability": probability}
                      for index, probability in self.top_k],
        }


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
                inputs.append(PreparedInput(path, image=pictures.prepare_picture(path)))
        except DataError as error:
            inputs.append(PreparedInput(path, error=str(error)))
    return inputs


def predict_top_k(model, inputs: list[PreparedInput], top_k: int) -> None:
    """Fills each readable input's `top_k` with (class index, probability), most likely first.

    Args:
        model: a Keras model, or a `runtimes.Classifier` (any file opened in its runtime).
    """
    from mnist_zoo.inference.predictor import predict_probabilities

    readable = [item for item in inputs if item.image is not None]
    if not readable:
        return
    pixels = np.stack([item.image for item in readable])
    if pixels.dtype != np.uint8:
        raise TypeError(f"PreparedInput.image must hold uint8 pixels, received {pixels.dtype}")
    probabilities = predict_probabilities(model, pixels)  # the model's own scaling happens in there
    for item, row in zip(readable, probabilities):
        item.top_k = ranked(row, top_k)


def ranked(probabilities: np.ndarray, top_k: int) -> list[tuple[int, float]]:
    """The `top_k` most likely (class index, probability) of one row, most likely first."""
    best = np.argsort(probabilities)[::-1][:top_k]
    return [(int(index), float(probabilities[index])) for index in best]


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
            Image.fromarray(item.image, mode="L").save(temporary, format="PNG")
        written.append(path)
    return written


@dataclass(frozen=True)
class PredictionResult:
    """What `run_prediction` predicted and wrote."""

    model_path: Path
    class_names: tuple[str, ...]
    inputs: list[PreparedInput]
    written: list[Path]

    @property
    def records(self) -> list[dict]:
        """One JSON-ready record per input, in order."""
        return [item.record(self.class_names) for item in self.inputs]

    @property
    def errors(self) -> list[str]:
        """Why each unreadable input could not be predicted."""
        return [item.error for item in self.inputs if item.error]


def run_prediction(
    model_path: Path,
    paths: list[Path],
    top_k: int = 3,
    device: str = "auto",
    unsafe: bool = False,
    save_dir: Path | None = None,
) -> PredictionResult:
    """Predicts the class of every picture or `.npy` image under `paths`.

    Args:
        model_path: a `.keras`, `.tflite` or `.onnx` file, a SavedModel folder, a run directory
            (its best.keras), or an ensemble's folder (`evaluate --ensemble` wrote its ensemble.json);
            a run's data set names the classes.
        paths: picture files, `.npy` files, or folders of them.
        top_k: how many classes to keep per input.
        device: 'auto', 'cpu' or 'gpu'.
        unsafe: allow Lambda layers when loading.
        save_dir: also write the 28x28 images the model saw there, as PNG files.

    Returns:
        The `PredictionResult`; inputs that could not be read carry their `error`.

    Raises:
        DataError: no picture or `.npy` file was found at all.
    """
    model_file, run_dir = rundir.resolve_model_path(Path(model_path))
    prepared = prepare(expand_paths(list(paths)))
    if not prepared:
        raise DataError("no images or .npy files found in the given folders")
    result = _predict_prepared(model_file, run_dir, prepared, top_k, device, unsafe)
    return dataclasses.replace(result, written=save_preprocessed(prepared, save_dir)) if save_dir else result


def _predict_prepared(model_file: Path, run_dir: Path | None, prepared: list[PreparedInput], top_k: int,
                      device: str, unsafe: bool) -> PredictionResult:
    """Opens the model in its runtime and fills every readable input's top-k; the run's data set names the classes."""
    from mnist_zoo.data.catalog import CLASS_NAMES
    from mnist_zoo.inference.evaluation import model_data_settings
    from mnist_zoo.inference.runtimes import open_classifier
    from mnist_zoo.runtime.device import select_device

    class_names = CLASS_NAMES[model_data_settings(model_file, run_dir)[0]]
    select_device(device)  # before TensorFlow starts: hides GPUs for 'cpu', enables memory growth
    predict_top_k(open_classifier(model_file, unsafe=unsafe), prepared, top_k)
    return PredictionResult(model_file, class_names, prepared, [])


def predict_arrays(model_path: Path, array: np.ndarray, top_k: int = 3, device: str = "auto",
                   unsafe: bool = False) -> PredictionResult:
    """Predicts the class of MNIST-format images held in memory (a notebook's array).

    Args:
        model_path: as for `run_prediction`.
        array: (28, 28), (784,) or stacks of them: uint8 0-255, or floats 0-1, a light digit on
            black (`pictures.as_pixels`); each image's record is named `array[i]`.

    Raises:
        DataError: not 28x28 images, or values outside 0-255.
    """
    model_file, run_dir = rundir.resolve_model_path(Path(model_path))
    pixels = pictures.as_pixels(array)
    prepared = [PreparedInput(Path("array"), index, image) for index, image in enumerate(pixels)]
    return _predict_prepared(model_file, run_dir, prepared, top_k, device, unsafe)
