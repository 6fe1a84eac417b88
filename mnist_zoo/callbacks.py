"""Keras callbacks that record the history and keep the best checkpoint, writing atomically."""

from __future__ import annotations

import time
from pathlib import Path

import keras

from mnist_zoo import rundir


def current_learning_rate(optimizer) -> float:
    """The optimizer's learning rate now (a schedule evaluated at the current step)."""
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


class HistoryRecorder(keras.callbacks.Callback):
    """Appends one record per epoch and rewrites history.json and history.csv after each."""

    def __init__(self, run_dir: Path):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.records: list[dict] = []
        self._epoch_start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        record = {"epoch": epoch + 1}
        record.update({key: float(value) for key, value in (logs or {}).items() if key != "learning_rate"})
        record["learning_rate"] = current_learning_rate(self.model.optimizer)
        record["epoch_seconds"] = time.perf_counter() - self._epoch_start
        self.records.append(record)
        rundir.write_json(self.run_dir / rundir.HISTORY_JSON, {"epochs": self.records})
        rundir.write_csv(self.run_dir / rundir.HISTORY_CSV, self.records)


class BestCheckpoint(keras.callbacks.Callback):
    """Saves the model to `path` whenever `monitor` (higher is better) reaches a new best."""

    def __init__(self, path: Path, monitor: str):
        super().__init__()
        self.path = Path(path)
        self.monitor = monitor
        self.best: float | None = None
        self.best_epoch: int | None = None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            return
        if self.best is None or value > self.best:
            self.best, self.best_epoch = float(value), epoch + 1
            rundir.save_model(self.model, self.path)
