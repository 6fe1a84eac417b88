"""One sweep worker: joins the Optuna study and runs trials, each an ordinary run directory, until the budget is spent."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import keras

from mnist_zoo import rundir
from mnist_zoo.errors import ConfigError
from mnist_zoo.sweeps.spec import SweepSpec, trial_config
from mnist_zoo.sweeps.storage import open_storage

TRIALS_DIR = "trials"


def sampler_for(spec: SweepSpec, worker_index: int):
    import optuna

    if spec.sampler == "grid":
        # GridSampler numbers the grid's points in an order its seed shuffles, and records only the
        # numbers: every worker and every rerun must shuffle alike, or the same number means another point.
        return optuna.samplers.GridSampler(spec.grid, seed=spec.seed)
    seed = spec.seed + worker_index
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def pruner_for(spec: SweepSpec):
    import optuna

    if spec.pruner == "none":
        return optuna.pruners.NopPruner()
    # Two finished trials before any pruning, and never in a trial's first epoch (step 1): too noisy to judge.
    return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2)


def open_study(spec: SweepSpec, storage_url: str, study_name: str, worker_index: int = 0):
    """Creates the study, or joins it when it exists (another worker, another machine, a rerun).

    The sampler's seed is the sweep's, plus the worker's index, plus the trials the study already
    has: a rerun or another worker does not draw the same points again. A grid's sampler keeps the
    sweep's seed (see `sampler_for`).
    """
    import optuna

    # Optuna logs a failed trial with its traceback; ours says it in one line (and --debug shows ours).
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = open_storage(storage_url, spec.heartbeat_seconds)
    study = optuna.create_study(storage=storage, study_name=study_name, direction=spec.direction,
                                pruner=pruner_for(spec), load_if_exists=True)
    study.sampler = sampler_for(spec, worker_index + len(study.get_trials(deepcopy=False)))
    return study


def counted_trials(study) -> list:
    """The trials that use up the budget: finished (complete or pruned), running, or queued to run."""
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING,
                                                    TrialState.WAITING))


def is_full_grid(spec: SweepSpec) -> bool:
    """A grid sweep that trains every combination (no `trials` below the grid's size)."""
    return spec.sampler == "grid" and (spec.trials is None or spec.trials == spec.trial_count)


def grid_point(spec: SweepSpec, values: dict) -> tuple | None:
    """A trial's point of the grid (its values in the grid's key order), or None if it has not all of them."""
    return tuple(values[key] for key in spec.grid) if all(key in values for key in spec.grid) else None


def trial_values(trial) -> dict:
    """A trial's values: drawn, or (queued, not yet started) the ones it was queued with."""
    return trial.params or trial.system_attrs.get("fixed_params", {})


def queue_missing_grid_points(study, spec: SweepSpec) -> int:
    """Queues each grid point that no finished, running or queued trial covers; returns how many.

    A full grid (no `trials` below its size) queues every such point, in the grid's order: its
    workers then take points off the queue, so each point trains once whatever the number of
    workers, reruns or failures before, and a lesson trains its variants in the order it lists
    them. A partial grid (`trials` below the size) leaves the choice to Optuna's GridSampler and
    queues again only the points whose trials failed (Ctrl-C, SIGTERM, an error): GridSampler
    counts a failed point as visited, and would otherwise skip it.
    """
    import itertools

    from optuna.trial import TrialState

    if spec.sampler != "grid":
        return 0
    covered = {grid_point(spec, trial_values(trial)) for trial in counted_trials(study)}
    if is_full_grid(spec):
        wanted = list(itertools.product(*spec.grid.values()))
    else:
        wanted = [grid_point(spec, trial.params) for trial in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))]
    queued = 0
    for missing in wanted:
        if missing is not None and missing not in covered:
            study.enqueue_trial(dict(zip(spec.grid, missing)))
            covered.add(missing)
            queued += 1
    return queued


class SurplusTrial(Exception):
    """Workers started more trials at once than the budget had left: this one is not run."""


class PruningReport(keras.callbacks.Callback):
    """Reports each epoch's objective to the trial, and stops training when the pruner says so.

    The epoch is committed first (this callback comes after the run's own), so a pruned trial
    is a complete run directory of the epochs it trained.
    """

    def __init__(self, trial, objective: str):
        super().__init__()
        self.trial = trial
        self.objective = objective
        self.pruned_at = None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.objective)
        if value is None:
            raise ConfigError(f"the objective {self.objective} is not measured: the config holds out no "
                              "validation images (data.validation_size: 0)")
        self.trial.report(float(value), step=epoch + 1)
        if self.trial.should_prune():
            self.pruned_at = epoch + 1
            self.model.stop_training = True


@dataclass(frozen=True)
class WorkerResult:
    """What one worker did."""

    trials_run: int
    study_name: str


def best_value(history: list[dict], objective: str, direction: str) -> float:
    values = [record[objective] for record in history if record.get(objective) is not None]
    return max(values) if direction == "maximize" else min(values)


def run_worker(spec: SweepSpec, base: Path, sweep_dir: Path, storage_url: str, study_name: str,
               worker_index: int = 0, report=lambda message: None, data_dir: str | None = None) -> WorkerResult:
    """Runs trials of the study until it has `spec.trial_count` of them, or the time budget ends.

    Each trial trains in `sweep_dir/trials/NNNN-<model>/` through the ordinary train stage, so
    that evaluate, plot-history, compare and --resume work on it. Its objective is its best
    epoch's `spec.objective`; each epoch is reported to the pruner.

    Raises:
        TrainingInterrupted: Ctrl-C or SIGTERM stopped the worker (the trial is marked failed,
            its run directory interrupted; the next run of the sweep makes up for it).
    """
    import optuna

    from mnist_zoo.training.stage import train_run

    study = open_study(spec, storage_url, study_name, worker_index)
    deadline = time.monotonic() + 60 * spec.time_budget_minutes if spec.time_budget_minutes else None
    wanted = spec.trial_count
    trials_dir = Path(sweep_dir) / TRIALS_DIR

    def objective(trial) -> float:
        earlier = [other for other in counted_trials(study) if other.number < trial.number]
        if is_full_grid(spec):
            params = spec.suggest(trial)
            # A point queued twice (two machines queuing at once) trains once: its earliest trial.
            if grid_point(spec, trial.params) in {grid_point(spec, trial_values(other)) for other in earlier}:
                raise SurplusTrial()
        else:
            # Trials are numbered in the order they start: the first `wanted` that are not failed count.
            if wanted is not None and len(earlier) >= wanted:
                raise SurplusTrial()
            params = spec.suggest(trial)
        config = trial_config(spec, base, params, f"{study_name}-trial-{trial.number:04d}", data_dir)
        run_dir = rundir.prepare_named_run_dir(trials_dir / f"{trial.number:04d}-{config.model.type}", force=True)
        trial.set_user_attr("run_dir", str(run_dir))
        report(f"trial {trial.number}: {', '.join(f'{key}={value!r}' for key, value in params.items())}")
        pruning = PruningReport(trial, spec.objective)
        result = train_run(config, run_dir, extra_callbacks=[pruning])
        history = rundir.read_history(run_dir)
        value = best_value(history, spec.objective, spec.direction)
        if pruning.pruned_at is not None:
            rundir.write_status(run_dir, "pruned", epochs_completed=pruning.pruned_at, epochs=config.train.epochs,
                                objective=spec.objective, value=value)
            report(f"trial {trial.number}: pruned after epoch {pruning.pruned_at} ({spec.objective} {value:.4f})")
            raise optuna.TrialPruned()
        report(f"trial {trial.number}: {spec.objective} {value:.4f}, test accuracy "
               f"{result.metrics['test_accuracy']:.2%}")
        return value

    trials_run, surplus = 0, False
    while not surplus:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # a killed worker's trial: failed, and queued again
        counted = counted_trials(study)
        waiting = any(trial.state == optuna.trial.TrialState.WAITING for trial in counted)
        # A trial queued again (its worker was killed) is run even when the count is reached: it is
        # one of the counted ones.
        if wanted is not None and len(counted) >= wanted and not waiting:
            break
        if deadline is not None and time.monotonic() >= deadline:
            break
        try:
            study.optimize(objective, n_trials=1)
        except SurplusTrial:
            surplus = True  # marked failed by Optuna; the budget is spent
        else:
            trials_run += 1
    return WorkerResult(trials_run, study_name)
