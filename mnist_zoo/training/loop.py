"""The training loop's state and its one owner: what each completed epoch changes, in order."""

from __future__ import annotations

from dataclasses import dataclass

from mnist_zoo.config.run import EarlyStoppingConfig
from mnist_zoo.training.checkpoint import TrainingState


class BestEpoch:
    """Which completed epoch best.keras holds: the highest `monitor` so far (val_accuracy, else accuracy).

    Its state lives in `TrainingState.best_value/best_epoch`, so a resumed run never lets a
    worse epoch replace best.keras (keras-team/keras#17012: a resumed ModelCheckpoint forgets).
    """

    def __init__(self, state: TrainingState):
        self.state = state

    def update(self, epoch: int, logs: dict) -> bool:
        """Records 1-based `epoch`'s logs; True if it is the new best."""
        value = logs.get(self.state.monitor)
        if value is None or (self.state.best_value is not None and value <= self.state.best_value):
            return False
        self.state.best_value, self.state.best_epoch = float(value), epoch
        return True


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


@dataclass(frozen=True)
class EpochOutcome:
    """What one completed epoch decided."""

    keep_stopping_weights: bool
    """Early stopping's new best, whose weights restore_best_weights ends with."""
    stop: bool
    """Early stopping ends training after this epoch."""


class TrainingLoop:
    """The one owner of a run's `TrainingState`: every completed epoch goes through `complete_epoch`.

    The pieces it applies are small and separate: the history record, the best epoch
    (`BestEpoch`) and early stopping (`StoppingRule`). Committing the result to disk is the
    caller's (`callbacks.CommitEpochs`), after this returns.
    """

    def __init__(self, state: TrainingState, early_stopping: EarlyStoppingConfig | None = None):
        self.state = state
        self.best = BestEpoch(state)
        enabled = early_stopping is not None and early_stopping.enabled
        self.stopping = StoppingRule(early_stopping, state.stopping) if enabled else None

    def complete_epoch(self, epoch: int, logs: dict, learning_rate: float, seconds: float,
                       timing: tuple[float, float] | None = None) -> EpochOutcome:
        """Applies completed 1-based `epoch` with its Keras `logs` to the state.

        `timing` (with a time limit): how much of the epoch ran and its validation's seconds,
        recorded as `epoch_fraction` and `validation_seconds`.
        """
        state = self.state
        record = {"epoch": epoch, **{key: float(value) for key, value in logs.items() if key != "learning_rate"}}
        record["learning_rate"] = learning_rate
        record["epoch_seconds"] = seconds
        if timing is not None:
            record["epoch_fraction"], record["validation_seconds"] = timing
        state.history.append(record)
        state.epochs_completed = epoch
        self.best.update(epoch, logs)
        if self.stopping is None:
            return EpochOutcome(keep_stopping_weights=False, stop=False)
        improved = self.stopping.update(epoch, logs[self.stopping.config.monitor])
        state.stopping = self.stopping.state()
        state.stopped_early = self.stopping.should_stop
        return EpochOutcome(keep_stopping_weights=improved and self.stopping.config.restore_best_weights,
                            stop=state.stopped_early)
