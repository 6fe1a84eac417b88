"""Loads a saved Keras MNIST classifier safely and checks that it takes MNIST images and gives 10 class scores."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import zipfile
from pathlib import Path

from mnist_zoo.errors import ModelFileError, describe

ACCEPTED_INPUT_SHAPES = ((784,), (28, 28), (28, 28, 1))


def load_classifier(path: Path, unsafe: bool = False):
    """Loads a `.keras` model with Keras's safe mode and checks it is an MNIST classifier.

    Args:
        path: a `.keras` file.
        unsafe: allow Lambda layers (arbitrary code); only for files you trust.

    Returns:
        The uncompiled `keras.Model`.

    Raises:
        ModelFileError: the file is missing, empty, not a `.keras` archive, declaring more than
            `model_limits.MAX_MODEL_BYTES`, refused by safe mode, or not shaped for MNIST.
    """
    from mnist_zoo.inference.model_limits import check_keras_archive, read_model_file

    path = Path(path)
    content = read_model_file(path)
    if not content:
        raise ModelFileError(f"{path}: model file is empty")
    if not zipfile.is_zipfile(io.BytesIO(content)):
        raise ModelFileError(f"{path}: not a .keras archive (not a zip file, or truncated)")
    check_keras_archive(path, content=content)
    import keras

    with _private_copy(content, path) as copy:
        try:
            model = keras.saving.load_model(copy, compile=False, safe_mode=not unsafe)
        except Exception as error:  # Keras raises many types for bad archives
            if "safe_mode" in str(error) or "Lambda" in str(error):
                raise ModelFileError(
                    f"{path}: refused by Keras safe mode, the model contains a Lambda layer (code that "
                    "would run on load); pass --unsafe only if you trust the file"
                ) from None
            raise ModelFileError(f"{path}: cannot load model ({describe(error)})") from None
    check_mnist_shapes(model, path)
    return model


@contextlib.contextmanager
def _private_copy(content: bytes, path: Path):
    """A temporary `.keras` file of `content` (the bytes of `path`), readable by its owner only, removed afterwards.

    Keras loads a `.keras` file by name only: it is given this copy of the bytes that were
    checked, which no one else can replace (mode 0600), rather than the user's path again.

    Raises:
        ModelFileError: the copy cannot be written (the temporary folder is full or read-only).
    """
    name = None
    try:
        descriptor, name = tempfile.mkstemp(suffix=".keras", prefix="mnist-zoo-model-")  # mode 0600
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
    except OSError as error:
        if name is not None:
            os.unlink(name)
        raise ModelFileError(f"{path}: cannot copy it into {tempfile.gettempdir()} to load it "
                             f"({error.strerror or error}); free space there or set TMPDIR") from None
    try:
        yield Path(name)
    finally:
        os.unlink(name)


def check_mnist_shapes(model, path: Path) -> None:
    """Raises ModelFileError unless the model maps one MNIST image to 10 scores."""
    check_mnist_io(path, [tensor.shape for tensor in model.inputs], [tensor.shape for tensor in model.outputs])


def _dimensions(shape) -> tuple:
    """A shape without its batch dimension, sizes as ints (runtimes give numpy ints, None or names)."""
    return tuple(size if size is None or isinstance(size, str) else int(size) for size in list(shape)[1:])


def check_mnist_io(path: Path, input_shapes: list, output_shapes: list) -> None:
    """Raises ModelFileError unless a model file has one MNIST image input and one 10-score output.

    Args:
        input_shapes, output_shapes: the shapes of its inputs and outputs, batch dimension first,
            from whatever runtime opened it.
    """
    if len(input_shapes) != 1 or len(output_shapes) != 1:
        raise ModelFileError(f"{path}: expected one input and one output, the model has "
                             f"{len(input_shapes)} inputs and {len(output_shapes)} outputs")
    input_shape, output_shape = _dimensions(input_shapes[0]), _dimensions(output_shapes[0])
    if input_shape not in ACCEPTED_INPUT_SHAPES:
        raise ModelFileError(
            f"{path}: input shape {input_shape} is not an MNIST image; expected one of "
            f"{', '.join(str(shape) for shape in ACCEPTED_INPUT_SHAPES)}"
        )
    if output_shape != (10,):
        raise ModelFileError(f"{path}: output shape {output_shape}, expected (10,) class scores")
