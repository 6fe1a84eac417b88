"""`sweep`: an Optuna hyperparameter search whose trials are ordinary runs."""

from __future__ import annotations

import os
from pathlib import Path


def sweep(target: str | os.PathLike, *, sweep_dir: str | os.PathLike | None = None, storage: str | None = None,
          study: str | None = None, workers: int = 1, data_dir: str | os.PathLike | None = None,
          report_only: bool = False, plots: bool = True,
          verbose: str | int = "auto", report=None):
    """Searches hyperparameters with Optuna; what `mnist-zoo sweep` does.

    Args:
        target: a sweep file (YAML: base config, search space, objective, budget), a bundled
            sweep's name ('mlp_quick', 'cnn_quick', 'cnn_record_seeds'), or a sweep directory to
            report on.
        sweep_dir: where the trials and results go (default: sweeps/<sweep file name>/).
        storage: the study's database URL (default: $MNIST_ZOO_STORAGE, else study.db in the
            sweep directory); workers on several machines share a PostgreSQL or MySQL study.
        study: the study's name (default: the sweep file's).
        workers: worker processes on this machine.
        data_dir: a folder with the MNIST files, for every trial (default: the base config's,
            else $MNIST_ZOO_DATA_DIR, else the download cache).
        report_only: run no trial; only report on the trials so far.
        plots: write Optuna's plots into the sweep directory.
        verbose, report: the one-line messages, as for `mz.train` (one per trial); the trials themselves
            train quietly unless the sweep file sets train.verbose.

    Returns:
        The `SweepResults`: `.trials`, `.leaderboard`, `.best` (and best.yaml in the sweep directory);
        print it for the tables `mnist-zoo sweep` shows.

    Raises:
        ConfigError, RunDirError: an invalid sweep file or URL, or a directory that is not a sweep's.
        TrainingInterrupted: Ctrl-C stopped the sweep; running it again continues the study.
        SweepWorkerError: a worker process failed.
    """
    from mnist_zoo.api.common import reporter
    from mnist_zoo.sweeps.stage import resolve_target, run_sweep, sweep_report

    if workers < 1:
        raise ValueError(f"workers={workers}: expected 1 or more")
    setup, report_only = resolve_target(target, sweep_dir and Path(sweep_dir), storage, study, report_only)
    if not report_only:
        run_sweep(setup, workers, reporter(verbose, report), data_dir and str(data_dir))
    return sweep_report(setup, plots)
