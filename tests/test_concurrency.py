"""Concurrent use: two processes on one download cache, one run directory, one runs folder, a run in progress."""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from mnist_zoo import rundir
from mnist_zoo.data.catalog import DOWNLOAD_FILES
from tests.helpers import wait_for_epochs


class _PairingHandler(http.server.SimpleHTTPRequestHandler):
    """Holds each request until another one arrives, counting overlapping requests: downloads overlap."""

    def log_message(self, *args):
        pass

    def copyfile(self, source, destination):
        server = self.server
        with server.lock:
            server.active += 1
            server.most_active = max(server.most_active, server.active)
        try:
            try:
                server.pairs.wait()  # both processes are downloading now (a broken pair still serves)
            except threading.BrokenBarrierError:
                pass
            super().copyfile(source, destination)
        finally:
            with server.lock:
                server.active -= 1


def test_two_processes_downloading_into_one_cache_both_succeed(mnist_data, tmp_path):
    handler = functools.partial(_PairingHandler, directory=str(mnist_data))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.lock, server.active, server.most_active = threading.Lock(), 0, 0
    server.pairs = threading.Barrier(2, timeout=60)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    environment = {**os.environ, "MNIST_ZOO_CACHE_DIR": str(tmp_path / "cache"),
                   "MNIST_ZOO_MIRRORS": f"http://127.0.0.1:{server.server_address[1]}/{{dataset}}/"}
    code = ("from mnist_zoo.data.datasets import load_dataset\n"
            "data = load_dataset('mnist')\n"
            "print(data.checksum())")
    try:
        processes = [subprocess.Popen([sys.executable, "-c", code], env=environment, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True) for _ in range(2)]
        results = [process.communicate(timeout=300) for process in processes]
    finally:
        server.shutdown()
        server.server_close()
    assert [process.returncode for process in processes] == [0, 0], [stderr for _, stderr in results]
    assert server.most_active >= 2  # the two downloads did overlap
    assert results[0][0] == results[1][0]  # the same arrays
    cache = tmp_path / "cache" / "mnist"
    assert sorted(path.name for path in cache.iterdir()) == sorted(DOWNLOAD_FILES)  # one copy, no temporaries
    from mnist_zoo.data.download import is_verified

    assert all(is_verified(cache / name, "mnist") for name in DOWNLOAD_FILES)


# One process creating a run directory with its clock stopped at one second, once `go` exists.
_CREATE_IN_THE_SAME_SECOND = """
import sys, time
from datetime import datetime
from pathlib import Path
from mnist_zoo import rundir

class FrozenClock:
    @staticmethod
    def now(tz=None):
        return datetime(2026, 1, 1, 12, 0, 0, tzinfo=tz)

rundir.datetime = FrozenClock  # this process's own module: the same second for every process
go = Path(sys.argv[2])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.001)
print(rundir.create_run_dir(Path(sys.argv[1]), "cnn"), flush=True)
"""


def test_runs_started_in_the_same_second_get_distinct_directories(tmp_path):
    runs, go = tmp_path / "runs", tmp_path / "go"
    workers = [subprocess.Popen([sys.executable, "-c", _CREATE_IN_THE_SAME_SECOND, str(runs), str(go)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(6)]
    assert [worker.stdout.readline().strip() for worker in workers] == ["ready"] * 6
    go.touch()  # all at the same moment
    outcomes = [worker.communicate(timeout=120) for worker in workers]
    assert [worker.returncode for worker in workers] == [0] * 6, outcomes
    created = [stdout.strip() for stdout, _ in outcomes]
    assert sorted(Path(path).name for path in created) == [
        "20260101-120000-cnn", *(f"20260101-120000-cnn-{attempt}" for attempt in range(2, 7))]
    assert all([child.name for child in Path(path).iterdir()] == [rundir.RUN_MARKER] for path in created)


@pytest.fixture(scope="module")
def slow_config(small_cnn_config, tmp_path_factory) -> Path:
    """The same for 100 epochs: it is still training whenever a test looks (and is then killed)."""
    config = yaml.safe_load(small_cnn_config.read_text())
    config["train"].update(epochs=100, verbose=0)
    path = tmp_path_factory.mktemp("concurrency") / "cnn-100.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _mnist_zoo(*args, cwd=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mnist_zoo", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=cwd)


def test_two_resumes_of_one_run_one_proceeds_the_other_is_refused(tmp_path, small_cnn_config):
    run_dir = tmp_path / "run"
    first = _mnist_zoo("train", "--config", small_cnn_config, "--run-dir", run_dir)
    wait_for_epochs(run_dir, 1, first)
    first.kill()  # kill -9: status.json still says "running", with a process id that is gone
    first.communicate()

    resumes = [_mnist_zoo("train", "--resume", run_dir) for _ in range(2)]
    outcomes = [process.communicate(timeout=600) for process in resumes]
    codes = sorted(process.returncode for process in resumes)
    assert codes == [0, 2], outcomes
    refused = next(stderr for process, (_, stderr) in zip(resumes, outcomes) if process.returncode == 2)
    assert "is training in it; wait for it to finish or stop it first" in refused
    assert refused.strip().splitlines()[-1].startswith("Error:")  # one line, no traceback
    assert rundir.read_status(run_dir)["status"] == "complete"


def test_force_does_not_delete_a_run_that_is_training(tmp_path, slow_config):
    run_dir = tmp_path / "run"
    trainer = _mnist_zoo("train", "--config", slow_config, "--run-dir", run_dir)
    try:
        wait_for_epochs(run_dir, 1, trainer)
        replace = _mnist_zoo("train", "--config", slow_config, "--run-dir", run_dir, "--force")
        _, stderr = replace.communicate(timeout=120)
        assert replace.returncode == 2 and "is training in it" in stderr
        assert (run_dir / "config.yaml").is_file() and trainer.poll() is None
    finally:
        trainer.kill()
        trainer.communicate()


def test_compare_and_plot_history_read_a_consistent_snapshot_of_a_running_run(tmp_path, slow_config,
                                                                                small_mnist_dir):
    from click.testing import CliRunner

    from mnist_zoo.cli import cli
    from tests.helpers import train_tiny

    runs = tmp_path / "runs"
    finished = train_tiny(runs / "20260101-000000-linear", small_mnist_dir, "linear")
    run_dir = runs / "20260101-000001-slow"
    trainer = _mnist_zoo("train", "--config", slow_config, "--run-dir", run_dir)
    counts = []
    try:
        wait_for_epochs(run_dir, 1, trainer)
        while trainer.poll() is None and len(counts) < 8:
            compared = CliRunner().invoke(cli, ["compare", str(runs), "--format", "json"])
            assert compared.exit_code == 0, compared.output
            rows = json.loads(compared.stdout)
            # The finished run is listed; the running one is skipped with its state, never half read.
            assert [row["run"] for row in rows] == [finished.name], rows
            assert f"skipped {run_dir}" in compared.stderr and "running" in compared.stderr, compared.stderr
            plotted = CliRunner().invoke(cli, ["plot-history", str(run_dir), "--output", str(tmp_path / "h.png")])
            assert plotted.exit_code == 0, plotted.output
            history = rundir.read_history(run_dir)
            assert [record["epoch"] for record in history] == list(range(1, len(history) + 1))
            counts.append(len(history))
            time.sleep(0.1)
    finally:
        trainer.kill()
        trainer.communicate()
    assert len(counts) >= 3
    assert counts == sorted(counts) and counts[-1] > counts[0]  # it watched training advance, never back
