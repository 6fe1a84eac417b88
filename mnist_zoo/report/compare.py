"""The compare stage: one leaderboard row per finished run, from its metrics.json and config.yaml."""

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
    """One finished run, as the leaderboard shows it."""

    run: str
    model: str
    config_name: str
    parameters: int
    forward_macs: int | None
    epochs: int
    train_seconds: float
    seconds_per_epoch: float
    best_val_accuracy: float | None
    test_accuracy: float

    def as_dict(self) -> dict:
        return asdict(self)


def find_runs(paths: list[Path]) -> list[Path]:
    """Run directories: each path itself if it is a run, else the runs directly inside it."""
    from mnist_zoo import rundir  # here, not at the top: cli imports SORT_KEYS, and --help stays instant

    runs = []
    for path in map(Path, paths):
        if not path.is_dir():
            raise RunDirError(f"{path}: not a directory; give run directories or a folder of runs")
        if (path / rundir.CONFIG_FILE).is_file():
            runs.append(path)
            continue
        inside = sorted(child for child in path.iterdir() if (child / rundir.CONFIG_FILE).is_file())
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
