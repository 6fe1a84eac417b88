"""Opens files the user named: regular files only (never a FIFO or a device), read whole within a size limit."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO, Callable

from mnist_zoo.errors import MnistZooError


def read_regular_file(
    path: Path,
    max_bytes: int,
    error_type: type[MnistZooError],
    too_large: Callable[[int], MnistZooError],
) -> bytes:
    """The bytes of `path` (symlinks followed) if it is a regular file of at most `max_bytes`.

    A FIFO, a device such as /dev/zero or a folder is refused before anything is read: each can
    read forever or block. The limit holds while reading too: at most one byte more than the
    file's size is asked for, then no more than `max_bytes + 1` in all if it grew meanwhile.
    Whoever checks the returned bytes and then uses them sees one and the same file, whatever
    happens to the path afterwards.

    Args:
        path: the file.
        max_bytes: refuse larger files.
        error_type: the error raised for a path that is not a regular file.
        too_large: makes the error raised for a file larger than `max_bytes`, given its size.

    Raises:
        error_type: not a regular file.
        too_large(size): larger than `max_bytes`, on disk or while being read.
        OSError: the file cannot be opened or read (missing, no permission); the caller words it.
    """
    with open_regular_file(path, error_type) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > max_bytes:
            raise too_large(size)
        content = handle.read(size + 1)  # a buffered read: short only at the end of the file
        if len(content) > size:  # it grew after fstat: read on, never past the limit
            content += handle.read(max_bytes + 1 - len(content))
        if len(content) > max_bytes:
            raise too_large(max(len(content), os.fstat(handle.fileno()).st_size))
    return content


def open_regular_file(path: Path, error_type: type[MnistZooError]) -> BinaryIO:
    """`path` (symlinks followed) opened for reading if it is a regular file.

    Raises:
        error_type: a FIFO, a device, a socket or a folder, refused without blocking or reading.
        OSError: the file cannot be opened (missing, no permission); the caller words it.
    """
    # O_NONBLOCK: opening a FIFO that no one writes to would otherwise wait forever, before
    # fstat could tell what it is. O_NOCTTY: a terminal named here does not become ours.
    non_blocking = getattr(os, "O_NONBLOCK", 0)  # POSIX only: Windows has no FIFOs to open
    descriptor = os.open(path, os.O_RDONLY | non_blocking | getattr(os, "O_NOCTTY", 0))
    try:
        info = os.fstat(descriptor)  # of what was opened: the path may point elsewhere by now
        if not stat.S_ISREG(info.st_mode):
            raise error_type(f"{path}: {describe_mode(info.st_mode)}, not a regular file; give the path of a "
                             "file on disk")
        if non_blocking:
            os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def describe_mode(mode: int) -> str:
    """What a file that is not a regular file is ("a pipe (FIFO)", "a character device"...), for messages."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a pipe (FIFO)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"
