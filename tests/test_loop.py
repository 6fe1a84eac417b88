"""The training loop's owner: what each completed epoch changes in the state, piece by piece."""

from __future__ import annotations

import pytest

from mnist_zoo.config.run import EarlyStoppingConfig
from mnist_zoo.training.checkpoint import TrainingState
from mnist_zoo.training.loop import BestEpoch, StoppingRule, TrainingLoop


def test_a_completed_epoch_is_recorded_with_its_rate_and_time():
    loop = TrainingLoop(TrainingState(monitor="val_accuracy"))
    outcome = loop.complete_epoch(1, {"loss": 0.5, "val_accuracy": 0.9, "learning_rate": 9.0}, 0.01, 2.5)
    assert loop.state.history == [{"epoch": 1, "loss": 0.5, "val_accuracy": 0.9, "learning_rate": 0.01,
                                   "epoch_seconds": 2.5}]
    assert loop.state.epochs_completed == 1 and (loop.state.best_epoch, loop.state.best_value) == (1, 0.9)
    assert not outcome.stop and not outcome.keep_stopping_weights and loop.stopping is None


def test_best_epoch_keeps_the_first_of_equal_values_and_never_goes_back():
    state = TrainingState(monitor="val_accuracy", best_value=0.95, best_epoch=2)  # as resumed
    best = BestEpoch(state)
    assert not best.update(3, {"val_accuracy": 0.95}) and not best.update(4, {"val_accuracy": 0.90})
    assert best.update(5, {"val_accuracy": 0.96}) and (state.best_epoch, state.best_value) == (5, 0.96)
    assert not best.update(6, {"loss": 0.1})  # nothing monitored in the logs: no decision


@pytest.mark.parametrize("monitor, values, stop_after", [
    ("val_accuracy", [0.90, 0.91, 0.91, 0.905], 4),
    ("val_loss", [0.30, 0.20, 0.25, 0.21], 4),
])
def test_early_stopping_is_its_own_piece_and_its_state_is_saved(monitor, values, stop_after):
    config = EarlyStoppingConfig(enabled=True, monitor=monitor, patience=2)
    loop = TrainingLoop(TrainingState(monitor="val_accuracy"), config)
    outcomes = [loop.complete_epoch(epoch, {"val_accuracy": 0.5, monitor: value}, 0.01, 1.0)
                for epoch, value in enumerate(values, start=1)]
    assert [outcome.stop for outcome in outcomes] == [epoch == stop_after for epoch in range(1, 5)]
    assert [outcome.keep_stopping_weights for outcome in outcomes] == [True, True, False, False]
    assert loop.state.stopped_early and loop.state.stopping == {"best": values[1], "best_epoch": 2, "wait": 2}
    resumed = StoppingRule(config, loop.state.stopping)
    assert (resumed.best, resumed.wait, resumed.should_stop) == (values[1], 2, True)
