"""Loads a saved Keras MNIST classifier safely and checks that it takes MNIST images and gives 10 class scores."""

from __future__ import annotations

import zipfile
from pathlib import Path

from mnist_zoo.errors import ModelFileError

ACCEPTED_INPUT_SHAPES = ((784,), (28, 28), (28, 28, 1))


def load_classifier(path: Path, unsafe: bool = False):
    """Loads a `.keras` model with Keras's safe mode and checks it is an MNIST classifier.

    Args:
        path: a `.keras` file.
        unsafe: allow Lambda layers (arbitrary code); only for files you trust.

    Returns:
        The uncompiled `keras.Model`.

    Raises:
        ModelFileError: the file is missing, empty, not a `.keras` archive, refused by safe
            mode, or not shaped for MNIST.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found")
    if path.stat().st_size == 0:
        raise ModelFileError(f"{path}: model file is empty")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path}: not a .keras archive (not a zip file, or truncated)")
    import keras

    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=not unsafe)
    except Exception as error:  # Keras raises many types for bad archives
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if "safe_mode" in str(error) or "Lambda" in str(error):
            raise ModelFileError(
                f"{path}: refused by Keras safe mode, the model contains a Lambda layer (code that "
                "would run on load); pass --unsafe only if you trust the file"
            ) from None
        raise ModelFileError(f"{path}: cannot load model ({type(error).__name__}: {message})") from None
    check_mnist_shapes(model, path)
    return model


def check_mnist_shapes(model, path: Path) -> None:
    """Raises ModelFileError unless the model maps one MNIST image to 10 scores."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelFileError(f"{path}: expected one input and one output, the model has "
                             f"{len(model.inputs)} inputs and {len(model.outputs)} outputs")
    input_shape = tuple(model.inputs[0].shape[1:])
    output_shape = tuple(model.outputs[0].shape[1:])
    if input_shape not in ACCEPTED_INPUT_SHAPES:
        raise ModelFileError(
            f"{path}: input shape {input_shape} is not an MNIST image; expected one of "
            f"{', '.join(str(shape) for shape in ACCEPTED_INPUT_SHAPES)}"
        )
    if output_shape != (10,):
        raise ModelFileError(f"{path}: output shape {output_shape}, expected (10,) class scores")
