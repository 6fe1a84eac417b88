"""Fixtures: a pinned device and precision, where the real MNIST files are, and a small real-MNIST subset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The suite runs on the CPU on every machine, its subprocesses included: on a GPU machine `auto`
# would switch to the GPU and mixed_float16 and the bit-exact tests would change meaning.
# MNIST_ZOO_TEST_GPU=1 keeps the GPUs visible (for the GPU checks of a GPU machine).
if os.environ.get("MNIST_ZOO_TEST_GPU") != "1":
    os.environ["CUDA_VISIBLE_DEVICES"] = ""

from tests.helpers import write_mnist_folder

REPO_ROOT = Path(__file__).resolve().parent.parent
# CI and developers have ../shared/data beside the checkout; MNIST_ZOO_TEST_DATA overrides.
SHARED_DATA = Path(os.environ.get("MNIST_ZOO_TEST_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch, tmp_path):
    """No test reads the user's data folder or cache, or downloads anything."""
    monkeypatch.delenv("MNIST_ZOO_DATA_DIR", raising=False)
    monkeypatch.setenv("MNIST_ZOO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MNIST_ZOO_MIRRORS", "http://127.0.0.1:9/{dataset}/")  # port 9: refused


@pytest.fixture(autouse=True)
def _float32_keras_policy():
    """Every test starts in float32 and must leave Keras's global dtype policy as it found it.

    A test (or product code) that leaks another policy would make every model built after it
    in this process compute in that precision: the leak fails the test that caused it.
    """
    import keras

    keras.config.set_dtype_policy("float32")
    yield
    leaked = keras.config.dtype_policy().name
    keras.config.set_dtype_policy("float32")
    if leaked != "float32":
        pytest.fail(f"the test left Keras's global dtype policy at {leaked!r}")


def data_missing(reason: str):
    """Skips the test, except in CI (CI=true), where missing data must fail the run, not pass it."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must run every test")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder holding mnist/ and fashion_mnist/ with the original IDX files."""
    if not (SHARED_DATA / "mnist" / "train-images-idx3-ubyte.gz").is_file():
        data_missing(f"real MNIST files not found under {SHARED_DATA} (set MNIST_ZOO_TEST_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def real_mnist(shared_data):
    from mnist_zoo.data.datasets import load_dataset

    return load_dataset("mnist", str(shared_data))


@pytest.fixture(scope="session")
def small_mnist_dir(real_mnist, tmp_path_factory) -> Path:
    """2,000 real training and 500 real test images as IDX files: enough to learn something fast."""
    folder = tmp_path_factory.mktemp("small_mnist")
    return write_mnist_folder(
        folder,
        real_mnist.train_images[:2000], real_mnist.train_labels[:2000],
        real_mnist.test_images[:500], real_mnist.test_labels[:500],
    )
