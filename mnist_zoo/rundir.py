"""Run directories: their layout, atomic file writes, and finding runs and models."""

from __future__ import annotations

import csv
import io
import json
import os
import socket
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
STATUS_FILE = "status.json"
LOCK_FILE = ".lock"
TENSORBOARD_DIR = "tensorboard"


@contextmanager
def atomic_path(path: Path):
    """Yields a temporary path beside `path` (same suffix); renames it onto `path` on success.

    A crash mid-write leaves the temporary file, never a truncated file under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Keep the ending: Keras picks the format from it and insists on '.weights.h5' for weights.
    suffix = ".weights.h5" if path.name.endswith(".weights.h5") else path.suffix
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix, dir=path.parent)
    os.close(handle)
    # mkstemp makes the file private (0600); give it the permissions a plain open() would.
    os.chmod(temporary, 0o666 & ~_umask())
    try:
        try:
            yield Path(temporary)
        except OSError as error:
            # A write that fails (disk full, quota, I/O error) names our temporary, or no file at
            # all when a library writes through its own handle (Keras's zip, h5py): name the file
            # the user knows. Errors about other files (a missing source of a copy) keep theirs.
            ours = (temporary, str(temporary))
            # shutil's copies name the source first and the destination second.
            if error.filename not in (None, *ours) and error.filename2 not in ours:
                raise
            raise OSError(error.errno, error.strerror or str(error), str(path)) from error
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def remove_temporaries(run_dir: Path) -> None:
    """Deletes the temporaries `atomic_path` left of a run's own files when a process was killed mid-write.

    Only while holding the run's `training_lock`: a live writer's temporary looks the same.
    """
    for path in Path(run_dir).glob(".*.*"):
        if path.is_file() and is_temporary_name(path.name) and path.name.split(".")[1] in _RUN_FILE_STEMS:
            path.unlink(missing_ok=True)


# The files a run directory holds that are written through `atomic_path` (the checkpoint folder
# cleans itself at each commit).
_RUN_FILE_STEMS = {Path(name).stem for name in (CONFIG_FILE, HISTORY_JSON, BEST_MODEL, LAST_MODEL, METRICS_FILE,
                                                ENVIRONMENT_FILE, EVALUATION_FILE, STATUS_FILE)} | {
    "confusion_matrix", "misclassified"}


def is_temporary_name(name: str) -> bool:
    """`.<stem>.<8 random characters><suffix>`: the names `tempfile.mkstemp` gives `atomic_path`'s files."""
    import re

    return re.fullmatch(r"\.[^.].*\.[a-z0-9_]{8}(\.weights\.h5|\.[A-Za-z0-9]+)?", name) is not None


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
    """Maps a model file, a SavedModel folder or a run directory to (model, run directory or None).

    A run directory gives its best.keras (else last.keras); a model file or SavedModel folder
    belongs to the run that holds it directly or in its export/ folder.

    Raises:
        ModelFileError: nothing usable at `path`.
    """
    path = Path(path)
    if path.is_dir() and not (path / "saved_model.pb").is_file():
        for name in (BEST_MODEL, LAST_MODEL):
            if (path / name).is_file():
                return path / name, path
        raise ModelFileError(f"{path}: run directory holds neither {BEST_MODEL} nor {LAST_MODEL}")
    if not path.exists():
        raise ModelFileError(f"{path}: no such model file or run directory")
    owner = next((folder for folder in (path.parent, path.parent.parent) if (folder / CONFIG_FILE).is_file()), None)
    return path, owner


def is_own_model(model_path: Path, run_dir: Path | None) -> bool:
    """True for a `.keras` file directly in its run directory (best.keras, last.keras), not an export or a copy."""
    return run_dir is not None and Path(model_path).parent == Path(run_dir) and Path(model_path).suffix == ".keras"


def read_environment(run_dir: Path) -> dict:
    """The run's environment.json ({} if it has none or it is unreadable)."""
    try:
        record = json.loads((Path(run_dir) / ENVIRONMENT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def read_status(run_dir: Path) -> dict:
    """The run's status.json ({} if it has none or it is unreadable)."""
    try:
        return json.loads((Path(run_dir) / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def write_status(run_dir: Path, status: str, **details) -> None:
    """Records where the run stands: running, interrupted, failed or complete.

    A run killed outright (kill -9, power loss) stays "running" with a process id that is gone.
    """
    record = {
        "status": status,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **details,
    }
    write_json(Path(run_dir) / STATUS_FILE, record)


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


@contextmanager
def training_lock(run_dir: Path):
    """Holds the run directory's lock while this process trains in it (or replaces it).

    An exclusive `flock` on `<run>/.lock`: the kernel releases it when the process ends however it
    ends, kill -9 included, so a killed run never stays locked and a reused process id never
    looks like a live trainer. Where `fcntl` is missing (Windows), falls back to the process id
    recorded in status.json (`check_not_in_use`).

    Raises:
        RunDirError: another process holds the lock.
    """
    try:
        import fcntl
    except ImportError:
        check_not_in_use(run_dir)
        yield
        return
    Path(run_dir).mkdir(parents=True, exist_ok=True)  # a library caller may name a folder still to make
    handle = open(Path(run_dir) / LOCK_FILE, "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        status = read_status(run_dir)
        who = f"process {status['pid']}" if status.get("pid") and status.get("status") == "running" else "another process"
        raise RunDirError(f"{run_dir}: {who} is training in it; wait for it to finish or stop it first") from None
    try:
        yield
    finally:
        handle.close()  # releases the lock


def check_not_in_use(run_dir: Path) -> None:
    """Refuses a run directory that another live process on this machine is training in (without `fcntl`).

    Raises:
        RunDirError: status.json says "running" and its process is alive.
    """
    status = read_status(run_dir)
    pid = status.get("pid")
    if (
        status.get("status") == "running"
        and isinstance(pid, int)
        and pid != os.getpid()
        and status.get("host") == socket.gethostname()
        and process_alive(pid)
    ):
        raise RunDirError(f"{run_dir}: process {pid} is still training in it; stop it first")


def prepare_named_run_dir(path: Path, force: bool) -> Path:
    """Creates the run directory `path`, or empties it with `force`; never overwrites silently.

    Raises:
        RunDirError: `path` exists and is not empty (without `force`), is not a directory, or
            does not look like a run directory (so `force` would delete unrelated files).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{path}: exists and is not a directory; choose another --run-dir")
    if path.is_dir() and any(path.iterdir()):
        if not force:
            raise RunDirError(
                f"{path}: run directory already exists; continue it with --resume {path} "
                "or replace it with --force"
            )
        if not ((path / CONFIG_FILE).is_file() or (path / STATUS_FILE).is_file()):
            raise RunDirError(f"{path}: not empty and holds no {CONFIG_FILE}, so it is not a run directory; "
                              "--force only replaces run directories")
        import shutil

        with training_lock(path):  # never delete a run another process is training in
            shutil.rmtree(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunDirError(f"{path}: cannot create the run directory ({error.strerror})") from None
    return path
