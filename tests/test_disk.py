"""Disk full and read-only folders at each write point: a one-line error naming the file, the last state intact.

Two ways: a small tmpfs filled up or remounted read-only (real ENOSPC and EROFS, where this
machine lets us mount: root with CAP_SYS_ADMIN), and injected errors at each write of a run
(always, in-process), for the writes a filled disk cannot aim at one by one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mnist_zoo import rundir
from mnist_zoo.cli import cli
from tests.helpers import history_without_times
from tests.skips import import_or_skip, skip_for


def _try_mount(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                            capture_output=True, text=True)
    return result.returncode == 0


@pytest.fixture
def tmpfs(tmp_path):
    """Mounts small tmpfs file systems; yields a function(size) -> mount point. Skips where mounting is not allowed."""
    mounted = []

    def mount(size: str = "16m") -> Path:
        point = tmp_path / f"tmpfs-{uuid.uuid4().hex[:6]}"
        if not _try_mount(point, size):
            skip_for("tmpfs", f"cannot mount a tmpfs on {point}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def remount(point: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(point)], check=True, capture_output=True)


def fill(point: Path, leave_bytes: int) -> Path:
    """Writes a filler file so that about `leave_bytes` stay free on `point`."""
    free = os.statvfs(point).f_bavail * os.statvfs(point).f_frsize
    filler = point / "filler"
    with open(filler, "wb") as handle:
        handle.truncate(0)
        handle.write(b"\0" * max(0, free - leave_bytes))
    return filler


def mnist_zoo(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mnist_zoo", *map(str, args)], capture_output=True, text=True,
                          timeout=600, env=env)


def assert_one_line_error(stderr: str, *fragments: str) -> str:
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ") and "Traceback" not in stderr, stderr[-2000:]
    for fragment in fragments:
        assert fragment in last, last
    return last


def write_config(tmp_path_factory, data_dir: Path, model: dict, epochs: int) -> Path:
    """A config file for `model` on the small data set, batches of 64, quiet."""
    config = {"model": model, "data": {"data_dir": str(data_dir), "validation_size": 200},
              "train": {"epochs": epochs, "batch_size": 64, "verbose": 0}}
    path = tmp_path_factory.mktemp("disk") / f"{model['type']}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# ---------------------------------------------------------------- a real, filled-up file system


# Free space, in model files (best.keras sizes), and what fills it: half a model, and the first
# checkpoint cannot be written (nothing was committed: the new run is removed); two and a half,
# and epoch 1 is committed (its checkpoint and best.keras) but epoch 2's checkpoint does not fit.
@pytest.mark.parametrize("free_models, full_at, kept", [(0.5, "epoch-0001.keras", False),
                                                        (2.5, "epoch-0002.keras", True)])
def test_a_disk_filling_up_during_training_keeps_the_last_epoch_and_resume_ends_identically(
        tmpfs, small_cnn_config, small_cnn_reference, free_models, full_at, kept):
    point = tmpfs("16m")
    run_dir = point / "run"
    filler = fill(point, int(free_models * (small_cnn_reference / "best.keras").stat().st_size))
    result = mnist_zoo("train", "--config", small_cnn_config, "--run-dir", run_dir)
    assert result.returncode == 2, result.stderr[-2000:]
    line = assert_one_line_error(result.stderr, f"{run_dir / 'checkpoint' / full_at}: No space left on device")
    assert run_dir.exists() == kept, line
    if kept:  # an epoch was committed: it is intact and the message says how to go on
        assert line.endswith(f"the run's last complete epoch is kept: fix that, then continue with: "
                             f"mnist-zoo train --resume {run_dir}")
        from mnist_zoo.training import checkpoint

        assert checkpoint.load_state(run_dir).epochs_completed == 1
    else:  # nothing was committed: nothing is left, and the same --run-dir can simply be used again
        return
    filler.unlink()  # space is freed
    result = mnist_zoo("train", "--resume", run_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    assert history_without_times(run_dir) == history_without_times(small_cnn_reference)
    # no temporaries left: only the lock and the marker that makes it a run (rundir.RUN_MARKER)
    assert sorted(path.name for path in run_dir.glob(".*")) == [".lock", ".mnist-zoo-run"]


def test_a_full_disk_during_export_keeps_the_previous_export(tmpfs, small_cnn_reference):
    import_or_skip("onnxruntime")
    point = tmpfs("32m")
    run_dir = point / "run"
    shutil.copytree(small_cnn_reference, run_dir)
    first = mnist_zoo("export", run_dir, "--format", "onnx")
    assert first.returncode == 0, first.stderr[-2000:]
    before = (run_dir / "export" / "model.onnx").read_bytes()
    fill(point, 20_000)  # less than the file
    result = mnist_zoo("export", run_dir, "--format", "onnx", "--force")
    assert result.returncode == 2
    assert_one_line_error(result.stderr)
    assert (run_dir / "export" / "model.onnx").read_bytes() == before  # the earlier file is whole
    assert not list((run_dir / "export").glob(".*"))  # no partial files


def test_a_full_disk_during_a_download_leaves_no_partial_file(tmpfs, mnist_data):
    import functools
    import http.server
    import threading

    point = tmpfs("2m")  # the training images alone are 9.9 MB
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(mnist_data))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {**os.environ, "MNIST_ZOO_CACHE_DIR": str(point),
           "MNIST_ZOO_MIRRORS": f"http://127.0.0.1:{server.server_address[1]}/{{dataset}}/"}
    code = ("import sys\n"
            "from mnist_zoo.data.download import ensure_downloaded\n"
            "from mnist_zoo.errors import DataError\n"
            "try:\n    ensure_downloaded('mnist')\n"
            "except DataError as error:\n    print(error); sys.exit(2)")
    try:
        failed = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
        assert failed.returncode == 2, failed.stderr
        assert f"{point / 'mnist'}: cannot write the download cache (No space left on device)" in failed.stdout
        assert all(not path.name.startswith("tmp") for path in (point / "mnist").iterdir())  # pooch's temporary is gone
        remount(point, "size=64m")
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    finally:
        server.shutdown()
        server.server_close()


def test_read_only_folders_give_one_line_errors_and_write_nothing(tmpfs, small_cnn_reference, small_cnn_config):
    point = tmpfs("16m")
    shutil.copytree(small_cnn_reference, point / "run")
    remount(point, "ro")
    cases = [
        (["train", "--config", small_cnn_config, "--output-dir", point / "runs"], "Read-only file system"),
        (["train", "--config", small_cnn_config, "--run-dir", point / "new"], "Read-only file system"),
        (["train", "--resume", point / "run"], "already complete"),
        (["plot-history", point / "run", "--output", point / "history.png"], "Read-only file system"),
        (["evaluate", point / "run"], "Read-only file system"),
        (["export", point / "run", "--format", "onnx", "--force"], "Read-only file system"),
    ]
    for args, message in cases:
        result = mnist_zoo(*args)
        assert result.returncode == 2, (args, result.stderr[-2000:])
        assert_one_line_error(result.stderr, message)
    assert sorted(path.name for path in point.iterdir()) == ["run"]


# ---------------------------------------------------------------- injected errors, one write point at a time


@pytest.fixture(scope="module")
def linear_config(small_mnist_dir, tmp_path_factory) -> Path:
    """The linear model for 3 epochs: a second a run, in-process."""
    return write_config(tmp_path_factory, small_mnist_dir, {"type": "linear"}, epochs=3)


@pytest.fixture(scope="module")
def linear_reference(linear_config, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("disk-linear-reference") / "run"
    result = CliRunner().invoke(cli, ["train", "--config", str(linear_config), "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    return run_dir


@contextlib.contextmanager
def failing_write(monkeypatch, name: str, occurrence: int = 1, error_number: int = errno.ENOSPC):
    """Makes the `occurrence`-th atomic write of a file called `name` fail with `error_number`."""
    from mnist_zoo.report import plots

    original = rundir.atomic_path
    seen = {"count": 0}

    @contextlib.contextmanager
    def atomic_path(path):
        with original(path) as temporary:
            if Path(path).name == name:
                seen["count"] += 1
                if seen["count"] == occurrence:
                    # As the OS reports a failed write: naming the file written, i.e. the temporary.
                    raise OSError(error_number, os.strerror(error_number), str(temporary))
            yield temporary

    with monkeypatch.context() as patch:
        patch.setattr(rundir, "atomic_path", atomic_path)
        patch.setattr(plots, "atomic_path", atomic_path)
        yield seen


WRITE_POINTS = [("config.yaml", 1), ("status.json", 1), ("environment.json", 1), ("epoch-0001.keras", 1),
                ("epoch-0003.keras", 1), ("state.json", 2), ("best.keras", 2), ("history.json", 2),
                ("history.csv", 1), ("last.keras", 1), ("metrics.json", 1), ("status.json", 2)]
# Up to epoch 1's checkpoint nothing is committed and the new run directory is removed; from
# then on the run is kept and the error says how to resume it.
BEFORE_THE_FIRST_COMMIT = {("config.yaml", 1), ("status.json", 1), ("environment.json", 1), ("epoch-0001.keras", 1)}


# Every write point with a full disk; a folder turning read-only at the first, a middle and the last one.
INJECTED = [(name, occurrence, errno.ENOSPC) for name, occurrence in WRITE_POINTS] + [
    ("config.yaml", 1, errno.EROFS), ("epoch-0003.keras", 1, errno.EROFS), ("status.json", 2, errno.EROFS)]


@pytest.mark.parametrize("name, occurrence, error_number", INJECTED,
                         ids=[f"{errno.errorcode[number]}-{name}#{occurrence}" for name, occurrence, number in INJECTED])
def test_an_error_at_each_write_of_a_run_is_one_line_and_the_run_resumes(
        tmp_path, monkeypatch, linear_config, linear_reference, name, occurrence, error_number):
    run_dir = tmp_path / "run"
    with failing_write(monkeypatch, name, occurrence, error_number) as seen:
        result = CliRunner().invoke(cli, ["train", "--config", str(linear_config), "--run-dir", str(run_dir)])
    assert seen["count"] >= occurrence, f"{name} was written {seen['count']} times"
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("Error: ") and f"{name}: {os.strerror(error_number)}" in line, line
    assert "/." not in line  # the file's name, not our temporary's
    kept = (name, occurrence) not in BEFORE_THE_FIRST_COMMIT
    assert run_dir.exists() == kept, line
    if kept:
        assert line.endswith(f"continue with: mnist-zoo train --resume {run_dir}"), line
    args = ["train", "--resume", str(run_dir)] if kept else \
        ["train", "--config", str(linear_config), "--run-dir", str(run_dir)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert history_without_times(run_dir) == history_without_times(linear_reference)


def test_an_error_writing_a_plot_leaves_no_file(tmp_path, monkeypatch, linear_reference):
    output = tmp_path / "history.png"
    with failing_write(monkeypatch, "history.png"):
        result = CliRunner().invoke(cli, ["plot-history", str(linear_reference), "--output", str(output)])
    assert result.exit_code == 2 and f"{output}: No space left on device" in result.output
    assert not list(tmp_path.iterdir())
