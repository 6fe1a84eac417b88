"""Reads IDX files (the original MNIST format), gzipped or not, with strict checks."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from mnist_zoo.data.arrays import MAX_ARRAY_BYTES
from mnist_zoo.errors import DataError

# The magic number is two zero bytes, a type code (0x08 = unsigned byte) and the number of dimensions.
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801


def read_idx(path: Path, expected_magic: int, max_bytes: int = MAX_ARRAY_BYTES) -> np.ndarray:
    """Reads an IDX file, gzipped or not (told by its magic bytes), checking its header before its data.

    The header's shape is checked against `max_bytes` and the file's size before anything else is
    read, and a gzipped file is inflated no further than its header declares: a small file cannot
    make this allocate more than it claims, or claim more than `max_bytes`.

    Args:
        path: the file.
        expected_magic: `IMAGES_MAGIC` or `LABELS_MAGIC`.
        max_bytes: refuse headers declaring more data.

    Returns:
        An array of shape (count,) for labels or (count, rows, cols) for images.

    Raises:
        DataError: unreadable, corrupt gzip, wrong magic, or a header that does not fit the file.
    """
    source = str(path)
    try:
        with open(path, "rb") as raw:
            compressed = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            stream = gzip.GzipFile(fileobj=raw) if compressed else raw
            # A plain file's size is known; a gzipped one is read one byte past its header's claim.
            file_size = None if compressed else Path(path).stat().st_size
            return _read_stream(stream, expected_magic, source, max_bytes, file_size)
    except OSError as error:
        raise DataError(f"{source}: cannot read ({error.strerror or error})") from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise DataError(f"{source}: corrupt or truncated gzip file ({error}); delete it and fetch it again") from None


def _read_stream(stream, expected_magic: int, source: str, max_bytes: int, file_size: int | None) -> np.ndarray:
    head = stream.read(4)
    if len(head) < 4:
        raise DataError(f"{source}: file too short to be IDX ({len(head)} bytes)")
    magic = int.from_bytes(head, "big")
    if magic != expected_magic:
        raise DataError(
            f"{source}: wrong IDX magic number 0x{magic:08x}, expected 0x{expected_magic:08x} "
            f"({'images' if expected_magic == IMAGES_MAGIC else 'labels'} file); is this the right file?"
        )
    num_dims = magic & 0xFF
    dims = stream.read(4 * num_dims)
    if len(dims) < 4 * num_dims:
        raise DataError(f"{source}: truncated IDX header")
    shape = tuple(int.from_bytes(dims[4 * i: 4 * i + 4], "big") for i in range(num_dims))
    header_size = 4 + 4 * num_dims
    data_size = int(np.prod(shape, dtype=object))
    if data_size > max_bytes:
        raise DataError(f"{source}: header declares {shape} ({data_size:,} bytes), more than the "
                        f"{max_bytes:,} accepted; is this an IDX file of 28x28 digits?")
    if file_size is not None and file_size != header_size + data_size:
        raise _size_mismatch(source, shape, header_size + data_size, file_size)
    data = np.empty(data_size + 1, dtype=np.uint8)  # one byte more: to notice a longer stream
    received = _read_into(stream, memoryview(data))
    if received != data_size:
        raise _size_mismatch(source, shape, header_size + data_size, header_size + received, exact=received < data_size)
    return data[:data_size].reshape(shape)


def _read_into(stream, buffer: memoryview) -> int:
    """Fills `buffer` from `stream` until it is full or the stream ends; the number of bytes read."""
    filled = 0
    while filled < len(buffer):
        count = stream.readinto(buffer[filled:])
        if not count:
            break
        filled += count
    return filled


def _size_mismatch(source: str, shape: tuple, expected: int, received: int, exact: bool = True) -> DataError:
    holds = f"{received:,} bytes" if exact else "more"
    return DataError(f"{source}: header says {shape} ({expected:,} bytes) but the file holds {holds}; "
                     "the file is truncated or corrupt")


def read_images(path: Path) -> np.ndarray:
    """Reads an IDX images file into a (count, 28, 28) uint8 array."""
    images = read_idx(path, IMAGES_MAGIC)
    if images.shape[1:] != (28, 28):
        raise DataError(f"{path}: images are {images.shape[1:]}, expected 28x28")
    return images


def read_labels(path: Path) -> np.ndarray:
    """Reads an IDX labels file into a (count,) uint8 array of digits 0-9."""
    labels = read_idx(path, LABELS_MAGIC)
    check_labels(labels, str(path))
    return labels


def check_labels(labels: np.ndarray, source: str) -> None:
    """Raises DataError unless every label is a class index 0-9."""
    if labels.size and (labels.max() > 9 or labels.min() < 0):
        bad = int(labels[(labels > 9) | (labels < 0)][0])
        raise DataError(f"{source}: label {bad} is outside 0-9")
