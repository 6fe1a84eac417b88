"""Atomic writes: a write cut short never replaces a file's old bytes or leaves a partial file behind."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from mnist_zoo import rundir


@pytest.mark.parametrize("stop", [KeyboardInterrupt, RuntimeError])
def test_an_interrupted_write_over_an_existing_file_leaves_the_old_bytes(tmp_path, stop):
    path = tmp_path / "metrics.json"
    rundir.write_json(path, {"test_accuracy": 0.99})
    before = path.read_bytes()
    with pytest.raises(stop):
        with rundir.atomic_path(path) as temporary:
            temporary.write_text('{"test_accuracy": 0.')  # half of the new content
            raise stop()
    assert path.read_bytes() == before
    assert sorted(tmp_path.iterdir()) == [path]  # the temporary is gone too


class HalfSavingModel:
    """A model whose save writes the start of a zip, then the disk is full."""

    def save(self, path):
        Path(path).write_bytes(b"PK\x03\x04 the first bytes of a zip")
        raise OSError(28, "No space left on device", str(path))


def test_a_failed_model_save_keeps_the_previous_model_file(tmp_path):
    path = tmp_path / "best.keras"
    path.write_bytes(b"the previous best model")
    with pytest.raises(OSError) as caught:
        rundir.save_model(HalfSavingModel(), path)
    assert caught.value.filename == str(path)  # named as the user knows it, not our temporary
    assert path.read_bytes() == b"the previous best model"
    assert sorted(tmp_path.iterdir()) == [path]


def test_a_completed_write_replaces_the_file_with_normal_permissions(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("old")
    rundir.write_csv(path, [{"epoch": 1, "loss": 0.5}])
    assert path.read_text() == "epoch,loss\n1,0.5\n"
    plain = tmp_path / "plain.txt"
    plain.write_text("made by open()")
    assert path.stat().st_mode == plain.stat().st_mode  # not mkstemp's private 0600


def test_temporaries_of_killed_writes_are_removed_and_nothing_else(tmp_path):
    from mnist_zoo.rundir import remove_temporaries

    for name in ("best.keras", "history.json", "history.csv", "status.json"):
        with pytest.raises(KeyboardInterrupt), rundir.atomic_path(tmp_path / name) as temporary:
            shutil.copyfile(temporary, tmp_path / f"copy-of-{name}")  # what a kill -9 mid-write leaves
            raise KeyboardInterrupt
        (tmp_path / f"copy-of-{name}").rename(temporary)
    kept = [".lock", ".notes.abcd1234.txt", "best.keras", ".hidden", ".mine.123-abcdef01.partial.txt"]
    for name in kept:
        (tmp_path / name).touch()
    remove_temporaries(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(kept)


def test_leftovers_of_dead_writers_are_removed_and_those_of_live_ones_kept(tmp_path):
    """export folders have no lock: a temporary is a leftover only when the process named in it is gone."""
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    leftovers = [f".model.{dead_pid}-0123abcd.partial.onnx", f".saved_model.{dead_pid}-89abcdef.old",
                 f".scratch.{dead_pid}-00ff00ff.partial"]
    live = [f".model.{os.getpid()}-0123abcd.partial.onnx", "model.onnx", ".model.onnx"]
    for name in leftovers + live:
        (tmp_path / name).mkdir() if name.endswith((".old", "scratch.partial")) else (tmp_path / name).touch()
    rundir.remove_leftovers(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(live)


def test_a_folder_replaces_a_folder_whole(tmp_path):
    target = tmp_path / "saved_model"
    target.mkdir()
    (target / "old.pb").write_text("old")
    with rundir.atomic_path(target, folder=True) as temporary:
        assert not temporary.exists()  # the writer makes it
        temporary.mkdir()
        (temporary / "new.pb").write_text("new")
    assert [path.name for path in target.iterdir()] == ["new.pb"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["saved_model"]  # the old one is gone, no temporary

# ----------------------------------------------------------------------------- a run's small records, read defensively


@pytest.mark.timeout(20)
def test_a_fifo_in_place_of_a_runs_record_reads_as_none_without_blocking(tmp_path):
    # serve and compare read status.json and metrics.json of folders anyone may have filled.
    os.mkfifo(tmp_path / rundir.STATUS_FILE)
    assert rundir.read_status(tmp_path) == {}


def test_an_oversized_record_is_not_read(tmp_path, monkeypatch):
    monkeypatch.setattr(rundir, "MAX_RECORD_BYTES", 100)
    (tmp_path / rundir.STATUS_FILE).write_text('{"status": "complete", "padding": "' + "x" * 100 + '"}')
    assert rundir.read_status(tmp_path) == {}
    (tmp_path / rundir.STATUS_FILE).write_text('{"status": "complete"}')
    assert rundir.read_status(tmp_path) == {"status": "complete"}


@pytest.mark.parametrize("content", ["[1, 2]", "not json", "\udcff", "[" * 100_000])
def test_a_record_that_is_not_a_json_object_reads_as_empty(tmp_path, content):
    (tmp_path / rundir.METRICS_FILE).write_bytes(content.encode("utf-8", "surrogateescape"))
    assert rundir.read_json_object(tmp_path / rundir.METRICS_FILE) == {}
