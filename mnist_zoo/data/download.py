"""Downloads the original data set files from public mirrors into a verified cache."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from mnist_zoo.errors import DataError

FILE_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

# md5 values as published with the data sets (and used by torchvision / TFDS); sha256 on top.
CHECKSUMS = {
    "mnist": {
        "train-images-idx3-ubyte.gz": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        "train-labels-idx1-ubyte.gz": ("d53e105ee54ea40749a09fcbcd1e9432", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        "t10k-images-idx3-ubyte.gz": ("9fb629c4189551a2d022fa330f9573f3", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        "t10k-labels-idx1-ubyte.gz": ("ec29112dd5afa0611ce80d1b7f02629c", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
        "train-labels-idx1-ubyte.gz": ("25c81989df183df01b3e8a0aad5dffbe", "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
        "t10k-images-idx3-ubyte.gz": ("bef4ecab320f06d8554ea6380940ec79", "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
        "t10k-labels-idx1-ubyte.gz": ("bb300cfdad3c16e7a12a480ee83cd310", "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
    },
}

# The mirrors torchvision, TensorFlow Datasets and Keras use, tried in order.
MIRRORS = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion_mnist": (
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ),
}
MIRRORS_ENV = "MNIST_ZOO_MIRRORS"
CACHE_ENV = "MNIST_ZOO_CACHE_DIR"
TIMEOUT_SECONDS = 30


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


def _fetch(url: str, destination: Path, expected: tuple[str, str]) -> None:
    """Downloads `url` to a temporary file beside `destination`, verifies it, renames it into place."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{destination.name}.", dir=destination.parent)
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                out.write(chunk)
        digests = file_digests(Path(temporary))
        if digests != expected:
            raise DataError(f"checksum mismatch (md5 {digests[0]}, expected {expected[0]})")
        os.replace(temporary, destination)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def ensure_downloaded(dataset: str, report: Callable[[str], None] | None = None) -> Path:
    """Makes sure the four verified files of `dataset` are in the cache; downloads what is missing.

    Args:
        dataset: 'mnist' or 'fashion_mnist'.
        report: called with a one-line message per file downloaded.

    Returns:
        The cache folder holding the files.

    Raises:
        DataError: a file could not be fetched from any mirror; says how to supply a folder instead.
    """
    folder = cache_dir(dataset)
    for name in FILE_NAMES:
        target = folder / name
        if is_verified(target, dataset):
            continue
        failures = []
        for base in mirrors(dataset):
            if report:
                report(f"downloading {base}{name}")
            try:
                _fetch(base + name, target, CHECKSUMS[dataset][name])
                break
            except (urllib.error.URLError, OSError, DataError, ValueError) as error:
                failures.append(f"{base}{name}: {getattr(error, 'reason', None) or error}")
        else:
            raise DataError(
                f"could not download {dataset} file {name} ({'; '.join(failures)}); "
                f"without internet, pass --data-dir DIR (or set MNIST_ZOO_DATA_DIR) to a folder "
                f"holding the four IDX files or mnist.npz"
            )
    return folder
