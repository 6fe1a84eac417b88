"""Where a sweep's study lives: Optuna's database storages, with heartbeats that catch killed workers."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

from mnist_zoo import rundir
from mnist_zoo.errors import ConfigError

STUDY_FILE = "study.db"
MAX_RETRIES = 2
"""How many times a trial whose worker was killed runs again."""


def default_storage(sweep_dir: Path) -> str:
    """The embedded SQLite file inside the sweep directory."""
    return f"sqlite:///{(Path(sweep_dir) / STUDY_FILE).resolve()}"


def open_storage(url: str, heartbeat_seconds: int = 10):
    """An Optuna RDB storage (SQLite, PostgreSQL, MySQL URL) with heartbeats and retries of killed trials.

    A running trial's worker records a heartbeat every `heartbeat_seconds`; one silent for three
    times as long is marked failed (its run directory too) and queued again, at most MAX_RETRIES
    times, by the next worker that looks.

    Raises:
        ConfigError: not a database URL Optuna can open.
    """
    import optuna

    if not any(url.startswith(prefix) for prefix in ("sqlite://", "postgresql", "mysql")):
        raise ConfigError(f"--storage {url!r}: expected a database URL: sqlite:///PATH, postgresql://USER@HOST/DB "
                          "or mysql://USER@HOST/DB")
    url = _with_installed_driver(url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)

    def stale(study, trial) -> None:
        run_dir = trial.user_attrs.get("run_dir")
        if run_dir and Path(run_dir).is_dir():
            rundir.write_status(Path(run_dir), "failed", error="its sweep worker stopped (killed, or its machine "
                                f"lost): no heartbeat for {3 * heartbeat_seconds} s; the trial runs again")
        retry(study, trial)

    # Workers started at once on a new database race to create its tables: the losers try again.
    for attempt in range(5):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                return optuna.storages.RDBStorage(
                    url, heartbeat_interval=heartbeat_seconds, grace_period=3 * heartbeat_seconds,
                    heartbeat_stale_trial_callback=stale,
                    # SQLite: several worker processes write one file; wait for the lock instead of failing.
                    engine_kwargs={"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None,
                )
            except Exception as error:  # SQLAlchemy's and the drivers' many error types
                from mnist_zoo.errors import describe

                if "IntegrityError" in type(error).__name__ and attempt < 4:
                    time.sleep(0.5 * (attempt + 1))
                    continue
                raise ConfigError(f"--storage {masked(url)}: cannot open the study storage "
                                  f"({describe(error)})") from None


def _with_installed_driver(url: str) -> str:
    """postgresql:// through psycopg (3) when psycopg2, SQLAlchemy's default driver, is not installed."""
    import importlib.util

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg2") is None \
            and importlib.util.find_spec("psycopg") is not None:
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def masked(url: str) -> str:
    """The URL without its password, for messages and files."""
    import re

    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
