"""Helpers shared by the tests: write IDX files and small data folders, train tiny runs."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from mnist_zoo.config.loading import validate_config
from mnist_zoo.data.idx import IMAGES_MAGIC, LABELS_MAGIC
from mnist_zoo.errors import TrainingInterrupted
from mnist_zoo.models.registry import MODELS
from mnist_zoo.training.stage import train_run

REPO_ROOT = Path(__file__).resolve().parent.parent


def load_script(name: str):
    """Imports scripts/NAME.py as a module without putting scripts/ on sys.path for every later test."""
    import importlib.util

    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up by name
    spec.loader.exec_module(module)
    return module


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

    tiny = [f"--set=model.{key}={json.dumps(value)}" for key, value in MODELS[model].tiny.items()]
    result = CliRunner().invoke(cli, [
        "train", "--model", model, "--data-dir", str(data_dir), "--run-dir", str(run_dir), "--epochs", "1",
        "--set", "data.validation_size=200", "--set", "train.verbose=0", *tiny, *extra,
    ], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return run_dir


class _Peak:
    megabytes = 0.0


@contextlib.contextmanager
def python_memory_peak():
    """Measures the peak of memory allocated through Python and numpy inside the block (tracemalloc)."""
    import tracemalloc

    peak = _Peak()
    tracemalloc.start()
    try:
        yield peak
    finally:
        peak.megabytes = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()


def copy_runs(runs: dict[str, Path], folder: Path, models=None) -> dict[str, Path]:
    """Copies the session's tiny runs (all, or `models`) into `folder`, for a test that writes into them."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    return {model: Path(shutil.copytree(runs[model], folder / runs[model].name))
            for model in (models or runs)}


def tree_signature(folder: Path) -> list[tuple[str, int, int]]:
    """Every file under `folder` with its size and modification time: changes when anything is written."""
    return sorted((str(path.relative_to(folder)), path.stat().st_size, path.stat().st_mtime_ns)
                  for path in Path(folder).rglob("*"))


def start_server(*args: str, cwd: Path, timeout: float = 120, command: list[str] | None = None
                 ) -> tuple[subprocess.Popen, str]:
    """`mnist-zoo serve ARGS --port 0` (or `command`) as a real process; returns it and the URL it printed.

    Its output is read by a thread, so a server that hangs before printing anything fails after
    `timeout` seconds instead of blocking the test in `readline`.
    """
    import queue
    import threading

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = command or [sys.executable, "-m", "mnist_zoo", "serve", "--port", "0", *args]
    process = subprocess.Popen(command, cwd=cwd,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: queue.Queue = queue.Queue()

    def read_until_url():
        for line in process.stdout:
            lines.put(line)
            if line.startswith("Serving "):
                return
        lines.put(None)  # the output ended without a URL

    threading.Thread(target=read_until_url, daemon=True).start()
    deadline = time.monotonic() + timeout
    seen = []
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if line.startswith("Serving "):
            return process, line.split(" at ", 1)[1].split()[0]
    process.kill()
    _, stderr = process.communicate()
    raise AssertionError("the server did not start:\n" + "".join(seen) + stderr)


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


# ----------------------------------------------------------------------------- in-process training runs

SMALL_MODELS = {name: {"type": name, **entry.tiny} for name, entry in MODELS.items()}


def make_config(small_mnist_dir, model="mlp", train=None, model_options=None, data=None):
    return validate_config(
        {
            "model": {**SMALL_MODELS[model], **(model_options or {})},
            "data": {"data_dir": str(small_mnist_dir), "validation_size": 200, **(data or {})},
            "train": {"epochs": 3, "batch_size": 64, "verbose": 0,
                      "schedule": {"name": "cosine", "warmup_epochs": 0.5}, **(train or {})},
        },
        f"test-{model}",
    )


def weights(path):
    return keras.saving.load_model(path, compile=False).get_weights()


class SignalAt(keras.callbacks.Callback):
    """Sends this process `signum` at training step `step` of 0-based `epoch` (None: at epoch end)."""

    def __init__(self, epoch, step=None, signum=signal.SIGINT):
        super().__init__()
        self.epoch, self.step, self.signum = epoch, step, signum
        self._current = -1

    def on_epoch_begin(self, epoch, logs=None):
        self._current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self._current == self.epoch and batch == self.step:
            os.kill(os.getpid(), self.signum)

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch and self.step is None:
            os.kill(os.getpid(), self.signum)


def fresh_run_dir(tmp_path, name):
    run_dir = tmp_path / name
    run_dir.mkdir()
    return run_dir


def interrupted(config, run_dir, callback):
    with pytest.raises(TrainingInterrupted) as caught:
        train_run(config, run_dir, extra_callbacks=[callback])
    return caught.value


def op_determinism_enabled() -> bool:
    from tensorflow.python.framework import config as tf_config  # TensorFlow exports no reader

    return tf_config.is_op_determinism_enabled()
