"""Precision belongs to the run: scoped, recorded, kept on resume; mixed_float16 forced on the CPU."""

from __future__ import annotations

import json
import random

import keras
import numpy as np
import pytest

from mnist_zoo.runtime import precision as precision_module
from mnist_zoo.runtime.device import DeviceInfo
from mnist_zoo.errors import RunDirError
from mnist_zoo.data.batches import EpochShuffledDataset
from mnist_zoo.runtime.precision import is_native, resolve_precision
from mnist_zoo.models.registry import build_model
from mnist_zoo.training.stage import run_precision, train_run
from tests.helpers import SignalAt, fresh_run_dir, history_without_times, interrupted, make_config, weights

CPU = DeviceInfo("CPU (test)")


def test_training_leaves_no_precision_or_random_state_behind(tmp_path, small_mnist_dir):
    config = make_config(small_mnist_dir, "mlp", {"precision": "mixed_bfloat16", "epochs": 1})
    random.seed(123)
    np.random.seed(123)
    expected_python, expected_numpy = random.Random(123).random(), np.random.RandomState(123).random_sample()
    train_run(config, fresh_run_dir(tmp_path, "run"))
    # The user's own random streams go on where they were, not from the run's seed (checked
    # first: building a Keras model draws its default seeds from Python's `random`).
    assert random.random() == expected_python
    assert np.random.random_sample() == expected_numpy
    assert keras.config.dtype_policy().name == "float32"
    model = build_model(config.model)
    assert all(layer.compute_dtype == "float32" for layer in model.layers)


def test_a_failed_run_restores_the_precision_too(tmp_path, small_mnist_dir, monkeypatch):
    import mnist_zoo.training.stage as training

    def broken_fit(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(training, "fit", broken_fit)
    with pytest.raises(RuntimeError, match="boom"):
        train_run(make_config(small_mnist_dir, "linear", {"precision": "mixed_bfloat16"}), fresh_run_dir(tmp_path, "r"))
    assert keras.config.dtype_policy().name == "float32"


@pytest.mark.parametrize("recorded", ["float32", "mixed_bfloat16", "mixed_float16"])
def test_a_recorded_precision_wins_over_auto_and_the_machine(recorded):
    gpu = DeviceInfo("GPU:0 (test)", is_gpu=True, compute_capability=(8, 0))
    assert resolve_precision("auto", gpu, recorded=recorded) == recorded
    assert resolve_precision("auto", CPU, 10**7, recorded=recorded) == recorded


def test_native_precisions():
    assert is_native("float32", CPU, flags=set())
    assert is_native("mixed_bfloat16", CPU, flags={"avx512_bf16"})
    assert not is_native("mixed_bfloat16", CPU, flags={"avx2"})
    assert not is_native("mixed_float16", CPU, flags={"avx512_bf16"})
    assert is_native("mixed_float16", DeviceInfo("GPU", is_gpu=True, compute_capability=(7, 5)))


def test_auto_on_a_bf16_cpu_counts_the_model(small_mnist_dir, monkeypatch):
    monkeypatch.setattr(precision_module, "cpu_flags", lambda: {"avx512_bf16"})
    small = make_config(small_mnist_dir, "mlp")
    assert run_precision(small, CPU, None) == "float32"
    from mnist_zoo.config.loading import bundled_config_path, load_config

    assert run_precision(load_config(bundled_config_path("cnn")), CPU, None) == "mixed_bfloat16"
    monkeypatch.setattr(precision_module, "cpu_flags", lambda: {"avx2"})
    assert run_precision(load_config(bundled_config_path("cnn")), CPU, None) == "float32"


def test_resume_keeps_the_precision_the_run_started_with(tmp_path, small_mnist_dir, monkeypatch):
    # Started where `auto` chose float32, resumed on a machine where it would choose bf16.
    config = make_config(small_mnist_dir, "cnn")
    run_dir = fresh_run_dir(tmp_path, "run")
    monkeypatch.setattr(precision_module, "cpu_flags", lambda: {"avx2"})
    interrupted(config, run_dir, SignalAt(epoch=0))
    assert json.loads((run_dir / "environment.json").read_text())["precision"] == "float32"
    monkeypatch.setattr(precision_module, "cpu_flags", lambda: {"avx512_bf16", "amx_bf16"})
    monkeypatch.setattr(precision_module, "BF16_MIN_MACS_PER_IMAGE", 0)  # even this small CNN
    messages = []
    metrics = train_run(config, run_dir, report=messages.append, resume=True).metrics
    assert metrics["precision"] == "float32"
    assert "device: CPU" in messages[0] and "precision: float32" in messages[0]

    unbroken = fresh_run_dir(tmp_path, "unbroken")
    monkeypatch.setattr(precision_module, "cpu_flags", lambda: {"avx2"})
    train_run(config, unbroken)
    assert history_without_times(run_dir) == history_without_times(unbroken)


def test_resume_on_a_cpu_without_the_runs_precision_continues_with_a_warning(tmp_path, small_mnist_dir,
                                                                            monkeypatch):
    # docs/commands.md (Precision and device belong to the run): "Where the new device has no native
    # arithmetic for it (bf16 on an AVX2 CPU, ...) the run still continues, with a warning that
    # steps will be several times slower." Started where `auto` picks bf16, resumed with
    # `mnist-zoo train --resume` on an AVX2 CPU: the user reads the warning on stderr.
    from click.testing import CliRunner

    from mnist_zoo.cli import cli

    config = make_config(small_mnist_dir, "linear", {"epochs": 2})
    run_dir = fresh_run_dir(tmp_path, "run")
    monkeypatch.setattr(precision_module, "cpu_flags", lambda: {"avx2", "avx512_bf16"})
    monkeypatch.setattr(precision_module, "BF16_MIN_MACS_PER_IMAGE", 0)  # even the linear model
    interrupted(config, run_dir, SignalAt(epoch=0))
    assert json.loads((run_dir / "environment.json").read_text())["precision"] == "mixed_bfloat16"

    monkeypatch.setattr(precision_module, "cpu_flags", lambda: {"avx2"})
    result = CliRunner().invoke(cli, ["train", "--resume", str(run_dir), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    stderr = result.stderr.splitlines()
    device_line = next(line for line in stderr if line.startswith("device: "))
    device, precision = device_line.removeprefix("device: ").rsplit(", precision: ", 1)
    assert precision == "mixed_bfloat16"
    assert f"warning: {device} has no native bfloat16 arithmetic; the run started in it and keeps it, " \
           "expect several times slower steps" in stderr, result.stderr
    assert "resuming after epoch 1 of 2" in stderr
    assert json.loads((run_dir / "metrics.json").read_text())["precision"] == "mixed_bfloat16"


def test_optimizer_state_that_does_not_fit_is_an_error_not_a_warning(tmp_path, small_mnist_dir):
    # A mixed_float16 run's optimizer is loss-scaled (more variables); resuming it in float32
    # would restart Adam's moments and the step count with only a Keras warning.
    config = make_config(small_mnist_dir, "mlp", {"precision": "mixed_float16"})
    run_dir = fresh_run_dir(tmp_path, "run")
    interrupted(config, run_dir, SignalAt(epoch=0))
    environment = json.loads((run_dir / "environment.json").read_text())
    environment["precision"] = "float32"
    (run_dir / "environment.json").write_text(json.dumps(environment))
    with pytest.raises(RunDirError, match="saved optimizer state does not fit"):
        train_run(config, run_dir, resume=True)


# ----------------------------------------------------------------------------- mixed_float16 on the CPU


def test_mixed_float16_trains_with_loss_scaling_and_the_fused_adam(tmp_path, small_mnist_dir):
    from mnist_zoo.runtime.precision import precision_scope
    from mnist_zoo.training.stage import compile_model

    config = make_config(small_mnist_dir, "mlp", {"precision": "mixed_float16", "epochs": 2})
    with precision_scope("mixed_float16"):
        model = build_model(config.model)
        compile_model(model, config, steps_per_epoch=10)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert "update_step" in vars(model.optimizer.inner_optimizer)  # the fused ResourceApplyAdam
    assert model.get_layer("dense_1").compute_dtype == "float16"

    metrics = train_run(config, fresh_run_dir(tmp_path, "run")).metrics
    float32 = make_config(small_mnist_dir, "mlp", {"precision": "float32", "epochs": 2})
    reference = train_run(float32, fresh_run_dir(tmp_path, "float32")).metrics
    assert metrics["precision"] == "mixed_float16"
    assert metrics["test_accuracy"] > reference["test_accuracy"] - 0.03


def test_mixed_float16_resumes_exactly(tmp_path, small_mnist_dir):
    config = make_config(small_mnist_dir, "mlp", {"precision": "mixed_float16"})
    unbroken = fresh_run_dir(tmp_path, "unbroken")
    train_run(config, unbroken)
    run_dir = fresh_run_dir(tmp_path, "run")
    interrupted(config, run_dir, SignalAt(epoch=1, step=3))
    train_run(config, run_dir, resume=True)
    assert history_without_times(run_dir) == history_without_times(unbroken)
    for ours, theirs in zip(weights(run_dir / "last.keras"), weights(unbroken / "last.keras")):
        np.testing.assert_array_equal(ours, theirs)


# ----------------------------------------------------------------------------- device paths


def test_training_compiles_without_xla_on_every_device(small_mnist_dir):
    from mnist_zoo.training.stage import compile_model

    config = make_config(small_mnist_dir, "linear")
    model = build_model(config.model)
    compile_model(model, config, steps_per_epoch=10)
    assert model.jit_compile is False


def test_the_uint8_table_and_its_gathers_live_on_the_host():
    import tensorflow as tf

    images = np.zeros((10, 28, 28), np.uint8)
    data = EpochShuffledDataset(images, np.zeros(10, np.uint8), 4, one_hot=False)
    assert "CPU" in data._images.device
    graph = tf.function(data.batch_for).get_concrete_function(tf.TensorSpec((None,), tf.int64)).graph
    gathers = [op for op in graph.get_operations() if op.type == "GatherV2"]
    assert len(gathers) == 2 and all("CPU:0" in op.device for op in gathers)


def test_cpuinfo_fields_match_the_whole_key(tmp_path, monkeypatch):
    """"model" is the model number, not the "model name" line that starts with the same word."""
    from mnist_zoo.runtime import device

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC\ncpu family\t: 26\nmodel\t\t: 2\n"
                       "flags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\nmodel\t\t: 3\n")
    monkeypatch.setattr(device, "Path", lambda path: cpuinfo if path == "/proc/cpuinfo" else path)
    assert [device.cpuinfo_field(key) for key in ("cpu family", "model", "model name")] == ["26", "2", "AMD EPYC"]
    assert device.cpu_name() == "AMD EPYC" and device.cpuinfo_field("stepping") is None
    assert precision_module.cpu_flags() == {"fpu", "avx2", "avx512_bf16"}
