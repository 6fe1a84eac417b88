"""Run directories: their layout, atomic file writes, and finding runs and models."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from mnist_zoo.errors import ModelFileError, RunDirError

DEFAULT_RUNS_ROOT = Path("runs")
CONFIG_FILE = "config.yaml"
HISTORY_JSON = "history.json"
HISTORY_CSV = "history.csv"
BEST_MODEL = "best.keras"
LAST_MODEL = "last.keras"
METRICS_FILE = "metrics.json"
ENVIRONMENT_FILE = "environment.json"
EVALUATION_FILE = "evaluation.json"


@contextmanager
def atomic_path(path: Path):
    """Yields a temporary path beside `path` (same suffix); renames it onto `path` on success.

    A crash mid-write leaves the temporary file, never a truncated file under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    # mkstemp makes the file private (0600); give it the permissions a plain open() would.
    os.chmod(temporary, 0o666 & ~_umask())
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_text(path: Path, text: str) -> None:
    """Writes `text` to `path` atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def write_json(path: Path, data) -> None:
    write_text(path, json.dumps(data, indent=2) + "\n")


def write_csv(path: Path, rows: list[dict]) -> None:
    """Writes a list of same-keyed dicts as CSV with a header row."""
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    write_text(path, buffer.getvalue())


def save_model(model, path: Path) -> None:
    """Saves a Keras model to a `.keras` file atomically."""
    with atomic_path(path) as temporary:
        model.save(temporary)


def create_run_dir(root: Path, model_name: str) -> Path:
    """Creates `root/<UTC timestamp>-<model>/`; never reuses an existing folder.

    Returns:
        The new, empty run directory.
    """
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    safe_name = model_name.replace("/", "-")
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise RunDirError(f"{root}: exists and is not a directory; choose another --output-dir") from None
    except OSError as error:
        raise RunDirError(
            f"{root}: cannot create a run directory there ({error.strerror}); choose another --output-dir"
        ) from None
    for attempt in range(1, 1000):
        suffix = "" if attempt == 1 else f"-{attempt}"
        candidate = root / f"{stamp}-{safe_name}{suffix}"
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue  # a run started in the same second: take the next suffix
    raise RunDirError(f"{root}: could not create a new run directory for {model_name}")


def read_history(run_dir: Path) -> list[dict]:
    """The per-epoch records of a run.

    Raises:
        RunDirError: the folder has no (readable) history.json.
    """
    path = Path(run_dir) / HISTORY_JSON
    if not path.is_file():
        raise RunDirError(f"{run_dir}: no {HISTORY_JSON}; is this a mnist-zoo run directory?")
    try:
        records = json.loads(path.read_text(encoding="utf-8"))["epochs"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise RunDirError(f"{path}: unreadable history ({error})") from None
    if not records:
        raise RunDirError(f"{path}: the run has no completed epoch yet")
    return records


def latest_run(root: Path) -> Path:
    """The most recently written run directory (one with a history) under `root`."""
    runs = sorted(Path(root).glob(f"*/{HISTORY_JSON}"), key=lambda path: path.stat().st_mtime)
    if not runs:
        raise RunDirError(f"no runs with a {HISTORY_JSON} under {root}/; train one first or name a run directory")
    return runs[-1].parent


def resolve_model_path(path: Path) -> tuple[Path, Path | None]:
    """Maps a `.keras` file or a run directory to (model file, run directory or None).

    Raises:
        ModelFileError: nothing usable at `path`.
    """
    path = Path(path)
    if path.is_dir():
        for name in (BEST_MODEL, LAST_MODEL):
            if (path / name).is_file():
                return path / name, path
        raise ModelFileError(f"{path}: run directory holds neither {BEST_MODEL} nor {LAST_MODEL}")
    if not path.exists():
        raise ModelFileError(f"{path}: no such model file or run directory")
    run_dir = path.parent if (path.parent / CONFIG_FILE).is_file() else None
    return path, run_dir
