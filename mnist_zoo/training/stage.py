"""The training stage: data -> model -> fit -> test report, written into a run directory."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mnist_zoo import rundir
from mnist_zoo.config.loading import config_to_yaml
from mnist_zoo.config.run import RunConfig
from mnist_zoo.data.batches import steps_per_epoch
from mnist_zoo.data.datasets import Splits, images_fingerprint, load_dataset, split_dataset, validation_seed
from mnist_zoo.errors import RunDirError, TrainingInterrupted


@dataclass(frozen=True)
class TrainResult:
    """What a finished run produced."""

    run_dir: Path
    metrics: dict


def compile_model(model, config: RunConfig, steps_per_epoch: int, fast_paths: bool | None = None,
                  steps_per_execution: int | None = None) -> None:
    """Compiles `model` with the optimizer, schedule, loss and accuracy metric of `config`.

    Args:
        fast_paths: use the fused Adam, accuracy from logits and fused batch normalisation
            (default: `train.fast_paths`).
        steps_per_execution: training steps per TensorFlow call (default: `train.steps_per_execution`).
    """
    from mnist_zoo.training.fast_paths import fuse_batch_norm
    from mnist_zoo.training.optimization import make_learning_rate, make_loss, make_metrics, make_optimizer

    train = config.train
    fast_paths = train.fast_paths if fast_paths is None else fast_paths
    if fast_paths:
        fuse_batch_norm(model)
    learning_rate = make_learning_rate(
        train.optimizer.learning_rate, train.schedule, steps_per_epoch, train.epochs
    )
    model.compile(
        optimizer=make_optimizer(train.optimizer, learning_rate, fast_paths),
        loss=make_loss(train.loss, config.model.output_activation),
        metrics=make_metrics(train.loss, fast_paths),
        steps_per_execution=steps_per_execution or train.steps_per_execution,
        # Keras's default ("auto") compiles with XLA when a GPU is present: GPU runs would take a
        # path that CPU runs, and so the tests, never take.
        jit_compile=False,
    )


def keras_verbosity(setting) -> int:
    """Keras `verbose`: a live progress bar on a terminal or in a notebook, one line per epoch in logs."""
    if setting == "auto":
        return 1 if sys.stdout.isatty() or "ipykernel" in sys.modules else 2
    return int(setting)


def fit(model, config: RunConfig, splits: Splits, run_dir: Path, state, interrupts, extra_callbacks=(),
        fast_paths: bool = True, verbose=None) -> None:
    """Runs `model.fit` from the epoch after `state`'s last, committing every completed epoch.

    Args:
        state: the `checkpoint.TrainingState` to continue; updated in place.
        interrupts: the `GracefulInterrupts` that turns a signal into a stop after this step.
        fast_paths: the step gathers its own batch (`fast_paths.gathered_in_train_step`);
            False: a tf.data map does, as in plain Keras. Either way `data.augmentation` is
            applied inside the step.
        verbose: Keras's display (None: the config's `train.verbose`).
    """
    from mnist_zoo.data.batches import EpochShuffledDataset, make_dataset
    from mnist_zoo.data.augmentation import Augmenter, augmented_batches
    from mnist_zoo.training.callbacks import (AveragedWeights, CommitEpochs, EpochOrder, StopOnSignal, TimeLimit,
                                              uses_weight_averaging)
    from mnist_zoo.training.fast_paths import gathered_in_train_step, prepared_in_train_step
    from mnist_zoo.training.loop import TrainingLoop

    train, one_hot = config.train, config.train.loss.one_hot_labels
    train_data = EpochShuffledDataset(
        splits.train_images, splits.train_labels, train.batch_size, one_hot,
        shuffle=train.shuffle, seed=train.seed, first_epoch=state.epochs_completed,
    )
    val_data = None
    if len(splits.val_images):
        val_data = make_dataset(splits.val_images, splits.val_labels, max(train.batch_size, 1000), one_hot)
    tensorboard = None
    if train.tensorboard:
        from mnist_zoo.training.tensorboard import TensorBoardLog

        tensorboard = TensorBoardLog(run_dir)
        tensorboard.rewrite(state.history)  # a resumed run continues from exactly its committed epochs
    time_limit = None
    if train.time_limit_seconds is not None:
        time_limit = TimeLimit(train.time_limit_seconds, state.history)
    committer = CommitEpochs(run_dir, TrainingLoop(state, train.early_stopping), train_data.steps_per_epoch,
                             tensorboard, time_limit)
    callbacks = [EpochOrder(train_data), committer, StopOnSignal(interrupts)]
    if time_limit is not None:
        callbacks.insert(1, time_limit)
    if uses_weight_averaging(model.optimizer):  # before the committer: it saves what this puts in the model
        callbacks.insert(1, AveragedWeights(averages_in_model=state.epochs_completed > 0))
    interrupts.watch(model)
    try:
        augmentation = config.data.augmentation
        # Augmentation runs in the step's graph too (not in tf.data threads competing for the cores),
        # drawn from the optimizer's step counter so that a resumed run repeats it.
        augment = augmented_batches(Augmenter(augmentation, train.seed), model) if augmentation.enabled else None
        if fast_paths:
            stepping = gathered_in_train_step(model, train_data, augment)
        elif augment is not None:
            stepping = prepared_in_train_step(model, augment)
        else:
            stepping = contextlib.nullcontext()
        with stepping:
            model.fit(
                train_data.index_dataset if fast_paths else train_data.dataset,
                validation_data=val_data,
                epochs=train.epochs,
                initial_epoch=state.epochs_completed,
                shuffle=False,  # EpochShuffledDataset orders each epoch itself
                callbacks=[*callbacks, *extra_callbacks],
                verbose=keras_verbosity(train.verbose if verbose is None else verbose),
            )
    finally:
        interrupts.watch(None)
        if tensorboard is not None:
            tensorboard.close()
    interrupts.raise_if_interrupted()


def start_state(splits: Splits, model, run_dir: Path, resume: bool):
    """A fresh `TrainingState`, or the committed one of `run_dir` loaded into `model`."""
    from mnist_zoo.training import checkpoint

    state = checkpoint.load_state(run_dir) if resume else None
    if state is None:
        return checkpoint.TrainingState(monitor="val_accuracy" if len(splits.val_images) else "accuracy")
    checkpoint.restore(model, run_dir, state)
    checkpoint.sync_best_model(run_dir, state)  # in case a crash came between commit and copy
    return state


def check_same_data(run_dir: Path, dataset) -> None:
    """Refuses to resume on data that differ from the data the run started with."""
    recorded = rundir.read_environment(run_dir).get("dataset_sha256")
    if recorded is None:
        return  # nothing recorded to compare with
    actual = dataset.checksum()  # sha256 of every array: worth computing once
    if recorded != actual:
        raise RunDirError(
            f"{run_dir}: the {dataset.name} data at {dataset.source} differ from the data this run "
            f"started with (checksum {actual[:12]}..., recorded {str(recorded)[:12]}...); "
            "resume with the same data files"
        )


def training_seconds(history: list[dict]) -> float:
    """The training time of a run's committed epochs, validation included (a resumed run's parts added)."""
    return sum(record["epoch_seconds"] for record in history)


def time_left(config: RunConfig, state) -> bool:
    """Whether `train.time_limit_seconds` (if set) leaves the run time to train more."""
    limit = config.train.time_limit_seconds
    return not state.stopped_by_time_limit and (limit is None or training_seconds(state.history) < limit)


def seconds_per_whole_epoch(history: list[dict]) -> float:
    """The mean time of an epoch, validation included; a cut epoch (time limit) counted as a whole one.

    A cut epoch's training time is scaled up by the share of its steps that ran; its validation,
    which a cut does not shorten, is counted once.
    """
    estimates = []
    for record in history:
        fraction, validation = record.get("epoch_fraction", 1.0), record.get("validation_seconds", 0.0)
        estimates.append((record["epoch_seconds"] - validation) / fraction + validation)
    return sum(estimates) / len(estimates)


def finish(model, config: RunConfig, splits: Splits, dataset, run_dir: Path, state, precision: str) -> dict:
    """Writes last.keras and the test report of best.keras (metrics.json); returns the metrics."""
    from mnist_zoo.training import checkpoint
    from mnist_zoo.inference.evaluation import evaluate_model
    from mnist_zoo.inference.modelfile import load_classifier

    if config.train.early_stopping.restore_best_weights:
        checkpoint.restore_stopping_weights(model, run_dir, state)
    rundir.save_model(model, run_dir / rundir.LAST_MODEL)
    best_model = load_classifier(run_dir / rundir.BEST_MODEL)
    test_report, _ = evaluate_model(best_model, splits.test_images, splits.test_labels, dataset.class_names)
    history = state.history
    train_seconds = training_seconds(history)
    return {
        "model": config.model.type,
        "config_name": config.name,
        "dataset": dataset.name,
        "test_loss": test_report["loss"],
        "test_accuracy": test_report["accuracy"],
        "test_examples": test_report["num_examples"],
        "train_examples": len(splits.train_images),
        "validation_examples": len(splits.val_images),
        "best_epoch": state.best_epoch,
        f"best_{state.monitor}": state.best_value,
        "epochs_completed": len(history),
        "stopped_early": state.stopped_early,
        "stopped_by_time_limit": state.stopped_by_time_limit,
        "parameters": int(model.count_params()),
        "precision": precision,
        "train_seconds": train_seconds,
        "seconds_per_epoch": seconds_per_whole_epoch(history),
        "epochs_run": sum(record.get("epoch_fraction", 1.0) for record in history),
    }


def train_run(
    config: RunConfig,
    run_dir: Path,
    report: Callable[[str], None] = lambda message: None,
    extra_callbacks=(),
    resume: bool = False,
    progressbar: bool = False,
    verbose=None,
) -> TrainResult:
    """Trains the model `config` describes and writes every output into `run_dir`.

    Ctrl-C or SIGTERM stops training after the current step; the run directory keeps the last
    complete epoch and `status.json` says "interrupted". `resume=True` continues such a run
    from its checkpoint, exactly where the uninterrupted run would be.

    Args:
        config: the validated run config.
        run_dir: an existing run directory: empty, or (with `resume`) one this config started.
        report: receives one-line progress messages for the user.
        extra_callbacks: more Keras callbacks for `fit` (library use: benchmarks, notebooks).
        resume: continue from the run directory's last committed epoch.
        progressbar: show progress bars on stderr for steps that are not training (the download).
        verbose: Keras's display for this call, 'auto', 0, 1 or 2 (None: the config's `train.verbose`).

    Returns:
        The `TrainResult` (run directory and test metrics of the best model).

    Raises:
        TrainingInterrupted: a signal stopped the run (its `run_dir` and `epochs_completed` set).
    """
    from mnist_zoo.training.interrupts import GracefulInterrupts

    with rundir.training_lock(run_dir), GracefulInterrupts() as interrupts:
        rundir.remove_temporaries(run_dir)  # what a process killed mid-write left
        rundir.mark_run_dir(run_dir)  # a folder a library caller made, or a run of an older version
        try:
            if not resume:  # first: a run killed at any later moment can be resumed from its config
                rundir.write_text(run_dir / rundir.CONFIG_FILE, config_to_yaml(config))
            rundir.write_status(run_dir, "running", epochs=config.train.epochs)
            metrics = _train(RunContext(config, run_dir, report, tuple(extra_callbacks), resume, interrupts,
                                        progressbar, verbose))
        except TrainingInterrupted as error:
            error.run_dir = run_dir
            error.epochs_completed = _committed_epochs(run_dir)
            _record_status(run_dir, "interrupted", signal=error.signal_name,
                           epochs_completed=error.epochs_completed, epochs=config.train.epochs)
            raise
        except BaseException as error:
            _record_status(run_dir, "failed", error=f"{type(error).__name__}: {error}",
                           epochs_completed=_committed_epochs(run_dir), epochs=config.train.epochs)
            raise
    return TrainResult(run_dir=run_dir, metrics=metrics)


def _record_status(run_dir: Path, status: str, **details) -> None:
    # Best effort: on a full disk this write fails too, and the original error matters more.
    try:
        rundir.write_status(run_dir, status, **details)
    except OSError:
        pass


def _committed_epochs(run_dir: Path) -> int:
    """Completed epochs on disk (the checkpoint's, else history.json's)."""
    from mnist_zoo.training import checkpoint

    try:
        state = checkpoint.load_state(run_dir)
        return state.epochs_completed if state else len(rundir.read_history(run_dir))
    except RunDirError:
        return 0


@dataclass
class RunContext:
    """One run's settings and machinery, as `train_run` resolves them before the model is built."""

    config: RunConfig
    run_dir: Path
    report: Callable[[str], None]
    extra_callbacks: tuple
    resume: bool
    interrupts: object
    """The `GracefulInterrupts` turning a signal into a stop after the current step."""
    progressbar: bool
    verbose: object = None
    """Keras's display for this call (None: the config's `train.verbose`)."""
    device: object = None
    """The `DeviceInfo` training runs on."""
    precision: str = "float32"
    fast_paths: bool = True
    distribution: object = None
    """The `Distribution` (one device, or a strategy's replicas)."""


def _train(context: RunContext) -> dict:
    from mnist_zoo.runtime.device import select_device
    from mnist_zoo.runtime.distribution import choose_distribution
    from mnist_zoo.runtime.precision import precision_scope
    from mnist_zoo.training.fast_paths import use_fast_paths

    config, report = context.config, context.report
    context.device = select_device(config.train.device)
    context.precision = run_precision(config, context.device, context.run_dir if context.resume else None, report)
    context.distribution = choose_distribution(config.train.distribution)
    spread = f", {context.distribution.description}" if context.distribution.spread else ""
    report(f"device: {context.device.description}, precision: {context.precision}{spread}")
    if config.train.deterministic:
        import tensorflow as tf

        # Process-wide and final: TensorFlow has no public switch to turn it off again.
        tf.config.experimental.enable_op_determinism()
    # Before seeding: the check builds throw-away Keras objects, whose weights would draw from
    # the run's seeded streams in the first run of a process only.
    context.fast_paths, warning = use_fast_paths(config.train.fast_paths)
    if warning:
        report(f"warning: {warning}")
    if context.distribution.spread:
        # The fast paths replace parts of Keras's step and optimizer that a strategy's replicas run
        # their own way; several steps per call fail under MirroredStrategy in Keras 3.15 ("You must
        # feed a value for placeholder tensor" in its multi-step loop).
        off = [name for name, on in (("train.fast_paths", context.fast_paths),
                                     ("train.steps_per_execution", config.train.steps_per_execution > 1)) if on]
        context.fast_paths = False
        if off:
            report(f"note: {' and '.join(off)} off under MirroredStrategy (one step per call, plain Keras)")
    with precision_scope(context.precision), seeded(config.train.seed):
        return _train_in_scope(context)


def run_precision(config: RunConfig, device, resumed_run_dir: Path | None, report=lambda message: None) -> str:
    """The precision this run trains in: the one it started with when resumed, else the config's.

    Args:
        config: the run config (`train.precision`, and the model for 'auto').
        device: the `DeviceInfo` training runs on.
        resumed_run_dir: the run directory being resumed, or None for a new run.
        report: receives a warning when the precision is emulated on this device.
    """
    from mnist_zoo.runtime.precision import auto_precision, is_native, resolve_precision

    recorded = recorded_precision(resumed_run_dir) if resumed_run_dir is not None else None
    macs = None
    if recorded is None and config.train.precision == "auto" and not device.is_gpu:
        if auto_precision(False) != "float32":  # only then does the model's size matter
            macs = macs_per_image(config)
    precision = resolve_precision(config.train.precision, device, macs, recorded)
    if not is_native(precision, device):
        report(f"warning: {device.description} has no native {precision.removeprefix('mixed_')} arithmetic; "
               f"{'the run started in it and keeps it, ' if recorded else ''}expect several times slower steps")
    return precision


def macs_per_image(config: RunConfig) -> int:
    """Forward multiply-accumulates of one image through the config's model.

    It builds a throw-away copy: the precision this count decides must already be in force when
    the run's own model is built (Keras layers take the dtype policy when they are made). A build
    takes milliseconds and draws no random numbers from the run's seeded streams (it comes first).

    Raises:
        ValueError: a layer of the model has no MAC rule (`models.summary.layer_macs`): a model
            type must not silently count as "large" and train in bf16.
    """
    from mnist_zoo.models.registry import build_model
    from mnist_zoo.models.summary import require_forward_macs

    return require_forward_macs(build_model(config.model))


def recorded_precision(run_dir: Path) -> str | None:
    """The precision recorded in a run's environment.json (None: not recorded)."""
    return rundir.read_environment(run_dir).get("precision")


@contextlib.contextmanager
def seeded(seed: int):
    """Seeds Python, NumPy, TensorFlow and Keras with `seed`; Python's and NumPy's global states come back after.

    A library user's own `random` and `np.random` draws after training are not replayed from
    our seed. TensorFlow's global seed stays set: TensorFlow cannot read it back to restore it.
    """
    import random

    import keras
    import numpy as np

    python_state, numpy_state = random.getstate(), np.random.get_state()
    keras.utils.set_random_seed(seed)
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def _train_in_scope(context: RunContext) -> dict:
    from mnist_zoo.models.registry import build_model
    from mnist_zoo.runtime.environment import environment_record
    from mnist_zoo.training import checkpoint

    config, run_dir, report, distribution = context.config, context.run_dir, context.report, context.distribution
    dataset = load_dataset(config.data.dataset, config.data.data_dir, report, context.progressbar)
    splits = split_dataset(
        dataset, config.data.validation_size, validation_seed(config), config.data.train_limit, config.data.test_limit
    )
    report(
        f"data: {dataset.name} from {dataset.source}: {len(splits.train_images)} train, "
        f"{len(splits.val_images)} validation, {len(splits.test_images)} test images"
    )
    if context.resume and (run_dir / rundir.ENVIRONMENT_FILE).is_file():
        check_same_data(run_dir, dataset)
    else:  # a new run, or one killed before it recorded its environment
        environment = environment_record(
            context.device.description, context.precision, config.train.seed, dataset.name, dataset.checksum(),
            dataset.source
        )
        if distribution.spread:
            environment["distribution"] = {"strategy": distribution.description, "replicas": distribution.replicas}
        if len(splits.val_labels):  # what `evaluate --split validation` checks it rebuilds
            environment["validation_sha256"] = images_fingerprint(splits.val_images, splits.val_labels)
        rundir.write_json(run_dir / rundir.ENVIRONMENT_FILE, environment)

    # Built in the strategy's scope, the model's variables are mirrored and fit runs on every replica.
    with distribution.scope():
        model = build_model(config.model)
        compile_model(model, config, steps_per_epoch(len(splits.train_images), config.train.batch_size),
                      context.fast_paths, steps_per_execution=1 if distribution.spread else None)
        state = start_state(splits, model, run_dir, context.resume)
    if state.epochs_completed:
        report(f"resuming after epoch {state.epochs_completed} of {config.train.epochs}")
    if state.epochs_completed < config.train.epochs and not state.stopped_early and time_left(config, state):
        fit(model, config, splits, run_dir, state, context.interrupts, context.extra_callbacks, context.fast_paths,
            context.verbose)
    if not state.history:
        raise RunDirError(f"{run_dir}: training completed no epoch")
    metrics = finish(model, config, splits, dataset, run_dir, state, context.precision)
    rundir.write_json(run_dir / rundir.METRICS_FILE, metrics)
    rundir.write_status(run_dir, "complete", epochs_completed=state.epochs_completed, epochs=config.train.epochs)
    checkpoint.remove(run_dir)
    return metrics
