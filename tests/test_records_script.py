"""scripts/records.py: which jobs it runs, how it continues them, and the line it records."""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import pytest

from mnist_zoo.config.loading import bundled_config_names, bundled_config_path, load_config
from tests.helpers import load_script

records = load_script("records")


@pytest.mark.parametrize("name", sorted(records.JOBS))
def test_every_job_is_a_bundled_config_with_overrides_that_validate(name):
    config, seeds, overrides = records.JOBS[name]
    assert config in bundled_config_names() and seeds
    load_config(bundled_config_path(config), list(overrides))  # raises if an override no longer validates


@pytest.mark.parametrize("name", sorted(name for name, job in records.JOBS.items() if job[0] == "cnn_record"))
def test_every_record_job_trains_the_weight_decay_its_documented_runs_had(name):
    """Only `record` (cnn_record as bundled) and the two weight-decay candidates decay the weights: every other
    cnn_record job ran before the recipe took weight decay, so running it again must leave it off."""
    config, _, overrides = records.JOBS[name]
    resolved = load_config(bundled_config_path(config), list(overrides))
    assert resolved.train.optimizer.weight_decay == (0.05 if name in ("record", "record_float32", "weight_decay", "wd_trial") else None)


def fake_training(metrics: dict, commands: list | None = None):
    """A stand-in for `mnist-zoo train` (a new run or a --resume) that writes a finished run with `metrics`.

    Each training command it is given is appended to `commands` if one is passed.
    """
    def run(command, check, cwd=None, **kwargs):
        if command[0] == "git":  # records.code_commit
            raise OSError("no git in this test")
        if commands is not None:
            commands.append(command)
        run_dir = Path(command[command.index("--run-dir" if "--run-dir" in command else "--resume") + 1])
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "metrics.json").write_text(json.dumps(metrics))
        (run_dir / "status.json").write_text(json.dumps({"status": "complete"}))
        return subprocess.CompletedProcess(command, 0)
    return run


def job_arguments(tmp_path):
    """The command-line arguments run_job reads: runs and data both under `tmp_path`."""
    return argparse.Namespace(runs_dir=tmp_path, data_dir=tmp_path)


METRICS = {"test_accuracy": 0.9962, "best_epoch": 30, "epochs_completed": 30, "train_seconds": 1100.04,
           "precision": "mixed_bfloat16"}


def test_a_run_without_a_hold_out_is_recorded_with_no_validation_figure(tmp_path, monkeypatch):
    # With data.validation_size=0 the run's best epoch follows training accuracy: no best_val_accuracy.
    monkeypatch.setattr(records.subprocess, "run", fake_training({**METRICS, "best_accuracy": 0.998}))
    args = job_arguments(tmp_path)
    line = records.run_job("all_data", "cnn_record", 2, records.JOBS["all_data"][2], args)
    assert line["best_val_accuracy"] is None and line["test_accuracy"] == 0.9962 and line["train_seconds"] == 1100.0
    assert line["command"] == ("mnist-zoo train --model cnn_record --seed 2 --set train.optimizer.weight_decay=null "
                               "--set data.validation_size=0")
    # The CPU's family and model numbers tell generations with the same model name apart.
    assert {"cpu", "cpu_family", "cpu_model", "cpu_flags", "onednn_max_cpu_isa"} <= line.keys()


def test_a_finished_job_is_read_again_not_retrained(tmp_path, monkeypatch):
    monkeypatch.setattr(records.subprocess, "run", fake_training({**METRICS, "best_val_accuracy": 0.996}))
    args = job_arguments(tmp_path)
    first = records.run_job("record", "cnn_record", 1, (), args)
    monkeypatch.setattr(records, "code_commit", lambda: None)
    monkeypatch.setattr(records.subprocess, "run", lambda *args, **kwargs: pytest.fail("trained again"))
    assert records.run_job("record", "cnn_record", 1, (), args) == first


def run_main(monkeypatch, tmp_path, *arguments) -> list[tuple[str, int]]:
    """Run records.py's main with `arguments`; return the (job, seed) pairs it trained."""
    trained = []

    def run_job(name, config, seed, overrides, args):
        trained.append((name, seed))
        return {"job": name, "seed": seed}
    monkeypatch.setattr(records, "run_job", run_job)
    monkeypatch.setattr(records.sys, "argv", ["records.py", "--results", str(tmp_path / "results.jsonl"),
                                              "--runs-dir", str(tmp_path), *arguments])
    records.main()
    return trained


def test_seed_runs_only_the_chosen_seeds_of_the_chosen_jobs(tmp_path, monkeypatch):
    assert run_main(monkeypatch, tmp_path, "--only", "record", "--only", "fast", "--seed", "1", "--seed", "3") == [
        ("record", 1), ("record", 3), ("fast", 1), ("fast", 3)]
    assert run_main(monkeypatch, tmp_path, "--only", "record", "--seed", "5") == [("record", 5)]


def test_a_seed_that_no_chosen_job_has_is_refused(tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit):
        run_main(monkeypatch, tmp_path, "--only", "fast", "--seed", "5")
    assert "--seed 5: no chosen job has that seed (fast)" in capsys.readouterr().err


def test_an_interrupted_job_is_continued_not_started_over(tmp_path, monkeypatch, small_mnist_dir):
    """A stopped run keeps its epochs in checkpoint/ (there is no last.keras yet): they must be resumed."""
    from tests.helpers import SignalAt, interrupted, make_config

    run_dir = tmp_path / "record-seed1"
    run_dir.mkdir()
    interrupted(make_config(small_mnist_dir), run_dir, SignalAt(epoch=0))
    assert not (run_dir / "last.keras").exists()
    commands = []
    monkeypatch.setattr(records.subprocess, "run", fake_training({**METRICS, "best_val_accuracy": 0.996}, commands))
    records.run_job("record", "cnn_record", 1, (), job_arguments(tmp_path))
    assert [command[4:] for command in commands] == [["--resume", str(run_dir)]]


def test_a_job_that_never_committed_an_epoch_starts_over(tmp_path, monkeypatch):
    run_dir = tmp_path / "record-seed1"
    run_dir.mkdir()
    (run_dir / "status.json").write_text(json.dumps({"status": "interrupted"}))  # stopped in its first epoch
    monkeypatch.setattr(records.subprocess, "run", fake_training({**METRICS, "best_val_accuracy": 0.996}))
    args = job_arguments(tmp_path)
    assert records.run_job("record", "cnn_record", 1, (), args)["test_accuracy"] == 0.9962  # trained with --force


def test_a_line_names_the_commit_that_trained_it(tmp_path, monkeypatch):
    head = subprocess.run(["git", "-C", str(records.REPO_ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()
    assert head and records.code_commit().rstrip("+") == head  # "+": files differ from the commit
    monkeypatch.setattr(records, "code_commit", lambda: "abc1234")
    monkeypatch.setattr(records.subprocess, "run", fake_training({**METRICS, "best_val_accuracy": 0.996}))
    args = job_arguments(tmp_path)
    assert records.run_job("record", "cnn_record", 1, (), args)["commit"] == "abc1234"


@pytest.mark.parametrize("cap", [None, "AVX2"])
def test_a_line_names_onednns_instruction_set_cap(tmp_path, monkeypatch, cap):
    """A run held to AVX2 on a newer CPU must not pass for that CPU's own figure."""
    if cap:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    else:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(records.subprocess, "run", fake_training({**METRICS, "best_val_accuracy": 0.996}))
    args = job_arguments(tmp_path)
    assert records.run_job("fast", "cnn_fast", 1, (), args)["onednn_max_cpu_isa"] == cap


def test_outside_a_git_checkout_the_commit_is_unknown(monkeypatch):
    monkeypatch.setattr(records, "REPO_ROOT", Path("/"))
    assert records.code_commit() is None


def test_by_default_it_trains_into_runs_not_into_the_documented_results(tmp_path, monkeypatch, capsys):
    # It used to default to docs/data/records.jsonl, where every job is done: the commands that
    # docs/records.md quotes printed "done" and trained nothing.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["records.py", "--only", "record", "--list"])
    records.main()
    assert capsys.readouterr().out.splitlines() == [f"record seed {seed}: left" for seed in range(1, 6)]
    commands = []
    monkeypatch.setattr(records.subprocess, "run", fake_training({**METRICS, "best_val_accuracy": 0.996}, commands))
    monkeypatch.setattr("sys.argv", ["records.py", "--only", "record", "--seed", "1"])
    records.main()
    assert commands[-1][commands[-1].index("--run-dir") + 1] == str(tmp_path / "runs" / "record-seed1")
    assert json.loads((tmp_path / "runs" / "records.jsonl").read_text())["seed"] == 1
