"""Reads IDX files (the original MNIST format), gzipped or not, with strict checks."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from mnist_zoo.errors import DataError

# The magic number is two zero bytes, a type code (0x08 = unsigned byte) and the number of dimensions.
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801


def read_bytes(path: Path) -> bytes:
    """Returns the file's content, decompressed if it is gzipped (detected by its magic bytes)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from None
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise DataError(f"{path}: corrupt or truncated gzip file ({error}); delete it and fetch it again") from None


def parse_idx(content: bytes, expected_magic: int, source: str) -> np.ndarray:
    """Parses IDX bytes into a uint8 array.

    Args:
        content: the decompressed file content.
        expected_magic: `IMAGES_MAGIC` or `LABELS_MAGIC`.
        source: the file name, for error messages.

    Returns:
        An array of shape (count,) for labels or (count, rows, cols) for images.
    """
    if len(content) < 8:
        raise DataError(f"{source}: file too short to be IDX ({len(content)} bytes)")
    magic = int.from_bytes(content[:4], "big")
    if magic != expected_magic:
        raise DataError(
            f"{source}: wrong IDX magic number 0x{magic:08x}, expected 0x{expected_magic:08x} "
            f"({'images' if expected_magic == IMAGES_MAGIC else 'labels'} file); is this the right file?"
        )
    num_dims = magic & 0xFF
    header_size = 4 + 4 * num_dims
    if len(content) < header_size:
        raise DataError(f"{source}: truncated IDX header")
    shape = tuple(int.from_bytes(content[4 + 4 * i: 8 + 4 * i], "big") for i in range(num_dims))
    expected_size = header_size + int(np.prod(shape))
    if len(content) != expected_size:
        raise DataError(
            f"{source}: header says {shape} ({expected_size} bytes) but the file holds "
            f"{len(content)} bytes; the file is truncated or corrupt"
        )
    return np.frombuffer(content, dtype=np.uint8, offset=header_size).reshape(shape)


def read_images(path: Path) -> np.ndarray:
    """Reads an IDX images file into a (count, 28, 28) uint8 array."""
    images = parse_idx(read_bytes(path), IMAGES_MAGIC, str(path))
    if images.shape[1:] != (28, 28):
        raise DataError(f"{path}: images are {images.shape[1:]}, expected 28x28")
    return images


def read_labels(path: Path) -> np.ndarray:
    """Reads an IDX labels file into a (count,) uint8 array of digits 0-9."""
    labels = parse_idx(read_bytes(path), LABELS_MAGIC, str(path))
    check_labels(labels, str(path))
    return labels


def check_labels(labels: np.ndarray, source: str) -> None:
    """Raises DataError unless every label is a class index 0-9."""
    if labels.size and labels.max() > 9:
        bad = int(labels[labels > 9][0])
        raise DataError(f"{source}: label {bad} is outside 0-9")
