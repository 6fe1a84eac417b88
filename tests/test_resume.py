"""Interrupt and resume: the last complete epoch survives, and a resumed run equals an unbroken one."""

from __future__ import annotations

import json
import os
import signal

import keras
import numpy as np
import pytest

from mnist_zoo import rundir
from mnist_zoo.training import checkpoint
from mnist_zoo.training.callbacks import CommitEpochs
from mnist_zoo.training.loop import TrainingLoop
from mnist_zoo.errors import ModelFileError, RunDirError, TrainingInterrupted
from mnist_zoo.training.interrupts import GracefulInterrupts
from mnist_zoo.models.registry import MODELS
from mnist_zoo.training.stage import train_run
from tests.helpers import (REPO_ROOT, SignalAt, fresh_run_dir, history_without_times, interrupted, make_config,
                           op_determinism_enabled, weights)

@pytest.mark.parametrize("model", list(MODELS))
def test_resume_after_an_interrupt_equals_an_unbroken_run(tmp_path, small_mnist_dir, model):
    config = make_config(small_mnist_dir, model)
    unbroken = fresh_run_dir(tmp_path, "unbroken")
    train_run(config, unbroken)

    broken = fresh_run_dir(tmp_path, "broken")
    error = interrupted(config, broken, SignalAt(epoch=1, step=5))  # in the middle of epoch 2
    assert (error.signal_number, error.epochs_completed, error.run_dir) == (signal.SIGINT, 1, broken)
    assert rundir.read_status(broken)["status"] == "interrupted"
    assert len(history_without_times(broken)) == 1  # the cut-short epoch 2 is not recorded
    assert (broken / "best.keras").is_file() and not (broken / "metrics.json").exists()

    result = train_run(config, broken, resume=True)
    assert history_without_times(broken) == history_without_times(unbroken)
    for ours, theirs in zip(weights(broken / "last.keras"), weights(unbroken / "last.keras")):
        np.testing.assert_array_equal(ours, theirs)
    expected = json.loads((unbroken / "metrics.json").read_text())
    for key in ("test_accuracy", "test_loss", "best_epoch", "best_val_accuracy", "epochs_completed"):
        assert result.metrics[key] == expected[key]
    assert rundir.read_status(broken)["status"] == "complete"
    assert not (broken / "checkpoint").exists()


def test_resume_keeps_early_stopping_state(tmp_path, small_mnist_dir):
    # min_delta 1.0 makes every epoch after the first "no improvement": patience 2 stops after 3.
    stopping = {"enabled": True, "patience": 2, "min_delta": 1.0, "monitor": "val_loss"}
    config = make_config(small_mnist_dir, "mlp", {"epochs": 6, "early_stopping": stopping})
    unbroken = fresh_run_dir(tmp_path, "unbroken")
    train_run(config, unbroken)
    broken = fresh_run_dir(tmp_path, "broken")
    interrupted(config, broken, SignalAt(epoch=1))  # after epoch 2: one epoch without improvement
    result = train_run(config, broken, resume=True)
    assert result.metrics["epochs_completed"] == 3 and result.metrics["stopped_early"]
    assert history_without_times(broken) == history_without_times(unbroken)
    # restore_best_weights: both end on epoch 1's weights.
    for ours, theirs in zip(weights(broken / "last.keras"), weights(unbroken / "last.keras")):
        np.testing.assert_array_equal(ours, theirs)


def test_signal_during_data_loading_raises_at_once(tmp_path, small_mnist_dir, monkeypatch):
    import mnist_zoo.training.stage as training

    def load_and_interrupt(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(training, "load_dataset", load_and_interrupt)
    handler_before = signal.getsignal(signal.SIGTERM)
    run_dir = fresh_run_dir(tmp_path, "run")
    with pytest.raises(TrainingInterrupted) as caught:
        train_run(make_config(small_mnist_dir), run_dir)
    assert caught.value.signal_number == signal.SIGTERM and caught.value.epochs_completed == 0
    assert signal.getsignal(signal.SIGTERM) is handler_before  # handlers are put back


def test_second_signal_stops_at_once():
    class Model:
        stop_training = False

    model = Model()
    # What was there before comes back: Python's default handler, or SIG_IGN where the suite runs as
    # a background job of a non-interactive shell (`pytest &`), which starts with SIGINT ignored.
    handler_before = signal.getsignal(signal.SIGINT)
    with GracefulInterrupts() as interrupts:
        interrupts.watch(model)
        os.kill(os.getpid(), signal.SIGINT)
        assert model.stop_training and interrupts.signal_number == signal.SIGINT
        with pytest.raises(TrainingInterrupted):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is handler_before


def test_resuming_a_finished_epoch_count_only_writes_the_report(tmp_path, small_mnist_dir):
    config = make_config(small_mnist_dir, "linear", {"epochs": 2})
    run_dir = fresh_run_dir(tmp_path, "run")
    error = interrupted(config, run_dir, SignalAt(epoch=1))  # after the last epoch
    assert error.epochs_completed == 2
    result = train_run(config, run_dir, resume=True)
    assert result.metrics["epochs_completed"] == 2 and len(history_without_times(run_dir)) == 2


# ----------------------------------------------------------------------------- the best model


def tiny_model():
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    model.compile(optimizer="sgd", loss="mse")
    return model


def test_a_worse_epoch_after_resume_never_replaces_best_keras(tmp_path):
    # keras-team/keras#17012: a resumed ModelCheckpoint forgets its best score. Ours comes back
    # from the committed state.
    run_dir = fresh_run_dir(tmp_path, "run")
    model = tiny_model()
    state = checkpoint.TrainingState(monitor="val_accuracy", epochs_completed=1,
                                     history=[{"epoch": 1, "loss": 0.1, "val_accuracy": 0.99,
                                                                "learning_rate": 0.01, "epoch_seconds": 1.0}], best_value=0.99, best_epoch=1)
    checkpoint.commit(run_dir, model, state, stopping_improved=False)
    best_before = (run_dir / "best.keras").read_bytes()

    resumed = checkpoint.load_state(run_dir)
    committer = CommitEpochs(run_dir, TrainingLoop(resumed), steps_per_epoch=1)
    committer.set_model(model)
    committer.on_epoch_begin(1)
    committer.on_train_batch_end(0)
    committer.on_epoch_end(1, {"loss": 1.0, "val_accuracy": 0.50})
    assert (resumed.best_epoch, resumed.best_value) == (1, 0.99)
    assert (run_dir / "best.keras").read_bytes() == best_before
    assert checkpoint.load_state(run_dir).epochs_completed == 2


def test_crash_between_commit_and_best_copy_is_repaired_on_resume(tmp_path, small_mnist_dir, monkeypatch):
    config = make_config(small_mnist_dir, "linear")
    run_dir = fresh_run_dir(tmp_path, "run")
    interrupted(config, run_dir, SignalAt(epoch=0))
    state = checkpoint.load_state(run_dir)
    assert state.best_epoch == 1
    (run_dir / "best.keras").unlink()  # as if killed right after the state commit
    (run_dir / "checkpoint" / ".epoch-0002.keras.tmp").write_bytes(b"half-written")
    # Stopped again at the first step after the resume, so no later commit can write best.keras:
    # only the repair at resume time can have.
    with pytest.raises(TrainingInterrupted):
        train_run(config, run_dir, resume=True, extra_callbacks=[SignalAt(epoch=1, step=0)])
    assert (run_dir / "best.keras").read_bytes() == (run_dir / "checkpoint" / state.model_file).read_bytes()


def test_unreadable_checkpoint_is_a_clear_error(tmp_path, small_mnist_dir):
    config = make_config(small_mnist_dir, "linear")
    run_dir = fresh_run_dir(tmp_path, "run")
    interrupted(config, run_dir, SignalAt(epoch=0))
    state_file = run_dir / "checkpoint" / "state.json"
    state_file.write_text("{not json")
    with pytest.raises(RunDirError, match="unreadable training state"):
        train_run(config, run_dir, resume=True)
    state_file.write_text(json.dumps({"format": 1, "monitor": "val_accuracy", "model_file": "epoch-0009.keras"}))
    with pytest.raises(RunDirError, match="epoch-0009.keras: missing"):
        train_run(config, run_dir, resume=True)


@pytest.mark.parametrize("key, name", [("model_file", "../../elsewhere.keras"), ("model_file", "{outside}"),
                                       ("model_file", "link.keras"), ("stopping_weights_file", "../w.weights.h5"),
                                       ("model_file", ["epoch-0001.keras"])])
def test_a_checkpoint_naming_files_outside_it_is_refused(tmp_path, small_mnist_dir, key, name):
    """state.json travels with a run folder: a resume loads only the epoch files the checkpoint itself wrote."""
    config = make_config(small_mnist_dir, "linear")
    run_dir = fresh_run_dir(tmp_path, "run")
    interrupted(config, run_dir, SignalAt(epoch=0))
    state_file = run_dir / "checkpoint" / "state.json"
    state = json.loads(state_file.read_text())
    outside = tmp_path / "elsewhere.keras"
    outside.write_bytes((run_dir / "checkpoint" / state["model_file"]).read_bytes())
    (run_dir / "checkpoint" / "link.keras").symlink_to(outside)
    name = name.replace("{outside}", str(outside)) if isinstance(name, str) else name
    state_file.write_text(json.dumps({**state, key: name}))
    with pytest.raises(RunDirError, match="expected a name like"):
        train_run(config, run_dir, resume=True)


def test_a_checkpoint_epoch_file_declaring_gigabytes_is_refused_before_loading(tmp_path, small_mnist_dir):
    import h5py
    import zipfile

    config = make_config(small_mnist_dir, "linear")
    run_dir = fresh_run_dir(tmp_path, "run")
    interrupted(config, run_dir, SignalAt(epoch=0))
    epoch_file = run_dir / "checkpoint" / checkpoint.load_state(run_dir).model_file
    bomb = tmp_path / "bomb.weights.h5"
    with h5py.File(bomb, "w") as weights:  # 1.2 GB declared, a few kB on disk
        weights.create_dataset("layers/dense/vars/0", shape=(300_000_000,), dtype="float32", chunks=(1_000_000,),
                               compression="gzip")
    with zipfile.ZipFile(epoch_file) as archive:
        members = {item.filename: archive.read(item) for item in archive.infolist()}
    with zipfile.ZipFile(epoch_file, "w") as archive:
        for member, content in members.items():
            archive.writestr(member, bomb.read_bytes() if member == "model.weights.h5" else content)
    with pytest.raises(ModelFileError, match="declare"):
        train_run(config, run_dir, resume=True)


def test_resume_refuses_different_data(tmp_path, small_mnist_dir, mnist_data):
    config = make_config(small_mnist_dir, "linear")
    run_dir = fresh_run_dir(tmp_path, "run")
    interrupted(config, run_dir, SignalAt(epoch=0))
    other = config.model_copy(update={"data": config.data.model_copy(update={"data_dir": str(mnist_data)})})
    with pytest.raises(RunDirError, match="differ from the data this run started with"):
        train_run(other, run_dir, resume=True)


def test_a_run_directory_in_use_is_refused(tmp_path, small_mnist_dir):
    import subprocess
    import sys

    run_dir = fresh_run_dir(tmp_path, "run")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time\n"
        "handle = open(sys.argv[1], 'a'); fcntl.flock(handle, fcntl.LOCK_EX); print('locked', flush=True)\n"
        "time.sleep(120)"), str(run_dir / rundir.LOCK_FILE)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        rundir.write_status(run_dir, "running")
        with pytest.raises(RunDirError, match="is training in it; wait for it to finish or stop it first"):
            train_run(make_config(small_mnist_dir, "linear"), run_dir, resume=True)
    finally:
        holder.kill()
        holder.wait()


def test_a_live_process_id_without_the_lock_is_not_a_trainer(tmp_path, small_mnist_dir):
    # After kill -9 the recorded process id can belong to another program: the lock, not the id, decides.
    run_dir = fresh_run_dir(tmp_path, "run")
    rundir.write_status(run_dir, "running")
    status = rundir.read_status(run_dir)
    status["pid"] = os.getppid()  # alive, and not training
    rundir.write_json(run_dir / rundir.STATUS_FILE, status)
    train_run(make_config(small_mnist_dir, "linear", {"epochs": 1}), run_dir, resume=True)
    assert rundir.read_status(run_dir)["status"] == "complete"


# ----------------------------------------------------------------------------- repeatability


def test_deterministic_turns_on_op_determinism_and_runs_repeat(tmp_path, small_mnist_dir):
    # Op determinism is process-wide and cannot be undone: this run gets a process of its own.
    script = f"""
import json, sys
from pathlib import Path
from tests.helpers import op_determinism_enabled, history_without_times, make_config
from mnist_zoo.training.stage import train_run
config = make_config(Path({str(small_mnist_dir)!r}), "cnn", {{"deterministic": True, "epochs": 2}})
histories = []
for name in ("first", "second"):
    run_dir = Path({str(tmp_path)!r}) / name
    run_dir.mkdir()
    train_run(config, run_dir)
    histories.append(history_without_times(run_dir))
print(json.dumps({{"same": histories[0] == histories[1], "enabled": op_determinism_enabled()}}))
"""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"same": True, "enabled": True}


def test_a_default_run_leaves_op_determinism_off(tmp_path, small_mnist_dir):
    train_run(make_config(small_mnist_dir, "linear", {"epochs": 1}), fresh_run_dir(tmp_path, "run"))
    assert not op_determinism_enabled()


def test_a_failing_status_write_does_not_hide_the_real_error(tmp_path, small_mnist_dir, monkeypatch):
    import mnist_zoo.training.stage as training

    def broken_load(*args, **kwargs):
        raise RunDirError("the real problem")

    real_write_status = rundir.write_status

    def write_status(run_dir, status, **details):
        if status == "failed":
            raise OSError(28, "No space left on device", str(run_dir / "status.json"))
        real_write_status(run_dir, status, **details)

    monkeypatch.setattr(training, "load_dataset", broken_load)
    monkeypatch.setattr(rundir, "write_status", write_status)
    with pytest.raises(RunDirError, match="the real problem"):
        train_run(make_config(small_mnist_dir), fresh_run_dir(tmp_path, "run"))
