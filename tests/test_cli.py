"""The command line, through click's CliRunner and as a real subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mnist_zoo.cli import cli
from mnist_zoo.models.registry import MODELS
from tests.skips import skip_for

RUN_FILES = {
    "config.yaml", "history.json", "history.csv", "best.keras", "last.keras", "metrics.json", "environment.json",
    "status.json",
}


def invoke(*args):
    return CliRunner().invoke(cli, list(map(str, args)), catch_exceptions=False)


def run_cli(*args, cwd=None, env=None):
    """Runs `python -m mnist_zoo ARGS` in a fresh interpreter."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "mnist_zoo", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, env=full_env, timeout=600,
    )


# ----------------------------------------------------------------------------- help and start-up


@pytest.mark.parametrize(
    "command", [[], ["train"], ["evaluate"], ["plot-history"], ["models"], ["summary"], ["config"], ["config", "show"],
                ["config", "check"], ["config", "list"], ["config", "reference"]],
)
def test_every_help_works(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0 and "Usage:" in result.output


def test_help_does_not_import_tensorflow():
    code = (
        "import sys\nfrom mnist_zoo.cli import cli\n"
        "try:\n    cli(['train', '--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'matplotlib', 'numpy') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "HEAVY []" in result.stdout, result.stdout + result.stderr


def test_help_as_a_subprocess_imports_nothing_heavy():
    # `--help` returns at once because no heavy library is imported (the benchmark times it):
    # -X importtime lists every module the real command imported.
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "mnist_zoo", "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "plot-history" in result.stdout
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in result.stderr.splitlines()
                if line.startswith("import time:")}
    assert "mnist_zoo" in imported and not imported & {"tensorflow", "keras", "matplotlib", "numpy"}


def test_version():
    assert invoke("--version").output.startswith("mnist-zoo, version")


# ----------------------------------------------------------------------------- config commands


def test_config_show_applies_overrides():
    result = invoke("config", "show", "--model", "cnn", "--set", "train.epochs=3", "--set", "model.dropout_rate=0.3")
    assert result.exit_code == 0
    shown = yaml.safe_load(result.output)
    assert shown["train"]["epochs"] == 3 and shown["model"]["dropout_rate"] == 0.3 and shown["name"] == "cnn"


def test_config_list_names_bundled_configs():
    result = invoke("config", "list")
    assert result.exit_code == 0 and "seeds/lab_cnn" in result.output


def test_config_check_reports_each_file(tmp_path):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("model: {type: mlp}\n")
    bad.write_text("model: {type: mlp}\ntrain: {epochs: -1}\n")
    result = invoke("config", "check", good, bad)
    assert result.exit_code == 2
    assert f"ok      {good}" in result.output and "train.epochs" in result.output
    assert "1 of 2 config files are invalid" in result.output


def test_models_lists_parameter_counts():
    result = invoke("models")
    assert result.exit_code == 0
    for name in MODELS:
        assert name in result.output
    assert "1,111,946" in result.output and "218,058" in result.output and "7,850" in result.output


# ----------------------------------------------------------------------------- user errors


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["train", "--model", "cnnn"], "did you mean 'cnn'"),
        (["train", "--config", "missing.yaml"], "config file not found"),
        (["train", "--model", "mlp", "--set", "train.epochz=2"], "did you mean 'epochs'"),
        (["evaluate", "missing.keras"], "no such model file or run directory"),
        (["plot-history", "--runs-dir", "nothing-here"], "no runs with a history.json"),
    ],
)
def test_user_errors_are_one_line_with_status_2(tmp_path, args, fragment):
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert fragment in result.stderr and "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("Error:")] == [
        next(line for line in result.stderr.splitlines() if fragment in line)
    ]


def test_debug_shows_the_traceback(tmp_path):
    result = run_cli("--debug", "train", "--config", "missing.yaml", cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" in result.stderr and "ConfigError" in result.stderr


def test_gpu_request_without_gpu_says_what_tensorflow_sees(tmp_path, small_mnist_dir):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        skip_for("gpu-hidden", "MNIST_ZOO_TEST_GPU=1 left the GPU visible")
    result = run_cli("train", "--model", "linear", "--device", "gpu", "--data-dir", small_mnist_dir, cwd=tmp_path)
    assert result.returncode == 2
    assert "sees no GPU" in result.stderr and "CPU" in result.stderr


@pytest.mark.slow  # a real process
def test_offline_without_data_is_a_clear_error(tmp_path):
    result = run_cli(
        "train", "--model", "linear", "--epochs", "1", cwd=tmp_path,
        env={"MNIST_ZOO_CACHE_DIR": str(tmp_path / "cache"), "MNIST_ZOO_MIRRORS": "http://127.0.0.1:9/"},
    )
    assert result.returncode == 2 and "--data-dir" in result.stderr and "Traceback" not in result.stderr


# ----------------------------------------------------------------------------- train, evaluate, plot


QUICK = ["--epochs", "1", "--set", "data.validation_size=200", "--set", "train.verbose=2"]


@pytest.mark.parametrize("model", list(MODELS))
def test_train_each_model_in_process(tmp_path, small_mnist_dir, model):
    result = invoke("train", "--model", model, "--data-dir", small_mnist_dir, "--output-dir", tmp_path / "runs", *QUICK)
    assert result.exit_code == 0, result.output
    run_dir = Path(result.output.strip().splitlines()[-1])
    assert run_dir.parent == tmp_path / "runs" and run_dir.name.endswith(f"-{model}")
    assert RUN_FILES <= {path.name for path in run_dir.iterdir()}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test_examples"] == 500 and metrics["model"] == model
    assert (metrics["train_examples"], metrics["validation_examples"]) == (1800, 200)
    assert metrics["test_accuracy"] > 0.5  # one epoch on 1,800 real images already learns


def test_train_evaluate_plot_as_subprocesses(tmp_path, small_mnist_dir):
    train = run_cli("train", "--model", "cnn", "--data-dir", small_mnist_dir, "--seed", "7", *QUICK, cwd=tmp_path)
    assert train.returncode == 0, train.stderr
    printed = train.stdout.strip().splitlines()[-1]
    assert printed.startswith("runs/")  # as --output-dir named it, relative to where the user is
    run_dir = tmp_path / printed
    assert run_dir.parent == tmp_path / "runs"

    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["train"]["epochs"] == 1 and config["train"]["seed"] == 7
    assert config["data"]["data_dir"] == str(Path(small_mnist_dir).resolve())
    history = json.loads((run_dir / "history.json").read_text())["epochs"]
    assert set(history[0]) >= {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "epoch_seconds"}
    assert (run_dir / "history.csv").read_text().splitlines()[0].startswith("epoch,")
    environment = json.loads((run_dir / "environment.json").read_text())
    assert environment["seed"] == 7 and environment["device"].startswith(("CPU", "GPU"))
    assert isinstance(environment["onednn"], bool)  # which TensorFlow CPU kernels the run used
    assert len(environment["dataset_sha256"]) == 64 and environment["keras"].startswith("3.")

    # One process for both: the text tables are checked in-process (tests/test_evaluation.py).
    evaluation = run_cli("evaluate", run_dir / "best.keras", "--json", "--plots", cwd=tmp_path)
    assert evaluation.returncode == 0, evaluation.stderr
    report = json.loads(evaluation.stdout)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert report["accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert len(report["confusion_matrix"]) == 10 and report["num_examples"] == 500
    assert (run_dir / "confusion_matrix.png").is_file() and (run_dir / "misclassified.png").is_file()

    plot = run_cli("plot-history", cwd=tmp_path)  # no argument: the most recent run
    assert plot.returncode == 0, plot.stderr
    assert (run_dir / "history.png").stat().st_size > 10_000


def test_plot_history_overlays_several_runs(tmp_path):
    for name, accuracy in [("a", 0.9), ("b", 0.95)]:
        folder = tmp_path / name
        folder.mkdir()
        epochs = [{"epoch": e, "loss": 1 / e, "accuracy": accuracy, "val_loss": 1.1 / e, "val_accuracy": accuracy}
                  for e in (1, 2, 3)]
        (folder / "history.json").write_text(json.dumps({"epochs": epochs}))
    output = tmp_path / "both.png"
    result = invoke("plot-history", tmp_path / "a", tmp_path / "b", "-o", output)
    assert result.exit_code == 0 and output.stat().st_size > 10_000


def test_installed_console_script(tmp_path):
    script = shutil.which("mnist-zoo")
    if script is None:
        skip_for("console-script", "no mnist-zoo on PATH")
    result = subprocess.run([script, "config", "show", "--model", "linear"], capture_output=True, text=True,
                            cwd=tmp_path, timeout=60)
    assert result.returncode == 0 and "type: linear" in result.stdout


def test_docs_config_reference_is_current():
    """docs/config-reference.md is the generated reference (regenerate: python scripts/update_config_reference.py)."""
    from mnist_zoo.config.reference import render_reference

    page = (Path(__file__).resolve().parent.parent / "docs" / "config-reference.md").read_text()
    start, end = "<!-- config-reference:start -->\n", "<!-- config-reference:end -->"
    assert start in page and end in page
    assert page.split(start)[1].split(end)[0].strip() == render_reference().strip()


def test_unusable_output_dir_is_a_one_line_error(tmp_path, small_mnist_dir):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the runs folder should go")
    # click's own check catches a file given as the folder; ours catches a path through a file.
    for output_dir, message in ((blocker, "is a file"), (blocker / "runs", "choose another --output-dir")):
        result = run_cli("train", "--model", "linear", "--epochs", "1", "--data-dir", small_mnist_dir,
                         "--output-dir", output_dir, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr and "Traceback" not in result.stderr


def test_file_system_errors_naming_a_file_are_one_line(tmp_path):
    folder = tmp_path / "runs"
    folder.mkdir()
    (folder / "history.png").mkdir()  # the PNG's final name is taken by a folder: rename fails
    (folder / "history.json").write_text('{"epochs": [{"epoch": 1, "loss": 1.0, "accuracy": 0.5}]}')
    result = run_cli("plot-history", folder, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{folder / 'history.png'}: Is a directory" in result.stderr
    assert not [path for path in folder.iterdir() if path.name.startswith(".history")]  # temp file removed


# ----------------------------------------------------------------------------- run directories


def test_named_run_dir_is_never_overwritten_without_force(tmp_path, small_mnist_dir):
    run_dir = tmp_path / "my-run"
    args = ["train", "--model", "linear", "--data-dir", small_mnist_dir, "--run-dir", run_dir, *QUICK]
    assert invoke(*args).exit_code == 0
    first_history = (run_dir / "history.json").read_bytes()

    refused = invoke(*args)
    assert refused.exit_code == 2
    assert f"--resume {run_dir}" in refused.output and "--force" in refused.output
    assert (run_dir / "history.json").read_bytes() == first_history

    replaced = invoke(*args, "--force", "--seed", "3")
    assert replaced.exit_code == 0, replaced.output
    assert json.loads((run_dir / "environment.json").read_text())["seed"] == 3


def test_force_never_deletes_a_folder_that_is_not_a_run(tmp_path, small_mnist_dir):
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious")
    result = invoke("train", "--model", "linear", "--data-dir", small_mnist_dir, "--run-dir", folder, "--force")
    assert result.exit_code == 2 and "not a run directory" in result.output
    assert (folder / "thesis.tex").read_text() == "precious"


@pytest.mark.parametrize("extra, message", [
    (["--model", "cnn"], "drop --model"),
    (["--epochs", "5"], "drop --epochs"),
    (["--set", "train.seed=1"], "drop --set"),
])
def test_resume_refuses_config_changes(tmp_path, extra, message):
    result = CliRunner().invoke(cli, ["train", "--resume", str(tmp_path), *extra])
    assert result.exit_code == 2 and message in result.output


def test_resume_needs_a_run_directory(tmp_path):
    result = invoke("train", "--resume", tmp_path)
    assert result.exit_code == 2 and "no config.yaml" in result.output


def test_failed_new_run_leaves_no_run_directory(tmp_path, small_mnist_dir):
    # A data error comes after the run directory is made: nothing may be left behind.
    result = invoke("train", "--model", "linear", "--data-dir", small_mnist_dir, "--output-dir", tmp_path / "runs",
                    "--set", "data.validation_size=5000")
    assert result.exit_code == 2 and "leaves no training images" in result.output
    assert list((tmp_path / "runs").iterdir()) == []


def test_disk_full_is_a_one_line_error_and_leaves_no_partial_file(tmp_path, small_mnist_dir, monkeypatch):
    import errno

    import keras

    def disk_full(self, filepath, *args, **kwargs):
        with open(filepath, "wb") as handle:
            handle.write(b"PK\x03\x04 the first bytes of a zip")  # a partial write, then ENOSPC
        raise OSError(errno.ENOSPC, "No space left on device", str(filepath))

    monkeypatch.setattr(keras.Model, "save", disk_full)
    run_dir = tmp_path / "run"
    result = invoke("train", "--model", "linear", "--data-dir", small_mnist_dir, "--run-dir", run_dir, *QUICK)
    assert result.exit_code == 2
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1 and "No space left on device" in error_lines[0]
    assert "epoch-0001.keras: No space" in error_lines[0]  # the final name, not the temporary
    assert not run_dir.exists()  # nothing committed: the new run directory is removed


def test_choices_come_from_the_one_table_that_owns_them():
    import typing

    from mnist_zoo.config.run import DataConfig, TrainConfig
    from mnist_zoo.data.catalog import CLASS_NAMES
    from mnist_zoo.report.compare import SORT_KEYS, RunRow

    options = {param.name: param for param in cli.commands["train"].params}
    assert tuple(options["dataset"].type.choices) == tuple(CLASS_NAMES) == typing.get_args(
        DataConfig.model_fields["dataset"].annotation)
    assert tuple(options["device"].type.choices) == typing.get_args(TrainConfig.model_fields["device"].annotation)
    for command in ("evaluate", "predict", "summary"):
        device = next(param for param in cli.commands[command].params if param.name == "device")
        assert tuple(device.type.choices) == tuple(options["device"].type.choices)
    sort = next(param for param in cli.commands["compare"].params if param.name == "sort_key")
    assert tuple(sort.type.choices) == SORT_KEYS and set(SORT_KEYS) <= set(RunRow.__dataclass_fields__) | {"epochs"}
