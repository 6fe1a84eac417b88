"""Checks model files before a runtime opens them: read once, sizes within a limit, nothing read from elsewhere."""

from __future__ import annotations

import io
import os
import stat
import zipfile
from pathlib import Path

import numpy as np

from mnist_zoo.files import describe_mode, open_regular_file, read_regular_file
from mnist_zoo.errors import ModelFileError, describe

MAX_MODEL_BYTES = 1 << 30
"""Weights (or tensors) a model file may declare: the course CNN holds 13 MB. A small archive can
declare gigabytes (a zip member of zeros, or an HDF5 dataset compressed inside the weights file)."""
MAX_ARCHIVE_MEMBERS = 10_000
"""A .keras archive holds three files, plus its assets."""


def read_model_file(path: Path, max_bytes: int = MAX_MODEL_BYTES) -> bytes:
    """The bytes of a model file, read once: what is checked is what the runtime is given.

    Checking a file by its name and then letting a runtime open the name again would load
    whatever was put there in between, unchecked.

    Raises:
        ModelFileError: missing, unreadable, not a regular file (a FIFO or /dev/zero would read
            forever), or larger than `max_bytes` on disk or while being read.
    """
    try:
        return read_regular_file(path, max_bytes, ModelFileError,
                                 lambda size: _too_large(path, "it holds", size, max_bytes))
    except FileNotFoundError:
        raise ModelFileError(f"{path}: model file not found") from None
    except OSError as error:
        raise ModelFileError(f"{path}: cannot read the model file ({error.strerror or error})") from None


def check_keras_archive(path: Path, max_bytes: int = MAX_MODEL_BYTES, content: bytes | None = None) -> None:
    """Refuses a `.keras` zip whose members, or whose weights' datasets, declare more than `max_bytes`.

    Keras's own guard only refuses members over 4 GiB that expand more than 100x, and reads the
    whole weights member into memory before checking a single shape.

    Args:
        path: the file; read, unless `content` is given, and named in messages.
        max_bytes: the limit.
        content: the file's bytes, read once (`read_model_file`) for this check and for Keras.

    Raises:
        ModelFileError: not a zip archive, too many members, declared sizes over the limit, or
            weights that would be read from elsewhere (see `_check_h5`).
    """
    try:
        with zipfile.ZipFile(path if content is None else io.BytesIO(content)) as archive:
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


def check_weights_file(path: Path, max_bytes: int = MAX_MODEL_BYTES) -> None:
    """Refuses a `.weights.h5` file that declares more than `max_bytes` or reads weights from elsewhere.

    Raises:
        ModelFileError: see `_check_h5`; also a file that is missing or not a regular file.
    """
    try:
        with open_regular_file(path, ModelFileError) as handle:
            _check_h5(handle, path, max_bytes)
    except OSError as error:
        raise ModelFileError(f"{path}: cannot read the weights file ({error.strerror or error})") from None


def _check_h5(handle, path: Path, max_bytes: int) -> None:
    """Sums the declared sizes of an HDF5 file's datasets (its metadata only) against `max_bytes`.

    Refuses, too, anything that would make Keras read weights from outside the archive: a soft or
    external link (HDF5 resolves one into another file, or another place in this one), a dataset
    stored in external raw files, and a virtual dataset (a view of datasets in other files).
    Keras writes plain datasets in groups and nothing else.
    """
    import h5py

    total = 0
    refused = None

    def add(name, item):
        nonlocal total, refused
        if isinstance(item, h5py.Dataset):
            if item.is_virtual:
                refused = f"a virtual dataset {name!r} (a view of data in other files)"
            elif item.id.get_create_plist().get_external_count():
                refused = f"a dataset {name!r} stored in external files"
            total += int(np.prod(item.shape, dtype=object) if item.shape else 1) * item.dtype.itemsize
        return refused  # anything but None stops the visit

    def check_link(name: bytes, info):
        # Only hard links are followed by `visititems` below; HDF5 visits each group once, even in a cycle.
        if info.type != h5py.h5l.TYPE_HARD:
            kind = "an external" if info.type == h5py.h5l.TYPE_EXTERNAL else "a soft"
            return f"{kind} link {name.decode(errors='replace')!r}"
        return None

    try:
        with h5py.File(handle, "r") as weights:
            refused = weights.id.links.visit(check_link, info=True)
            if refused is None:
                weights.visititems(add)
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        raise ModelFileError(f"{path}: the weights file model.weights.h5 is not readable HDF5 ({error})") from None
    if refused is not None:
        raise ModelFileError(f"{path}: model.weights.h5 holds {refused}, which would make Keras read weights "
                             "from outside the archive; a .keras file keeps them inside (save the model again "
                             "with model.save)")
    if total > max_bytes:
        raise _too_large(path, "its weights declare", total, max_bytes)


def check_file_size(path: Path, max_bytes: int = MAX_MODEL_BYTES) -> None:
    """Refuses a model file, or a SavedModel folder's files, larger than `max_bytes` on disk.

    A folder's symlinks are followed, as TensorFlow follows them: a linked variables/ folder
    counts, each folder once (a link back up would otherwise be walked forever), and a link to a
    FIFO or a device (which could read forever) is refused.

    Raises:
        ModelFileError: larger than `max_bytes`, holding something other than files and folders,
            or unreadable (a broken link, no permission).
    """
    path = Path(path)
    try:
        size = path.stat().st_size if path.is_file() else _folder_size(path)
    except OSError as error:
        raise ModelFileError(f"{path}: cannot read {error.filename or path} ({error.strerror or error})") from None
    if size > max_bytes:
        raise _too_large(path, "it holds", size, max_bytes)


def _folder_size(folder: Path) -> int:
    """The total size of the files under `folder`, symlinks followed, each folder visited once."""
    total = 0
    visited = set()
    pending = [folder]
    while pending:
        current = pending.pop()
        identity = os.stat(current)
        if (identity.st_dev, identity.st_ino) in visited:
            continue
        visited.add((identity.st_dev, identity.st_ino))
        with os.scandir(current) as entries:
            for entry in entries:
                info = entry.stat()  # follows symlinks
                if stat.S_ISDIR(info.st_mode):
                    pending.append(entry.path)
                elif stat.S_ISREG(info.st_mode):
                    total += info.st_size
                else:
                    raise ModelFileError(f"{folder}: {entry.path} is {describe_mode(info.st_mode)}, not a "
                                         "regular file; a SavedModel folder holds only files and folders")
    return total


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
    except Exception as error:  # onnx raises DecodeError...
        raise ModelFileError(f"{path}: not a readable .onnx model ({describe(error)})") from None
    # Before shape inference, which reads constant tensors too.
    if any(_is_external(tensor) for tensor in _onnx_tensors(model)):
        raise ModelFileError(f"{path}: the model keeps its weights in external files; only self-contained "
                             ".onnx files are accepted")
    try:
        inferred = shape_inference.infer_shapes(model, data_prop=True)
    except Exception as error:  # onnx raises ValidationError, InferenceError...
        raise ModelFileError(f"{path}: not a readable .onnx model ({describe(error)})") from None
    graph = inferred.graph
    tensors = []
    for info in [*graph.input, *graph.value_info, *graph.output]:
        tensor_type = info.type.tensor_type
        if tensor_type.elem_type:
            dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
            tensors.append(([dim.dim_value for dim in tensor_type.shape.dim], dtype))
    check_tensor_bytes(path, tensors, max_bytes)


def _onnx_tensors(model):
    """Every TensorProto an ONNX model holds: initializers, sparse ones, and node attributes, in
    every graph (the main one, If/Loop/Scan bodies at any depth, functions, training graphs)."""
    graphs = [model.graph, *[graph for info in model.training_info for graph in (info.initialization, info.algorithm)]]
    nodes = [node for function in model.functions for node in function.node]
    while graphs or nodes:  # a list, not recursion: subgraphs may nest deeper than Python's stack
        if graphs:
            graph = graphs.pop()
            yield from graph.initializer
            for sparse in graph.sparse_initializer:
                yield from (sparse.values, sparse.indices)
            nodes.extend(graph.node)
            continue
        for attribute in nodes.pop().attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            sparse_tensors = list(attribute.sparse_tensors)
            if attribute.HasField("sparse_tensor"):
                sparse_tensors.append(attribute.sparse_tensor)
            for sparse in sparse_tensors:
                yield from (sparse.values, sparse.indices)
            if attribute.HasField("g"):
                graphs.append(attribute.g)
            graphs.extend(attribute.graphs)


def _is_external(tensor) -> bool:
    """True for a tensor whose data onnxruntime would read from a file the model names."""
    import onnx

    return tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data) > 0


def _too_large(path: Path, what: str, size: int, max_bytes: int) -> ModelFileError:
    return ModelFileError(f"{path}: {what} {size:,} bytes, more than the {max_bytes:,} accepted "
                          "for an MNIST classifier; refused before loading")
