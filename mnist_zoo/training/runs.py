"""Starting and resuming runs: where a run's directory comes from, and what is kept when training fails."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

from mnist_zoo import rundir
from mnist_zoo.config.run import RunConfig
from mnist_zoo.errors import MnistZooError, RunDirError, RunStoppedError
from mnist_zoo.training.stage import TrainResult, train_run


def new_run_dir(config: RunConfig, output_dir: Path = rundir.DEFAULT_RUNS_ROOT, run_dir: Path | None = None,
                force: bool = False) -> Path:
    """The directory a new run of `config` writes into, created empty (with its marker).

    Args:
        config: names the directory (`<output_dir>/<date>-<time>-<config name>`).
        output_dir: the folder of runs.
        run_dir: exactly this directory instead; it must not exist, or be an old run and `force` given.
        force: replace an existing run at `run_dir` (only a folder mnist-zoo made; see
            `rundir.check_replaceable`).

    Raises:
        RunDirError: `run_dir` exists (without `force`), or cannot be replaced or created.
        ValueError: `force` without `run_dir` (new run directories never overwrite).
    """
    if run_dir is not None:
        return rundir.prepare_named_run_dir(Path(run_dir), force)
    if force:
        raise ValueError("force only applies to run_dir (new run directories never overwrite)")
    return rundir.create_run_dir(Path(output_dir), config.name)


def resumable_config(run_dir: Path, data_dir: str | None = None, device: str | None = None) -> RunConfig:
    """The config a run started with, after checking that the run can be resumed.

    Args:
        run_dir: an interrupted (or failed) run.
        data_dir, device: the only settings a resume may change: the data may have moved, and a
            run may continue on another machine.

    Raises:
        RunDirError: not a run directory, or a complete one.
    """
    from mnist_zoo.config.loading import data_dir_setting, load_config

    run_dir = Path(run_dir)
    if not (run_dir / rundir.CONFIG_FILE).is_file():
        raise RunDirError(f"{run_dir}: no {rundir.CONFIG_FILE}; is this a mnist-zoo run directory?")
    status = rundir.read_status(run_dir)
    if status.get("status") == "complete":
        raise RunDirError(f"{run_dir}: the run is already complete ({status.get('epochs_completed')} epochs); "
                          "start a new run to train longer")
    machine = {"data.data_dir": data_dir and data_dir_setting(data_dir), "train.device": device}
    return load_config(run_dir / rundir.CONFIG_FILE, {key: value for key, value in machine.items() if value is not None})


def start_run(config: RunConfig, run_dir: Path, report: Callable[[str], None] = lambda message: None,
              extra_callbacks=(), progressbar: bool = False, verbose=None) -> TrainResult:
    """Trains `config` into the new, empty `run_dir` (from `new_run_dir`).

    A run that fails before its first epoch is committed leaves nothing behind: its directory
    is removed. Once an epoch is committed, a write that fails (disk full, no permission) keeps
    the directory, which can be resumed when the cause is fixed.

    Args:
        verbose: Keras's display for this call (None: the config's `train.verbose`).

    Raises:
        RunStoppedError: a write failed after the first committed epoch; the run is kept.
        TrainingInterrupted: a signal stopped the run (its last complete epoch is kept).
        MnistZooError: the config, data or device is not usable (nothing is kept).
    """
    try:
        return train_run(config, run_dir, report=report, extra_callbacks=extra_callbacks, progressbar=progressbar,
                         verbose=verbose)
    except (MnistZooError, OSError) as error:
        _discard_if_unstarted(run_dir)
        _raise_if_kept(error, run_dir)
        raise


def resume_run(run_dir: Path, data_dir: str | None = None, device: str | None = None,
               report: Callable[[str], None] = lambda message: None, extra_callbacks=(),
               progressbar: bool = False, verbose=None) -> TrainResult:
    """Continues an interrupted run from its last complete epoch, exactly as if it had never stopped.

    Raises:
        RunDirError: not a resumable run (see `resumable_config`), or its checkpoint is unusable.
        RunStoppedError: a write failed; the run keeps its last complete epoch.
        TrainingInterrupted: a signal stopped it again.
    """
    run_dir = Path(run_dir)
    config = resumable_config(run_dir, data_dir, device)
    try:
        return train_run(config, run_dir, report=report, extra_callbacks=extra_callbacks, resume=True,
                         progressbar=progressbar, verbose=verbose)
    except OSError as error:
        _raise_if_kept(error, run_dir)
        raise


def _discard_if_unstarted(run_dir: Path) -> None:
    """Removes a new run directory that an error stopped before it committed its first epoch."""
    from mnist_zoo.training.checkpoint import STATE_FILE, checkpoint_dir

    if not (run_dir / rundir.HISTORY_JSON).exists() and not (checkpoint_dir(run_dir) / STATE_FILE).exists():
        shutil.rmtree(run_dir, ignore_errors=True)


def _raise_if_kept(error: BaseException, run_dir: Path) -> None:
    # A file-system error naming a file (disk full, read-only, no permission) with the run still
    # on disk: its last committed epoch can be resumed once the cause is fixed.
    if isinstance(error, OSError) and error.filename and run_dir.exists():
        raise RunStoppedError(run_dir, error) from error
