"""The `mnist-zoo` command line: train, evaluate, plot-history, models, config."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from mnist_zoo import __version__
from mnist_zoo.errors import MnistZooError

USER_ERROR_EXIT_CODE = 2


class UserError(click.ClickException):
    """A problem the user can fix: printed as `Error: ...`, exit status 2."""

    exit_code = USER_ERROR_EXIT_CODE


class ZooGroup(click.Group):
    """Maps library errors to one-line click errors (with a traceback under --debug)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MnistZooError as error:
            if ctx.meta.get("mnist_zoo.debug"):
                raise
            raise UserError(str(error)) from None
        except OSError as error:
            # A file-system error naming a file (permission denied, disk full, ...) is the
            # user's to fix; any other OSError is a bug and keeps its traceback.
            if ctx.meta.get("mnist_zoo.debug") or not error.filename:
                raise
            # For a failed rename (our atomic writes) the destination is the file the user knows.
            raise UserError(f"{error.filename2 or error.filename}: {error.strerror or error}") from None


def _quiet_tensorflow() -> None:
    # TensorFlow's C++ start-up notices drown the output; --debug keeps them.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@click.group(cls=ZooGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mnist-zoo")
@click.option("--debug", is_flag=True, help="Show tracebacks and TensorFlow's own log messages.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Train, evaluate, compare and explain the classic MNIST models."""
    ctx.meta["mnist_zoo.debug"] = debug
    if not debug:
        _quiet_tensorflow()


def _echo_err(message: str) -> None:
    click.echo(message, err=True)


# ----------------------------------------------------------------------------- config selection


def _config_options(function):
    """--model / --config / --set, shared by `train` and `config show`."""
    function = click.option(
        "--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
        help="Override one config key (repeatable), e.g. --set train.epochs=3.",
    )(function)
    function = click.option(
        "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
        help="A YAML config file (instead of --model).",
    )(function)
    function = click.option(
        "--model", "model_name", metavar="NAME",
        help="A bundled config: linear, mlp, cnn, or seeds/<name> (see `mnist-zoo config list`).",
    )(function)
    return function


def _load_selected_config(model_name: str | None, config_path: Path | None, overrides: list[str], values=None):
    """The config from --model/--config, with --set strings, then typed flag values, applied."""
    from mnist_zoo.config import bundled_config_path, load_config, parse_overrides

    if model_name and config_path:
        raise click.UsageError("give either --model or --config, not both")
    path = config_path or bundled_config_path(model_name or "cnn")
    return load_config(path, {**parse_overrides(list(overrides)), **(values or {})})


# ----------------------------------------------------------------------------- train


@cli.command()
@_config_options
@click.option("--epochs", type=click.IntRange(min=1), help="Shortcut for --set train.epochs=N.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Shortcut for --set train.batch_size=N.")
@click.option("--seed", type=click.IntRange(min=0), help="Shortcut for --set train.seed=N.")
@click.option("--dataset", type=click.Choice(["mnist", "fashion_mnist"]), help="Shortcut for --set data.dataset=X.")
@click.option("--data-dir", type=click.Path(path_type=Path),
              help="Folder with the IDX files or mnist.npz (default: $MNIST_ZOO_DATA_DIR, else download).")
@click.option("--device", type=click.Choice(["auto", "cpu", "gpu"]), help="Shortcut for --set train.device=X.")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"),
              show_default=True, help="Where the run directory is created.")
def train(model_name, config_path, overrides, epochs, batch_size, seed, dataset, data_dir, device, output_dir):
    """Train a model from a config and write a run directory.

    \b
    Examples:
      mnist-zoo train --model cnn
      mnist-zoo train --model mlp --epochs 3 --set model.dropout_rate=0.2
      mnist-zoo train --config my.yaml --data-dir ~/data/mnist
    """
    shortcuts = {
        "train.epochs": epochs, "train.batch_size": batch_size, "train.seed": seed,
        "data.dataset": dataset, "data.data_dir": data_dir and str(data_dir.resolve()), "train.device": device,
    }
    values = {key: value for key, value in shortcuts.items() if value is not None}
    config = _load_selected_config(model_name, config_path, overrides, values)
    from mnist_zoo.rundir import create_run_dir
    from mnist_zoo.training import train_run

    run_dir = create_run_dir(output_dir, config.name)
    _echo_err(f"run directory: {run_dir}")
    result = train_run(config, run_dir, report=_echo_err)
    metrics = result.metrics
    click.echo(
        f"test accuracy {metrics['test_accuracy']:.2%} (loss {metrics['test_loss']:.4f}) "
        f"with the best epoch ({metrics['best_epoch']}) of {metrics['epochs_completed']}; "
        f"{metrics['parameters']:,} parameters; {metrics['train_seconds']:.1f} s training"
    )
    click.echo(str(run_dir))


# ----------------------------------------------------------------------------- evaluate


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--dataset", type=click.Choice(["mnist", "fashion_mnist"]),
              help="Test set to use (default: the run's, else mnist).")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Folder with the IDX files or mnist.npz.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of tables.")
@click.option("--plots", is_flag=True, help="Also write confusion_matrix.png and misclassified.png.")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where evaluation.json and plots go (default: the run directory, or beside the model).")
@click.option("--device", type=click.Choice(["auto", "cpu", "gpu"]), default="auto", show_default=True)
@click.option("--unsafe", is_flag=True, help="Allow models with Lambda layers (runs their code; trusted files only).")
def evaluate(path, dataset, data_dir, as_json, plots, output_dir, device, unsafe):
    """Evaluate a .keras model or a run directory on the test set.

    \b
    Examples:
      mnist-zoo evaluate runs/20261122-120000-cnn
      mnist-zoo evaluate my_model.keras --json
      mnist-zoo evaluate runs/20261122-120000-cnn --plots
    """
    from mnist_zoo.evaluation import run_evaluation

    result = run_evaluation(path, dataset, data_dir and str(data_dir), output_dir, device, unsafe, plots)
    if as_json:
        click.echo(json.dumps(result.report, indent=2))
        return
    from mnist_zoo.reporting import format_evaluation

    click.echo(f"model: {result.model_path}\ndata: {result.dataset_source}\n")
    click.echo(format_evaluation(result.report, result.class_names))
    for written in result.written:
        click.echo(f"wrote {written}")


# ----------------------------------------------------------------------------- plot-history


@cli.command("plot-history")
@click.argument("run_dirs", nargs=-1, type=click.Path(file_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="PNG to write (default: <run>/history.png, or history.png here for several runs).")
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"),
              show_default=True, help="Where to look for the most recent run when no RUN_DIR is given.")
def plot_history(run_dirs, output, runs_dir):
    """Plot loss and accuracy curves of one or more runs (default: the most recent run).

    \b
    Examples:
      mnist-zoo plot-history
      mnist-zoo plot-history runs/A runs/B -o compare.png
    """
    from mnist_zoo import rundir
    from mnist_zoo.plots import plot_history as draw

    run_dirs = list(run_dirs) or [rundir.latest_run(runs_dir)]
    runs = [(path.resolve().name, rundir.read_history(path)) for path in run_dirs]
    output = output or (run_dirs[0] / "history.png" if len(run_dirs) == 1 else Path("history.png"))
    draw(runs, output)
    click.echo(str(output))


# ----------------------------------------------------------------------------- models and config


@cli.command()
def models():
    """List the registered models with their parameter counts."""
    from mnist_zoo.registry import MODELS, build_model
    from mnist_zoo.reporting import table

    rows = []
    for name, entry in MODELS.items():
        parameters = build_model(entry.config_class()).count_params()
        rows.append([name, f"{parameters:,}", entry.description])
    click.echo(table(["model", "parameters", "description"], rows, align="lrl"))


@cli.group("config")
def config_group():
    """Show, list and check configs."""


@config_group.command("show")
@_config_options
def config_show(model_name, config_path, overrides):
    """Print the fully resolved config (defaults filled in, overrides applied)."""
    from mnist_zoo.config import config_to_yaml

    click.echo(config_to_yaml(_load_selected_config(model_name, config_path, overrides)), nl=False)


@config_group.command("list")
def config_list():
    """List the bundled configs usable with --model."""
    from mnist_zoo.config import bundled_config_names, bundled_config_path, load_config
    from mnist_zoo.reporting import table

    rows = [[name, load_config(bundled_config_path(name)).description] for name in bundled_config_names()]
    click.echo(table(["name", "description"], rows, align="ll"))


@config_group.command("reference")
def config_reference():
    """Print the config reference (every key, type, default) as Markdown."""
    from mnist_zoo.config_reference import render_reference

    click.echo(render_reference(), nl=False)


@config_group.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def config_check(files):
    """Validate config files; exit status 2 if any is invalid."""
    from mnist_zoo.config import load_config

    failed = 0
    for path in files:
        try:
            load_config(path)
            click.echo(f"ok      {path}")
        except MnistZooError as error:
            failed += 1
            click.echo(f"invalid {error}")
    if failed:
        raise UserError(f"{failed} of {len(files)} config files are invalid")


def main() -> None:
    cli(prog_name="mnist-zoo")
