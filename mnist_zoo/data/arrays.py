"""Reads .npy and .npz arrays after checking each header against the file and a size limit."""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from mnist_zoo.files import open_regular_file
from mnist_zoo.errors import DataError, describe

MAX_ARRAY_BYTES = 1 << 30
"""Arrays declaring more are refused before anything is allocated: all of MNIST is 55 MB, and a
20-byte header can declare terabytes (a compressed .npz member of zeros, gigabytes in kilobytes)."""


def read_npy(path: Path, max_bytes: int = MAX_ARRAY_BYTES) -> np.ndarray:
    """An array from a `.npy` file whose header fits the file's size and `max_bytes`.

    Raises:
        DataError: unreadable, not a regular file, not .npy, an object array, or a header declaring
            a negative size, more data than the file holds or than `max_bytes`.
    """
    path = Path(path)
    try:
        with open_regular_file(path, DataError) as handle:  # a FIFO would block, a device read forever
            return _read_checked(handle, os.fstat(handle.fileno()).st_size, str(path), max_bytes)
    except OSError as error:
        raise DataError(f"{path}: not a readable .npy array ({error.strerror or error})") from None


def read_npz(path: Path, keys: tuple[str, ...], max_bytes: int = MAX_ARRAY_BYTES) -> dict[str, np.ndarray]:
    """The named arrays of an `.npz` archive, each header checked against its member's declared size.

    Raises:
        DataError: not a zip archive, a key missing, or a member as `read_npy` refuses it.
    """
    path = Path(path)
    arrays = {}
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            for key in keys:
                member = f"{key}.npy"
                if member not in names:
                    raise DataError(f"{path}: no array {key!r} (it holds {', '.join(sorted(names)) or 'nothing'})")
                size = archive.getinfo(member).file_size  # Python's zipfile never inflates past it
                with archive.open(member) as handle:
                    arrays[key] = _read_checked(handle, size, f"{path}:{key}", max_bytes)
    except (OSError, ValueError, zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as error:
        # ValueError: zipfile decodes a damaged member name as UTF-8 (UnicodeDecodeError)
        raise DataError(f"{path}: not a readable .npz archive ({describe(error)})") from None
    return arrays


def _read_checked(handle, size: int, name: str, max_bytes: int) -> np.ndarray:
    """Reads one .npy stream of `size` bytes, refusing a header that does not fit before reading the data."""
    from numpy.lib import format as npy_format

    try:
        version = npy_format.read_magic(handle)
        if version not in ((1, 0), (2, 0), (3, 0)):
            raise ValueError(f"unknown .npy version {version}")
        shape, fortran_order, dtype = (npy_format.read_array_header_1_0(handle) if version == (1, 0)
                                       else npy_format.read_array_header_2_0(handle))
    except Exception as error:  # numpy's header parser raises ValueError, SyntaxError, tokenize.TokenError...
        raise DataError(f"{name}: not a readable .npy array ({describe(error)})") from None
    if dtype.hasobject:
        raise DataError(f"{name}: holds Python objects ({dtype}), not numbers; refused (loading them would run code)")
    if any(size < 0 for size in shape):  # numpy's parser accepts them; two make a positive size that "fits"
        raise DataError(f"{name}: header declares the shape {shape}, but sizes cannot be negative; the file "
                        "is corrupt (write it again with numpy.save)")
    declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if declared > max_bytes:
        raise DataError(f"{name}: declares a {shape} {dtype} array of {declared:,} bytes, more than the "
                        f"{max_bytes:,} accepted")
    available = size - handle.tell()
    if declared != available:
        raise DataError(f"{name}: header declares {shape} {dtype} ({declared:,} bytes) but the file holds "
                        f"{available:,} bytes; it is truncated or corrupt")
    buffer = np.empty(declared, dtype=np.uint8)  # read in place: no second copy of a large array
    received = handle.readinto(memoryview(buffer)) if declared else 0
    if received != declared:
        raise DataError(f"{name}: truncated, {received:,} of {declared:,} bytes")
    return buffer.view(dtype).reshape(shape, order="F" if fortran_order else "C")
