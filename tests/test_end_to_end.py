"""End to end on the full real MNIST files: training must reach a meaningful accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mnist_zoo.cli import cli

pytestmark = pytest.mark.slow  # trains on all 55,000 training images

# The content hash of the original MNIST arrays, identical for the IDX files and mnist.npz.
MNIST_ARRAYS_SHA256 = "06b0d1f124c4e5fa796686ade41a9b778edacc8622f2195a352ef479ad44fc16"


def train_on_full_mnist(model: str, epochs: int, data_dir: Path, output_dir: Path) -> Path:
    """Runs `mnist-zoo train` on all 55,000 training images; returns the run directory."""
    result = CliRunner().invoke(
        cli,
        ["train", "--model", model, "--epochs", str(epochs), "--data-dir", str(data_dir),
         "--output-dir", str(output_dir), "--set", "train.verbose=2"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return Path(result.output.strip().splitlines()[-1])


def test_linear_on_full_mnist_reaches_ninety_percent(mnist_data, tmp_path):
    # Softmax regression, 2 epochs: a few seconds on 2 cores.
    run_dir = train_on_full_mnist("linear", 2, mnist_data, tmp_path)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test_examples"] == 10000
    assert metrics["test_accuracy"] >= 0.90
    environment = json.loads((run_dir / "environment.json").read_text())
    assert environment["dataset_sha256"] == MNIST_ARRAYS_SHA256


def test_mlp_two_epochs_on_full_mnist(mnist_data, tmp_path):
    # Measured 96.26 % with seed 42; 95 % leaves room for other CPUs' rounding.
    run_dir = train_on_full_mnist("mlp", 2, mnist_data, tmp_path)
    assert json.loads((run_dir / "metrics.json").read_text())["test_accuracy"] >= 0.95
