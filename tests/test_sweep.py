"""mnist-zoo sweep: the sweep file's validation, trials as run directories, workers sharing a study, pruning, the report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mnist_zoo.cli import cli
from mnist_zoo.errors import ConfigError
from tests.skips import import_or_skip

optuna = import_or_skip("optuna")

from mnist_zoo.sweeps.spec import load_sweep  # noqa: E402

BUNDLED_SWEEPS = sorted((Path(__file__).resolve().parent.parent / "configs" / "sweeps").glob("*.yaml"))


@pytest.fixture(autouse=True)
def _no_storage_from_the_environment(monkeypatch):
    """The user's own $MNIST_ZOO_STORAGE must not point these tests at their database."""
    from mnist_zoo.sweeps.storage import STORAGE_ENV

    monkeypatch.delenv(STORAGE_ENV, raising=False)


def write_sweep(folder: Path, **sweep) -> Path:
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
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


LEARNING_RATE = "train.optimizer.learning_rate"
PASSWORD = "hunter2"
"""A storage password that no message or file may show."""


def draw(study, spec, count: int) -> list:
    """The learning rates of the study's next `count` trials, each told finished as a worker would."""
    values = []
    for _ in range(count):
        trial = study.ask()
        values.append(spec.space[LEARNING_RATE].suggest(trial, LEARNING_RATE))
        study.tell(trial, 0.5)
    return values


def draws_of(sampler: str, seed: int, spec, count: int) -> list:
    """What Optuna's own sampler seeded with `seed` draws first on a new study: the reference sequence."""
    samplers = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}
    return draw(optuna.create_study(sampler=samplers[sampler](seed=seed)), spec, count)


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
    from mnist_zoo.sweeps.spec import trial_config

    path = write_sweep(tmp_path, base="mlp", trials=2, space={"model.hidden_units": {"choice": [[128], [256, 64]]}})
    spec, base = load_sweep(path)
    study = optuna.create_study(sampler=optuna.samplers.GridSampler(spec.grid, seed=0))
    trial = study.ask()
    value = spec.space["model.hidden_units"].suggest(trial, "model.hidden_units")
    assert value in ([128], [256, 64])
    assert list(trial_config(spec, base, {"model.hidden_units": value}, "t").model.hidden_units) == value


# ----------------------------------------------------------------------------- the study a worker joins


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_each_workers_sampler_is_seeded_with_the_seed_its_index_and_the_trials_so_far(tmp_path, sampler):
    from mnist_zoo.sweeps.study import open_study

    spec, _ = load_sweep(write_sweep(tmp_path, base="linear", trials=6, seed=7, sampler=sampler,
                                     space={LEARNING_RATE: {"log_uniform": [0.01, 1.0]}}))
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    first = draw(open_study(spec, storage, "a"), spec, 3)
    assert first == draws_of(sampler, 7, spec, 3)  # the sweep file's seed
    assert draw(open_study(spec, storage, "b"), spec, 3) == first  # the same seed, the same points
    assert draw(open_study(spec, storage, "c", worker_index=1), spec, 3) == draws_of(sampler, 7 + 1, spec, 3)
    # Joining study a, which has 3 trials: seeded 7 + 3, so it does not draw a's points again.
    assert draw(open_study(spec, storage, "a"), spec, 2) == draws_of(sampler, 7 + 3, spec, 2)


def test_the_median_pruner_waits_for_two_finished_trials_and_a_trials_second_epoch(tmp_path):
    """The study's own pruner (the default, median), fed epochs as PruningReport numbers them (the first is 1)."""
    from mnist_zoo.sweeps.study import open_study

    spec, _ = load_sweep(write_sweep(tmp_path, base="linear", trials=6,
                                     space={LEARNING_RATE: {"log_uniform": [0.01, 1.0]}}))
    study = open_study(spec, f"sqlite:///{tmp_path / 'study.db'}", "pruned")

    def stopped_at(val_accuracies: list[float]) -> int | None:
        """Runs one trial through these epochs: the epoch the pruner stopped it after, or None."""
        trial = study.ask()
        for epoch, value in enumerate(val_accuracies, start=1):
            trial.report(value, step=epoch)
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                return epoch
        study.tell(trial, max(val_accuracies))
        return None

    assert stopped_at([0.90, 0.92, 0.93]) is None
    assert stopped_at([0.10, 0.10, 0.10]) is None  # far below trial 0, but only one trial has finished
    # From now on the median at epoch 2 is (0.92 + 0.10) / 2 = 0.51: 0.40 falls below it, 0.60 does
    # not (a pruner at another percentile, 0.305 or 0.715, would judge one of them otherwise).
    assert stopped_at([0.05, 0.05, 0.05]) == 2  # below from the start, but never stopped in its first epoch
    assert stopped_at([0.05, 0.40, 0.90]) == 2
    assert stopped_at([0.05, 0.60, 0.60]) is None


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize",
                            "ignore::optuna.exceptions.ExperimentalWarning")
def test_a_killed_workers_trial_is_queued_again_with_its_values_at_most_twice(tmp_path):
    import sqlite3

    from mnist_zoo.sweeps.study import open_study

    spec, _ = load_sweep(write_sweep(tmp_path, base="linear", trials=1, heartbeat_seconds=1,
                                     space={LEARNING_RATE: {"log_uniform": [0.01, 1.0]}}))
    database = tmp_path / "study.db"
    study = open_study(spec, f"sqlite:///{database}", "killed")
    run_dir = tmp_path / "trials" / "0000-linear"
    run_dir.mkdir(parents=True)
    taken = []
    while not taken or study.get_trials(states=(optuna.trial.TrialState.WAITING,)):
        assert len(taken) < 5, f"trial {taken[0]} was queued again {len(taken) - 1} times"
        # A worker takes the next trial (a queued one first), records a heartbeat, and is killed.
        trial = study.ask()
        taken.append(trial.number)
        spec.space[LEARNING_RATE].suggest(trial, LEARNING_RATE)
        trial.set_user_attr("run_dir", str(run_dir))
        (run_dir / "status.json").write_text('{"status": "running"}')
        study._storage.record_heartbeat(trial._trial_id)  # as study.optimize's heartbeat thread does
        # Its heartbeat ages past three periods (dated back here rather than waited for) ...
        with sqlite3.connect(database) as connection:
            connection.execute("UPDATE trial_heartbeats SET heartbeat = '2000-01-01 00:00:00'")
        connection.close()
        optuna.storages.fail_stale_trials(study)  # ... and the next worker to look finds it: what run_worker does first
        status = json.loads((run_dir / "status.json").read_text())
        assert status["status"] == "failed" and "no heartbeat for 3 s" in status["error"]
    trials = study.get_trials()
    assert taken == [0, 1, 2], "the trial, and queued again twice"
    assert [trial.state for trial in trials] == [optuna.trial.TrialState.FAIL] * 3
    assert len({trial.params[LEARNING_RATE] for trial in trials}) == 1  # each time with the same value


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
    from tests.helpers import tree_signature

    sweep_file = tiny_sweep(tmp_path, small_mnist_dir, trials=2, seed=3, pruner="none")
    out = tmp_path / "out"
    first = sweep_cli(str(sweep_file), "--sweep-dir", str(out), "--no-report")
    assert first.exit_code == 0, first.output
    finished_runs = {run.name: tree_signature(run) for run in (out / "trials").iterdir()}
    assert sorted(finished_runs) == ["0000-linear", "0001-linear"]
    tiny_sweep(tmp_path, small_mnist_dir, trials=3, seed=3, pruner="none")  # the file changed where it was: refused
    result = sweep_cli(str(sweep_file), "--sweep-dir", str(out), "--json")
    assert result.exit_code == 2 and "holds another sweep" in result.output
    # The sweep directory's own copy may be edited (the message says so): one more trial wanted.
    copy = out / "sweep.yaml"
    copy.write_text(yaml.safe_dump({**yaml.safe_load(copy.read_text()), "trials": 3}))
    result = sweep_cli(str(copy), "--sweep-dir", str(out), "--json")
    assert result.exit_code == 0, result.output
    trials = json.loads(result.stdout)["trials"]
    assert [(trial["number"], trial["state"]) for trial in trials] == [(0, "complete"), (1, "complete"),
                                                                     (2, "complete")]
    # Only the missing trial ran; the finished ones' run directories are as the first run left them.
    started = [line.split(":")[0] for line in result.stderr.splitlines() if line.startswith("trial ") and "=" in line]
    assert started == ["trial 2"], result.stderr
    assert sorted(run.name for run in (out / "trials").iterdir()) == ["0000-linear", "0001-linear", "0002-linear"]
    assert {name: tree_signature(out / "trials" / name) for name in finished_runs} == finished_runs
    # The rerun's sampler was seeded with the sweep's seed plus the 2 trials the study had.
    spec, _ = load_sweep(copy)
    assert trials[2]["params"][LEARNING_RATE] == draws_of("random", 3 + 2, spec, 1)[0]


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


def test_the_record_seeds_sweep_trains_the_record_recipe_once_per_seed():
    spec, base = load_sweep(next(path for path in BUNDLED_SWEEPS if path.stem == "cnn_record_seeds"))
    assert base.name == "cnn_record.yaml" and not spec.set and spec.pruner == "none"
    assert list(spec.space) == ["train.seed"] and spec.space["train.seed"].choice == [1, 2, 3, 4, 5]
    assert spec.trial_count == 5


def test_a_seeds_sweeps_trials_are_the_members_of_an_ensemble(tmp_path, small_mnist_dir):
    # What cnn_record_seeds's comment tells users to do, on a tiny linear recipe.
    sweep_file = tiny_sweep(tmp_path, small_mnist_dir, trials=None, sampler="grid", pruner="none",
                            space={"train.seed": {"choice": [1, 2]}})
    out = tmp_path / "out"
    assert sweep_cli(str(sweep_file), "--sweep-dir", str(out)).exit_code == 0
    members = sorted(str(run) for run in (out / "trials").iterdir())
    seeds = [json.loads((Path(run) / "environment.json").read_text())["seed"] for run in members]
    assert sorted(seeds) == [1, 2]
    result = CliRunner().invoke(cli, ["evaluate", *members, "--ensemble", "--output-dir", str(tmp_path / "ensemble")])
    assert result.exit_code == 0, result.output
    assert "members, each alone:" in result.output and all(member in result.output for member in members)


def test_the_median_pruner_stops_a_poor_trial_after_its_second_epoch_and_its_run_says_pruned(tmp_path,
                                                                                          small_mnist_dir):
    # Seed 11 draws the learning rates 0.5, 1e-6, 1e-6: one trial that learns, then two that
    # cannot (SGD at 1e-6 stays at chance), with identical epochs (same data, same weights).
    sweep_file = tiny_sweep(tmp_path, small_mnist_dir, trials=3, seed=11, space={
        LEARNING_RATE: {"choice": [0.5, 1.0e-6]}}, set={
        "data.data_dir": str(small_mnist_dir), "data.validation_size": 200, "train.epochs": 3})
    out = tmp_path / "out"
    result = sweep_cli(str(sweep_file), "--sweep-dir", str(out), "--json")
    assert result.exit_code == 0, result.output
    trials = json.loads(result.stdout)["trials"]
    assert [trial["params"][LEARNING_RATE] for trial in trials] == [0.5, 1e-6, 1e-6]
    # Trial 1 is as poor as trial 2, but only one trial had finished when it ran: it trains to the end.
    assert [trial["state"] for trial in trials] == ["complete", "complete", "pruned"]
    histories = [json.loads((out / "trials" / f"{number:04d}-linear" / "history.json").read_text())["epochs"]
                 for number in range(3)]
    assert [len(history) for history in histories] == [3, 3, 2]
    # Stopped by the rule: its best up to epoch 2 is below the median of the finished trials' epoch 2.
    median = (histories[0][1]["val_accuracy"] + histories[1][1]["val_accuracy"]) / 2
    assert max(epoch["val_accuracy"] for epoch in histories[2]) < median
    status = json.loads((out / "trials" / "0002-linear" / "status.json").read_text())
    assert status["status"] == "pruned" and status["epochs_completed"] == 2
    assert (out / "trials" / "0002-linear" / "best.keras").is_file()


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
    import warnings

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
    # Until its heartbeat is three periods old, as Optuna judges a trial stale (the rerun must find it so).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = optuna.storages.RDBStorage(f"sqlite:///{out / 'study.db'}", heartbeat_interval=1, grace_period=3)
    study_id = storage.get_study_id_from_name("sweep")
    deadline = time.monotonic() + 60
    while not storage._get_stale_trial_ids(study_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert storage._get_stale_trial_ids(study_id), "the killed worker's trial never went stale"
    storage.engine.dispose()
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
    from tests.helpers import load_script
    from tests.skips import skip_for

    import_or_skip("psycopg")
    with load_script("bench_sweep").throwaway_postgres() as url:
        if url is None:
            skip_for("postgresql", "PostgreSQL's initdb not found")
        yield url


def test_two_workers_share_a_study_in_a_real_postgresql_server(tmp_path, small_mnist_dir, postgres_url, monkeypatch):
    from mnist_zoo.sweeps.storage import STORAGE_ENV, masked_url

    # The server trusts loopback connections: the password is accepted unread, and must show nowhere.
    url = postgres_url.replace("zoo@", f"zoo:{PASSWORD}@")
    sweep_file = tiny_sweep(tmp_path, small_mnist_dir, trials=4)
    out = tmp_path / "out"
    result = sweep_cli(str(sweep_file), "--sweep-dir", str(out), "--workers", "2", "--storage", url,
                       "--study", "shared", "--json")
    assert result.exit_code == 0, result.output
    trials = finished(json.loads(result.stdout)["trials"])
    assert sorted(trial["number"] for trial in trials) == [0, 1, 2, 3]  # the workers found it in their environment
    assert not (out / "study.db").exists()
    assert json.loads((out / "sweep.json").read_text()) == {"study": "shared", "storage": masked_url(url)}
    assert PASSWORD not in result.output and files_showing(out, PASSWORD) == []
    # A report elsewhere needs the URL again (the option, or the environment); the study is found by its name.
    assert sweep_cli(str(out), "--report").exit_code == 2
    again = sweep_cli(str(out), "--report", "--storage", url, "--json")
    assert again.exit_code == 0 and len(finished(json.loads(again.stdout)["trials"])) == 4
    monkeypatch.setenv(STORAGE_ENV, url)
    assert sweep_cli(str(out), "--report", "--json").exit_code == 0


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


# ----------------------------------------------------------------------------- named variants and grid resume


OPTIMIZER_VARIANTS = {"sgd": {"set": {"train.optimizer": {"name": "sgd", "learning_rate": 0.1}}},
                      "momentum": {"set": {"train.optimizer": {"name": "sgd", "learning_rate": 0.1, "momentum": 0.9}}},
                      "the mlp": {"base": "mlp", "set": {"model.hidden_units": [16]}}}


def test_variants_are_a_grid_key_crossed_with_the_space_each_with_its_own_base_and_overrides(tmp_path):
    from mnist_zoo.sweeps.spec import trial_config

    spec, base = load_sweep(write_sweep(tmp_path, base="linear", sampler="grid", variants=OPTIMIZER_VARIANTS,
                                        space={"train.batch_size": {"choice": [32, 64]}}))
    assert spec.grid == {"variant": ["sgd", "momentum", "the mlp"], "train.batch_size": [32, 64]}
    assert spec.trial_count == 6
    momentum = trial_config(spec, base, {"variant": "momentum", "train.batch_size": 64}, "t")
    assert (momentum.model.type, momentum.train.batch_size) == ("linear", 64)
    assert momentum.train.optimizer.params == {"learning_rate": 0.1, "momentum": 0.9}
    mlp = trial_config(spec, base, {"variant": "the mlp", "train.batch_size": 32}, "t")
    assert (mlp.model.type, mlp.model.hidden_units, mlp.train.batch_size) == ("mlp", (16,), 32)
    # Variants alone make a sweep too.
    spec, _ = load_sweep(write_sweep(tmp_path, base="linear", sampler="grid", variants=OPTIMIZER_VARIANTS))
    assert spec.grid == {"variant": ["sgd", "momentum", "the mlp"]} and spec.trial_count == 3


@pytest.mark.parametrize("changes, message", [
    ({"sampler": "tpe", "trials": 3}, "variants need sampler: grid, received sampler: tpe"),
    ({"variants": {"bad": {"set": {"train.epochs": 0}}}}, "variants.bad: does not make a valid config"),
    ({"variants": {"bad": {"base": "configs/mlp.yaml"}}}, "variants.bad.base: 'configs/mlp.yaml' is neither"),
    ({"variants": {"a": {"set": {"train.batch_size": 8}}}, "space": {"train.batch_size": {"choice": [1, 2]}}},
     "space.train.batch_size: also fixed in variants.a"),
    ({"variants": {"the mlp": {"base": "mlp"}}, "space": {"model.hidden_units": {"choice": [[8], [0]]}}},
     "space.model.hidden_units: [0] does not make the 'the mlp' variant's config"),
    ({"variants": {}, "space": {}}, "give a space (the keys to vary), variants, or both"),
])
def test_a_bad_variant_is_one_error_naming_it(tmp_path, changes, message):
    sweep = {"base": "linear", "sampler": "grid", "variants": OPTIMIZER_VARIANTS, **changes}
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_sweep(write_sweep(tmp_path, **sweep))


def test_workers_and_reruns_of_a_grid_sweep_number_its_points_alike(tmp_path):
    """GridSampler records a point's number, not its values: each sampler must number the grid the same way."""
    from mnist_zoo.sweeps.study import open_study

    spec, _ = load_sweep(write_sweep(tmp_path, base="linear", sampler="grid", seed=7,
                                     space={"train.batch_size": {"choice": [8, 16, 32, 64, 128, 256]}}))
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    points = []
    for number in range(6):  # two workers taking turns, then a rerun joining the study
        study = open_study(spec, storage, "grid", worker_index=number % 2 if number < 4 else 0)
        study.optimize(lambda trial: points.append(spec.suggest(trial)["train.batch_size"]) or 0.5, n_trials=1)
    assert sorted(points) == [8, 16, 32, 64, 128, 256]


def test_a_grid_point_queued_twice_trains_once_and_every_point_trains(tmp_path, monkeypatch):
    """Two machines starting together may both queue the missing points: none is lost, none trains twice."""
    from mnist_zoo.sweeps.stage import prepare_sweep, run_sweep
    from mnist_zoo.sweeps.study import open_study, queue_missing_grid_points

    sweep_file = write_sweep(tmp_path, base="linear", sampler="grid", pruner="none",
                             variants={name: OPTIMIZER_VARIANTS[name] for name in ("sgd", "momentum")},
                             space={"train.batch_size": {"choice": [32, 64]}})
    setup = prepare_sweep(sweep_file, tmp_path / "out")
    study = open_study(setup.spec, setup.storage, setup.study_name)
    assert queue_missing_grid_points(study, setup.spec) == 4
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    for trial in waiting[:2]:  # another machine's queue, made at the same moment: two of the points again
        study.enqueue_trial(trial.system_attrs["fixed_params"])
    trained = []
    monkeypatch.setattr("mnist_zoo.training.stage.train_run", fake_training(trained))
    run_sweep(setup)
    assert sorted(trained) == sorted((momentum, batch) for momentum in (0.0, 0.9) for batch in (32, 64))


def fake_training(trained: list, stop_after: int | None = None):
    """A `train_run` that trains nothing: it records the trial's values and a one-epoch history.

    With `stop_after`, the call after that many is stopped as Ctrl-C stops a real one.
    """
    from types import SimpleNamespace

    from mnist_zoo import rundir
    from mnist_zoo.errors import TrainingInterrupted

    def train_run(config, run_dir, extra_callbacks=()):
        if stop_after is not None and len(trained) == stop_after:
            raise TrainingInterrupted(2)
        trained.append((config.train.optimizer.params.get("momentum", 0.0), config.train.batch_size))
        rundir.write_json(run_dir / rundir.HISTORY_JSON, {"epochs": [{"epoch": 1, "val_accuracy": 0.5}]})
        return SimpleNamespace(metrics={"test_accuracy": 0.5})

    return train_run


def test_a_grid_sweep_stopped_by_ctrl_c_trains_exactly_the_missing_points_when_run_again(tmp_path, monkeypatch):
    from mnist_zoo.errors import TrainingInterrupted
    from mnist_zoo.sweeps.stage import prepare_sweep, run_sweep

    sweep_file = write_sweep(tmp_path, base="linear", sampler="grid", pruner="none",
                             variants={name: OPTIMIZER_VARIANTS[name] for name in ("sgd", "momentum")},
                             space={"train.batch_size": {"choice": [32, 64, 128]}})
    setup = prepare_sweep(sweep_file, tmp_path / "out")
    trained = []
    monkeypatch.setattr("mnist_zoo.training.stage.train_run", fake_training(trained, stop_after=2))
    with pytest.raises(TrainingInterrupted):
        run_sweep(setup)
    assert len(trained) == 2
    monkeypatch.setattr("mnist_zoo.training.stage.train_run", fake_training(trained))
    run_sweep(setup)
    # Optuna's GridSampler alone counts the interrupted point as done: it would skip it and train a finished one twice.
    grid = sorted((momentum, batch) for momentum in (0.0, 0.9) for batch in (32, 64, 128))
    assert sorted(trained) == grid, trained
    run_sweep(setup)  # nothing is left
    assert len(trained) == 6


def test_variants_train_as_runs_of_their_own_base(tmp_path, small_mnist_dir):
    sweep_file = tiny_sweep(tmp_path, small_mnist_dir, trials=None, sampler="grid", pruner="none", space={},
                            variants={"linear": {}, "small mlp": {"base": "mlp", "set": {"model.hidden_units": [16]}}})
    result = sweep_cli(str(sweep_file), "--sweep-dir", str(tmp_path / "out"), "--json")
    assert result.exit_code == 0, result.output
    trials = json.loads(result.stdout)["trials"]
    assert sorted(trial["params"]["variant"] for trial in trials) == ["linear", "small mlp"]
    runs = {trial["params"]["variant"]: Path(trial["run_dir"]) for trial in trials}
    assert yaml.safe_load((runs["small mlp"] / "config.yaml").read_text())["model"]["hidden_units"] == [16]
    assert yaml.safe_load((runs["linear"] / "config.yaml").read_text())["model"]["type"] == "linear"


# ----------------------------------------------------------------------------- passwords and the sweep directory's bounds


def files_showing(folder: Path, secret: str) -> list[Path]:
    """The files under `folder` that hold `secret`."""
    return [path for path in folder.rglob("*") if path.is_file() and secret.encode() in path.read_bytes()]


@pytest.mark.parametrize("url, shown", [
    ("postgresql://zoo:hunter2@db.lan/sweeps", "postgresql://zoo:***@db.lan/sweeps"),
    ("postgresql+psycopg://zoo:hunter2@db.lan:5432/sweeps", "postgresql+psycopg://zoo:***@db.lan:5432/sweeps"),
    ("postgresql://zoo@db.lan/sweeps?sslmode=require&password=hunter2&connect_timeout=5",
     "postgresql://zoo@db.lan/sweeps?sslmode=require&password=***&connect_timeout=5"),
    ("mysql://zoo@db.lan/sweeps?passwd=hunter2", "mysql://zoo@db.lan/sweeps?passwd=***"),
    ("postgresql://zoo@db.lan/sweeps?pass%77ord=hunter2", "postgresql://zoo@db.lan/sweeps?pass%77ord=***"),
    ("postgresql://zoo:hunter2@db.lan/sweeps?password=hunter2", "postgresql://zoo:***@db.lan/sweeps?password=***"),
    # An '@', ':', '/' or '?' the user did not percent-encode: the whole password is hidden, not its tail.
    ("postgresql://zoo:hun@ter:2/x?y@db.lan/sweeps", "postgresql://zoo:***@db.lan/sweeps"),
    ("postgresql://z@o:hunter2@db.lan/sweeps", "postgresql://z@o:***@db.lan/sweeps"),
    # Not URLs that parse: read as user:password@ from the start.
    ("zoo:hunter2@db.lan/sweeps", "zoo:***@db.lan/sweeps"),
    ("postgres:/zoo:hunter2@db.lan", "postgres:***@db.lan"),
    # Nothing secret: as given.
    ("postgresql://zoo@db.lan:5432/sweeps", "postgresql://zoo@db.lan:5432/sweeps"),
    ("sqlite:////tmp/a@b:c/study.db", "sqlite:////tmp/a@b:c/study.db"),
    ("not a url", "not a url"),
])
def test_masked_url_hides_the_password_wherever_the_url_holds_it(url, shown):
    from mnist_zoo.sweeps.storage import masked_text, masked_url

    assert masked_url(url) == shown
    assert masked_text(f"could not connect to {url}", url) == f"could not connect to {shown}"
    if PASSWORD in url and "://" in url:  # a driver's message may quote the password of a URL it read alone
        assert masked_text(f"password {PASSWORD} refused", url) == "password *** refused"


@pytest.mark.parametrize("url, shown", [
    ("foo://zoo:hunter2@db.lan/sweeps", "foo://zoo:***@db.lan/sweeps"),  # not a database URL
    ("postgresql://zoo@127.0.0.1:9/sweeps?password=hunter2", "postgresql://zoo@127.0.0.1:9/sweeps?password=***"),
    # SQLAlchemy reads the password as 'hun', the port as 'ter': its error would quote part of the password.
    ("postgresql://zoo:hun@127.0.0.1:ter@127.0.0.1:9/sweeps", "postgresql://zoo:***@127.0.0.1:9/sweeps"),
    # Optuna formats the URL with str.format: a braced password was a KeyError naming it.
    ("postgresql://zoo:{hunter2}@127.0.0.1:9/sweeps", "postgresql://zoo:***@127.0.0.1:9/sweeps"),
    ("mysql://zoo:hunter2@127.0.0.1:9/sweeps", "mysql://zoo:***@127.0.0.1:9/sweeps"),
], ids=["scheme", "query", "unencoded", "braces", "mysql"])
@pytest.mark.parametrize("given_in", ["option", "environment"])
def test_no_message_or_file_shows_the_storage_password(tmp_path, monkeypatch, url, shown, given_in):
    """Port 9 refuses connections: each URL fails fast, before any training, in its own way."""
    from mnist_zoo.sweeps.storage import STORAGE_ENV

    sweep_file = write_sweep(tmp_path, base="linear", trials=1, space={LEARNING_RATE: {"log_uniform": [0.01, 1.0]}})
    arguments = [str(sweep_file), "--sweep-dir", str(tmp_path / "out")]
    if given_in == "option":
        arguments += ["--storage", url]
    else:
        monkeypatch.setenv(STORAGE_ENV, url)
    result = sweep_cli(*arguments)
    assert result.exit_code == 2, result.output
    assert f"--storage {shown}: " in result.output
    assert not any(part in result.output for part in ("hunter2", "hun@", ":ter")), result.output
    assert files_showing(tmp_path, "hunter2") == [] and files_showing(tmp_path, ":ter@") == []


@pytest.mark.parametrize("url", ["postgresql://zoo:hunter2@db.lan/sweeps",
                                 "postgresql://zoo@db.lan/sweeps?password=hunter2"])
def test_sweep_json_keeps_no_password_and_reopening_asks_for_the_url(tmp_path, url):
    from mnist_zoo.errors import RunDirError
    from mnist_zoo.sweeps.stage import open_existing, prepare_sweep
    from mnist_zoo.sweeps.storage import masked_url

    sweep_file = write_sweep(tmp_path, base="linear", trials=1, space={LEARNING_RATE: {"log_uniform": [0.01, 1.0]}})
    out = tmp_path / "out"
    prepare_sweep(sweep_file, out, url, "shared")  # writes the sweep directory; opens no database
    assert json.loads((out / "sweep.json").read_text()) == {"study": "shared", "storage": masked_url(url)}
    assert files_showing(out, PASSWORD) == []
    with pytest.raises(RunDirError) as raised:
        open_existing(out)  # the recorded URL cannot open the study: it lacks the password
    assert f"its study is in {masked_url(url)}, not in this directory's study.db; give that URL" in str(raised.value)
    assert "MNIST_ZOO_STORAGE" in str(raised.value) and PASSWORD not in str(raised.value)
    assert open_existing(out, url).storage == url
    # SQLite has no password: its sweep directory reopens from sweep.json alone.
    local = tmp_path / "local"
    prepare_sweep(sweep_file, local)
    assert open_existing(local).storage == f"sqlite:///{(local / 'study.db').resolve()}"


def test_a_copied_sweep_directory_opens_its_own_study_and_nothing_its_record_points_elsewhere(tmp_path):
    """sweep.json and study.db come with a folder (copied, downloaded): neither may reach outside it."""
    import shutil

    from mnist_zoo.errors import RunDirError
    from mnist_zoo.sweeps.stage import open_existing, prepare_sweep

    sweep_file = write_sweep(tmp_path, base="linear", trials=1, space={LEARNING_RATE: {"log_uniform": [0.01, 1.0]}})
    original = tmp_path / "original"
    prepare_sweep(sweep_file, original)
    (original / "study.db").write_bytes(b"")  # the study's file travels with the folder
    moved = tmp_path / "moved"
    shutil.copytree(original, moved)
    assert open_existing(moved).storage == f"sqlite:///{(moved / 'study.db').resolve()}"  # not the original's
    elsewhere = tmp_path / "elsewhere.db"
    record = json.loads((moved / "sweep.json").read_text())
    (moved / "sweep.json").write_text(json.dumps({**record, "storage": f"sqlite:///{elsewhere}"}))
    with pytest.raises(RunDirError, match="not in this directory's study.db; give that URL"):
        open_existing(moved)
    assert not elsewhere.exists()  # nothing was created where the record pointed


@pytest.mark.parametrize("recorded", ["{victim}", "{sweep}/trials/../../victim", "{sweep}/trials/0007-linear/..",
                                      None, 17])
def test_a_study_naming_run_directories_outside_the_sweep_reads_none_of_them(tmp_path, recorded):
    """The study says where each trial ran; best.yaml and the leaderboard read only this sweep's trials."""
    import optuna

    from mnist_zoo.sweeps.results import sweep_results
    from mnist_zoo.sweeps.spec import load_sweep

    sweep_file = write_sweep(tmp_path, base="linear", trials=1, space={LEARNING_RATE: {"log_uniform": [0.01, 1.0]}})
    spec, _ = load_sweep(sweep_file)
    sweep_dir, victim = tmp_path / "sweep", tmp_path / "victim"
    (sweep_dir / "trials").mkdir(parents=True)
    victim.mkdir()
    (victim / "config.yaml").write_text("secret: the user's own project\n")
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    trial.suggest_float(LEARNING_RATE, 0.01, 1.0, log=True)
    if recorded is not None:
        trial.set_user_attr("run_dir", recorded.format(victim=victim, sweep=sweep_dir) if isinstance(recorded, str)
                            else recorded)
    study.tell(trial, 0.9)
    results = sweep_results(study, spec, sweep_dir, plots=False)
    assert not (sweep_dir / "best.yaml").exists()
    assert results.leaderboard == [] and len(results.notes) == 1 and "trial 0" in results.notes[0]


def test_local_workers_get_the_storage_url_in_their_environment_not_on_their_command_line(tmp_path, monkeypatch):
    """`ps` shows every user each process's command line; its environment only to its own user."""
    import subprocess

    from mnist_zoo.sweeps import stage, study
    from mnist_zoo.sweeps.storage import STORAGE_ENV

    started = []

    class Worker:
        def __init__(self, command, env=None, **options):
            started.append((command, env))

        def poll(self):
            return 0

        def wait(self):
            return 0

    url = "postgresql://zoo:hunter2@db.lan/sweeps?password=hunter2"
    monkeypatch.setattr(subprocess, "Popen", Worker)
    monkeypatch.setattr(study, "open_study", lambda *arguments, **options: None)
    sweep_file = write_sweep(tmp_path, base="linear", trials=2, space={LEARNING_RATE: {"log_uniform": [0.01, 1.0]}})
    setup = stage.prepare_sweep(sweep_file, tmp_path / "out", url, "shared")
    assert stage.run_local_workers(setup, 2) == 0
    assert len(started) == 2
    for command, environment in started:
        assert not any(PASSWORD in argument for argument in command), command
        assert environment[STORAGE_ENV] == url
        assert command[2:4] == ["mnist_zoo.sweeps.worker", str(setup.sweep_dir)]  # it reads the study's name there
    assert [command[-1] for command, _ in started] == ["0", "1"]


def everything_outside(root: Path, folder: Path) -> list[tuple[str, int | None]]:
    """Every file (with its modification time) and folder under `root` but outside `folder`."""
    return sorted((str(path.relative_to(root)), path.stat().st_mtime_ns if path.is_file() else None)
                  for path in root.rglob("*") if path != folder and folder not in path.parents)


def test_a_base_config_anywhere_is_copied_inside_the_sweep_directory_and_nothing_is_written_beside_it(tmp_path):
    """`base: ../../configs/x.yaml` is read from beside the sweep file; the sweep writes only in its directory."""
    import shutil

    from mnist_zoo.config.loading import bundled_config_path
    from mnist_zoo.sweeps.stage import open_existing, prepare_sweep

    (tmp_path / "configs").mkdir()
    shutil.copyfile(bundled_config_path("linear"), tmp_path / "configs" / "x.yaml")
    (tmp_path / "project" / "sweeps").mkdir(parents=True)
    sweep_file = write_sweep(tmp_path / "project" / "sweeps", base="../../configs/x.yaml", trials=1,
                             space={LEARNING_RATE: {"log_uniform": [0.01, 1.0]}})
    out = tmp_path / "work" / "deep" / "out"
    out.parent.mkdir(parents=True)
    before = everything_outside(tmp_path, out)
    setup = prepare_sweep(sweep_file, out)
    assert everything_outside(tmp_path, out) == before, "the sweep wrote outside its directory"
    assert sorted(path.name for path in out.iterdir()) == ["base.yaml", "sweep.json", "sweep.yaml"]
    assert (out / "base.yaml").read_text() == (tmp_path / "configs" / "x.yaml").read_text()
    assert setup.base.resolve() == (tmp_path / "configs" / "x.yaml").resolve()
    # The directory's own copy (what --workers and --report read) finds the base inside it.
    assert open_existing(out).base == out / "base.yaml"
    rejoined = prepare_sweep(out / "sweep.yaml", out, study_name="sweep")
    assert rejoined.base == out / "base.yaml"
    assert everything_outside(tmp_path, out) == before
