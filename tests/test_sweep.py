"""mnist-zoo sweep: the sweep file's validation, trials as run directories, workers sharing a study, pruning, the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mnist_zoo.cli import cli
from mnist_zoo.errors import ConfigError

optuna = pytest.importorskip("optuna", reason="optuna is part of the test install")

from mnist_zoo.sweep.spec import load_sweep  # noqa: E402

BUNDLED_SWEEPS = sorted((Path(__file__).resolve().parent.parent / "configs" / "sweeps").glob("*.yaml"))


def write_sweep(folder: Path, **sweep) -> Path:
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def tiny_sweep(folder: Path, data_dir: Path, **changes) -> Path:
    """A linear-model sweep over the learning rate: 2 epochs of 1,800 images per trial, seconds each."""
    sweep = {
        "base": "linear",
        "set": {"data.data_dir": str(data_dir), "data.validation_size": 200, "train.epochs": 2},
        "trials": 3,
        "sampler": "random",
        "space": {"train.optimizer.learning_rate": {"log_uniform": [0.01, 1.0]}},
    }
    sweep.update(changes)
    return write_sweep(folder, **sweep)


# ----------------------------------------------------------------------------- the sweep file


@pytest.mark.parametrize("path", BUNDLED_SWEEPS, ids=lambda path: path.stem)
def test_every_bundled_sweep_is_valid(path):
    spec, base = load_sweep(path)
    assert base.is_file() and spec.trial_count


@pytest.mark.parametrize("changes, message", [
    ({"trails": 3}, "unknown key 'trails' (did you mean 'trials'?)"),
    ({"space": {"model.dropot_rate": {"uniform": [0.1, 0.5]}}}, "unknown key 'dropot_rate' (did you mean 'dropout_rate'?)"),
    ({"space": {"model.dropout_rate": {"uniform": [0.2, 1.5]}}}, "space.model.dropout_rate: 1.5 does not make a valid"),
    ({"space": {"train.batch_size": {"int": [0, 64]}}}, "space.train.batch_size: 0 does not make a valid"),
    ({"space": {"train.optimizer.name": {"choice": ["adam", "adma"]}}}, "unknown optimizer 'adma'"),
    ({"space": {"model.dropout_rate": {"uniform": [0.5, 0.1]}}}, "low must be below high"),
    ({"space": {"model.dropout_rate": {"uniform": [0.1, 0.5], "choice": [0.1]}}}, "give exactly one of"),
    ({"sampler": "grid", "space": {"model.dropout_rate": {"uniform": [0.1, 0.5]}}}, "grid needs choice lists only"),
    ({"sampler": "grid", "trials": 5, "space": {"model.dropout_rate": {"choice": [0.1, 0.2]}}},
     "more than the grid's 2 combinations"),
    ({"trials": None}, "give trials, time_budget_minutes, or both"),
    ({"objective": "test_accuracy"}, "objective"),
    ({"base": "mpl"}, "no bundled config named 'mpl' (did you mean 'mlp'?)"),
    ({"set": {"train.epoch": 3}}, "unknown key 'epoch' (did you mean 'epochs'?)"),
    ({"set": {"model.dropout_rate": 0.1}}, "also fixed in set"),
])
def test_a_bad_sweep_is_one_error_before_any_training(tmp_path, changes, message):
    sweep = {"base": "mlp", "trials": 3, "space": {"model.dropout_rate": {"uniform": [0.1, 0.5]}}}
    sweep.update(changes)
    sweep = {key: value for key, value in sweep.items() if value is not None}
    with pytest.raises(ConfigError) as raised:
        load_sweep(write_sweep(tmp_path, **sweep))
    assert message in str(raised.value)
    result = CliRunner().invoke(cli, ["sweep", str(tmp_path / "sweep.yaml"), "--sweep-dir", str(tmp_path / "out")])
    assert result.exit_code == 2 and message in result.output and not (tmp_path / "out" / "trials").exists()


def test_list_choices_such_as_layer_widths_reach_the_config(tmp_path):
    from mnist_zoo.sweep.spec import trial_config

    path = write_sweep(tmp_path, base="mlp", trials=2, space={"model.hidden_units": {"choice": [[128], [256, 64]]}})
    spec, base = load_sweep(path)
    study = optuna.create_study(sampler=optuna.samplers.GridSampler(spec.grid, seed=0))
    trial = study.ask()
    value = spec.space["model.hidden_units"].suggest(trial, "model.hidden_units")
    assert value in ([128], [256, 64])
    assert list(trial_config(spec, base, {"model.hidden_units": value}, "t").model.hidden_units) == value


# ----------------------------------------------------------------------------- running sweeps


def sweep_cli(*args: str):
    return CliRunner().invoke(cli, ["sweep", *args])


def finished(study_trials) -> list:
    return [trial for trial in study_trials if trial["state"] in ("complete", "pruned")]


def test_a_sweep_trains_each_trial_as_a_run_and_reports_best_yaml_and_plots(tmp_path, small_mnist_dir):
    sweep_file = tiny_sweep(tmp_path, small_mnist_dir)
    out = tmp_path / "out"
    result = sweep_cli(str(sweep_file), "--sweep-dir", str(out), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [trial["number"] for trial in finished(report["trials"])] == [0, 1, 2]
    runs = sorted((out / "trials").iterdir())
    assert [run.name for run in runs] == ["0000-linear", "0001-linear", "0002-linear"]
    for run, trial in zip(runs, report["trials"]):
        assert (run / "best.keras").is_file() and (run / "metrics.json").is_file()
        recorded = yaml.safe_load((run / "config.yaml").read_text())
        assert recorded["train"]["optimizer"]["learning_rate"] == trial["params"]["train.optimizer.learning_rate"]
        history = json.loads((run / "history.json").read_text())["epochs"]
        if trial["state"] == "complete":
            assert trial["value"] == max(epoch["val_accuracy"] for epoch in history)
    best = max(finished(report["trials"]), key=lambda trial: trial["value"])
    assert report["best"]["number"] == best["number"]
    assert len(report["leaderboard"]) == 3 and report["leaderboard"][0]["run"] == f"{best['number']:04d}-linear"
    assert sorted(path.name for path in out.glob("*.png")) == [
        "optimization_history.png", "parallel_coordinate.png", "param_importances.png"]
    # best.yaml is a config `train --config` takes; trials are runs for compare and --resume.
    assert sweep_cli(str(out), "--report").exit_code == 0
    assert CliRunner().invoke(cli, ["config", "check", str(out / "best.yaml")]).exit_code == 0
    compared = CliRunner().invoke(cli, ["compare", str(out / "trials"), "--format", "json"])
    assert compared.exit_code == 0 and len(json.loads(compared.stdout)) == 3


def test_a_rerun_continues_the_study_to_its_trial_count(tmp_path, small_mnist_dir):
    sweep_file = tiny_sweep(tmp_path, small_mnist_dir, trials=2)
    out = tmp_path / "out"
    assert sweep_cli(str(sweep_file), "--sweep-dir", str(out), "--no-report").exit_code == 0
    tiny_sweep(tmp_path, small_mnist_dir, trials=3)  # the same sweep, one more trial wanted
    result = sweep_cli(str(sweep_file), "--sweep-dir", str(out), "--json")
    assert result.exit_code == 2 and "holds another sweep" in result.output
    result = sweep_cli(str(out / "sweep.yaml"), "--sweep-dir", str(out), "--json")
    assert result.exit_code == 0, result.output


def test_a_grid_sweep_enumerates_its_grid_exactly_once(tmp_path, small_mnist_dir):
    sweep_file = tiny_sweep(tmp_path, small_mnist_dir, trials=None, sampler="grid", pruner="none",
                            space={"train.optimizer.learning_rate": {"choice": [0.05, 0.2, 0.5]},
                                   "train.batch_size": {"choice": [64, 128]}})
    result = sweep_cli(str(sweep_file), "--sweep-dir", str(tmp_path / "out"), "--json")
    assert result.exit_code == 0, result.output
    trials = finished(json.loads(result.stdout)["trials"])
    combinations = sorted((trial["params"]["train.optimizer.learning_rate"], trial["params"]["train.batch_size"])
                          for trial in trials)
    assert combinations == sorted((rate, batch) for rate in (0.05, 0.2, 0.5) for batch in (64, 128))


def test_the_pruner_stops_a_trial_and_its_run_directory_says_pruned(tmp_path, small_mnist_dir, monkeypatch):
    from mnist_zoo.sweep import study as study_module

    class PruneLaterTrials(optuna.pruners.BasePruner):
        """Prunes every trial after the first at its second epoch: what the median pruner does to bad ones."""

        def prune(self, study, trial):
            return trial.number > 0 and trial.last_step is not None and trial.last_step >= 2

    monkeypatch.setattr(study_module, "pruner_for", lambda spec: PruneLaterTrials())
    sweep_file = tiny_sweep(tmp_path, small_mnist_dir, trials=2, set={
        "data.data_dir": str(small_mnist_dir), "data.validation_size": 200, "train.epochs": 4})
    out = tmp_path / "out"
    result = sweep_cli(str(sweep_file), "--sweep-dir", str(out), "--json")
    assert result.exit_code == 0, result.output
    trials = json.loads(result.stdout)["trials"]
    assert [trial["state"] for trial in trials] == ["complete", "pruned"]
    status = json.loads((out / "trials" / "0001-linear" / "status.json").read_text())
    assert status["status"] == "pruned" and status["epochs_completed"] == 2
    assert len(json.loads((out / "trials" / "0001-linear" / "history.json").read_text())["epochs"]) == 2
    assert len(json.loads((out / "trials" / "0000-linear" / "history.json").read_text())["epochs"]) == 4


def test_two_worker_processes_share_one_sqlite_study_without_duplicates(tmp_path, small_mnist_dir):
    sweep_file = tiny_sweep(tmp_path, small_mnist_dir, trials=4)
    out = tmp_path / "out"
    result = sweep_cli(str(sweep_file), "--sweep-dir", str(out), "--workers", "2", "--json")
    assert result.exit_code == 0, result.output
    trials = json.loads(result.stdout)["trials"]
    numbers = [trial["number"] for trial in finished(trials)]
    assert len(numbers) == 4 and len(set(numbers)) == 4
    assert len({trial["run_dir"] for trial in finished(trials)}) == 4
    assert all((Path(trial["run_dir"]) / "metrics.json").is_file() for trial in finished(trials))


def test_a_worker_killed_mid_trial_does_not_stall_the_study(tmp_path, small_mnist_dir):
    """SIGKILL one worker during a trial: the rerun marks it failed, runs it again, and completes the study."""
    import os
    import signal
    import subprocess
    import sys
    import time

    sweep_file = tiny_sweep(tmp_path, small_mnist_dir, trials=2, heartbeat_seconds=1, pruner="none", set={
        "data.data_dir": str(small_mnist_dir), "data.validation_size": 200, "train.epochs": 12})
    out = tmp_path / "out"
    worker = subprocess.Popen([sys.executable, "-m", "mnist_zoo", "sweep", str(sweep_file), "--sweep-dir", str(out),
                               "--no-report"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    history = out / "trials" / "0000-linear" / "history.json"
    deadline = time.monotonic() + 120
    while not history.is_file() and time.monotonic() < deadline:  # killed after a committed epoch
        time.sleep(0.2)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    assert history.is_file(), "the first trial never committed an epoch"
    time.sleep(3.5)  # three heartbeats missed: the trial is stale
    result = sweep_cli(str(sweep_file), "--sweep-dir", str(out), "--json")
    assert result.exit_code == 0, result.output
    trials = json.loads(result.stdout)["trials"]
    states = [(trial["number"], trial["state"], trial["params"]) for trial in trials]
    assert trials[0]["state"] == "fail" and len(finished(trials)) == 2, states
    # The killed trial ran again with its parameters; its run directory says what happened.
    assert trials[0]["params"] in [trial["params"] for trial in finished(trials)], states
    status = json.loads((out / "trials" / "0000-linear" / "status.json").read_text())
    assert status["status"] == "failed" and "no heartbeat" in status["error"]


@pytest.fixture(scope="module")
def postgres_url():
    """A throw-away PostgreSQL server on a loopback port (Debian's initdb and pg_ctl), for this module's tests."""
    import sys

    from tests.conftest import data_missing

    pytest.importorskip("psycopg", reason="psycopg is part of the test install")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    from bench_sweep import throwaway_postgres

    with throwaway_postgres() as url:
        if url is None:
            data_missing("PostgreSQL's initdb not found: apt-get install postgresql")
        yield url


def test_two_workers_share_a_study_in_a_real_postgresql_server(tmp_path, small_mnist_dir, postgres_url):
    sweep_file = tiny_sweep(tmp_path, small_mnist_dir, trials=4)
    out = tmp_path / "out"
    result = sweep_cli(str(sweep_file), "--sweep-dir", str(out), "--workers", "2", "--storage", postgres_url,
                       "--study", "shared", "--json")
    assert result.exit_code == 0, result.output
    trials = finished(json.loads(result.stdout)["trials"])
    assert sorted(trial["number"] for trial in trials) == [0, 1, 2, 3]
    assert not (out / "study.db").exists()
    assert json.loads((out / "sweep.json").read_text()) == {"study": "shared", "storage": postgres_url}
    # A report elsewhere needs the URL again; the study is found by its name.
    assert sweep_cli(str(out), "--report").exit_code == 2
    again = sweep_cli(str(out), "--report", "--storage", postgres_url, "--json")
    assert again.exit_code == 0 and len(finished(json.loads(again.stdout)["trials"])) == 4


def test_ctrl_c_stops_every_local_worker_cleanly(tmp_path, small_mnist_dir):
    import signal
    import subprocess
    import sys
    import time

    sweep_file = tiny_sweep(tmp_path, small_mnist_dir, trials=4, pruner="none", set={
        "data.data_dir": str(small_mnist_dir), "data.validation_size": 200, "train.epochs": 200})
    out = tmp_path / "out"
    sweep = subprocess.Popen([sys.executable, "-m", "mnist_zoo", "sweep", str(sweep_file), "--sweep-dir", str(out),
                              "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(list(out.glob("trials/*/history.json"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)  # both workers are training
    sweep.send_signal(signal.SIGINT)
    _, stderr = sweep.communicate(timeout=60)
    assert sweep.returncode == 130, stderr
    assert "Traceback" not in stderr
    statuses = [json.loads(path.read_text())["status"] for path in out.glob("trials/*/status.json")]
    assert sorted(statuses) == ["interrupted", "interrupted"]
    leftover = subprocess.run(["pgrep", "-f", f"--sweep-dir {out}"], capture_output=True, text=True)
    assert leftover.stdout.strip() == "", "a worker outlived Ctrl-C"
