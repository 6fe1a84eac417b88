"""The sweep stage: sets up the sweep directory, runs local workers (processes of their own), and reports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from mnist_zoo import rundir
from mnist_zoo.errors import ConfigError, RunDirError
from mnist_zoo.sweeps.spec import SweepSpec, load_sweep

SWEEP_FILE = "sweep.yaml"
SWEEP_RECORD = "sweep.json"
BASE_COPY = "base.yaml"
"""A base config given as a relative path, copied into the sweep directory under this fixed name."""
DEFAULT_SWEEPS_ROOT = Path("sweeps")


@dataclass(frozen=True)
class SweepSetup:
    """Where a sweep lives and which study it runs."""

    sweep_dir: Path
    sweep_file: Path
    """The sweep file's copy inside the sweep directory: what every worker and report reads."""
    storage: str
    study_name: str
    spec: SweepSpec
    """The validated sweep file."""
    base: Path
    """Its base config's file."""


def prepare_sweep(sweep_file: Path, sweep_dir: Path | None = None, storage: str | None = None,
                  study_name: str | None = None) -> SweepSetup:
    """Validates the sweep file and sets up (or rejoins) its sweep directory.

    The sweep file is copied into the directory, with its base config when that is given as a
    relative path (as `base.yaml`: whatever the path, nothing is written outside the directory);
    a rerun with the same file continues the study. `sweep.json` records the study's name and
    its storage URL with the password masked.

    Args:
        sweep_file: the sweep file, or the sweep directory's own copy of it.
        sweep_dir: the sweep directory (default: `sweeps/<sweep file name>/`).
        storage: the study's database URL (default: `study.db` in the sweep directory).
        study_name: the study's name (default: the sweep file's name).

    Returns:
        The sweep's setup.

    Raises:
        ConfigError: the sweep file or the storage URL is invalid, or the directory holds another sweep.
    """
    from mnist_zoo.sweeps.storage import check_storage_url, default_storage, masked_url

    sweep_file = Path(sweep_file)
    sweep_dir = Path(sweep_dir) if sweep_dir else DEFAULT_SWEEPS_ROOT / sweep_file.stem
    copy = sweep_dir / SWEEP_FILE
    is_copy = copy.resolve() == sweep_file.resolve()
    previous = _read_record(sweep_dir) if is_copy else {}
    spec, base = load_sweep(sweep_file, _base_copies(sweep_dir, previous))
    if storage is not None:
        check_storage_url(storage)  # before the directory is made for it
    text = sweep_file.read_text(encoding="utf-8")
    if copy.is_file() and not is_copy and copy.read_text(encoding="utf-8") != text:
        raise ConfigError(f"{sweep_dir}: holds another sweep ({copy} differs from {sweep_file}); "
                          "choose another --sweep-dir, or edit the sweep file there")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    storage = storage or default_storage(sweep_dir)
    study_name = study_name or sweep_file.stem
    record = {"study": study_name, "storage": masked_url(storage)}
    if not is_copy:
        rundir.write_text(copy, text)
        if _travels(spec):
            # Under a fixed name, not under `base`: `../x.yaml` beside the directory is outside it.
            rundir.write_text(sweep_dir / BASE_COPY, base.read_text(encoding="utf-8"))
            record["base"] = spec.base
    elif "base" in previous:
        record["base"] = previous["base"]
    rundir.write_json(sweep_dir / SWEEP_RECORD, record)
    return SweepSetup(sweep_dir, copy, storage, study_name, spec, base)


def _travels(spec: SweepSpec) -> bool:
    """Whether the sweep's base config is copied into the sweep directory: a config file's relative path.

    A bundled config is found by its name from anywhere, an absolute path from anywhere.
    """
    from mnist_zoo.config.loading import bundled_config_names

    return spec.base not in bundled_config_names() and not Path(spec.base).is_absolute()


def _read_record(sweep_dir: Path) -> dict:
    """The sweep directory's `sweep.json`, or {} when it has none yet (or an unreadable one)."""
    return rundir.read_json_object(Path(sweep_dir) / SWEEP_RECORD)


def _base_copies(sweep_dir: Path, record: dict) -> dict[str, Path]:
    """The base config the sweep directory keeps, by the `base` it was copied for (see `load_sweep`)."""
    base = record.get("base")
    return {base: Path(sweep_dir) / BASE_COPY} if isinstance(base, str) else {}


def open_existing(sweep_dir: Path, storage: str | None = None) -> SweepSetup:
    """The setup of an existing sweep directory (for --report).

    Args:
        sweep_dir: the sweep directory.
        storage: the study's database URL; None: the sweep directory's own study.db. A URL that
            `sweep.json` records is never used by itself: its password is not recorded, and a copied
            or downloaded sweep directory must not pick the database this machine writes to.

    Returns:
        The sweep's setup.

    Raises:
        RunDirError: not a sweep directory, or its study is not in its own study.db and `storage` is missing.
    """
    from mnist_zoo.sweeps.storage import STORAGE_ENV, STUDY_FILE, default_storage, masked_url

    sweep_dir = Path(sweep_dir)
    record = _read_record(sweep_dir)
    if not isinstance(record.get("storage"), str) or not isinstance(record.get("study"), str):
        raise RunDirError(f"{sweep_dir}: not a sweep directory (no readable {SWEEP_RECORD})")
    if storage is None:
        # Its own study.db, wherever the folder is now (moved, copied); any other database is named by the user.
        recorded, own = record["storage"], default_storage(sweep_dir)
        if recorded != own and not (recorded.startswith("sqlite:") and recorded.endswith(f"/{STUDY_FILE}")
                                    and (sweep_dir / STUDY_FILE).is_file()):
            raise RunDirError(f"{sweep_dir}: its study is in {masked_url(recorded)}, not in this directory's "
                              f"{STUDY_FILE}; give that URL (with its password) with --storage or in ${STORAGE_ENV}")
        storage = own
    spec, base = load_sweep(sweep_dir / SWEEP_FILE, _base_copies(sweep_dir, record))
    return SweepSetup(sweep_dir, sweep_dir / SWEEP_FILE, storage, record["study"], spec, base)


def run_local_workers(setup: SweepSetup, workers: int, data_dir: str | None = None) -> int:
    """Runs `workers` worker processes on this machine and waits for them.

    `data_dir` (where this machine has the data) goes to every worker.

    Ctrl-C or SIGTERM is passed on to every worker, each of which stops after its current step
    (its trial marked failed, its run directory interrupted).

    Returns:
        The first non-zero exit status of a worker, else 0.
    """
    from mnist_zoo.sweeps.storage import STORAGE_ENV
    from mnist_zoo.sweeps.study import open_study

    # The study (and its database's tables) exist before the workers start: they only join it.
    open_study(setup.spec, setup.storage, setup.study_name)
    command = [sys.executable, "-m", "mnist_zoo.sweeps.worker", str(setup.sweep_dir)]
    # The URL (and its password) goes in the workers' environment, which only their user can read,
    # not on their command lines, which `ps` shows every user.
    environment = {**os.environ, STORAGE_ENV: setup.storage}
    # Sessions of their own: a Ctrl-C reaches the workers once, through this process, not twice.
    processes = [subprocess.Popen([*command, str(index), *([str(data_dir)] if data_dir else [])], env=environment,
                                  start_new_session=True)
                 for index in range(workers)]

    def forward(signal_number, frame):
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal_number)

    previous = {number: signal.signal(number, forward) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        codes = [process.wait() for process in processes]
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    return next((code for code in codes if code != 0), 0)


def resolve_target(target: str | Path, sweep_dir: Path | None = None, storage: str | None = None,
                   study_name: str | None = None, report_only: bool = False) -> tuple[SweepSetup, bool]:
    """The sweep a target names, and whether it is only to be reported on.

    Args:
        target: a sweep file, a bundled sweep's name ('mlp_quick'), or a sweep directory (which
            is reported on).
        sweep_dir, storage, study_name: as for `prepare_sweep`; `storage` defaults to
            `$MNIST_ZOO_STORAGE`, which keeps a password off command lines.
        report_only: only report on the sweep (in `sweep_dir`, else `sweeps/<file name>/`).

    Returns:
        (the `SweepSetup`, True when only a report is wanted).

    Raises:
        ConfigError: no such file, directory or bundled sweep; an invalid sweep file or URL.
        RunDirError: a directory that is not a sweep's, or whose storage must be given.
    """
    from mnist_zoo.config.loading import bundled_sweep_path
    from mnist_zoo.sweeps.storage import STORAGE_ENV

    storage = storage or os.environ.get(STORAGE_ENV) or None
    found = Path(target) if Path(target).exists() else bundled_sweep_path(str(target))
    if found is None:
        raise ConfigError(f"{target}: no such sweep file or sweep directory, and no bundled sweep of that name")
    if found.is_dir():
        return open_existing(found, storage), True
    if report_only:
        return open_existing(sweep_dir or DEFAULT_SWEEPS_ROOT / found.stem, storage), True
    return prepare_sweep(found, sweep_dir, storage, study_name), False


def run_sweep(setup: SweepSetup, workers: int = 1, report=lambda message: None, data_dir: str | None = None) -> None:
    """Runs the sweep's trials: in this process, or in `workers` worker processes.

    Args:
        data_dir: where this machine has the data, for every trial (recorded in its config.yaml);
            None: the base config's, else $MNIST_ZOO_DATA_DIR, else the download cache.

    Raises:
        TrainingInterrupted: Ctrl-C or SIGTERM stopped the sweep (every worker stopped cleanly).
        SweepWorkerError: a worker process failed.
    """
    from mnist_zoo.errors import SweepWorkerError, TrainingInterrupted
    from mnist_zoo.sweeps.study import open_study, queue_missing_grid_points

    # Before any worker starts, so that one process queues each point once.
    queue_missing_grid_points(open_study(setup.spec, setup.storage, setup.study_name), setup.spec)
    if workers > 1:
        code = run_local_workers(setup, workers, data_dir)
        if code > 128 and code - 128 in (signal.SIGINT, signal.SIGTERM):
            raise TrainingInterrupted(code - 128)
        if code:
            raise SweepWorkerError(f"{setup.sweep_dir}: a worker process failed (exit status {code}); its "
                                   "messages are above", exit_status=code)
        return
    from mnist_zoo.sweeps.study import run_worker

    run_worker(setup.spec, setup.base, setup.sweep_dir, setup.storage, setup.study_name, 0, report, data_dir)


def sweep_report(setup: SweepSetup, plots: bool = True):
    """The sweep's results so far (`results.SweepResults`); writes best.yaml and, with `plots`, the plots."""
    from mnist_zoo.sweeps.results import sweep_results
    from mnist_zoo.sweeps.study import open_study

    return sweep_results(open_study(setup.spec, setup.storage, setup.study_name), setup.spec, setup.sweep_dir, plots)
