"""TensorBoard logs: every committed epoch once, the same figures as history.json, across resumes too."""

from __future__ import annotations

import shutil
from collections import defaultdict

import pytest

from mnist_zoo import rundir
from mnist_zoo.training.stage import train_run
from tests.helpers import SignalAt, fresh_run_dir, history_without_times, interrupted, make_config


def scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} over every event file in `folder`, in file order."""
    import tensorflow as tf

    found = defaultdict(list)
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                found[value.tag].append((event.step, float(tf.make_ndarray(value.tensor))))
    return dict(found)


def assert_log_matches_history(run_dir):
    history = history_without_times(run_dir)
    train, validation = scalars(run_dir / "tensorboard" / "train"), scalars(run_dir / "tensorboard" / "validation")
    assert set(train) == {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"}
    assert set(validation) == {"epoch_loss", "epoch_accuracy"}
    for tags, prefix in ((train, ""), (validation, "val_")):
        for tag, points in tags.items():
            expected = [(record["epoch"], record[prefix + tag.removeprefix("epoch_")]) for record in history]
            assert [step for step, _ in points] == [step for step, _ in expected], tag  # each epoch once, in order
            assert [value for _, value in points] == pytest.approx([value for _, value in expected], rel=1e-6), tag


def test_a_run_logs_every_epoch_with_the_history_figures(tmp_path, small_mnist_dir):
    run_dir = fresh_run_dir(tmp_path, "run")
    train_run(make_config(small_mnist_dir, "linear"), run_dir)
    assert_log_matches_history(run_dir)


def test_a_resumed_run_continues_the_same_curves(tmp_path, small_mnist_dir):
    config = make_config(small_mnist_dir, "mlp")
    run_dir = fresh_run_dir(tmp_path, "run")
    interrupted(config, run_dir, SignalAt(epoch=1, step=3))  # epoch 1 committed and logged, epoch 2 cut short
    assert [step for step, _ in scalars(run_dir / "tensorboard" / "train")["epoch_loss"]] == [1]
    train_run(config, run_dir, resume=True)
    assert_log_matches_history(run_dir)


def test_a_log_lost_after_the_commit_is_rebuilt_on_resume(tmp_path, small_mnist_dir):
    # As if killed between an epoch's commit and its log line: the resumed run logs from the history.
    config = make_config(small_mnist_dir, "mlp")
    run_dir = fresh_run_dir(tmp_path, "run")
    interrupted(config, run_dir, SignalAt(epoch=1))  # epochs 1 and 2 committed
    shutil.rmtree(run_dir / "tensorboard")
    train_run(config, run_dir, resume=True)
    assert_log_matches_history(run_dir)


def test_tensorboard_can_be_switched_off(tmp_path, small_mnist_dir):
    run_dir = fresh_run_dir(tmp_path, "run")
    train_run(make_config(small_mnist_dir, "linear", {"tensorboard": False}), run_dir)
    assert not (run_dir / rundir.TENSORBOARD_DIR).exists() and (run_dir / "best.keras").is_file()
