"""Helpers shared by the tests: write IDX files and small data folders, train tiny runs."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from mnist_zoo.data.idx import IMAGES_MAGIC, LABELS_MAGIC


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """Encodes a uint8 array as IDX (magic from its number of dimensions unless given)."""
    array = np.asarray(array, dtype=np.uint8)
    magic = magic if magic is not None else (0x0800 | array.ndim)
    header = magic.to_bytes(4, "big") + b"".join(int(size).to_bytes(4, "big") for size in array.shape)
    return header + array.tobytes()


def write_idx(path: Path, array: np.ndarray, compress: bool = True, magic: int | None = None) -> Path:
    content = idx_bytes(array, magic)
    path.write_bytes(gzip.compress(content) if compress else content)
    return path


def write_mnist_folder(folder: Path, train_images, train_labels, test_images, test_labels, compress=True) -> Path:
    """Writes the four MNIST IDX files into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compress else ""
    write_idx(folder / f"train-images-idx3-ubyte{suffix}", train_images, compress)
    write_idx(folder / f"train-labels-idx1-ubyte{suffix}", train_labels, compress)
    write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", test_images, compress)
    write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", test_labels, compress)
    return folder


def random_mnist_folder(folder: Path, train: int = 64, test: int = 32, seed: int = 0, compress=True) -> Path:
    """A synthetic MNIST-shaped data set (random pixels) for parsing tests."""
    rng = np.random.default_rng(seed)
    return write_mnist_folder(
        folder,
        rng.integers(0, 256, (train, 28, 28), dtype=np.uint8), rng.integers(0, 10, train, dtype=np.uint8),
        rng.integers(0, 256, (test, 28, 28), dtype=np.uint8), rng.integers(0, 10, test, dtype=np.uint8),
        compress,
    )


assert IMAGES_MAGIC == 0x0803 and LABELS_MAGIC == 0x0801  # the defaults idx_bytes derives


def train_tiny(run_dir: Path, data_dir: Path, model: str, *extra: str) -> Path:
    """Trains the registry's tiny variant of `model` for one epoch into `run_dir` (through the CLI)."""
    from click.testing import CliRunner

    from mnist_zoo.cli import cli
    from mnist_zoo.models.registry import MODELS

    tiny = [f"--set=model.{key}={json.dumps(value)}" for key, value in MODELS[model].tiny.items()]
    result = CliRunner().invoke(cli, [
        "train", "--model", model, "--data-dir", str(data_dir), "--run-dir", str(run_dir), "--epochs", "1",
        "--set", "data.validation_size=200", "--set", "train.verbose=0", *tiny, *extra,
    ], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return run_dir


def start_server(*args: str, cwd: Path) -> tuple[subprocess.Popen, str]:
    """`mnist-zoo serve ARGS --port 0` as a real process; returns it and the URL it printed."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "mnist_zoo", "serve", "--port", "0", *args], cwd=cwd,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    lines = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("Serving "):
            return process, line.split(" at ", 1)[1].split()[0]
    process.kill()
    raise AssertionError("the server did not start:\n" + "".join(lines) + process.stderr.read())


def stop_server(process: subprocess.Popen, signal_number=signal.SIGINT) -> tuple[int, str, str]:
    process.send_signal(signal_number)
    stdout, stderr = process.communicate(timeout=30)
    return process.returncode, stdout, stderr


def history_without_times(run_dir: Path) -> list[dict]:
    """A run's per-epoch records without their timings: what an exactly resumed run must repeat."""
    return [{key: value for key, value in record.items() if key != "epoch_seconds"}
            for record in json.loads((Path(run_dir) / "history.json").read_text())["epochs"]]


def wait_for_epochs(run_dir: Path, count: int, process: subprocess.Popen, timeout: float = 300) -> None:
    """Blocks until `run_dir` has committed `count` epochs (history.json is written after the commit)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if len(json.loads((Path(run_dir) / "history.json").read_text())["epochs"]) >= count:
                return
        except (OSError, ValueError, KeyError):
            pass
        assert process.poll() is None, f"training ended early: {process.communicate()}"
        time.sleep(0.05)
    raise AssertionError(f"no {count} epochs within {timeout} s")
