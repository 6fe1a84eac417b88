"""The Keras callback that commits each completed epoch, and an early-stopping rule with state."""

from __future__ import annotations

import time
from pathlib import Path

import keras

from mnist_zoo import rundir
from mnist_zoo.train import checkpoint
from mnist_zoo.train.checkpoint import TrainingState
from mnist_zoo.config.run import EarlyStoppingConfig
from mnist_zoo.errors import TrainingInterrupted


def current_learning_rate(optimizer) -> float:
    """The optimizer's learning rate now (a schedule evaluated at the current step)."""
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


class StoppingRule:
    """Early stopping whose state can be saved and restored (Keras's `EarlyStopping` has none).

    An epoch improves when `monitor` beats the best so far by more than `min_delta`; training
    stops after `patience` epochs in a row without improvement.
    """

    def __init__(self, config: EarlyStoppingConfig, state: dict | None = None):
        self.config = config
        self.higher_is_better = config.monitor.endswith("accuracy")
        state = state or {}
        self.best: float | None = state.get("best")
        self.best_epoch: int | None = state.get("best_epoch")
        self.wait: int = state.get("wait", 0)

    def update(self, epoch: int, value: float) -> bool:
        """Records the monitored `value` of 1-based `epoch`; True if it is a new best."""
        delta = self.config.min_delta
        improved = self.best is None or (
            value > self.best + delta if self.higher_is_better else value < self.best - delta
        )
        if improved:
            self.best, self.best_epoch, self.wait = float(value), epoch, 0
        else:
            self.wait += 1
        return improved

    @property
    def should_stop(self) -> bool:
        return self.wait >= self.config.patience

    def state(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}


class EpochCommitter(keras.callbacks.Callback):
    """Selects each epoch's data order and commits every completed epoch to the run directory.

    Per completed epoch, in this order: the history record, the best-model decision, the
    early-stopping decision, then one atomic checkpoint commit (`checkpoint.commit`, which then
    refreshes best.keras), then history.json/csv. An epoch cut short (Ctrl-C, SIGTERM) is not recorded, so
    the run directory always describes whole epochs.
    """

    def __init__(self, run_dir: Path, state: TrainingState, steps_per_epoch: int,
                 stopping: StoppingRule | None = None, data=None, interrupts=None):
        super().__init__()
        self.interrupts = interrupts  # an interrupts.GracefulInterrupts, or None
        self.run_dir = Path(run_dir)
        self.state = state
        self.steps_per_epoch = steps_per_epoch
        self.stopping = stopping
        self.data = data  # a data.batches.EpochShuffledDataset, or None
        self._epoch_start = 0.0
        self._steps_done = 0

    def on_epoch_begin(self, epoch, logs=None):
        if self.data is not None:
            self.data.set_epoch(epoch)
        self._epoch_start = time.perf_counter()
        self._steps_done = 0

    def on_train_batch_end(self, batch, logs=None):
        # With steps_per_execution > 1 Keras reports the last step of each execution.
        self._steps_done = batch + 1
        if self.interrupts is not None and self.interrupts.signal_number is not None:
            # Leave fit now: validating and printing a cut-short epoch would look like a result.
            raise TrainingInterrupted(self.interrupts.signal_number)

    def on_epoch_end(self, epoch, logs=None):
        if self._steps_done < self.steps_per_epoch:
            return  # cut short (a callback stopped training mid-epoch): keep the last complete epoch
        logs = logs or {}
        state, number = self.state, epoch + 1
        record = {"epoch": number}
        record.update({key: float(value) for key, value in logs.items() if key != "learning_rate"})
        record["learning_rate"] = current_learning_rate(self.model.optimizer)
        record["epoch_seconds"] = time.perf_counter() - self._epoch_start
        state.history.append(record)
        state.epochs_completed = number
        value = logs.get(state.monitor)
        if value is not None and (state.best_value is None or value > state.best_value):
            state.best_value, state.best_epoch = float(value), number
        keep_stopping_weights = False
        if self.stopping is not None:
            improved = self.stopping.update(number, logs[self.stopping.config.monitor])
            keep_stopping_weights = improved and self.stopping.config.restore_best_weights
            state.stopping = self.stopping.state()
            if self.stopping.should_stop:
                state.stopped_early = True
                self.model.stop_training = True
        checkpoint.commit(self.run_dir, self.model, state, keep_stopping_weights)
        rundir.write_json(self.run_dir / rundir.HISTORY_JSON, {"epochs": state.history})
        rundir.write_csv(self.run_dir / rundir.HISTORY_CSV, state.history)
