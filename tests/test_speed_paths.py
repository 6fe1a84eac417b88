"""The fast paths are correct: precision choice, bf16 training, the traced predictor."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import keras
import numpy as np
import pytest

from mnist_zoo.config.loading import bundled_config_path, load_config, validate_config
from mnist_zoo.inference.predictor import Predictor
from mnist_zoo.runtime.precision import auto_precision, precision_scope
from mnist_zoo.models.registry import build_model
from mnist_zoo.training.stage import train_run


@pytest.mark.parametrize(
    "on_gpu, capability, flags, expected",
    [
        (True, (8, 0), set(), "mixed_float16"),
        (True, (7, 0), set(), "mixed_float16"),
        (True, (6, 1), set(), "float32"),  # Pascal: no tensor cores
        (False, None, {"avx2", "avx512f", "avx512_bf16"}, "mixed_bfloat16"),
        (False, None, {"amx_bf16"}, "mixed_bfloat16"),
        (False, None, {"avx2", "fma"}, "float32"),
    ],
)
def test_auto_precision(on_gpu, capability, flags, expected):
    assert auto_precision(on_gpu, capability, flags) == expected


@pytest.mark.parametrize("macs, expected", [(None, "mixed_bfloat16"), (4_796_416, "mixed_bfloat16"),
                                            (689_304, "float32"), (217_728, "float32")])
def test_auto_keeps_small_models_in_float32_on_bf16_cpus(macs, expected):
    assert auto_precision(False, None, {"avx512_bf16"}, macs_per_image=macs) == expected
    assert auto_precision(False, None, {"avx2"}, macs_per_image=macs) == "float32"


def test_explicit_precision_is_applied_inside_its_scope():
    with precision_scope("mixed_bfloat16"):
        model = build_model(validate_config({"model": {"type": "mlp", "hidden_units": [8]}}, "t").model)
    assert model.get_layer("dense_1").compute_dtype == "bfloat16"
    assert model.get_layer("output").compute_dtype == "float32"  # a stable loss
    assert model(np.zeros((1, 28, 28, 1), np.float32)).dtype == "float32"


def _train_small_cnn(tmp_path, small_mnist_dir, precision: str) -> dict:
    config = validate_config({
        "model": {"type": "cnn", "conv_layers": [{"filters": 8}, {"filters": 16}], "hidden_units": [64],
                  "dropout_rate": 0.0},
        "data": {"data_dir": str(small_mnist_dir), "validation_size": 200},
        "train": {"epochs": 3, "batch_size": 32, "precision": precision, "verbose": 0,
                  "optimizer": {"name": "adam", "learning_rate": 0.003}},
    }, "t")
    run_dir = tmp_path / precision
    run_dir.mkdir()
    metrics = train_run(config, run_dir).metrics
    assert json.loads((run_dir / "environment.json").read_text())["precision"] == precision
    return metrics


def test_bf16_training_learns_as_well_as_float32(tmp_path, small_mnist_dir):
    bf16 = _train_small_cnn(tmp_path, small_mnist_dir, "mixed_bfloat16")
    float32 = _train_small_cnn(tmp_path, small_mnist_dir, "float32")
    assert bf16["precision"] == "mixed_bfloat16" and float32["precision"] == "float32"
    assert float32["test_accuracy"] > 0.85
    assert bf16["test_accuracy"] > float32["test_accuracy"] - 0.03


def test_steps_per_execution_does_not_change_the_result(tmp_path, small_mnist_dir):
    histories = []
    for steps in (1, 8):
        config = validate_config({
            "model": {"type": "linear"},
            "data": {"data_dir": str(small_mnist_dir), "validation_size": 200},
            "train": {"epochs": 2, "steps_per_execution": steps, "verbose": 0},
        }, "t")
        (tmp_path / str(steps)).mkdir()
        train_run(config, tmp_path / str(steps))
        histories.append(json.loads((tmp_path / str(steps) / "history.json").read_text())["epochs"])
    # docs/benchmarks.md (Performance): "identical results", and so they are: the same steps in the same order.
    for one, eight in zip(*histories):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert eight[key] == one[key], key


@pytest.mark.parametrize("input_shape", [(784,), (28, 28), (28, 28, 1)])
def test_predictor_matches_keras_predict_and_evaluate(real_mnist, input_shape):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape=input_shape), keras.layers.Flatten(),
                              keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10, activation="softmax")])
    images, labels = real_mnist.test_images[:3000], real_mnist.test_labels[:3000]
    inputs = (images.astype(np.float32) / 255).reshape((-1, *input_shape))
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(inputs, labels, epochs=1, verbose=0)
    probabilities = Predictor(model, batch_size=512).probabilities(images)
    assert np.allclose(probabilities, model.predict(inputs, verbose=0), atol=1e-5)
    loss, accuracy = model.evaluate(inputs, labels, verbose=0)
    assert (probabilities.argmax(axis=1) == labels).mean() == pytest.approx(accuracy, abs=1e-6)
    picked = probabilities[np.arange(len(labels)), labels]
    assert -np.log(picked).mean() == pytest.approx(loss, rel=1e-4)
    single = Predictor(model).probabilities(images[:1])
    assert single.shape == (1, 10) and np.allclose(single, probabilities[:1], atol=1e-5)


def test_default_cnn_config_uses_auto_precision():
    assert load_config(bundled_config_path("cnn")).train.precision == "auto"


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="[x86] oneDNN kernels are an x86 build option")
@pytest.mark.parametrize("setting, expected", [(None, "True"), ("0", "False"), ("1", "True")])
@pytest.mark.slow  # a process per setting
def test_onednn_kernels_are_on_unless_the_user_turns_them_off(setting, expected):
    # A fresh process: the switch only works before TensorFlow is imported.
    env = {key: value for key, value in os.environ.items() if key != "TF_ENABLE_ONEDNN_OPTS"}
    if setting is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = setting
    code = "import mnist_zoo.runtime.environment as e; print(e.onednn_enabled())"
    result = subprocess.run([sys.executable, "-c", code], env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == expected
