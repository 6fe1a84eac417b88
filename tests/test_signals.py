"""Real signals to a real `mnist-zoo train` process: Ctrl-C, SIGTERM and kill -9, then --resume."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import yaml

from mnist_zoo import rundir
from mnist_zoo.train import checkpoint
from tests.helpers import history_without_times, wait_for_epochs

EPOCHS = 8


@pytest.fixture(scope="module")
def config_file(small_mnist_dir, tmp_path_factory):
    config = {
        "model": {"type": "cnn", "conv_layers": [{"filters": 8, "kernel_size": 5}], "hidden_units": [32],
                  "dropout_rate": 0.3},
        "data": {"data_dir": str(small_mnist_dir), "validation_size": 200},
        "train": {"epochs": EPOCHS, "batch_size": 32, "verbose": 2,
                  "schedule": {"name": "one_cycle", "warmup_fraction": 0.1}},
    }
    path = tmp_path_factory.mktemp("signals") / "small-cnn.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_training(*args):
    return subprocess.Popen([sys.executable, "-m", "mnist_zoo", "train", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process, timeout=300):
    stdout, stderr = process.communicate(timeout=timeout)
    return process.returncode, stdout, stderr


def final_weights(run_dir):
    return keras.saving.load_model(run_dir / "last.keras").get_weights()


@pytest.fixture(scope="module")
def unbroken_run(config_file, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("unbroken") / "run"
    code, _, stderr = finish(start_training("--config", config_file, "--run-dir", run_dir))
    assert code == 0, stderr
    return run_dir


def assert_same_as_unbroken(run_dir, unbroken_run):
    assert history_without_times(run_dir) == history_without_times(unbroken_run)
    for ours, theirs in zip(final_weights(run_dir), final_weights(unbroken_run)):
        np.testing.assert_array_equal(ours, theirs)
    assert (json.loads((run_dir / "metrics.json").read_text())["test_accuracy"]
            == json.loads((unbroken_run / "metrics.json").read_text())["test_accuracy"])


@pytest.mark.parametrize("signum, exit_code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_cleanly_and_resume_matches(tmp_path, config_file, unbroken_run, signum, exit_code):
    run_dir = tmp_path / "run"
    process = start_training("--config", config_file, "--run-dir", run_dir)
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

    code, stdout, stderr = finish(start_training("--resume", run_dir))
    assert code == 0, stderr
    assert f"resuming after epoch {status['epochs_completed']} of {EPOCHS}" in stderr
    assert_same_as_unbroken(run_dir, unbroken_run)


def kill_during_a_checkpoint_write(run_dir, process, timeout=300):
    """Polls for the temporary file of epoch 2's checkpoint and kills the process while it exists."""
    deadline = time.monotonic() + timeout
    folder = run_dir / "checkpoint"
    while time.monotonic() < deadline and process.poll() is None:
        try:
            names = os.listdir(folder)
        except OSError:
            names = []
        if any(name.startswith(".epoch-0002") for name in names):
            process.kill()
            return "during the write of epoch 2's checkpoint"
    process.kill()
    return "after the polling ended (the write was not seen)"


# Moments after epoch 2 is committed, in epochs: late in epoch 3 (in validation or the commit), and
# the moment a checkpoint file is half written; the soak below kills at random moments.
KILL_MOMENTS = [0.9, "checkpoint-write"]


@pytest.mark.parametrize("moment", KILL_MOMENTS)
def test_kill_9_leaves_a_resumable_run_that_ends_like_an_unbroken_one(tmp_path, config_file, unbroken_run, moment):
    run_dir = tmp_path / "run"
    process = start_training("--config", config_file, "--run-dir", run_dir)
    if moment == "checkpoint-write":
        when = kill_during_a_checkpoint_write(run_dir, process)
    else:
        # Epoch 2's time is the unit: epoch 1's includes tracing and is several times longer.
        wait_for_epochs(run_dir, 2, process)
        epoch_seconds = json.loads((run_dir / "history.json").read_text())["epochs"][1]["epoch_seconds"]
        fraction = random.SystemRandom().uniform(0, 2) if moment == "random" else moment
        time.sleep(fraction * epoch_seconds)
        assert process.poll() is None, f"training ended before the kill, {fraction:.2f} epochs after epoch 2"
        process.kill()
        when = f"{fraction:.2f} epochs after epoch 2"
    finish(process)

    state = checkpoint.load_state(run_dir)  # intact: parses, and names files that exist
    assert state is not None and state.epochs_completed >= 1, f"killed {when}"
    assert rundir.read_status(run_dir)["status"] == "running"  # nobody could record the kill
    keras.saving.load_model(run_dir / "best.keras", compile=False)

    code, _, stderr = finish(start_training("--resume", run_dir))
    assert code == 0, f"killed {when}: {stderr}"
    assert_same_as_unbroken(run_dir, unbroken_run)


def test_resume_of_a_complete_run_is_refused(unbroken_run):
    code, _, stderr = finish(start_training("--resume", unbroken_run))
    assert code == 2 and "already complete" in stderr


SOAK_KILLS = int(os.environ.get("MNIST_ZOO_SOAK_KILLS", "4"))


@pytest.mark.slow
@pytest.mark.parametrize("target, kills", [("train", SOAK_KILLS)])
def test_kill_9_soak_ends_identical_to_an_unbroken_run(tmp_path, shared_data, target, kills):
    # scripts/soak_resume.py kills at random moments (README "Robustness" has the 30-kill figures).
    script = os.path.join(os.path.dirname(__file__), "..", "scripts", "soak_resume.py")
    result = subprocess.run([sys.executable, script, "--data-dir", str(shared_data), "--target", target,
                             "--kills", str(kills), "--epochs", "4", "--work-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith(f"{kills} ") and ("results identical" in summary or "every file intact" in summary)
