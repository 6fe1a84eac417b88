"""The training-step shortcuts: same numbers as Keras, fewer kernels, plain Keras files."""

from __future__ import annotations

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from mnist_zoo.config.loading import validate_config
from mnist_zoo.training.fast_paths import accuracy_from_logits, fuse_adam_update, fuse_batch_norm
from mnist_zoo.training.optimization import make_metrics, make_optimizer
from mnist_zoo.training.stage import train_run


def _data(count=96, seed=0, shape=(20,)):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(count, *shape)).astype("float32"), rng.integers(0, 10, count)


def _model(optimizer, metrics=()):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((20,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=list(metrics))
    return model


def _step_operations(model, x):
    """The operations of one traced training step on batches shaped like `x`."""
    step = tf.function(model.train_step).get_concrete_function(
        (tf.TensorSpec((None, *x.shape[1:]), tf.float32), tf.TensorSpec((None,), tf.int64))
    )
    return step.graph.get_operations()


@pytest.mark.parametrize("make", [
    lambda: keras.optimizers.Adam(0.01),
    lambda: keras.optimizers.Adam(0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-4),
    lambda: keras.optimizers.AdamW(0.01, weight_decay=0.05),
    lambda: keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(0.01, 2, 0.5)),
], ids=["adam", "adam-params", "adamw", "adam-schedule"])
def test_fused_adam_trains_like_keras_adam(make):
    x, y = _data()
    plain, fused = _model(make()), _model(fuse_adam_update(make()))
    for model in (plain, fused):
        model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    for expected, actual in zip(plain.get_weights(), fused.get_weights()):
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-6)
    for expected, actual in zip(plain.optimizer.variables, fused.optimizer.variables):  # iterations, m, v
        np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=1e-4, atol=1e-7)


def test_fused_adam_runs_one_kernel_per_variable():
    x, _ = _data()
    model = _model(fuse_adam_update(keras.optimizers.Adam()))
    operations = _step_operations(model, x)
    assert sum(op.type == "ResourceApplyAdam" for op in operations) == len(model.trainable_variables)
    assert not any(op.type == "AssignSubVariableOp" for op in operations)  # Keras's own variable update


@pytest.mark.parametrize("make", [
    lambda: keras.optimizers.Adam(amsgrad=True), lambda: keras.optimizers.SGD(), lambda: keras.optimizers.Nadam(),
], ids=["amsgrad", "sgd", "nadam"])
def test_other_optimizers_keep_their_own_update(make):
    optimizer = make()
    assert "update_step" not in vars(fuse_adam_update(optimizer))


@pytest.mark.parametrize("one_hot", [False, True])
def test_accuracy_from_logits_matches_keras_accuracy(one_hot):
    spec = validate_config({"model": {"type": "linear"}, "train": {"loss": {"name": "categorical_crossentropy" if one_hot else
                                               "sparse_categorical_crossentropy"}}}, "t").train.loss
    logits = tf.constant(np.random.default_rng(1).normal(size=(64, 10)).astype("float32"))
    labels = np.random.default_rng(2).integers(0, 10, 64)
    y_true = keras.utils.to_categorical(labels, 10) if one_hot else labels
    probabilities = keras.activations.softmax(logits)  # carries its logits, as in a traced step
    plain = (keras.metrics.CategoricalAccuracy() if one_hot else keras.metrics.SparseCategoricalAccuracy())
    plain.update_state(y_true, probabilities)
    fast = make_metrics(spec)[0]
    fast.update_state(y_true, probabilities)
    assert float(fast.result()) == pytest.approx(float(plain.result()))
    assert fast.name == "accuracy"


def _softmax_consumers(model, x):
    softmaxes = [op for op in _step_operations(model, x) if op.type == "Softmax"]
    assert softmaxes, "the model's output layer should still define a softmax"
    return [consumer.type for op in softmaxes for consumer in op.outputs[0].consumers()]


def test_training_step_does_not_compute_the_softmax():
    x, _ = _data()
    plain = _model("adam", [keras.metrics.SparseCategoricalAccuracy()])
    fast = _model("adam", [accuracy_from_logits(keras.metrics.SparseCategoricalAccuracy())])
    assert _softmax_consumers(plain, x)  # Keras's accuracy reads the probabilities
    assert _softmax_consumers(fast, x) == []  # nothing does: TensorFlow prunes it from the step


def _batch_norm_model(normalization=lambda: keras.layers.BatchNormalization(momentum=0.9), optimizer=None):
    """A conv block and a dense block, each followed by `normalization()`, as the zoo's BN models are."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 3))
    x = normalization()(keras.layers.Conv2D(8, 3, activation="relu")(inputs))
    x = normalization()(keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(x)))
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
    # SGD, not Adam: Adam divides by the root of tiny gradients, which turns rounding into visible steps.
    model.compile(optimizer=optimizer or keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    return model


def _images(count=96):
    return _data(count, shape=(12, 12, 3))


@pytest.mark.parametrize("normalization", [
    lambda: keras.layers.BatchNormalization(momentum=0.9),
    lambda: keras.layers.BatchNormalization(momentum=0.8, epsilon=1e-6, center=False),
    lambda: keras.layers.BatchNormalization(scale=False),
    lambda: keras.layers.BatchNormalization(axis=-1, beta_initializer="ones", gamma_initializer="zeros"),
], ids=["momentum", "no-center", "no-scale", "initializers"])
def test_fused_batch_norm_trains_like_keras_batch_norm(normalization):
    """Weights and moving statistics after three epochs: the moving variance is the biased one, as Keras's."""
    x, y = _images()
    plain, fused = _batch_norm_model(normalization), fuse_batch_norm(_batch_norm_model(normalization))
    assert [op.type for op in _step_operations(fused, x)].count("FusedBatchNormV3") == 2
    for model in (plain, fused):
        model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    for expected, actual in zip(plain.weights, fused.weights):
        np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=2e-4, atol=2e-5, err_msg=actual.path)
    np.testing.assert_allclose(fused.predict(x, verbose=0), plain.predict(x, verbose=0), rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16", "mixed_float16"])
def test_fused_batch_norm_steps_like_keras_in_every_precision(policy):
    x, y = _images(32)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        plain, fused = _batch_norm_model(), fuse_batch_norm(_batch_norm_model())
        losses = [float(model.train_on_batch(x, y)) for model in (plain, fused)]
        outputs = [np.asarray(model(x, training=True), "float32") for model in (plain, fused)]
        assert fused.layers[2].compute_dtype == policy.removeprefix("mixed_")
    finally:
        keras.mixed_precision.set_global_policy(previous)
    tolerance = 1e-5 if policy == "float32" else 2e-2  # the outputs are rounded to 8 or 11 bits
    assert losses[1] == pytest.approx(losses[0], rel=tolerance)
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=tolerance, atol=tolerance)


def test_fused_batch_norm_is_one_kernel_per_layer_in_the_training_step():
    x, _ = _images()
    plain, fused = _batch_norm_model(), fuse_batch_norm(_batch_norm_model())
    step = {name: [op.type for op in _step_operations(model, x)] for name, model in (("plain", plain), ("fused", fused))}
    assert step["plain"].count("FusedBatchNormV3") == 0 and "SquaredDifference" in step["plain"]
    assert step["fused"].count("FusedBatchNormV3") == 2 and step["fused"].count("FusedBatchNormGradV3") == 2
    assert "SquaredDifference" not in step["fused"]  # Keras's tf.nn.moments is gone


def test_fused_batch_norm_leaves_inference_and_other_layers_to_keras():
    x, y = _images()
    plain, fused = _batch_norm_model(), fuse_batch_norm(_batch_norm_model())
    np.testing.assert_array_equal(fused.predict(x, verbose=0), plain.predict(x, verbose=0))  # Keras's own code
    special = [keras.layers.BatchNormalization(renorm=True), keras.layers.BatchNormalization(synchronized=True)]
    model = keras.Sequential([keras.Input((4,)), *special, keras.layers.Dense(2)])
    fuse_batch_norm(model)
    assert all("call" not in vars(layer) for layer in special)
    once = fuse_batch_norm(_batch_norm_model())
    calls = [layer.call for layer in once.layers if isinstance(layer, keras.layers.BatchNormalization)]
    fuse_batch_norm(once)  # a second compile must not wrap the wrapper
    assert [layer.call for layer in once.layers if isinstance(layer, keras.layers.BatchNormalization)] == calls


def test_make_optimizer_fuses_adam():
    spec = validate_config({"model": {"type": "linear"}, "train": {"optimizer": {"name": "adam"}}}, "t").train.optimizer
    optimizer = make_optimizer(spec, 0.001)
    assert type(optimizer) is keras.optimizers.Adam and "update_step" in vars(optimizer)


def test_saved_models_load_compiled_in_plain_keras(tmp_path, small_mnist_dir):
    """A user's plain Keras script (no mnist_zoo import) loads best.keras with its compile state."""
    config = validate_config({
        "model": {"type": "mlp", "hidden_units": [16], "batch_norm": True},  # fused in training
        "data": {"data_dir": str(small_mnist_dir), "validation_size": 100},
        "train": {"epochs": 1, "batch_size": 32, "verbose": 0, "optimizer": {"name": "adam"},
                  "loss": {"name": "categorical_crossentropy"}},
    }, "t")
    train_run(config, tmp_path / "run")
    script = (
        "import json, sys, keras, numpy as np\n"
        "model = keras.saving.load_model(sys.argv[1])\n"
        "loss, accuracy = model.evaluate(np.zeros((4, 28, 28, 1), 'float32'), np.eye(10, dtype='float32')[[0, 1, 2, 3]], verbose=0)\n"
        "print(json.dumps({'optimizer': type(model.optimizer).__name__, 'modules': sorted(m for m in sys.modules"
        " if m.startswith('mnist_zoo')), 'accuracy': accuracy}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "run" / "best.keras")],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["optimizer"] == "Adam" and loaded["modules"] == []
    assert 0.0 <= loaded["accuracy"] <= 1.0


# ----------------------------------------------------------------------------- the switch and the fallback


def test_this_keras_has_every_internal_the_fast_paths_need():
    from mnist_zoo.training.fast_paths import missing_internals

    assert missing_internals() == ()


def _small_run(tmp_path, small_mnist_dir, name, fast_paths=True, report=lambda message: None):
    config = validate_config({
        "model": {"type": "mlp", "hidden_units": [32]},
        "data": {"data_dir": str(small_mnist_dir), "validation_size": 200},
        "train": {"epochs": 2, "batch_size": 64, "verbose": 0, "precision": "float32", "fast_paths": fast_paths},
    }, "t")
    run_dir = tmp_path / name
    run_dir.mkdir()
    train_run(config, run_dir, report=report)
    return json.loads((run_dir / "history.json").read_text())["epochs"]


def test_a_keras_without_the_internals_trains_plain_keras_with_one_warning(tmp_path, small_mnist_dir, monkeypatch):
    import mnist_zoo.training.fast_paths as fast_paths

    fast = _small_run(tmp_path, small_mnist_dir, "fast")
    plain = _small_run(tmp_path, small_mnist_dir, "plain", fast_paths=False)
    monkeypatch.setattr(fast_paths, "missing_internals", lambda: ("Adam._momentums",))
    used = []
    monkeypatch.setattr(fast_paths, "fuse_adam_update", lambda optimizer: used.append("fused") or optimizer)
    messages = []
    fallback = _small_run(tmp_path, small_mnist_dir, "fallback", report=messages.append)
    warnings = [message for message in messages if message.startswith("warning:")]
    assert len(warnings) == 1 and "Adam._momentums" in warnings[0] and "plain Keras" in warnings[0]
    assert not used  # no fast path was installed
    strip = lambda records: [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in records]  # noqa: E731
    assert strip(fallback) == strip(plain)  # exactly what fast_paths: false does
    for with_paths, without in zip(fast, plain):  # and the same numbers as the fast paths, to rounding
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert without[key] == pytest.approx(with_paths[key], rel=1e-3, abs=1e-3), key


def test_fast_paths_false_compiles_plain_keras_objects(small_mnist_dir):
    from mnist_zoo.models.registry import build_model
    from mnist_zoo.training.stage import compile_model

    config = validate_config({"model": {"type": "mlp", "hidden_units": [8], "batch_norm": True},
                              "train": {"fast_paths": False, "loss": "sparse_categorical_crossentropy"}}, "t")
    model = build_model(config.model)
    compile_model(model, config, steps_per_epoch=4)
    operations = _step_operations(model, np.zeros((2, 28, 28, 1), np.float32))
    assert not any(op.type in ("ResourceApplyAdam", "FusedBatchNormV3") for op in operations)
    assert "update_step" not in vars(model.optimizer)
    assert not any("call" in vars(layer) for layer in model.layers)


def test_fast_paths_compile_fused_batch_norm(small_mnist_dir):
    from mnist_zoo.models.registry import build_model
    from mnist_zoo.training.stage import compile_model

    config = validate_config({"model": {"type": "cnn", "batch_norm": True}, "train": {"loss": "sparse_categorical_crossentropy"}}, "t")
    model = build_model(config.model)
    compile_model(model, config, steps_per_epoch=4)
    normalizations = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    operations = [op.type for op in _step_operations(model, np.zeros((2, 28, 28, 1), np.float32))]
    assert normalizations and operations.count("FusedBatchNormV3") == len(normalizations)
