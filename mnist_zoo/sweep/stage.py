"""The sweep stage: sets up the sweep directory, runs local workers (processes of their own), and reports."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from mnist_zoo import rundir
from mnist_zoo.errors import ConfigError, RunDirError
from mnist_zoo.sweep.spec import SweepSpec, load_sweep

SWEEP_FILE = "sweep.yaml"
SWEEP_RECORD = "sweep.json"
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

    The sweep file is copied into the directory; a rerun with the same file continues the study.

    Raises:
        ConfigError: the sweep file is invalid, or the directory holds another sweep.
    """
    from mnist_zoo.sweep.storage import default_storage, masked

    sweep_file = Path(sweep_file)
    spec, base = load_sweep(sweep_file)
    sweep_dir = Path(sweep_dir) if sweep_dir else DEFAULT_SWEEPS_ROOT / sweep_file.stem
    copy = sweep_dir / SWEEP_FILE
    text = sweep_file.read_text(encoding="utf-8")
    if copy.is_file() and copy.resolve() != sweep_file.resolve() and copy.read_text(encoding="utf-8") != text:
        raise ConfigError(f"{sweep_dir}: holds another sweep ({copy} differs from {sweep_file}); "
                          "choose another --sweep-dir, or edit the sweep file there")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if copy.resolve() != sweep_file.resolve():
        rundir.write_text(copy, text)
        _copy_local_base(spec, base, sweep_file, sweep_dir)
    storage = storage or default_storage(sweep_dir)
    study_name = study_name or sweep_file.stem
    rundir.write_json(sweep_dir / SWEEP_RECORD, {"study": study_name, "storage": masked(storage)})
    return SweepSetup(sweep_dir, copy, storage, study_name, spec, base)


def _copy_local_base(spec: SweepSpec, base: Path, sweep_file: Path, sweep_dir: Path) -> None:
    """A base config given as a relative path travels with the sweep file's copy."""
    if not Path(spec.base).is_absolute() and base == sweep_file.parent / spec.base:  # not a bundled config
        rundir.write_text(sweep_dir / spec.base, base.read_text(encoding="utf-8"))


def open_existing(sweep_dir: Path, storage: str | None = None) -> SweepSetup:
    """The setup of an existing sweep directory (for --report).

    Raises:
        RunDirError: not a sweep directory, or its storage is not the default and --storage is missing.
    """
    sweep_dir = Path(sweep_dir)
    try:
        record = json.loads((sweep_dir / SWEEP_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise RunDirError(f"{sweep_dir}: not a sweep directory (no readable {SWEEP_RECORD})") from None
    if storage is None:
        if "***" in record["storage"] or not record["storage"].startswith("sqlite"):
            raise RunDirError(f"{sweep_dir}: its study is in {record['storage']}; give that URL with --storage")
        storage = record["storage"]
    spec, base = load_sweep(sweep_dir / SWEEP_FILE)
    return SweepSetup(sweep_dir, sweep_dir / SWEEP_FILE, storage, record["study"], spec, base)


def run_local_workers(setup: SweepSetup, workers: int) -> int:
    """Runs `workers` worker processes on this machine and waits for them.

    Ctrl-C or SIGTERM is passed on to every worker, each of which stops after its current step
    (its trial marked failed, its run directory interrupted).

    Returns:
        The first non-zero exit status of a worker, else 0.
    """
    from mnist_zoo.sweep.study import open_study

    # The study (and its database's tables) exist before the workers start: they only join it.
    open_study(setup.spec, setup.storage, setup.study_name)
    command = [sys.executable, "-m", "mnist_zoo", "sweep", str(setup.sweep_file), "--sweep-dir",
               str(setup.sweep_dir), "--storage", setup.storage, "--study", setup.study_name, "--no-report"]
    # Sessions of their own: a Ctrl-C reaches the workers once, through this process, not twice.
    processes = [subprocess.Popen([*command, "--worker-index", str(index)], start_new_session=True)
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
