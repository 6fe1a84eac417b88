"""`mnist-zoo compare`: a leaderboard of finished runs as text, Markdown, JSON and a PNG."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mnist_zoo import rundir
from mnist_zoo.cli import cli
from mnist_zoo.report.compare import RunRow, sort_rows


@pytest.fixture(scope="module")
def runs_folder(tmp_path_factory, small_mnist_dir):
    """Two finished runs (linear, mlp) and one unfinished run in one folder."""
    folder = tmp_path_factory.mktemp("compare") / "runs"
    for model in ("linear", "mlp"):
        result = CliRunner().invoke(cli, [
            "train", "--model", model, "--data-dir", str(small_mnist_dir), "--run-dir", str(folder / model),
            "--epochs", "2", "--set", "data.validation_size=200", "--set", "train.verbose=0",
        ], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    unfinished = folder / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text((folder / "mlp" / "config.yaml").read_text())
    rundir.write_status(unfinished, "interrupted", epochs_completed=1)
    return folder


def test_text_leaderboard_of_a_folder(runs_folder):
    result = CliRunner().invoke(cli, ["compare", str(runs_folder)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["run", "model", "config"]
    assert {lines[2].split()[0], lines[3].split()[0]} == {"linear", "mlp"}
    assert "7,850" in result.stdout and "218,058" in result.stdout
    assert "skipped" in result.stderr and "status: interrupted" in result.stderr


def test_json_has_every_column_and_sorting_works(runs_folder):
    by_size = json.loads(CliRunner().invoke(cli, ["compare", str(runs_folder), "--format", "json",
                                                  "--sort", "parameters"]).stdout)
    assert [row["model"] for row in by_size] == ["linear", "mlp"]
    assert set(by_size[0]) == {"run", "model", "config_name", "parameters", "forward_macs", "epochs", "train_seconds",
                               "seconds_per_epoch", "best_val_accuracy", "test_accuracy"}
    assert by_size[0]["forward_macs"] == 7840 and by_size[1]["forward_macs"] == 784 * 256 + 256 * 64 + 64 * 10
    by_accuracy = json.loads(CliRunner().invoke(cli, ["compare", str(runs_folder / "linear"), str(runs_folder / "mlp"),
                                                      "--format", "json"]).stdout)
    accuracies = [row["test_accuracy"] for row in by_accuracy]
    assert accuracies == sorted(accuracies, reverse=True)


def test_markdown_and_png(runs_folder, tmp_path):
    png = tmp_path / "compare.png"
    result = CliRunner().invoke(cli, ["compare", str(runs_folder), "--format", "md", "-o", str(png)])
    assert result.exit_code == 0, result.output
    table_lines = [line for line in result.stdout.splitlines() if line.startswith("|")]
    rule = [cell.strip() for cell in table_lines[1].strip("|").split("|")]
    # text columns left-aligned, counts, times and accuracies right-aligned
    assert [cell.startswith(":") for cell in rule] == [True] * 3 + [False] * 7
    assert [cell.endswith(":") for cell in rule] == [False] * 3 + [True] * 7 and len(table_lines) == 4
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_nothing_finished_is_a_one_line_error(runs_folder, tmp_path):
    result = CliRunner().invoke(cli, ["compare", str(runs_folder / "unfinished")])
    assert result.exit_code == 2 and "no finished runs" in result.output
    result = CliRunner().invoke(cli, ["compare", str(tmp_path)])
    assert result.exit_code == 2 and "neither a run directory" in result.output


def test_missing_values_sort_last():
    def row(name, accuracy):
        return RunRow(name, "mlp", name, 1, 1, 1, 1.0, 1.0, accuracy, 0.9)

    ordered = sort_rows([row("a", None), row("b", 0.5), row("c", 0.7)], "best_val_accuracy")
    assert [item.run for item in ordered] == ["c", "b", "a"]


def test_compare_is_a_library_stage(runs_folder):
    from mnist_zoo.errors import RunDirError
    from mnist_zoo.report.compare import compare_runs

    result = compare_runs([runs_folder], "parameters")
    assert [row.model for row in result.rows] == ["linear", "mlp"]  # smallest first
    assert len(result.skipped) == 1 and "unfinished" in result.skipped[0]
    with pytest.raises(RunDirError, match="no finished runs"):
        compare_runs([runs_folder / "unfinished"])
