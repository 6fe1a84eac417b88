"""Run directories: their layout, atomic file writes, and finding runs and models."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import secrets
import shutil
import socket
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from mnist_zoo.errors import ModelFileError, RunDirError
from mnist_zoo.files import read_regular_file

DEFAULT_RUNS_ROOT = Path("runs")
CONFIG_FILE = "config.yaml"
HISTORY_JSON = "history.json"
HISTORY_CSV = "history.csv"
BEST_MODEL = "best.keras"
LAST_MODEL = "last.keras"
METRICS_FILE = "metrics.json"
ENVIRONMENT_FILE = "environment.json"
EVALUATION_FILE = "evaluation.json"
ENSEMBLE_FILE = "ensemble.json"  # inference/ensemble.py: a folder holding one is an ensemble
ENSEMBLE_SUFFIX = ".ensemble.json"  # an ensemble file outside its own folder: NAME.ensemble.json
ENSEMBLE_EVALUATION_FILE = "ensemble-evaluation.json"
ENSEMBLE_VALIDATION_EVALUATION_FILE = "ensemble-validation-evaluation.json"
STATUS_FILE = "status.json"
LOCK_FILE = ".lock"
TENSORBOARD_DIR = "tensorboard"
CHECKPOINT_DIR = "checkpoint"  # training/checkpoint.py's folder
EXPORT_DIR = "export"  # exports/stage.py's default folder
RUN_MARKER = ".mnist-zoo-run"
"""The file only mnist-zoo writes, into every run directory it makes: what `--force` looks for."""
_MARKER_TOOL = "mnist-zoo"
_MARKER_FORMAT = 1


# A temporary's name says which process writes it: `.<stem>.<pid>-<8 hex>.partial<suffix>` (a file or
# folder being written) or `.<name>.<pid>-<8 hex>.old` (a folder moved aside to be replaced).
_TEMPORARY = re.compile(r"\.(?P<stem>[^/]+?)\.(?P<pid>\d+)-[0-9a-f]{8}\.(?:partial|old)(?:\..+)?")
# Earlier versions named them as `tempfile.mkstemp` does, without the process:
# a run killed mid-write by one of them may still hold one.
_UNOWNED_TEMPORARY = re.compile(r"\.(?P<stem>[^.][^/]*?)\.[a-z0-9_]{8}(?:\.weights\.h5|\.[A-Za-z0-9]+)?")


def _temporary_name(name: str, kind: str, suffix: str = "") -> str:
    return f".{name}.{os.getpid()}-{secrets.token_hex(4)}.{kind}{suffix}"


@contextmanager
def atomic_path(path: Path, folder: bool = False):
    """Yields a temporary path beside `path`; on success puts it in place, else removes it.

    Every file and folder mnist-zoo writes goes through here: a crash at any moment leaves the
    old `path` or the new one, never a truncated one, plus a temporary that names its writer's
    process (`remove_leftovers`).

    Args:
        path: the final file or folder.
        folder: the writer makes a folder at the temporary path (a SavedModel); an existing
            folder at `path` is moved aside, replaced, then deleted.

    Yields:
        The temporary path, with `path`'s ending (Keras picks the format from it and insists on
        '.weights.h5' for weights). A file is created empty, with the permissions `open()` gives
        (the umask applies); a folder is left for the writer to make.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".weights.h5" if path.name.endswith(".weights.h5") else path.suffix
    temporary = path.with_name(_temporary_name(path.name[:len(path.name) - len(suffix)], "partial", suffix))
    if not folder:
        os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        try:
            yield temporary
        except OSError as error:
            # A write that fails (disk full, quota, I/O error) names our temporary, or no file at
            # all when a library writes through its own handle (Keras's zip, h5py): name the file
            # the user knows. Errors about other files (a missing source of a copy) keep theirs.
            ours = (temporary, str(temporary))
            # shutil's copies name the source first and the destination second.
            if error.filename not in (None, *ours) and error.filename2 not in ours:
                raise
            raise OSError(error.errno, error.strerror or str(error), str(path)) from error
        if folder and path.is_dir():
            old = path.with_name(_temporary_name(path.name, "old"))
            os.replace(path, old)
            os.replace(temporary, path)
            remove_path(old)
        else:
            os.replace(temporary, path)
    finally:
        remove_path(temporary)


@contextmanager
def scratch_folder(parent: Path):
    """A temporary folder inside `parent`, named like `atomic_path`'s temporaries, removed afterwards."""
    folder = Path(parent) / _temporary_name("scratch", "partial")
    folder.mkdir(parents=True)
    try:
        yield folder
    finally:
        remove_path(folder)


def remove_path(path: Path) -> None:
    """Deletes a file or a folder if it exists."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def remove_leftovers(folder: Path) -> None:
    """Deletes the temporaries that writers killed mid-way (kill -9, power loss) left in `folder`.

    Only those whose process is gone: a live writer's temporary looks the same.
    """
    if not Path(folder).is_dir():
        return
    for path in Path(folder).glob(".*"):
        match = _TEMPORARY.fullmatch(path.name)
        if match and not process_alive(int(match["pid"])):
            remove_path(path)


def remove_temporaries(run_dir: Path) -> None:
    """Deletes the temporaries `atomic_path` left of a run's own files when a process was killed mid-write.

    Only while holding the run's `training_lock`: no other process writes these files then, so
    even a temporary whose process id now belongs to another process is a leftover.
    """
    for path in Path(run_dir).glob(".*"):
        if path.is_file() and _temporary_stem(path.name) in _RUN_FILE_STEMS:
            path.unlink(missing_ok=True)


# evaluate's reports and plots: of the test set, with --tta, of the validation images. In a run
# directory best.keras's under these names, last.keras's with "last." before them
# (`inference.evaluation.report_place`), so that neither replaces the other's; in an ensemble's
# folder with "ensemble-" before them.
_REPORTS = [f"{split}{name}" for split in ("", "tta-", "validation-", "validation-tta-")
            for name in (EVALUATION_FILE, "confusion_matrix.png", "misclassified.png")]
_REPORT_FILES = frozenset(f"{model}{name}" for model in ("", f"{Path(LAST_MODEL).stem}.") for name in _REPORTS)
_ENSEMBLE_REPORT_FILES = frozenset(f"ensemble-{name}" for name in _REPORTS)
# The files a run directory holds that are written through `atomic_path` (the checkpoint folder
# cleans itself at each commit).
_RUN_FILE_STEMS = {Path(name).stem for name in (CONFIG_FILE, HISTORY_JSON, BEST_MODEL, LAST_MODEL, METRICS_FILE,
                                                ENVIRONMENT_FILE, STATUS_FILE, *_REPORT_FILES)}


def is_temporary_name(name: str) -> bool:
    """True for the name of an `atomic_path` temporary (of any process, or of an older version)."""
    return _temporary_stem(name) is not None


def _temporary_stem(name: str) -> str | None:
    """The stem of the file an `atomic_path` temporary named `name` was to become, or None for another name."""
    match = _TEMPORARY.fullmatch(name) or _UNOWNED_TEMPORARY.fullmatch(name)
    return match["stem"] if match else None


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
        The new run directory, holding nothing but its `RUN_MARKER`.

    Raises:
        RunDirError: `root` cannot hold a new folder.
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
        except FileExistsError:
            continue  # a run started in the same second: take the next suffix
        try:
            mark_run_dir(candidate)
        except OSError as error:
            raise RunDirError(f"{candidate}: cannot write its {RUN_MARKER} ({error.strerror}); "
                              "choose another --output-dir") from None
        return candidate
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

    A run directory gives its best.keras (else last.keras), an ensemble's folder its ensemble.json;
    a model file or SavedModel folder belongs to the run that holds it directly or in its export/ folder.

    Raises:
        ModelFileError: nothing usable at `path`.
    """
    path = Path(path)
    if is_ensemble_folder(path):
        return path / ENSEMBLE_FILE, None
    if path.is_dir() and not (path / "saved_model.pb").is_file():
        for name in (BEST_MODEL, LAST_MODEL):
            if (path / name).is_file():
                return path / name, path
        raise ModelFileError(f"{path}: run directory holds neither {BEST_MODEL} nor {LAST_MODEL}")
    if not path.exists():
        raise ModelFileError(f"{path}: no such model file or run directory")
    owner = next((folder for folder in (path.parent, path.parent.parent) if (folder / CONFIG_FILE).is_file()), None)
    return path, owner


def is_ensemble_name(path: Path) -> bool:
    """Whether a path is named as an ensemble file: ensemble.json, or NAME.ensemble.json."""
    name = Path(path).name
    return name == ENSEMBLE_FILE or name.endswith(ENSEMBLE_SUFFIX)


def is_ensemble_folder(path: Path) -> bool:
    """Whether `path` is an ensemble's folder: it holds an ensemble.json and is not a run directory."""
    path = Path(path)
    return path.is_dir() and (path / ENSEMBLE_FILE).is_file() and not (path / CONFIG_FILE).is_file()


def is_own_model(model_path: Path, run_dir: Path | None) -> bool:
    """True for a `.keras` file directly in its run directory (best.keras, last.keras), not an export or a copy."""
    return run_dir is not None and Path(model_path).parent == Path(run_dir) and Path(model_path).suffix == ".keras"


def is_runs_best_model(model_path: Path, run_dir: Path | None) -> bool:
    """True for a run's own best.keras: the model its metrics.json and evaluation.json describe."""
    return is_own_model(model_path, run_dir) and Path(model_path).name == BEST_MODEL


# The small records of a run (status, environment, metrics, an ensemble's report) are a few KiB;
# `serve` and `compare` read them from folders anyone may have filled, so a huge file is refused
# unread instead of filling memory.
MAX_RECORD_BYTES = 4 * 1024 * 1024


def read_json_object(path: Path) -> dict:
    """A JSON file holding an object, as a dict; {} if it is missing, unreadable, not a regular
    file (a FIFO would block), over MAX_RECORD_BYTES or not an object."""
    def too_large(size):
        return RunDirError(f"{path}: {size:,} bytes")

    try:
        record = json.loads(read_regular_file(Path(path), MAX_RECORD_BYTES, RunDirError, too_large).decode("utf-8"))
    except (OSError, ValueError, RecursionError, RunDirError):  # RecursionError: thousands of nested brackets
        return {}
    return record if isinstance(record, dict) else {}


def read_environment(run_dir: Path) -> dict:
    """The run's environment.json ({} if it has none or it is unreadable)."""
    return read_json_object(Path(run_dir) / ENVIRONMENT_FILE)


def read_status(run_dir: Path) -> dict:
    """The run's status.json ({} if it has none or it is unreadable)."""
    return read_json_object(Path(run_dir) / STATUS_FILE)


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
    """Creates the run directory `path`, or replaces it with `force`; never overwrites silently.

    `force` deletes `path` only if `check_replaceable` finds it is a run directory and nothing
    else, and only while holding its `training_lock`.

    Args:
        path: the run directory to train into (`--run-dir`).
        force: replace `path` if it already holds a run.

    Returns:
        `path`, existing and holding its `RUN_MARKER`.

    Raises:
        RunDirError: `path` exists and is not empty (without `force`), is not a directory, is not
            a run directory `force` may delete (see `check_replaceable`), another process is
            training in it, or it cannot be created.
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
        check_replaceable(path)
        import shutil

        with training_lock(path):  # never delete a run another process is training in
            # Never follows a symbolic link inside the run out of it (rmtree.avoids_symlink_attacks).
            shutil.rmtree(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        mark_run_dir(path)
    except OSError as error:
        raise RunDirError(f"{path}: cannot create the run directory ({error.strerror})") from None
    return path


def mark_run_dir(run_dir: Path) -> None:
    """Writes `RUN_MARKER` into `run_dir`, unless it already holds a valid one.

    The marker is one JSON line, e.g.
    `{"tool": "mnist-zoo", "format": 1, "version": "0.1.0", "token": "<32 hex digits>"}`:
    no other program writes that file, so `--force` can tell a run from a folder of the user's.
    """
    if is_marked(run_dir):
        return
    import secrets

    import mnist_zoo

    record = {"tool": _MARKER_TOOL, "format": _MARKER_FORMAT, "version": mnist_zoo.__version__,
              "token": secrets.token_hex(16)}
    # Written in place, not through `atomic_path`: ~100 bytes into a new folder. A marker cut
    # short is invalid, and the folder is then judged as a run of an older version.
    (Path(run_dir) / RUN_MARKER).write_text(json.dumps(record) + "\n", encoding="utf-8")


def is_marked(run_dir: Path) -> bool:
    """True if `run_dir` holds a valid `RUN_MARKER` (a regular file, not a link)."""
    import re

    path = Path(run_dir) / RUN_MARKER
    if path.is_symlink() or not path.is_file():
        return False
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.loads(handle.read(4096))
    except (OSError, ValueError):
        return False
    return (isinstance(record, dict) and record.get("tool") == _MARKER_TOOL
            and isinstance(record.get("token"), str) and re.fullmatch(r"[0-9a-f]{32}", record["token"]) is not None)


# Everything a run directory holds, the only entries `--force` deletes: the run's files, the
# plots `evaluate` and `plot-history` write beside them, the folders of its checkpoint,
# TensorBoard logs and exports, and the temporaries `atomic_path` leaves of its files.
RUN_ENTRIES = frozenset({CONFIG_FILE, HISTORY_JSON, HISTORY_CSV, BEST_MODEL, LAST_MODEL, METRICS_FILE,
                         ENVIRONMENT_FILE, STATUS_FILE, LOCK_FILE, RUN_MARKER, "history.png"} | _REPORT_FILES)
RUN_FOLDERS = frozenset({CHECKPOINT_DIR, TENSORBOARD_DIR, EXPORT_DIR})
_STATUSES = {"running", "interrupted", "failed", "complete", "pruned"}


def _foreign_entries(run_dir: Path) -> list[str]:
    """The names in `run_dir` that a run does not hold (a folder's with a trailing '/')."""
    foreign = []
    for entry in sorted(Path(run_dir).iterdir()):
        name = entry.name
        if entry.is_symlink():
            ours = False  # a run holds no links
        elif name in RUN_FOLDERS:
            ours = entry.is_dir()
        else:
            ours = entry.is_file() and (name in RUN_ENTRIES or _temporary_stem(name) in _RUN_FILE_STEMS)
        if not ours:
            foreign.append(f"{name}/" if entry.is_dir() and not entry.is_symlink() else name)
    return foreign


def _is_legacy_run(run_dir: Path) -> bool:
    """A run of a version before `RUN_MARKER`: its status.json is the record `write_status` writes."""
    path = Path(run_dir) / STATUS_FILE
    if path.is_symlink() or not path.is_file():
        return False
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (isinstance(record, dict) and record.get("status") in _STATUSES
            and {"pid", "host", "updated"} <= record.keys())


def check_replaceable(path: Path) -> None:
    """Refuses to let `--force` delete `path` unless it is a run directory and nothing else.

    `path` must be a run directory mnist-zoo made (it holds a valid `RUN_MARKER`; a run of an
    older version, without one, must hold a status.json as `write_status` writes it) and must
    hold nothing a run does not hold (`RUN_ENTRIES`, `RUN_FOLDERS`, temporaries of run files).
    Paths are compared resolved, so `.`, `..` and links do not hide what they name.

    Args:
        path: an existing, non-empty folder named with `--run-dir`.

    Raises:
        RunDirError: `path` is a symbolic link, the filesystem root, the current directory or
            one of its ancestors, the home folder or one of its ancestors, holds entries a run
            does not hold, or is not a run directory.
    """
    path = Path(path)
    how = "--force replaces only a run directory"
    if path.is_symlink():
        target = path.resolve()
        raise RunDirError(f"{path}: is a symbolic link to {target}; {how} named directly: "
                          f"use --run-dir {target} --force")
    resolved = path.resolve()
    if resolved == Path(resolved.anchor):
        raise RunDirError(f"{path}: is the filesystem root; {how}: name one, e.g. --run-dir runs/my-run")
    cwd = Path.cwd().resolve()
    if resolved == cwd:
        raise RunDirError(f"{path}: is the current directory ({cwd}); --force never deletes the folder you "
                          "are in: run from its parent and name it, e.g. --run-dir my-run --force")
    if cwd.is_relative_to(resolved):
        raise RunDirError(f"{path}: holds the current directory ({cwd}); --force never deletes a folder "
                          "you are working in: name the run directory itself, e.g. --run-dir runs/my-run")
    home = Path.home().resolve()
    if home.is_relative_to(resolved):
        what = "is your home folder" if resolved == home else f"holds your home folder ({home})"
        raise RunDirError(f"{path}: {what}; {how}: name one, e.g. --run-dir runs/my-run")
    foreign = _foreign_entries(path)
    if foreign:
        listed = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise RunDirError(f"{path}: is not a run directory: it holds {listed}, which no run holds; --force "
                          "never deletes files you added: move them out first, or choose another --run-dir")
    if not is_marked(path) and not _is_legacy_run(path):
        raise RunDirError(f"{path}: is not a run directory mnist-zoo made: no valid {RUN_MARKER} (nor, as a run "
                          f"of an older version, a {STATUS_FILE}); {how}: delete it yourself if you mean to, "
                          "or choose another --run-dir")


MAX_ENSEMBLE_FILE_BYTES = 64 * 1024
"""32 member paths fit many times over; a larger file is not one `evaluate --ensemble` wrote."""

_ENSEMBLE_FORMAT = "mnist-zoo ensemble"


def write_ensemble_file(folder: Path, model_paths: list[Path], dataset: str) -> Path:
    """Writes `folder`/ensemble.json, naming the members' model files relative to `folder`.

    Relative paths keep the ensemble working when the folder and the runs move together (a
    whole runs/ folder copied to another machine). The folder then stands for the ensemble
    wherever a model is expected: `predict`, `serve`, `compare`, `evaluate`.

    Returns:
        The path of the file written.
    """
    folder = Path(folder)
    check_ensemble_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    record = {"format": _ENSEMBLE_FORMAT, "version": 1, "dataset": dataset,
              "members": [os.path.relpath(Path(path).resolve(), folder.resolve()) for path in model_paths]}
    path = folder / ENSEMBLE_FILE
    if not _same_members(read_json_object(path).get("members"), record["members"]):
        # The folder's reports score the members of its ensemble file: beside other members they
        # would give compare and serve another committee's figures. They go first, so that a
        # crash in between leaves no report beside a file it does not describe.
        for name in sorted(_ENSEMBLE_REPORT_FILES):
            report = folder / name
            if report.is_symlink() or report.is_file():
                report.unlink()
    write_json(path, record)
    return path


def read_ensemble_report(ensemble_file: Path, name: str) -> dict:
    """The report `name` (ENSEMBLE_EVALUATION_FILE, ...) of the ensemble `ensemble_file`, or {} if it has none.

    The report lies beside the file and names the members it scored (`ensemble_members`, as the
    file names them): a report of other members (a committee written into the folder before,
    an evaluation of a NAME.ensemble.json beside this one) is not this ensemble's. Reports of
    versions that did not record the members are taken as they are.
    """
    report = read_json_object(Path(ensemble_file).parent / name)
    if report.get("runtime") != "ensemble" or not isinstance(report.get("accuracy"), (int, float)):
        return {}
    if "ensemble_members" in report and not _same_members(report["ensemble_members"],
                                                          read_json_object(ensemble_file).get("members")):
        return {}
    return report


def _same_members(first, second) -> bool:
    """Whether two member lists of ensemble files name the same files, in any order."""
    def names(members):
        return sorted(map(str, members)) if isinstance(members, list) else None

    return names(first) is not None and names(first) == names(second)


def check_ensemble_folder(folder: Path) -> None:
    """Refuses a run directory or a folder of runs as an ensemble's folder.

    An ensemble.json there would turn the run, or the whole folder of runs, into one ensemble
    for compare, serve and predict.

    Raises:
        RunDirError: `folder` is a run directory or holds one.
    """
    folder = Path(folder)
    if (folder / CONFIG_FILE).is_file():
        raise RunDirError(f"{folder}: is a run directory; write the ensemble into a folder of its own "
                          "(--output-dir runs/my-ensemble)")
    if folder.is_dir() and any((child / CONFIG_FILE).is_file() for child in folder.iterdir()):
        raise RunDirError(f"{folder}: holds run directories; write the ensemble into a folder of its own "
                          "(--output-dir runs/my-ensemble)")


def read_ensemble_file(path: Path) -> tuple[list[Path], str]:
    """(member paths, data set) of an ensemble file; member paths are relative to its folder, or absolute.

    Raises:
        ModelFileError: too large, or not the JSON `write_ensemble_file` writes.
    """
    path = Path(path)
    try:
        with open(path, "rb") as file:
            content = file.read(MAX_ENSEMBLE_FILE_BYTES + 1)  # bounded: the file may grow after a stat
    except OSError as error:
        raise ModelFileError(f"{path}: not a readable ensemble file ({error.strerror})") from None
    if len(content) > MAX_ENSEMBLE_FILE_BYTES:
        raise ModelFileError(f"{path}: over {MAX_ENSEMBLE_FILE_BYTES:,} bytes; an ensemble file is at most that")
    try:
        record = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise ModelFileError(f"{path}: not a readable ensemble file ({error})") from None
    except RecursionError:  # 60 kB of '[' fit under the size limit
        raise ModelFileError(f"{path}: not an ensemble file (nested too deeply)") from None
    entries = record.get("members") if isinstance(record, dict) else None
    if not (isinstance(record, dict) and record.get("format") == _ENSEMBLE_FORMAT and isinstance(entries, list)
            and all(isinstance(entry, str) and entry for entry in entries)):
        raise ModelFileError(f"{path}: not an ensemble file; expected a JSON object with \"format\": "
                             f"\"{_ENSEMBLE_FORMAT}\" and a \"members\" list of model paths, as "
                             "`mnist-zoo evaluate --ensemble` writes it")
    return [path.parent / entry for entry in entries], str(record.get("dataset", "mnist"))
