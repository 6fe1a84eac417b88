"""A sweep's results: every trial, the leaderboard of finished ones, the best config as best.yaml, Optuna's plots."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from mnist_zoo import rundir
from mnist_zoo.errors import RunDirError

BEST_CONFIG = "best.yaml"
PLOTS = {
    "optimization_history.png": "plot_optimization_history",
    "param_importances.png": "plot_param_importances",
    "parallel_coordinate.png": "plot_parallel_coordinate",
}


@dataclass
class SweepResults:
    """What `sweep_results` found and wrote."""

    study_name: str
    direction: str
    objective: str
    trials: list[dict]
    """Every trial: number, state, value, params, run directory."""
    leaderboard: list
    """`report.compare.RunRow` of the finished trials, best objective first."""
    best: dict | None
    written: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"study": self.study_name, "objective": self.objective, "direction": self.direction,
                "best": self.best, "trials": self.trials, "leaderboard": [row.as_dict() for row in self.leaderboard],
                "written": [str(path) for path in self.written], "notes": self.notes}

    def __str__(self) -> str:
        """The trials, the leaderboard and the best parameters, as `mnist-zoo sweep` prints them."""
        from mnist_zoo.report.tables import format_leaderboard, format_trials

        parts = [format_trials(self.trials, self.objective)]
        if self.leaderboard:
            parts.append(format_leaderboard(self.leaderboard))
        if self.best:
            parts.append(f"best: trial {self.best['number']}, {self.objective} {self.best['value']:.4f}: "
                         + ", ".join(f"{key}={value!r}" for key, value in self.best["params"].items()))
        return "\n\n".join(parts)

    def _repr_html_(self) -> str:
        import html

        return f"<pre>{html.escape(str(self))}</pre>"


def _trial_record(trial, spec) -> dict:
    params = {key: spec.space[key].decode(value) if key in spec.space else value for key, value in trial.params.items()}
    return {"number": trial.number, "state": trial.state.name.lower(), "value": trial.value, "params": params,
            "run_dir": trial.user_attrs.get("run_dir"), "epochs": len(trial.intermediate_values)}


def local_run_dir(trial, sweep_dir: Path) -> Path:
    """The trial's run directory in this sweep directory's trials folder.

    Only the recorded folder's name is used, and only inside this sweep: a moved sweep
    directory still finds its trials, a study shared with other machines names folders that
    are theirs, and a copied or downloaded study.db cannot point at any other folder here.

    Raises:
        RunDirError: the trial records no run directory, or it is not in this sweep's trials folder.
    """
    from mnist_zoo.sweeps.study import TRIALS_DIR

    recorded = trial.user_attrs.get("run_dir")
    name = Path(recorded).name if isinstance(recorded, str) else ""
    if not re.fullmatch(r"\d{4,}-[A-Za-z0-9_]+", name):
        raise RunDirError(f"the study records no trial run directory for it (received {recorded!r})")
    run_dir = Path(sweep_dir) / TRIALS_DIR / name
    if not run_dir.is_dir() or run_dir.is_symlink():
        raise RunDirError(f"its run directory {name} is not in {run_dir.parent} (another machine's trial?)")
    return run_dir


def sweep_results(study, spec, sweep_dir: Path, plots: bool = True) -> SweepResults:
    """Reads the study's trials and their run directories; writes best.yaml and the plots into `sweep_dir`.

    Args:
        study: the Optuna study.
        spec: the `SweepSpec` (its objective, and the choices the parameters stand for).
        sweep_dir: where best.yaml and the plots go.
        plots: also write Optuna's plots.

    Raises:
        RunDirError: the study has no trial yet.
    """
    from optuna.trial import TrialState

    from mnist_zoo.report.compare import read_row

    trials = study.get_trials(deepcopy=False)
    if not trials:
        raise RunDirError(f"{sweep_dir}: the study {study.study_name!r} has no trial yet")
    direction = study.direction.name.lower()
    finished = [trial for trial in trials if trial.state in (TrialState.COMPLETE, TrialState.PRUNED)
                and trial.value is not None]
    # Pruned trials keep the value of their last reported epoch; only complete ones can be best.
    complete = [trial for trial in finished if trial.state == TrialState.COMPLETE]
    ordered = sorted(finished, key=lambda trial: trial.value, reverse=direction == "maximize")
    leaderboard, notes = [], []
    for trial in ordered:
        try:
            leaderboard.append(read_row(local_run_dir(trial, sweep_dir)))
        except (RunDirError, OSError) as error:
            notes.append(f"trial {trial.number}: {error}")
    results = SweepResults(study.study_name, direction, spec.objective, [_trial_record(trial, spec) for trial in trials],
                           leaderboard, None, notes=notes)
    if complete:
        best = study.best_trial
        results.best = _trial_record(best, spec)
        try:
            source = local_run_dir(best, sweep_dir) / rundir.CONFIG_FILE
        except RunDirError:
            source = None  # another machine's trial: its note is above
        if source is not None and source.is_file():
            target = Path(sweep_dir) / BEST_CONFIG
            with rundir.atomic_path(target) as temporary:
                shutil.copyfile(source, temporary)
            results.written.append(target)
    if plots:
        results.written += _plots(study, Path(sweep_dir), notes, len(complete))
    return results


def _plots(study, folder: Path, notes: list[str], complete: int) -> list[Path]:
    """Optuna's matplotlib plots of the study, each skipped with a note when the study is too small for it."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as visualization

    written = []
    for name, function in PLOTS.items():
        if complete < (2 if name == "param_importances.png" else 1):
            notes.append(f"{name}: needs more complete trials")
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the matplotlib backend is experimental in Optuna
            try:
                axes = getattr(visualization, function)(study)
            except (ValueError, RuntimeError) as error:
                notes.append(f"{name}: {error}")
                continue
        figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
        figure.set_size_inches(9, 5.5)
        figure.tight_layout()
        path = folder / name
        with rundir.atomic_path(path) as temporary:
            figure.savefig(temporary, dpi=110)
        plt.close(figure)
        written.append(path)
    return written
