"""The training stage: data -> model -> fit -> test report, written into a run directory."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mnist_zoo import rundir
from mnist_zoo.config import RunConfig, config_to_yaml
from mnist_zoo.datasets import Splits, load_dataset, split_dataset


@dataclass(frozen=True)
class TrainResult:
    """What a finished run produced."""

    run_dir: Path
    metrics: dict


def compile_model(model, config: RunConfig, steps_per_epoch: int) -> None:
    """Compiles `model` with the optimizer, schedule, loss and accuracy metric of `config`."""
    from mnist_zoo.optimization import make_learning_rate, make_loss, make_metrics, make_optimizer

    train = config.train
    learning_rate = make_learning_rate(
        train.optimizer.learning_rate, train.schedule, steps_per_epoch, train.epochs
    )
    model.compile(
        optimizer=make_optimizer(train.optimizer, learning_rate),
        loss=make_loss(train.loss, config.model.output_activation),
        metrics=make_metrics(train.loss),
        steps_per_execution=train.steps_per_execution,
    )


def make_callbacks(recorder, checkpoint, config: RunConfig, extra_callbacks=()) -> list:
    """The run's recorder and checkpoint, the caller's callbacks, and early stopping if enabled."""
    import keras

    callbacks = [recorder, checkpoint, *extra_callbacks]
    stopping = config.train.early_stopping
    if stopping.enabled:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=stopping.monitor,
                patience=stopping.patience,
                min_delta=stopping.min_delta,
                mode="max" if stopping.monitor.endswith("accuracy") else "min",
                restore_best_weights=stopping.restore_best_weights,
            )
        )
    return callbacks


def keras_verbosity(setting) -> int:
    """Keras `verbose`: a live progress bar on a terminal, one line per epoch in logs."""
    if setting == "auto":
        return 1 if sys.stdout.isatty() else 2
    return int(setting)


@dataclass(frozen=True)
class FitResult:
    """What `fit` observed: per-epoch records, the best checkpoint, wall-clock seconds."""

    history: list[dict]
    checkpoint: object  # mnist_zoo.callbacks.BestCheckpoint
    seconds: float


def fit(model, config: RunConfig, splits: Splits, run_dir: Path, extra_callbacks=()) -> FitResult:
    """Runs `model.fit`, recording history.json/csv and best.keras in `run_dir`."""
    from mnist_zoo.callbacks import BestCheckpoint, HistoryRecorder
    from mnist_zoo.pipeline import make_dataset

    train, one_hot = config.train, config.train.loss.one_hot_labels
    train_data = make_dataset(
        splits.train_images, splits.train_labels, train.batch_size, one_hot, shuffle=train.shuffle, seed=train.seed
    )
    has_validation = len(splits.val_images) > 0
    val_data = (
        make_dataset(splits.val_images, splits.val_labels, max(train.batch_size, 1000), one_hot)
        if has_validation
        else None
    )
    recorder = HistoryRecorder(run_dir)
    checkpoint = BestCheckpoint(run_dir / rundir.BEST_MODEL, "val_accuracy" if has_validation else "accuracy")
    callbacks = make_callbacks(recorder, checkpoint, config, extra_callbacks)
    start = time.perf_counter()
    model.fit(
        train_data,
        validation_data=val_data,
        epochs=train.epochs,
        shuffle=False,  # the tf.data pipeline already reshuffles every epoch
        callbacks=callbacks,
        verbose=keras_verbosity(train.verbose),
    )
    return FitResult(recorder.records, checkpoint, time.perf_counter() - start)


def train_run(
    config: RunConfig,
    run_dir: Path,
    report: Callable[[str], None] = lambda message: None,
    extra_callbacks=(),
) -> TrainResult:
    """Trains the model `config` describes and writes every output into `run_dir`.

    Args:
        config: the validated run config.
        run_dir: an existing, empty run directory.
        report: receives one-line progress messages for the user.
        extra_callbacks: more Keras callbacks for `fit` (library use: benchmarks, notebooks).

    Returns:
        The `TrainResult` (run directory and test metrics of the best model).
    """
    from mnist_zoo.device import select_device
    from mnist_zoo.precision import apply_precision

    device = select_device(config.train.device)
    precision = apply_precision(config.train.precision, device)
    report(f"device: {device.description}, precision: {precision}")
    import keras

    from mnist_zoo.environment import environment_record
    from mnist_zoo.evaluation import evaluate_model
    from mnist_zoo.modelfile import load_classifier
    from mnist_zoo.registry import build_model

    keras.utils.set_random_seed(config.train.seed)
    dataset = load_dataset(config.data.dataset, config.data.data_dir, report)
    splits = split_dataset(
        dataset, config.data.validation_size, config.train.seed, config.data.train_limit, config.data.test_limit
    )
    report(
        f"data: {dataset.name} from {dataset.source}: {len(splits.train_images)} train, "
        f"{len(splits.val_images)} validation, {len(splits.test_images)} test images"
    )
    rundir.write_text(run_dir / rundir.CONFIG_FILE, config_to_yaml(config))
    environment = environment_record(
        device.description, precision, config.train.seed, dataset.name, dataset.checksum(), dataset.source
    )
    rundir.write_json(run_dir / rundir.ENVIRONMENT_FILE, environment)

    model = build_model(config.model)
    compile_model(model, config, steps_per_epoch=math.ceil(len(splits.train_images) / config.train.batch_size))
    fitted = fit(model, config, splits, run_dir, extra_callbacks)
    rundir.save_model(model, run_dir / rundir.LAST_MODEL)

    best_model = load_classifier(run_dir / rundir.BEST_MODEL)
    test_report, _ = evaluate_model(best_model, splits.test_images, splits.test_labels, dataset.class_names)
    history, checkpoint = fitted.history, fitted.checkpoint
    metrics = {
        "model": config.model.type,
        "config_name": config.name,
        "dataset": dataset.name,
        "test_loss": test_report["loss"],
        "test_accuracy": test_report["accuracy"],
        "test_examples": test_report["num_examples"],
        "best_epoch": checkpoint.best_epoch,
        f"best_{checkpoint.monitor}": checkpoint.best,
        "epochs_completed": len(history),
        "parameters": int(model.count_params()),
        "precision": precision,
        "train_seconds": fitted.seconds,
        "seconds_per_epoch": sum(record["epoch_seconds"] for record in history) / len(history),
    }
    rundir.write_json(run_dir / rundir.METRICS_FILE, metrics)
    return TrainResult(run_dir=run_dir, metrics=metrics)
