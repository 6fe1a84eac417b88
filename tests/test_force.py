"""`train --run-dir DIR --force` deletes only a run directory mnist-zoo made, and nothing in it the user added."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from mnist_zoo import rundir
from mnist_zoo.cli import cli
from mnist_zoo.errors import RunDirError


def train_force(run_dir, tmp_path):
    """`train --run-dir RUN_DIR --force`, with no data: a refused --force stops before any training."""
    args = ["train", "--model", "linear", "--data-dir", str(tmp_path / "no-data"), "--run-dir", str(run_dir),
            "--force"]
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def project(folder: Path) -> Path:
    """A user's project: a config.yaml of some other tool beside their own files."""
    (folder / "src").mkdir(parents=True)
    (folder / "config.yaml").write_text("name: my-project\n")
    (folder / "notes.md").write_text("precious")
    (folder / "src" / "main.py").write_text("print('hello')\n")
    return folder


def made_run(root: Path, name: str = "run") -> Path:
    """A run directory as the product makes it (marker, config, status, history, checkpoint, logs)."""
    run = rundir.prepare_named_run_dir(root / name, force=False)
    rundir.write_text(run / rundir.CONFIG_FILE, "model:\n  type: linear\n")
    rundir.write_status(run, "complete", epochs_completed=1, epochs=1)
    rundir.write_json(run / rundir.HISTORY_JSON, {"epochs": [{"epoch": 1, "loss": 0.5}]})
    (run / rundir.LOCK_FILE).touch()
    (run / rundir.CHECKPOINT_DIR).mkdir()
    (run / rundir.CHECKPOINT_DIR / "state.json").write_text("{}")
    (run / rundir.TENSORBOARD_DIR / "train").mkdir(parents=True)
    return run


def tree(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


@pytest.fixture
def no_rmtree(monkeypatch):
    """Makes any deletion fail loudly: the refusals must come before it."""
    def refuse(path, *args, **kwargs):
        raise AssertionError(f"rmtree({path}) called")

    monkeypatch.setattr(shutil, "rmtree", refuse)


# ----------------------------------------------------------------------------- refused


def test_force_refuses_the_current_directory_holding_a_config(tmp_path, monkeypatch):
    folder = project(tmp_path / "project")
    before = tree(folder)
    monkeypatch.chdir(folder)
    result = train_force(".", tmp_path)
    assert result.exit_code == 2
    assert "is the current directory" in result.output and "Traceback" not in result.output
    assert tree(folder) == before and (folder / "notes.md").read_text() == "precious"


def test_force_refuses_a_project_folder_named_from_outside(tmp_path, monkeypatch):
    folder = project(tmp_path / "project")
    before = tree(folder)
    monkeypatch.chdir(tmp_path)
    result = train_force("project", tmp_path)
    assert result.exit_code == 2
    message = result.output.strip().splitlines()[-1]
    assert message.startswith("Error: project: is not a run directory: it holds notes.md, src/")
    assert "move them out first" in message
    assert tree(folder) == before


def test_force_refuses_the_home_folder(tmp_path, monkeypatch):
    home = made_run(tmp_path, "home")  # even one that looks like a run
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    before = tree(home)
    result = train_force(home, tmp_path)
    assert result.exit_code == 2 and "is your home folder" in result.output
    assert tree(home) == before


def test_force_refuses_an_ancestor_of_the_current_directory(tmp_path, monkeypatch):
    outer = made_run(tmp_path, "outer")
    inner = outer / "inner"
    inner.mkdir()
    monkeypatch.chdir(inner)
    before = tree(outer)
    result = train_force("..", tmp_path)
    assert result.exit_code == 2 and f"holds the current directory ({inner.resolve()})" in result.output
    assert tree(outer) == before


def test_force_refuses_the_filesystem_root(no_rmtree):
    with pytest.raises(RunDirError, match="is the filesystem root"):
        rundir.prepare_named_run_dir(Path("/"), force=True)


def test_force_refuses_a_run_holding_a_file_the_user_added(tmp_path):
    run = made_run(tmp_path)
    (run / "my-notes.txt").write_text("precious")
    before = tree(run)
    result = train_force(run, tmp_path)
    assert result.exit_code == 2 and "it holds my-notes.txt, which no run holds" in result.output
    assert tree(run) == before


@pytest.mark.parametrize("entry", ["link", rundir.TENSORBOARD_DIR, rundir.CONFIG_FILE])
def test_force_refuses_a_run_holding_a_link(tmp_path, entry, no_rmtree):
    run = rundir.prepare_named_run_dir(tmp_path / "run", force=False)
    rundir.write_status(run, "complete")
    outside = tmp_path / "outside"
    outside.mkdir()
    (run / entry).symlink_to(outside)  # a run holds no links, not even under its own names
    with pytest.raises(RunDirError, match=f"it holds {entry}, which no run holds"):
        rundir.prepare_named_run_dir(run, force=True)


def test_force_refuses_a_symlink_to_a_run(tmp_path, no_rmtree):
    run = made_run(tmp_path)
    link = tmp_path / "link"
    link.symlink_to(run)
    with pytest.raises(RunDirError, match=f"is a symbolic link to {run.resolve()}; .* use --run-dir {run.resolve()}"):
        rundir.prepare_named_run_dir(link, force=True)
    assert (run / rundir.CONFIG_FILE).is_file()


def test_force_refuses_a_folder_of_run_file_names_without_a_marker_or_status(tmp_path, no_rmtree):
    folder = tmp_path / "other-tool"
    folder.mkdir()
    (folder / "config.yaml").write_text("name: other\n")
    (folder / "metrics.json").write_text("{}")
    with pytest.raises(RunDirError, match=r"no valid \.mnist-zoo-run .*older version.*delete it yourself"):
        rundir.prepare_named_run_dir(folder, force=True)


def test_a_marker_of_another_content_does_not_count(tmp_path, no_rmtree):
    run = made_run(tmp_path)
    (run / rundir.STATUS_FILE).unlink()
    (run / rundir.RUN_MARKER).write_text('{"tool": "mnist-zoo"}\n')  # no token
    with pytest.raises(RunDirError, match="is not a run directory mnist-zoo made"):
        rundir.prepare_named_run_dir(run, force=True)


# ----------------------------------------------------------------------------- replaced


def test_force_replaces_a_run_without_following_links_out_of_it(tmp_path):
    run = made_run(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("precious")
    (run / rundir.TENSORBOARD_DIR / "train" / "escape").symlink_to(outside)  # deep inside: not listed
    assert rundir.prepare_named_run_dir(run, force=True) == run
    assert [path.name for path in run.iterdir()] == [rundir.RUN_MARKER] and rundir.is_marked(run)
    assert (outside / "keep.txt").read_text() == "precious"


def test_force_replaces_a_run_of_an_older_version_without_a_marker(tmp_path):
    run = made_run(tmp_path)
    (run / rundir.RUN_MARKER).unlink()
    leftover = run / ".history.abcd1234.json"  # a temporary of a killed write
    leftover.write_text("{")
    rundir.prepare_named_run_dir(run, force=True)
    assert [path.name for path in run.iterdir()] == [rundir.RUN_MARKER]


def test_a_run_of_an_older_version_with_a_user_file_is_refused(tmp_path, no_rmtree):
    run = made_run(tmp_path)
    (run / rundir.RUN_MARKER).unlink()
    (run / "results.xlsx").write_bytes(b"precious")
    with pytest.raises(RunDirError, match="it holds results.xlsx"):
        rundir.prepare_named_run_dir(run, force=True)


def test_force_does_not_take_a_run_another_process_trains_in(tmp_path):
    import fcntl

    run = made_run(tmp_path)
    with open(run / rundir.LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RunDirError, match="is training in it"):
            rundir.prepare_named_run_dir(run, force=True)
    assert (run / rundir.CONFIG_FILE).is_file()


# ----------------------------------------------------------------------------- the marker


def test_every_new_run_directory_holds_a_marker(tmp_path):
    created = rundir.create_run_dir(tmp_path / "runs", "cnn")
    named = rundir.prepare_named_run_dir(tmp_path / "named", force=False)
    (tmp_path / "empty").mkdir()
    adopted = rundir.prepare_named_run_dir(tmp_path / "empty", force=False)
    for run in (created, named, adopted):
        assert [path.name for path in run.iterdir()] == [rundir.RUN_MARKER]
        record = json.loads((run / rundir.RUN_MARKER).read_text())
        assert record["tool"] == "mnist-zoo" and len(record["token"]) == 32
    tokens = {json.loads((run / rundir.RUN_MARKER).read_text())["token"] for run in (created, named, adopted)}
    assert len(tokens) == 3


def test_the_run_layout_names_the_folders_of_the_stages():
    from mnist_zoo.exports.stage import EXPORT_DIR
    from mnist_zoo.training.checkpoint import CHECKPOINT_DIR

    assert {CHECKPOINT_DIR, EXPORT_DIR, rundir.TENSORBOARD_DIR} == rundir.RUN_FOLDERS


def test_a_real_run_holds_only_run_entries_and_is_replaced(tmp_path, small_mnist_dir, monkeypatch):
    from tests.helpers import train_tiny

    run = train_tiny(tmp_path / "run", small_mnist_dir, "linear")
    invoke = CliRunner().invoke
    assert invoke(cli, ["evaluate", str(run), "--plots"], catch_exceptions=False).exit_code == 0
    assert invoke(cli, ["plot-history", str(run)], catch_exceptions=False).exit_code == 0
    assert rundir.is_marked(run) and rundir._foreign_entries(run) == []
    rundir.check_replaceable(run)
    replaced = invoke(cli, ["train", "--model", "linear", "--data-dir", str(small_mnist_dir), "--run-dir", str(run),
                            "--force", "--epochs", "1", "--seed", "3", "--set", "data.validation_size=200",
                            "--set", "train.verbose=0"], catch_exceptions=False)
    assert replaced.exit_code == 0, replaced.output
    assert json.loads((run / rundir.ENVIRONMENT_FILE).read_text())["seed"] == 3
    assert not (run / "history.png").exists() and rundir.is_marked(run)
