"""Real signals to a real `mnist-zoo train` process: Ctrl-C, SIGTERM and kill -9, then --resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from mnist_zoo import rundir
from mnist_zoo.training import checkpoint
from tests.helpers import history_without_times, wait_for_epochs

EPOCHS = 4  # conftest's SMALL_CNN_EPOCHS


def start_training(*args):
    return subprocess.Popen([sys.executable, "-m", "mnist_zoo", "train", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process, timeout=300):
    stdout, stderr = process.communicate(timeout=timeout)
    return process.returncode, stdout, stderr


def final_weights(run_dir):
    return keras.saving.load_model(run_dir / "last.keras").get_weights()


def assert_same_as_unbroken(run_dir, small_cnn_reference):
    assert history_without_times(run_dir) == history_without_times(small_cnn_reference)
    for ours, theirs in zip(final_weights(run_dir), final_weights(small_cnn_reference)):
        np.testing.assert_array_equal(ours, theirs)
    assert (json.loads((run_dir / "metrics.json").read_text())["test_accuracy"]
            == json.loads((small_cnn_reference / "metrics.json").read_text())["test_accuracy"])


# Resumed once: what a resume continues does not depend on the signal that stopped the run.
@pytest.mark.parametrize("signum, exit_code, resume", [(signal.SIGINT, 130, True), (signal.SIGTERM, 143, False)])
def test_signal_stops_cleanly_and_resume_matches(tmp_path, small_cnn_config, small_cnn_reference, signum, exit_code,
                                                 resume):
    run_dir = tmp_path / "run"
    process = start_training("--config", small_cnn_config, "--run-dir", run_dir)
    wait_for_epochs(run_dir, 2, process)
    process.send_signal(signum)
    code, _, stderr = finish(process)

    assert code == exit_code, stderr
    last_line = stderr.strip().splitlines()[-1]
    assert f"Interrupted by {signal.Signals(signum).name}" in last_line
    assert f"mnist-zoo train --resume {run_dir}" in last_line
    assert "Traceback" not in stderr
    status = rundir.read_status(run_dir)
    assert status["status"] == "interrupted" and 2 <= status["epochs_completed"] < EPOCHS
    assert checkpoint.load_state(run_dir).epochs_completed == status["epochs_completed"]
    if not resume:
        return
    code, stdout, stderr = finish(start_training("--resume", run_dir))
    assert code == 0, stderr
    assert f"resuming after epoch {status['epochs_completed']} of {EPOCHS}" in stderr
    assert_same_as_unbroken(run_dir, small_cnn_reference)


# `mnist-zoo train` whose write of epoch 2's checkpoint stops half way, as a write cut short does,
# and says so: the test kills it at exactly that moment instead of hoping to catch it.
HALF_WRITE_LAUNCHER = """
import contextlib, sys, time
from pathlib import Path
from mnist_zoo import rundir
from mnist_zoo.cli import main

real_atomic_path = rundir.atomic_path

@contextlib.contextmanager
def half_written(path):
    with real_atomic_path(path) as temporary:
        yield temporary
        if Path(path).name == "epoch-0002.keras":
            content = temporary.read_bytes()
            temporary.write_bytes(content[: len(content) // 2])
            print("HALF-WRITTEN", temporary, flush=True)
            time.sleep(600)

rundir.atomic_path = half_written
sys.argv = ["mnist-zoo", "train", *sys.argv[1:]]
main()
"""


def kill_during_a_checkpoint_write(run_dir, small_cnn_config):
    """Kills training while epoch 2's checkpoint file is half written; returns the half-written file."""
    process = subprocess.Popen([sys.executable, "-c", HALF_WRITE_LAUNCHER, "--config", str(small_cnn_config),
                                "--run-dir", str(run_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stdout:  # pytest-timeout ends this if the line never comes
        if line.startswith("HALF-WRITTEN "):
            process.kill()
            break
    finish(process)
    return Path(line.split(" ", 1)[1].strip())


def test_kill_9_late_in_an_epoch_leaves_a_resumable_run_that_ends_like_an_unbroken_one(tmp_path, small_cnn_config,
                                                                                       small_cnn_reference):
    # Epoch 2's time is the unit: epoch 1's includes tracing and is several times longer. 0.9 of it
    # after epoch 2's commit is late in epoch 3 (its validation or its commit); the soak below kills
    # at random moments. On a loaded machine the last epochs can run faster than epoch 2 and the
    # run can finish (status complete, checkpoint removed) while the interpreter is still exiting:
    # such a kill tests nothing, so it is tried again with a shorter delay.
    for attempt, fraction in enumerate((0.9, 0.6, 0.3)):
        run_dir = tmp_path / f"run-{attempt}"
        process = start_training("--config", small_cnn_config, "--run-dir", run_dir)
        wait_for_epochs(run_dir, 2, process)
        epoch_seconds = json.loads((run_dir / "history.json").read_text())["epochs"][1]["epoch_seconds"]
        time.sleep(fraction * epoch_seconds)
        process.kill()
        finish(process)
        if rundir.read_status(run_dir)["status"] != "complete":
            break
    else:
        pytest.fail("every run finished before its kill: no kill landed late in an epoch")
    assert_resumable_and_ends_like(run_dir, small_cnn_reference)


def test_kill_9_mid_checkpoint_write_leaves_a_resumable_run_that_ends_like_an_unbroken_one(tmp_path, small_cnn_config,
                                                                                          small_cnn_reference):
    run_dir = tmp_path / "run"
    half_written = kill_during_a_checkpoint_write(run_dir, small_cnn_config)
    assert half_written.parent == run_dir / "checkpoint" and half_written.is_file()  # killed mid-write
    state = checkpoint.load_state(run_dir)
    assert state.epochs_completed == 1 and state.model_file == "epoch-0001.keras"  # epoch 2 never committed
    assert_resumable_and_ends_like(run_dir, small_cnn_reference)
    assert not half_written.exists()  # the killed write's temporary is cleared on resume


def assert_resumable_and_ends_like(run_dir, small_cnn_reference):
    state = checkpoint.load_state(run_dir)  # intact: parses, and names files that exist
    assert state is not None and state.epochs_completed >= 1
    assert rundir.read_status(run_dir)["status"] == "running"  # nobody could record the kill
    keras.saving.load_model(run_dir / "best.keras", compile=False)

    code, _, stderr = finish(start_training("--resume", run_dir))
    assert code == 0, stderr
    assert_same_as_unbroken(run_dir, small_cnn_reference)


def test_resume_of_a_complete_run_is_refused(small_cnn_reference, tmp_path):
    import shutil

    run_dir = shutil.copytree(small_cnn_reference, tmp_path / "run")  # the refusal must write nothing, but it may
    code, _, stderr = finish(start_training("--resume", run_dir))
    assert code == 2 and "already complete" in stderr


SOAK_KILLS = int(os.environ.get("MNIST_ZOO_SOAK_KILLS", "2"))


@pytest.mark.slow
@pytest.mark.parametrize("target, kills", [("train", SOAK_KILLS)])
def test_kill_9_soak_ends_identical_to_an_unbroken_run(tmp_path, mnist_data, target, kills):
    # scripts/soak_resume.py kills at random moments (docs/robustness.md has the 30-kill figures).
    script = os.path.join(os.path.dirname(__file__), "..", "scripts", "soak_resume.py")
    result = subprocess.run([sys.executable, script, "--data-dir", str(mnist_data), "--target", target,
                             "--kills", str(kills), "--epochs", "4", "--work-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith(f"{kills} ") and ("results identical" in summary or "every file intact" in summary)
