"""Downloads the original data set files from public mirrors into a verified cache."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path
from typing import Callable

from mnist_zoo.data.catalog import CHECKSUMS, DOWNLOAD_FILES, MIRRORS
from mnist_zoo.errors import DataError

MIRRORS_ENV = "MNIST_ZOO_MIRRORS"
CACHE_ENV = "MNIST_ZOO_CACHE_DIR"
TIMEOUT_SECONDS = 30
# Errors of the local file system: disk full, quota, read-only, no permission.
_LOCAL_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def cache_dir(dataset: str) -> Path:
    """`$MNIST_ZOO_CACHE_DIR/<dataset>`, else `$XDG_CACHE_HOME/mnist-zoo/<dataset>` (~/.cache)."""
    root = os.environ.get(CACHE_ENV)
    if root:
        return Path(root).expanduser() / dataset
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg) / "mnist-zoo" / dataset


def mirrors(dataset: str) -> list[str]:
    """Base URLs to try; `$MNIST_ZOO_MIRRORS` (space- or comma-separated, `{dataset}` expanded) wins."""
    override = os.environ.get(MIRRORS_ENV)
    if override:
        urls = override.replace(",", " ").split()
        return [url.format(dataset=dataset).rstrip("/") + "/" for url in urls]
    return list(MIRRORS[dataset])


def file_digests(path: Path) -> tuple[str, str]:
    """(md5, sha256) hex digests of a file, read in chunks."""
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            md5.update(chunk)
            sha256.update(chunk)
    return md5.hexdigest(), sha256.hexdigest()


def is_verified(path: Path, dataset: str) -> bool:
    """Whether `path` exists and matches the published checksums of its file name."""
    return path.is_file() and file_digests(path) == CHECKSUMS[dataset][path.name]


def _fetch(url: str, destination: Path, sha256: str, progressbar: bool) -> None:
    """Downloads `url` to `destination` with pooch: a temporary file beside it, checked, then renamed."""
    import pooch
    import requests

    # pooch announces every download on its own logger; the caller's `report` does that here.
    pooch.get_logger().setLevel("WARNING")
    downloader = pooch.HTTPDownloader(progressbar=progressbar, timeout=TIMEOUT_SECONDS)
    try:
        pooch.retrieve(url, known_hash=f"sha256:{sha256}", fname=destination.name, path=destination.parent,
                       downloader=downloader)
    except ValueError as error:  # pooch's hash mismatch; the temporary file is already gone
        raise DataError(f"checksum mismatch ({error})".replace("\n", " ")) from None
    except requests.RequestException as error:
        raise DataError(str(error)) from None


def ensure_downloaded(
    dataset: str, report: Callable[[str], None] | None = None, progressbar: bool = False
) -> Path:
    """Makes sure the four verified files of `dataset` are in the cache; downloads what is missing.

    pooch does the transfer, the sha256 check and the atomic move into the cache; the mirror
    fallback, the md5 check against the published values and the offline message are ours.

    Args:
        dataset: 'mnist' or 'fashion_mnist'.
        report: called with a one-line message per file downloaded.
        progressbar: show a progress bar per file on stderr (for a terminal).

    Returns:
        The cache folder holding the files.

    Raises:
        DataError: a file could not be fetched from any mirror; says how to supply a folder instead.
    """
    folder = cache_dir(dataset)
    try:
        # Here, not in pooch: its exists-then-makedirs fails when two processes download at once.
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"{folder}: cannot create the download cache ({error.strerror}); set {CACHE_ENV} "
                        "to another folder") from None
    for name in DOWNLOAD_FILES:
        target = folder / name
        if is_verified(target, dataset):
            continue
        failures = []
        for base in mirrors(dataset):
            if report:
                report(f"downloading {base}{name}")
            try:
                _fetch(base + name, target, CHECKSUMS[dataset][name][1], progressbar)
                if is_verified(target, dataset):
                    break
                target.unlink()
                raise DataError("checksum mismatch (md5 differs from the published value)")
            except OSError as error:
                if error.errno in _LOCAL_ERRORS:  # our disk, not the mirror: another mirror cannot help
                    raise DataError(f"{folder}: cannot write the download cache ({error.strerror}); free space "
                                    f"there or set {CACHE_ENV} to another folder") from None
                failures.append(f"{base}{name}: {error}")
            except DataError as error:
                failures.append(f"{base}{name}: {error}")
        else:
            raise DataError(
                f"could not download {dataset} file {name} ({'; '.join(failures)}); "
                f"without internet, pass --data-dir DIR (or set MNIST_ZOO_DATA_DIR) to a folder "
                f"holding the four IDX files or mnist.npz"
            )
    return folder
