"""The Keras callbacks of a run, one job each: the data epoch, the stop at a signal, the epoch commit."""

from __future__ import annotations

import time
from pathlib import Path

import keras

from mnist_zoo import rundir
from mnist_zoo.errors import TrainingInterrupted
from mnist_zoo.training import checkpoint
from mnist_zoo.training.loop import TrainingLoop


def current_learning_rate(optimizer) -> float:
    """The optimizer's learning rate now (a schedule evaluated at the current step)."""
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


class EpochOrder(keras.callbacks.Callback):
    """Tells the training data which epoch starts, so that its order depends only on (seed, epoch)."""

    def __init__(self, data):
        super().__init__()
        self.data = data  # a data.batches.EpochShuffledDataset

    def on_epoch_begin(self, epoch, logs=None):
        self.data.set_epoch(epoch)


class StopOnSignal(keras.callbacks.Callback):
    """Leaves `fit` at the first step end after Ctrl-C or SIGTERM (`interrupts.GracefulInterrupts`)."""

    def __init__(self, interrupts):
        super().__init__()
        self.interrupts = interrupts

    def on_train_batch_end(self, batch, logs=None):
        if self.interrupts.signal_number is not None:
            # Leave now: validating and printing a cut-short epoch would look like a result.
            raise TrainingInterrupted(self.interrupts.signal_number)


class AveragedWeights(keras.callbacks.Callback):
    """Puts the optimizer's moving average of the weights (`use_ema`) in the model for validation and commits.

    The model holds the averages from validation to the end of the epoch, so the validation
    figures, the checkpoint, best.keras and last.keras are the averaged network's; the next epoch
    trains the raw weights again. Keras's `SwapEMAWeights(swap_on_epoch=True)` swaps the same
    way but assumes every `fit` starts with the raw weights in the model, while a checkpoint is
    saved with the averages in it: a resumed run would train on the averages.

    At its end, `fit` copies the optimizer's averages into the model (`finalize_variable_values`),
    which after the swap hold the raw weights; `on_train_end` puts the averages back.

    Args:
        averages_in_model: whether the model holds the averages now (a restored checkpoint does).
    """

    def __init__(self, averages_in_model: bool):
        super().__init__()
        self.averages_in_model = averages_in_model
        self._averages = None

    def _swap(self):
        # The same variables Keras's SwapEMAWeights swaps; a loss-scaled optimizer wraps the real one.
        optimizer = getattr(self.model.optimizer, "inner_optimizer", self.model.optimizer)
        for variable, average in zip(optimizer._trainable_variables, optimizer._model_variables_moving_average):
            weights = keras.ops.convert_to_numpy(variable)
            variable.assign(average)
            average.assign(weights)
        self.averages_in_model = not self.averages_in_model

    def on_epoch_begin(self, epoch, logs=None):
        if self.averages_in_model:
            self._swap()

    def on_test_begin(self, logs=None):
        if not self.averages_in_model:
            self._swap()

    def on_epoch_end(self, epoch, logs=None):  # runs before CommitEpochs: the commit saves the averages
        if not self.averages_in_model:
            self._swap()
        self._averages = [keras.ops.convert_to_numpy(variable) for variable in self.model.trainable_variables]

    def on_train_end(self, logs=None):
        if self.averages_in_model and self._averages is not None:
            for variable, average in zip(self.model.trainable_variables, self._averages):
                variable.assign(average)


def uses_weight_averaging(optimizer) -> bool:
    """Whether `optimizer` (or the one a loss-scaling optimizer wraps) keeps a moving average of the weights."""
    return bool(getattr(getattr(optimizer, "inner_optimizer", optimizer), "use_ema", False))


class TimeLimit(keras.callbacks.Callback):
    """Stops training mid-epoch once `limit_seconds` of training have passed (`train.time_limit_seconds`).

    Training time is counted as the run records it: the committed epochs' `epoch_seconds` (a
    resumed run's earlier parts included) plus the current epoch's time so far, so the budget and
    `train_seconds` agree (checkpoint writes between epochs count in neither). The check runs
    after every step (every `steps_per_execution` steps); `reached` tells `CommitEpochs` to keep
    the epoch it cuts, not to drop it as an interrupted one. An epoch that ends with the budget
    spent is the last (`CommitEpochs` stops there), so no near-empty epoch follows it.
    """

    def __init__(self, limit_seconds: float, history: list[dict]):
        super().__init__()
        self.limit_seconds = limit_seconds
        self.history = history  # the run's committed epochs, updated in place by the TrainingLoop
        self.reached = False
        self._deadline = time.perf_counter() + limit_seconds

    def committed_seconds(self) -> float:
        return sum(record["epoch_seconds"] for record in self.history)

    def spent(self) -> bool:
        """Whether the committed epochs alone have used up the budget."""
        return self.committed_seconds() >= self.limit_seconds

    def on_epoch_begin(self, epoch, logs=None):
        # The history changes only between epochs: each step compares the clock with one number.
        self._deadline = time.perf_counter() + self.limit_seconds - self.committed_seconds()

    def on_train_batch_end(self, batch, logs=None):
        if time.perf_counter() >= self._deadline:
            self.reached = True
            self.model.stop_training = True


class CommitEpochs(keras.callbacks.Callback):
    """Commits every complete epoch: through the `TrainingLoop`, then one atomic checkpoint, then history.

    Per complete epoch: `loop.complete_epoch` (history record, best epoch, early stopping),
    then `checkpoint.commit` (which refreshes best.keras), then history.json/csv, then the
    TensorBoard log. An epoch cut
    short is not recorded, so the run directory always describes whole epochs.
    """

    def __init__(self, run_dir: Path, loop: TrainingLoop, steps_per_epoch: int, tensorboard=None,
                 time_limit: TimeLimit | None = None):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.loop = loop
        self.steps_per_epoch = steps_per_epoch
        self.tensorboard = tensorboard  # a train.tensorboard.TensorBoardLog, or None
        self.time_limit = time_limit
        self._epoch_start = 0.0
        self._validation_start = None
        self._steps_done = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        self._validation_start = None
        self._steps_done = 0

    def on_train_batch_end(self, batch, logs=None):
        # With steps_per_execution > 1 Keras reports the last step of each execution.
        self._steps_done = batch + 1

    def on_test_begin(self, logs=None):
        self._validation_start = time.perf_counter()  # fit's validation of this epoch

    def on_epoch_end(self, epoch, logs=None):
        cut_by_time_limit = self.time_limit is not None and self.time_limit.reached
        if self._steps_done < self.steps_per_epoch and not cut_by_time_limit:
            return  # cut short (a signal stopped training mid-epoch): keep the last complete epoch
        now = time.perf_counter()
        seconds = now - self._epoch_start
        timing = None
        if self.time_limit is not None:
            # Every record says how much of its epoch ran and how long its validation took (CSV
            # rows share their keys): a cut epoch's time per whole epoch is then its training
            # time over that share, plus one validation.
            validation = now - self._validation_start if self._validation_start is not None else 0.0
            timing = (min(self._steps_done / self.steps_per_epoch, 1.0), validation)
        outcome = self.loop.complete_epoch(epoch + 1, logs or {}, current_learning_rate(self.model.optimizer), seconds,
                                           timing)
        if self.time_limit is not None and (cut_by_time_limit or self.time_limit.spent()):
            self.loop.state.stopped_by_time_limit = True
            self.model.stop_training = True
        if outcome.stop:
            self.model.stop_training = True
        state = self.loop.state
        checkpoint.commit(self.run_dir, self.model, state, outcome.keep_stopping_weights)
        rundir.write_json(self.run_dir / rundir.HISTORY_JSON, {"epochs": state.history})
        rundir.write_csv(self.run_dir / rundir.HISTORY_CSV, state.history)
        if self.tensorboard is not None:
            self.tensorboard.append(state.history[-1])  # after the commit: it logs only what is on disk
