"""The download path, against a local HTTP server on 127.0.0.1 serving the original files."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading

import pytest

from mnist_zoo.data import download
from mnist_zoo.data.catalog import DOWNLOAD_FILES
from mnist_zoo.data.datasets import load_dataset
from mnist_zoo.errors import DataError


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def serve(tmp_path):
    """Starts HTTP servers on 127.0.0.1 for given folders; yields a function returning base URLs."""
    servers = []

    def start(folder):
        handler = functools.partial(_QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.requests = []
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server, f"http://127.0.0.1:{server.server_address[1]}/{{dataset}}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_downloads_verifies_caches_and_reuses(mnist_data, serve, monkeypatch, tmp_path):
    server, url = serve(mnist_data)
    monkeypatch.setenv("MNIST_ZOO_MIRRORS", url)
    messages = []
    data = load_dataset("mnist", report=messages.append)
    assert data.train_images.shape == (60000, 28, 28)
    cache = tmp_path / "cache" / "mnist"
    assert sorted(path.name for path in cache.iterdir()) == sorted(DOWNLOAD_FILES)
    assert len(server.requests) == 4 and len(messages) == 4
    load_dataset("mnist")  # second time: served from the verified cache
    assert len(server.requests) == 4


def test_corrupt_mirror_is_skipped_and_never_cached(mnist_data, serve, monkeypatch, tmp_path):
    bad_root = tmp_path / "bad"
    shutil.copytree(mnist_data / "mnist", bad_root / "mnist")
    labels = bad_root / "mnist" / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:-10] + b"0123456789")  # same size, wrong bytes
    bad_server, bad_url = serve(bad_root)
    good_server, good_url = serve(mnist_data)

    monkeypatch.setenv("MNIST_ZOO_MIRRORS", bad_url)
    with pytest.raises(DataError, match="checksum mismatch") as caught:
        download.ensure_downloaded("mnist")
    assert "--data-dir" in str(caught.value)
    cache = tmp_path / "cache" / "mnist"
    assert not (cache / "t10k-labels-idx1-ubyte.gz").exists()
    assert not [path for path in cache.iterdir() if path.name.startswith(".")]  # no temp files left

    monkeypatch.setenv("MNIST_ZOO_MIRRORS", f"{bad_url} {good_url}")
    download.ensure_downloaded("mnist")
    assert download.is_verified(cache / "t10k-labels-idx1-ubyte.gz", "mnist")


def test_corrupted_cache_file_is_fetched_again(mnist_data, serve, monkeypatch, tmp_path):
    server, url = serve(mnist_data)
    monkeypatch.setenv("MNIST_ZOO_MIRRORS", url)
    cache = download.ensure_downloaded("mnist")
    (cache / "train-labels-idx1-ubyte.gz").write_bytes(b"truncated")
    download.ensure_downloaded("mnist")
    assert server.requests[-1].endswith("train-labels-idx1-ubyte.gz") and len(server.requests) == 5


def test_offline_without_data_says_how_to_supply_a_folder():
    # The autouse fixture points the mirrors at a refused port on 127.0.0.1.
    with pytest.raises(DataError, match="pass --data-dir DIR .or set MNIST_ZOO_DATA_DIR."):
        load_dataset("mnist")


def test_default_mirrors_are_https_for_mnist(monkeypatch):
    monkeypatch.delenv("MNIST_ZOO_MIRRORS")
    assert all(url.startswith("https://") for url in download.mirrors("mnist"))
    assert download.mirrors("fashion_mnist")


def test_progress_bar_goes_to_stderr_only_when_asked(mnist_data, serve, monkeypatch, capfd, tmp_path):
    server, url = serve(mnist_data)
    monkeypatch.setenv("MNIST_ZOO_MIRRORS", url)
    download.ensure_downloaded("mnist")
    quiet = capfd.readouterr()
    assert quiet.out == "" and quiet.err == ""  # library code prints nothing by itself
    monkeypatch.setenv("MNIST_ZOO_CACHE_DIR", str(tmp_path / "second-cache"))
    download.ensure_downloaded("mnist", progressbar=True)
    shown = capfd.readouterr()
    assert shown.out == "" and "100%" in shown.err and "9.91M" in shown.err  # train-images is 9.91 MB
