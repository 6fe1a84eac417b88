"""Where a sweep's study lives: Optuna's database storages, with heartbeats that catch killed workers."""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path

from mnist_zoo import rundir
from mnist_zoo.errors import ConfigError

STUDY_FILE = "study.db"
MAX_RETRIES = 2
"""How many times a trial whose worker was killed runs again."""
STORAGE_ENV = "MNIST_ZOO_STORAGE"
"""The environment variable --storage is read from: a URL with a password stays out of `ps`."""
MASK = "***"
SCHEMES = ("sqlite://", "postgresql", "mysql")

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
# SQLAlchemy reads a user name up to the first ':' (it may hold an '@'), then a password up to '@'.
_USER = re.compile(r"[^:/?#]*:")
_SECRET_KEY = re.compile(r"pass|secret|token", re.IGNORECASE)


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

    check_storage_url(url)
    given, url = url, _with_installed_driver(url)
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
                    # Optuna fills the URL in with str.format ({SCHEMA_VERSION}): a brace in a password
                    # would fail, its error quoting part of the password.
                    url.replace("{", "{{").replace("}", "}}"),
                    heartbeat_interval=heartbeat_seconds, grace_period=3 * heartbeat_seconds,
                    heartbeat_stale_trial_callback=stale,
                    # SQLite: several worker processes write one file; wait for the lock instead of failing.
                    engine_kwargs={"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None,
                )
            except Exception as error:  # SQLAlchemy's and the drivers' many error types
                from mnist_zoo.errors import describe

                if "IntegrityError" in type(error).__name__ and attempt < 4:
                    time.sleep(0.5 * (attempt + 1))
                    continue
                # Drivers' messages may quote the URL (with the driver named, or as given), or the
                # password alone: none of them is shown.
                reason = masked_text(masked_text(describe(error), url), given)
                raise ConfigError(f"--storage {masked_url(given)}: cannot open the study storage ({reason})") from None


def check_storage_url(url: str) -> None:
    """Checks that `url` is a database URL Optuna can open, before anything is written for it.

    Raises:
        ConfigError: another scheme, or a URL SQLAlchemy cannot read (the message shows it masked).
    """
    from sqlalchemy.engine import make_url

    if not url.startswith(SCHEMES):
        raise ConfigError(f"--storage {masked_url(url)}: expected a database URL: sqlite:///PATH, "
                          "postgresql://USER@HOST/DB or mysql://USER@HOST/DB")
    try:
        make_url(url)
    except Exception:  # ArgumentError, or ValueError for a port: its text may quote part of the password
        raise ConfigError(f"--storage {masked_url(url)}: not a database URL SQLAlchemy can read; write @, :, / "
                          "and ? in a user name or password percent-encoded (%40, %3A, %2F, %3F)") from None


def _with_installed_driver(url: str) -> str:
    """postgresql:// through psycopg (3) when psycopg2, SQLAlchemy's default driver, is not installed."""
    import importlib.util

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg2") is None \
            and importlib.util.find_spec("psycopg") is not None:
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def _secret_spans(url: str) -> list[tuple[int, int]]:
    """Where `url` holds secrets: the password of `user:password@`, and values of password-like query keys.

    Returns:
        (start, end) index pairs into `url`, in order.
    """
    from urllib.parse import unquote_plus

    spans = []
    scheme = _SCHEME.match(url)
    start = scheme.end() if scheme else 0  # a string without a scheme is read as from its user name
    user = _USER.match(url, start)
    at = url.rfind("@")
    # Up to the last '@': a password with an '@' that is not percent-encoded is hidden whole.
    if user and at >= user.end():
        spans.append((user.end(), at))
        start = at
    query = url.find("?", start)
    if query >= 0:
        position = query + 1
        # libpq's ?password=, MySQL drivers' ?passwd=, ?sslpassword=, ... (keys read percent-decoded).
        for part in url[query + 1:].split("&"):
            key, equals, value = part.partition("=")
            if equals and value and _SECRET_KEY.search(unquote_plus(key)):
                spans.append((position + len(key) + 1, position + len(part)))
            position += len(part) + 1
    return spans


def masked_url(url: str) -> str:
    """The storage URL as messages, logs and files show it: every password replaced by `***`.

    Handles `user:password@host`, passwords in the query (`?password=...`, `?passwd=...`), and
    strings that do not parse as URLs (read as `user:password@...` from their start), erring
    towards hiding too much.

    Args:
        url: a storage URL as given.

    Returns:
        The URL with each secret replaced, e.g. `postgresql://user:***@host/db`.
    """
    for start, end in reversed(_secret_spans(url)):
        url = url[:start] + MASK + url[end:]
    return url


def masked_text(text: str, url: str) -> str:
    """`text` (a library's error message) without the secrets of `url`, whether it quotes the URL or a password alone.

    Args:
        text: the message.
        url: the storage URL whose secrets must not show.

    Returns:
        `text` with `url` masked, and every other occurrence of a secret (as written, or
        percent-decoded as a driver sees it) replaced by `***`.
    """
    from urllib.parse import unquote, unquote_plus

    text = text.replace(url, masked_url(url))
    secrets = {url[start:end] for start, end in _secret_spans(url)}
    # SQLAlchemy decodes a password with unquote, a query value with unquote_plus.
    secrets |= {decode(secret) for secret in secrets for decode in (unquote, unquote_plus)}
    for secret in sorted(filter(None, secrets), key=len, reverse=True):  # longest first: no partial leftovers
        text = text.replace(secret, MASK)
    return text
