"""Refuses model files whose declared sizes exceed a limit, before a runtime allocates what they declare."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from mnist_zoo.errors import ModelFileError

MAX_MODEL_BYTES = 1 << 30
"""Weights (or tensors) a model file may declare: the course CNN holds 13 MB. A small archive can
declare gigabytes (a zip member of zeros, or an HDF5 dataset compressed inside the weights file)."""
MAX_ARCHIVE_MEMBERS = 10_000
"""A .keras archive holds three files, plus its assets."""


def check_keras_archive(path: Path, max_bytes: int = MAX_MODEL_BYTES) -> None:
    """Refuses a `.keras` zip whose members, or whose weights' datasets, declare more than `max_bytes`.

    Keras's own guard only refuses members over 4 GiB that expand more than 100x, and reads the
    whole weights member into memory before checking a single shape.

    Raises:
        ModelFileError: not a zip archive, too many members, or declared sizes over the limit.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > MAX_ARCHIVE_MEMBERS:
                raise ModelFileError(f"{path}: the archive holds {len(members):,} files, more than the "
                                     f"{MAX_ARCHIVE_MEMBERS:,} accepted; not a .keras model")
            declared = sum(member.file_size for member in members)
            if declared > max_bytes:
                raise _too_large(path, "its files declare", declared, max_bytes)
            names = {member.filename for member in members}
            if "model.weights.h5" in names:
                with archive.open("model.weights.h5") as weights:  # Python's zipfile never inflates past file_size
                    _check_h5(weights, path, max_bytes)
    except (zipfile.BadZipFile, EOFError, NotImplementedError, ValueError) as error:
        raise ModelFileError(f"{path}: not a .keras archive ({error})") from None


def _check_h5(handle, path: Path, max_bytes: int) -> None:
    """Sums the declared sizes of an HDF5 file's datasets (its metadata only) against `max_bytes`."""
    import h5py

    total = 0

    def add(name, item):
        nonlocal total
        if isinstance(item, h5py.Dataset):
            total += int(np.prod(item.shape, dtype=object) if item.shape else 1) * item.dtype.itemsize

    try:
        with h5py.File(handle, "r") as weights:
            weights.visititems(add)
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        raise ModelFileError(f"{path}: the weights file model.weights.h5 is not readable HDF5 ({error})") from None
    if total > max_bytes:
        raise _too_large(path, "its weights declare", total, max_bytes)


def check_file_size(path: Path, max_bytes: int = MAX_MODEL_BYTES) -> None:
    """Refuses a model file (or a SavedModel folder's files) larger than `max_bytes` on disk."""
    path = Path(path)
    files = [path] if path.is_file() else [item for item in path.rglob("*") if item.is_file()]
    size = sum(item.stat().st_size for item in files)
    if size > max_bytes:
        raise _too_large(path, "it holds", size, max_bytes)


def check_tensor_bytes(path: Path, shapes_and_dtypes, max_bytes: int = MAX_MODEL_BYTES) -> None:
    """Refuses a model whose declared tensors (shape, dtype pairs; unknown sizes as 1) total more than `max_bytes`."""
    total = 0
    for shape, dtype in shapes_and_dtypes:
        sizes = [size if isinstance(size, (int, np.integer)) and size > 0 else 1 for size in shape]
        total += int(np.prod(sizes, dtype=object)) * np.dtype(dtype).itemsize
    if total > max_bytes:
        raise _too_large(path, "its tensors declare", total, max_bytes)


def check_onnx_graph(path: Path, content: bytes, max_bytes: int = MAX_MODEL_BYTES) -> None:
    """Refuses an `.onnx` model with external data, or whose tensors (shape inference included) exceed `max_bytes`.

    Args:
        path: the file, for messages.
        content: its bytes, read once for this check and for onnxruntime.

    External data would make onnxruntime read other files named inside the model; mnist-zoo's
    exports keep their weights inside. Shape inference with data propagation sizes the outputs of
    operators such as ConstantOfShape, which onnxruntime would otherwise fold at load.
    """
    import onnx
    from onnx import shape_inference

    try:
        model = onnx.load_from_string(content)  # external data is never loaded from a string
        inferred = shape_inference.infer_shapes(model, data_prop=True)
    except Exception as error:  # onnx raises DecodeError, ValidationError, InferenceError...
        from mnist_zoo.errors import describe

        raise ModelFileError(f"{path}: not a readable .onnx model ({describe(error)})") from None
    graph = inferred.graph
    if any(tensor.data_location == onnx.TensorProto.EXTERNAL for tensor in graph.initializer):
        raise ModelFileError(f"{path}: the model keeps its weights in external files; only self-contained "
                             ".onnx files are accepted")
    tensors = []
    for info in [*graph.input, *graph.value_info, *graph.output]:
        tensor_type = info.type.tensor_type
        if tensor_type.elem_type:
            dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
            tensors.append(([dim.dim_value for dim in tensor_type.shape.dim], dtype))
    check_tensor_bytes(path, tensors, max_bytes)


def _too_large(path: Path, what: str, size: int, max_bytes: int) -> ModelFileError:
    return ModelFileError(f"{path}: {what} {size:,} bytes, more than the {max_bytes:,} accepted "
                          "for an MNIST classifier; refused before loading")
