"""The train stage with every optimizer, loss and schedule, on a small real-MNIST subset."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mnist_zoo.config.loading import validate_config
from mnist_zoo.config.run import LossSpec, OptimizerSpec
from mnist_zoo.training.stage import train_run


def run(tmp_path, small_mnist_dir, train=None, model=None, data=None):
    config = validate_config(
        {
            "model": model or {"type": "mlp", "hidden_units": [32]},
            "data": {"data_dir": str(small_mnist_dir), "validation_size": 200, **(data or {})},
            "train": {"epochs": 2, "batch_size": 64, "verbose": 0, **(train or {})},
        },
        "test",
    )
    run_dir = tmp_path / "run"
    run_dir.mkdir(parents=True)
    result = train_run(config, run_dir)
    history = json.loads((run_dir / "history.json").read_text())["epochs"]
    return result.metrics, history


@pytest.mark.parametrize("optimizer", sorted(OptimizerSpec.KINDS))
def test_every_optimizer_learns(tmp_path, small_mnist_dir, optimizer):
    # Adagrad/Adadelta need larger steps than Keras's default to move in two short epochs.
    learning_rate = {"adadelta": 1.0, "adagrad": 0.05, "sgd": 0.1}.get(optimizer, 0.002)
    metrics, _ = run(tmp_path, small_mnist_dir, {"optimizer": {"name": optimizer, "learning_rate": learning_rate}})
    assert metrics["test_accuracy"] > 0.6, metrics


@pytest.mark.parametrize("loss", sorted(LossSpec.KINDS))
def test_every_loss_learns(tmp_path, small_mnist_dir, loss):
    metrics, history = run(tmp_path, small_mnist_dir, {"loss": loss, "optimizer": {"name": "adam", "learning_rate": 0.003}})
    assert metrics["test_accuracy"] > 0.6, metrics
    assert history[-1]["loss"] < history[0]["loss"]


def test_logits_output_with_label_smoothing(tmp_path, small_mnist_dir):
    metrics, _ = run(
        tmp_path, small_mnist_dir,
        {"loss": {"name": "categorical_crossentropy", "label_smoothing": 0.1}},
        model={"type": "mlp", "hidden_units": [32], "output_activation": "linear"},
    )
    assert metrics["test_accuracy"] > 0.7


def _learning_rates(tmp_path, small_mnist_dir, schedule, epochs=4):
    _, history = run(tmp_path, small_mnist_dir, {
        "epochs": epochs, "schedule": schedule, "optimizer": {"name": "sgd", "learning_rate": 0.1},
    })
    return [record["learning_rate"] for record in history]


def test_constant_and_step_schedules(tmp_path, small_mnist_dir):
    assert _learning_rates(tmp_path / "a", small_mnist_dir, "constant") == pytest.approx([0.1] * 4)
    stepped = _learning_rates(tmp_path / "b", small_mnist_dir, {"name": "step", "step_epochs": 2, "factor": 0.5})
    # Read after each epoch: epoch 2 has just crossed the first step, epoch 4 the second.
    assert stepped == pytest.approx([0.1, 0.05, 0.05, 0.025])


def test_exponential_schedule_decays_per_epoch(tmp_path, small_mnist_dir):
    rates = _learning_rates(tmp_path, small_mnist_dir, {"name": "exponential", "decay_rate": 0.5})
    assert rates == pytest.approx([0.05, 0.025, 0.0125, 0.00625], rel=1e-4)


def test_cosine_and_one_cycle_schedules(tmp_path, small_mnist_dir):
    cosine = _learning_rates(tmp_path / "a", small_mnist_dir, {"name": "cosine", "alpha": 0.0})
    assert cosine[0] < 0.1 and all(a > b for a, b in zip(cosine, cosine[1:])) and cosine[-1] == pytest.approx(0, abs=1e-6)
    one_cycle = _learning_rates(
        tmp_path / "b", small_mnist_dir, {"name": "one_cycle", "warmup_fraction": 0.5, "final_fraction": 0.01}
    )
    # Up to the peak at half-way, then down to 1 % of it.
    assert one_cycle[0] < one_cycle[1] and one_cycle[1] == pytest.approx(0.1, rel=1e-3)
    assert one_cycle[2] < one_cycle[1] and one_cycle[3] == pytest.approx(0.001, rel=1e-3)


def test_early_stopping_stops(tmp_path, small_mnist_dir):
    # A learning rate this small cannot improve validation accuracy by 0.5 points per epoch.
    metrics, history = run(tmp_path, small_mnist_dir, {
        "epochs": 20, "optimizer": {"name": "sgd", "learning_rate": 1e-6},
        "early_stopping": {"enabled": True, "patience": 2, "min_delta": 0.005},
    })
    assert len(history) == 3 and metrics["epochs_completed"] == 3


def test_a_time_limit_stops_mid_epoch_and_keeps_the_cut_epoch_validated(tmp_path, small_mnist_dir):
    # Batch 1: 1,800 steps per epoch, which take 1.35 s on the fastest CPU here (a Zen 5 EPYC; 1.5 s
    # with its validation), so a budget of 0.5 s ends in the first epoch.
    limit = 0.5
    metrics, history = run(tmp_path, small_mnist_dir, {"epochs": 50, "batch_size": 1, "time_limit_seconds": limit})
    assert len(history) == 1 and metrics["stopped_by_time_limit"] and metrics["epochs_completed"] == 1
    cut = history[0]
    assert 0 < cut["epoch_fraction"] < 1 and "val_accuracy" in cut
    assert limit <= metrics["train_seconds"] < 30
    # Per epoch means per whole epoch's steps: the cut epoch's training time over the share that ran, plus
    # its validation once; and the epochs run say how much of one ran.
    training = cut["epoch_seconds"] - cut["validation_seconds"]
    assert 0 < cut["validation_seconds"] < cut["epoch_seconds"]
    assert metrics["seconds_per_epoch"] == pytest.approx(training / cut["epoch_fraction"] + cut["validation_seconds"])
    assert metrics["epochs_run"] == pytest.approx(cut["epoch_fraction"])
    # best.keras is the cut epoch, and it was scored.
    assert metrics["best_epoch"] == 1 and 0 <= metrics["test_accuracy"] <= 1 and metrics["test_examples"] == 500


def test_a_time_limit_spent_by_whole_epochs_starts_no_other(tmp_path, small_mnist_dir):
    metrics, history = run(tmp_path, small_mnist_dir, {"epochs": 500, "batch_size": 256, "time_limit_seconds": 2.0})
    assert metrics["stopped_by_time_limit"] and len(history) < 500
    # Only the last epoch may be cut, and it began with budget left: none starts once the budget is spent.
    assert all(record["epoch_fraction"] == 1.0 for record in history[:-1])
    assert sum(record["epoch_seconds"] for record in history[:-1]) < 2.0 <= metrics["train_seconds"] + 0.5
    assert history[-1]["epoch_fraction"] > 0


def test_a_time_limit_longer_than_the_run_changes_nothing_but_the_record(tmp_path, small_mnist_dir):
    metrics, history = run(tmp_path, small_mnist_dir, {"time_limit_seconds": 600})
    assert len(history) == 2 and [record["epoch_fraction"] for record in history] == [1.0, 1.0]
    assert not metrics["stopped_by_time_limit"]
    assert metrics["seconds_per_epoch"] == pytest.approx(metrics["train_seconds"] / 2)


def test_same_seed_same_history_different_seed_differs(tmp_path, small_mnist_dir):
    _, first = run(tmp_path / "a", small_mnist_dir, {"seed": 5})
    _, second = run(tmp_path / "b", small_mnist_dir, {"seed": 5})
    _, third = run(tmp_path / "c", small_mnist_dir, {"seed": 6})
    strip = lambda records: [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in records]  # noqa: E731
    assert strip(first) == strip(second)
    assert strip(first) != strip(third)


def test_best_checkpoint_is_the_best_validation_epoch(tmp_path, small_mnist_dir):
    metrics, history = run(tmp_path, small_mnist_dir, {"epochs": 3})
    best = max(range(len(history)), key=lambda i: history[i]["val_accuracy"])
    assert metrics["best_epoch"] == best + 1
    assert metrics["best_val_accuracy"] == pytest.approx(history[best]["val_accuracy"])


def test_best_keras_scores_the_best_validation_accuracy_of_the_history(tmp_path, small_mnist_dir):
    import keras

    from mnist_zoo.data.datasets import load_dataset, split_dataset
    from mnist_zoo.inference.modelfile import load_classifier
    from mnist_zoo.inference.predictor import Predictor

    class RuinTheLastEpoch(keras.callbacks.Callback):
        """A learning rate of 5 in the last epoch: its validation accuracy is surely not the best."""

        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                self.model.optimizer.learning_rate.assign(5.0)

    config = validate_config({
        "model": {"type": "mlp", "hidden_units": [32]},
        "data": {"data_dir": str(small_mnist_dir), "validation_size": 200},
        "train": {"epochs": 3, "batch_size": 64, "verbose": 0, "precision": "float32",
                  "optimizer": {"name": "adam", "learning_rate": 0.003}},
    }, "test")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    metrics = train_run(config, run_dir, extra_callbacks=[RuinTheLastEpoch()]).metrics
    history = json.loads((run_dir / "history.json").read_text())["epochs"]
    assert metrics["best_epoch"] < 3 and history[2]["val_accuracy"] < max(r["val_accuracy"] for r in history)

    splits = split_dataset(load_dataset("mnist", str(small_mnist_dir)), 200, config.train.seed)

    def val_accuracy(path):
        predicted = Predictor(load_classifier(path)).probabilities(splits.val_images).argmax(axis=1)
        return float((predicted == splits.val_labels).mean())

    assert val_accuracy(run_dir / "best.keras") == pytest.approx(max(r["val_accuracy"] for r in history), abs=1e-6)
    assert val_accuracy(run_dir / "last.keras") == pytest.approx(history[2]["val_accuracy"], abs=1e-6)


def test_fashion_mnist_trains(tmp_path, fashion_data):
    metrics, _ = run(tmp_path, fashion_data, {"epochs": 1}, data={"dataset": "fashion_mnist", "train_limit": 3000, "test_limit": 1000})
    assert metrics["dataset"] == "fashion_mnist" and metrics["test_accuracy"] > 0.6


def test_no_validation_set_checkpoints_on_training_accuracy(tmp_path, small_mnist_dir):
    metrics, history = run(tmp_path, small_mnist_dir, data={"validation_size": 0})
    assert "val_accuracy" not in history[0] and "best_accuracy" in metrics
    assert not math.isnan(metrics["test_accuracy"]) and np.isfinite(metrics["test_loss"])
