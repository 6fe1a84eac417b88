"""The compare stage: one leaderboard row per finished run (metrics.json, config.yaml) or evaluated ensemble."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from mnist_zoo.errors import RunDirError

SORT_KEYS = ("test_accuracy", "best_val_accuracy", "parameters", "forward_macs", "train_seconds",
             "seconds_per_epoch", "epochs", "run")
# Higher is better for accuracies; for sizes and times the smallest comes first.
DESCENDING = {"test_accuracy", "best_val_accuracy"}


@dataclass(frozen=True)
class RunRow:
    """One finished run, or one evaluated ensemble, as the leaderboard shows it."""

    run: str
    model: str
    """The model type ('cnn'), or 'ensemble'."""
    config_name: str
    parameters: int
    """An ensemble's: its members' added up, as are its MACs and training seconds."""
    forward_macs: int | None
    epochs: int | None
    """None for an ensemble (its members' epochs are theirs)."""
    train_seconds: float
    seconds_per_epoch: float | None
    best_val_accuracy: float | None
    """An ensemble's: its accuracy on the images all its members held out (`evaluate --split validation`), if scored."""
    test_accuracy: float | None
    """None only for an ensemble scored on validation and not yet on the test set."""

    def as_dict(self) -> dict:
        return asdict(self)


def _is_entry(folder: Path) -> bool:
    """A run directory, or an ensemble's folder (`evaluate --ensemble` wrote its ensemble.json)."""
    from mnist_zoo import rundir  # here, not at the top: cli imports SORT_KEYS, and --help stays instant

    return (folder / rundir.CONFIG_FILE).is_file() or rundir.is_ensemble_folder(folder)


def find_runs(paths: list[Path]) -> list[Path]:
    """Run directories and ensembles' folders: each path itself if it is one, else those directly inside it."""
    runs = []
    for path in map(Path, paths):
        if not path.is_dir():
            raise RunDirError(f"{path}: not a directory; give run directories or a folder of runs")
        if _is_entry(path):
            runs.append(path)
            continue
        inside = sorted(child for child in path.iterdir() if child.is_dir() and _is_entry(child))
        if not inside:
            raise RunDirError(f"{path}: neither a run directory nor a folder holding any")
        runs += inside
    return runs


def read_row(run_dir: Path) -> RunRow:
    """The leaderboard row of a finished run.

    Raises:
        RunDirError: the run has no (readable) metrics.json, i.e. it did not finish.
    """
    from mnist_zoo import rundir
    from mnist_zoo.config.loading import load_config
    from mnist_zoo.models.registry import build_model
    from mnist_zoo.models.summary import forward_macs

    if rundir.is_ensemble_folder(run_dir):
        return read_ensemble_row(run_dir)
    path = run_dir / rundir.METRICS_FILE
    if not path.is_file():
        status = rundir.read_status(run_dir).get("status", "unknown")
        raise RunDirError(f"{run_dir}: no {rundir.METRICS_FILE} (status: {status}); only finished runs are compared")
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise RunDirError(f"{path}: unreadable ({error})") from None
    config = load_config(run_dir / rundir.CONFIG_FILE)
    macs = forward_macs(build_model(config.model))
    return RunRow(
        run=run_dir.name,
        model=metrics["model"],
        config_name=metrics["config_name"],
        parameters=metrics["parameters"],
        forward_macs=macs,
        epochs=metrics["epochs_completed"],
        train_seconds=metrics["train_seconds"],
        seconds_per_epoch=metrics["seconds_per_epoch"],
        best_val_accuracy=metrics.get("best_val_accuracy"),
        test_accuracy=metrics["test_accuracy"],
    )


def read_ensemble_row(folder: Path) -> RunRow:
    """The leaderboard row of an evaluated ensemble: its test and validation accuracy, its members' costs added up.

    Raises:
        RunDirError: the folder has no report of its members (test or validation), or a member is not a
            finished run.
    """
    from mnist_zoo import rundir
    from mnist_zoo.errors import ModelFileError

    ensemble_file = folder / rundir.ENSEMBLE_FILE
    test, validation = (rundir.read_ensemble_report(ensemble_file, name).get("accuracy")
                        for name in (rundir.ENSEMBLE_EVALUATION_FILE, rundir.ENSEMBLE_VALIDATION_EVALUATION_FILE))
    if test is None and validation is None:
        raise RunDirError(f"{folder}: an ensemble without a readable {rundir.ENSEMBLE_EVALUATION_FILE} of its "
                          f"members; evaluate it first (mnist-zoo evaluate {folder})")
    try:
        member_runs = [rundir.resolve_model_path(path)[1]
                       for path in rundir.read_ensemble_file(ensemble_file)[0]]
    except ModelFileError as error:
        raise RunDirError(str(error)) from None
    if None in member_runs:
        raise RunDirError(f"{folder}: an ensemble with members outside mnist-zoo runs has no training costs to "
                          "compare; compare its members' runs, or evaluate it (mnist-zoo evaluate)")
    rows = [read_row(run_dir) for run_dir in member_runs]
    macs = [row.forward_macs for row in rows]
    config_names = sorted({row.config_name for row in rows})
    return RunRow(
        run=folder.resolve().name,
        model="ensemble",
        config_name=f"{len(rows)} x {config_names[0]}" if len(config_names) == 1 else f"{len(rows)} models",
        parameters=sum(row.parameters for row in rows),
        forward_macs=None if None in macs else sum(macs),
        epochs=None,
        train_seconds=sum(row.train_seconds for row in rows),
        seconds_per_epoch=None,
        best_val_accuracy=None if validation is None else float(validation),
        test_accuracy=None if test is None else float(test),
    )


def sort_rows(rows: list[RunRow], key: str) -> list[RunRow]:
    """Rows ordered by `key`: best accuracy first, or smallest size/time first; missing values last."""
    if key not in SORT_KEYS:
        raise ValueError(f"unknown sort key {key!r}; expected one of {', '.join(SORT_KEYS)}")
    present = [row for row in rows if getattr(row, key) is not None]
    missing = [row for row in rows if getattr(row, key) is None]
    return sorted(present, key=lambda row: getattr(row, key), reverse=key in DESCENDING) + missing


@dataclass(frozen=True)
class Comparison:
    """The leaderboard of `compare_runs`: finished runs in order, and why the others were skipped."""

    rows: list[RunRow]
    skipped: list[str]


def compare_runs(paths: list[Path], sort_key: str = "test_accuracy") -> Comparison:
    """The compare stage: reads every run under `paths` and orders the finished ones by `sort_key`.

    Raises:
        RunDirError: a path is not a run or a folder of runs, or no run under them has finished.
    """
    rows, skipped = [], []
    for run_dir in find_runs(list(paths)):
        try:
            rows.append(read_row(run_dir))
        except RunDirError as error:
            skipped.append(str(error))
    if not rows:
        raise RunDirError("no finished runs to compare" + (f" ({'; '.join(skipped)})" if skipped else ""))
    return Comparison(sort_rows(rows, sort_key), skipped)
