"""The `mnist-zoo` command line: train, evaluate, predict, explain, export, serve, sweep, plot-history, compare, doctor, models, summary, config."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from mnist_zoo import __version__
from mnist_zoo.data.catalog import DATASETS, EVALUATION_SPLITS
from mnist_zoo.errors import MnistZooError, TrainingInterrupted
from mnist_zoo.explanations import PARTS as EXPLAIN_PARTS
from mnist_zoo.exports.formats import EXPORT_FORMATS, QUANTIZATIONS
from mnist_zoo.report.compare import SORT_KEYS
from mnist_zoo.runtime.device import DEVICES
from mnist_zoo.rundir import DEFAULT_RUNS_ROOT

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
        except TrainingInterrupted as error:
            if sys.stdout.isatty():
                click.echo()  # end Keras's progress bar line
            _echo_err(_interrupted_message(error))
            ctx.exit(128 + error.signal_number)  # the shell's convention: 130 for SIGINT, 143 for SIGTERM
        except KeyboardInterrupt:
            _echo_err("Interrupted.")
            ctx.exit(130)


def _interrupted_message(error: TrainingInterrupted) -> str:
    if error.run_dir is None:
        return f"Interrupted by {error.signal_name}."
    kept = f"{error.epochs_completed} complete epoch{'s' if error.epochs_completed != 1 else ''} saved"
    return f"Interrupted by {error.signal_name}: {kept} in {error.run_dir}; continue with: mnist-zoo train --resume {error.run_dir}"


@click.group(cls=ZooGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mnist-zoo")
@click.option("--debug", is_flag=True, help="Show tracebacks and TensorFlow's own log messages.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Train, evaluate, compare and explain the classic MNIST models."""
    ctx.meta["mnist_zoo.debug"] = debug
    if not debug:
        # TensorFlow's C++ log lines drown the output; --debug keeps them. (TensorFlow 2.21 prints
        # its first start-up lines whatever this says.)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _echo_err(message: str) -> None:
    click.echo(message, err=True)


def _progressbar() -> bool:
    """Progress bars for long steps only where a person watches: stderr is a terminal."""
    return sys.stderr.isatty()


def _device_option(function):
    return click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
                        help="auto: a GPU if TensorFlow sees one, else the CPU.")(function)


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
        help="A bundled config by name, e.g. cnn or seeds/lab_cnn (`mnist-zoo config list` shows them all).",
    )(function)
    return function


def _load_selected_config(model_name: str | None, config_path: Path | None, overrides: list[str], values=None):
    """The config from --model/--config, with --set strings, then typed flag values, applied."""
    from mnist_zoo.config.loading import bundled_config_path, load_config, parse_overrides

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
@click.option("--dataset", type=click.Choice(DATASETS), help="Shortcut for --set data.dataset=X.")
@click.option("--data-dir", type=click.Path(path_type=Path),
              help="Folder with the IDX files or mnist.npz (default: $MNIST_ZOO_DATA_DIR, else download).")
@click.option("--device", type=click.Choice(DEVICES), help="Shortcut for --set train.device=X.")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_RUNS_ROOT,
              show_default=True, help="Where the run directory is created.")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Use exactly this run directory instead of a new one under --output-dir.")
@click.option("--force", is_flag=True, help="With --run-dir: replace an existing run directory.")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False, path_type=Path), metavar="RUN_DIR",
              help="Continue an interrupted run from its last complete epoch (its own config.yaml).")
def train(model_name, config_path, overrides, epochs, batch_size, seed, dataset, data_dir, device, output_dir,
          run_dir, force, resume_dir):
    """Train a model from a config and write a run directory.

    Ctrl-C (or SIGTERM) stops after the current step and keeps the last complete epoch;
    `--resume RUN_DIR` continues it exactly as if it had never stopped.

    \b
    Examples:
      mnist-zoo train --model cnn
      mnist-zoo train --model mlp --epochs 3 --set model.dropout_rate=0.2
      mnist-zoo train --config my.yaml --data-dir ~/data/mnist
      mnist-zoo train --resume runs/20261122-101500-cnn
    """
    from mnist_zoo.api.train import train as train_model
    from mnist_zoo.errors import RunStoppedError

    if resume_dir:
        changed = [name for name, value in [
            ("--model", model_name), ("--config", config_path), ("--set", overrides), ("--epochs", epochs),
            ("--batch-size", batch_size), ("--seed", seed), ("--dataset", dataset), ("--run-dir", run_dir),
            ("--force", force)] if value]
        if changed:
            raise click.UsageError(f"--resume continues the run's own config; drop {', '.join(changed)} "
                                   "(only --data-dir and --device may change)")
        options = {"resume": resume_dir}
    else:
        if model_name and config_path:
            raise click.UsageError("give either --model or --config, not both")
        if force and run_dir is None:
            raise click.UsageError("--force only applies to --run-dir (new run directories never overwrite)")
        options = {"model": config_path or model_name or "cnn", "set": list(overrides), "epochs": epochs,
                   "batch_size": batch_size, "seed": seed, "dataset": dataset, "output_dir": output_dir,
                   "run_dir": run_dir, "force": force}
    try:
        run = train_model(**options, data_dir=data_dir, device=device, report=_echo_err)
    except RunStoppedError as error:
        raise UserError(f"{error.filename}: {error.reason}; the run's last complete epoch is kept: fix that, then "
                        f"continue with: mnist-zoo train --resume {error.run_dir}") from None
    metrics = run.metrics
    click.echo(
        f"test accuracy {metrics['test_accuracy']:.2%} (loss {metrics['test_loss']:.4f}) "
        f"with the best epoch ({metrics['best_epoch']}) of {metrics['epochs_completed']}; "
        f"{metrics['parameters']:,} parameters; {metrics['train_seconds']:.1f} s training"
    )
    click.echo(str(run.given_path))


# ----------------------------------------------------------------------------- evaluate


@cli.command()
@click.argument("paths", metavar="PATH...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--ensemble", is_flag=True, help="Average the class probabilities of all PATHs: one model, one report.")
@click.option("--dataset", type=click.Choice(DATASETS), help="Test set to use (default: the run's, else mnist).")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Folder with the IDX files or mnist.npz.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of tables.")
@click.option("--plots", is_flag=True, help="Also write confusion_matrix.png and misclassified.png.")
@click.option("--tta", type=click.IntRange(1, 32), default=1, show_default=True,
              help="Test-time augmentation: average over N views of each test image (the image and N-1 changed "
                   "copies); reported in tta-evaluation.json, apart from the plain figure.")
@click.option("--split", type=click.Choice(EVALUATION_SPLITS), default="test", show_default=True,
              help="validation: score on the images the run held out (for --ensemble, every member's run must "
                   "have held out the same: data.validation_seed); reported in validation-evaluation.json.")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where evaluation.json (and plots) go (default: the run directory, or beside the model; "
                   "with --ensemble: the current folder).")
@_device_option
@click.option("--unsafe", is_flag=True, help="Allow models with Lambda layers (runs their code; trusted files only).")
def evaluate(paths, ensemble, dataset, data_dir, as_json, plots, tta, split, output_dir, device, unsafe):
    """Evaluate a model on the test set (or its run's validation images): a run, a .keras file, or an export.

    PATH is a run directory (its best.keras), a .keras file, or an export (.tflite, .onnx, a
    SavedModel folder), which runs in its own runtime (LiteRT, onnxruntime, TensorFlow). With
    --ensemble, several PATHs of one data set answer as one model (their probabilities averaged);
    each member's own accuracy is listed too, and --output-dir (default: the current folder) gets
    an ensemble.json naming the members: that folder is then one model for predict, serve,
    compare and evaluate.

    \b
    Examples:
      mnist-zoo evaluate runs/20261122-120000-cnn
      mnist-zoo evaluate my_model.keras --json
      mnist-zoo evaluate runs/20261122-120000-cnn --plots
      mnist-zoo evaluate runs/20261122-120000-cnn/export/model-int8.tflite
      mnist-zoo evaluate runs/record-seed* --ensemble --output-dir runs/record-ensemble
      mnist-zoo evaluate runs/record-ensemble
      mnist-zoo evaluate runs/committee-seed* --ensemble --split validation
    """
    from mnist_zoo.inference.evaluation import run_ensemble_evaluation, run_evaluation

    if len(paths) > 1 and not ensemble:
        raise click.UsageError(f"{len(paths)} models given; evaluate them one at a time, or add --ensemble to "
                               "average them into one")
    settings = dict(dataset=dataset, data_dir=data_dir and str(data_dir), output_dir=output_dir, device=device,
                    unsafe=unsafe, plots=plots, progressbar=_progressbar(), tta=tta, split=split)
    result = run_ensemble_evaluation(list(paths), **settings) if ensemble else run_evaluation(paths[0], **settings)
    if as_json:
        click.echo(json.dumps(result.report, indent=2))
        return
    from mnist_zoo.report.tables import format_evaluation, format_members

    is_ensemble = result.report["runtime"] == "ensemble"  # also a single PATH that is an ensemble's folder
    click.echo(f"model: {result.model_path} ({result.report['runtime']})\ndata: {result.dataset_source}")
    if split == "validation":
        click.echo(f"split: the {len(result.labels):,} validation images the run{'s' if is_ensemble else ''} held out "
                   "of the training set, not the test set")
    if "tta" in result.report:
        click.echo(f"test-time augmentation: {result.report['tta']['views']} views of each image (the image, and "
                   f"copies with {result.report['tta']['augmentation']}); not the single-view figure")
    click.echo()
    if is_ensemble:
        click.echo(format_members(result.members) + "\n")
    click.echo(format_evaluation(result.report, result.class_names))
    for written in result.written:
        click.echo(f"wrote {written}")
    if is_ensemble:
        folder = result.model_path.parent
        click.echo(f"the folder {folder} now stands for the ensemble: mnist-zoo predict {folder} IMAGE, "
                   f"mnist-zoo serve {folder}, mnist-zoo compare {folder} RUN...")


# ----------------------------------------------------------------------------- predict


@cli.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@click.argument("inputs", metavar="IMAGE_OR_DIR...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--top-k", type=click.IntRange(1, 10), default=3, show_default=True, help="Classes listed per image.")
@click.option("--json", "as_json", is_flag=True, help="Print the predictions as JSON.")
@click.option("--save-preprocessed", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Write the 28x28 images the model saw, as PNG files.")
@_device_option
@click.option("--unsafe", is_flag=True, help="Allow models with Lambda layers (runs their code; trusted files only).")
def predict(model_path, inputs, top_k, as_json, save_preprocessed, device, unsafe):
    """Predict the digit in your own images (PNG, JPEG, BMP, GIF, ...) or .npy arrays.

    MODEL is a run directory, a .keras file, an export (.tflite, .onnx, a SavedModel folder,
    run in its own runtime), or an ensemble's folder (see evaluate --ensemble), which answers
    with its members' averaged probabilities. Pictures are prepared the way MNIST was made:
    grayscale, inverted if dark-on-light, cropped to the digit, scaled to fit 20x20, centred
    by centre of mass in 28x28. .npy arrays are taken as 28x28 MNIST-format images as they are.
    Exit status 2 if any input could not be read (the others are still predicted).

    \b
    Examples:
      mnist-zoo predict runs/20261122-120000-cnn my_digit.jpg
      mnist-zoo predict best.keras photos/ --top-k 1 --json
      mnist-zoo predict runs/record-ensemble my_digit.jpg
    """
    from mnist_zoo.inference.prediction import run_prediction

    result = run_prediction(model_path, list(inputs), top_k, device, unsafe, save_preprocessed)
    if as_json:
        click.echo(json.dumps(result.records, indent=2))
    else:
        from mnist_zoo.report.tables import format_predictions

        if any(item.top_k for item in result.inputs):
            click.echo(format_predictions(result.records))
        for path in result.written:
            _echo_err(f"wrote {path}")
    for error in result.errors:
        _echo_err(f"Error: {error}")
    if result.errors:
        raise click.exceptions.Exit(USER_ERROR_EXIT_CODE)


# ----------------------------------------------------------------------------- explain


@cli.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@click.argument("inputs", metavar="[IMAGE_OR_DIR]...", nargs=-1, type=click.Path(path_type=Path))
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the PNG files go (default: explain/ beside the model).")
@click.option("--only", "parts", multiple=True, type=click.Choice(EXPLAIN_PARTS),
              help="Picture only this part (repeatable); default every part the model has.")
@click.option("--mistakes", type=click.IntRange(0, 64), default=16, show_default=True,
              help="How many of the most confidently wrong test digits to picture.")
@click.option("--dataset", type=click.Choice(DATASETS), help="Test set for the mistakes (default: the run's).")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Folder with the IDX files or mnist.npz.")
@click.option("--json", "as_json", is_flag=True, help="Print the files written and the figures as JSON.")
@_device_option
@click.option("--unsafe", is_flag=True, help="Allow models with Lambda layers (runs their code; trusted files only).")
def explain(model_path, inputs, output_dir, parts, mistakes, dataset, data_dir, as_json, device, unsafe):
    """Picture what a model learned and why it answered: weights, feature maps, attributions, mistakes.

    MODEL is a run directory, a .keras file (any Keras model), an export or an ensemble's
    folder; exports and ensembles run outside Keras's gradients and get the inputs and
    mistakes pictures only. IMAGE_OR_DIR are pictures or .npy files, prepared as predict
    prepares them (none: the first test digit of each class). Written as PNG files:

    \b
      weights-LAYER.png      class templates (linear), strongest units (MLP), kernels (CNN)
      feature-maps-NN-*.png  every convolution's and pooling's maps of each input
      attributions-NN-*.png  gradient, SmoothGrad, integrated gradients (black baseline) and
                             Grad-CAM of the answer and the runner-up
      mistakes.png           the test digits it is most sure about and wrong
      inputs.png             the inputs as the model saw them, with its answers

    \b
    Examples:
      mnist-zoo explain runs/20261122-120000-cnn my_digit.png
      mnist-zoo explain runs/20261122-120000-linear --only weights
      mnist-zoo explain best.keras digits/ --output-dir why --json
    """
    from mnist_zoo.explanations.stage import run_explain

    result = run_explain(model_path, list(inputs), output_dir, dataset, data_dir and str(data_dir), device, unsafe,
                         mistakes, list(parts) or None, progressbar=_progressbar())
    if as_json:
        click.echo(json.dumps(result.record(), indent=2))
        return
    for record in result.images:
        click.echo(f"{record['input']}: {record['prediction']} ({record['probability']:.1%}), "
                   f"runner-up {record['runner_up']} ({record['runner_up_probability']:.1%})")
    for note in result.notes:
        click.echo(f"note: {note}")
    for path in result.written:
        click.echo(f"wrote {path}")


# ----------------------------------------------------------------------------- export


@cli.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@click.option("--format", "formats", multiple=True, required=True, type=click.Choice(EXPORT_FORMATS),
              help="savedmodel (TensorFlow Serving), tflite (LiteRT, phones), onnx (onnxruntime, browsers, C++/C#); repeatable.")
@click.option("--quantize", type=click.Choice(QUANTIZATIONS), default="none", show_default=True,
              help="LiteRT only: float16 weights, or int8 throughout (calibrated on training images).")
@click.option("-o", "--output", "output_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the files (default: <run>/export/, or beside the .keras file).")
@click.option("--force", is_flag=True, help="Replace existing exports of the same name.")
@click.option("--dataset", type=click.Choice(DATASETS), help="Test set to verify on (default: the run's, else mnist).")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Folder with the IDX files or mnist.npz.")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@_device_option
def export(model_path, formats, quantize, output_dir, force, dataset, data_dir, as_json, device):
    """Export a run's best model (or a .keras file) and verify each file in its own runtime.

    Every file takes (batch, 28, 28) uint8 images (0-255, light digit on black, as MNIST and
    `predict` prepare them) and outputs (batch, 10) float32 class probabilities, with any batch
    size. Before a file gets its name it runs on the whole test set in its runtime (TensorFlow,
    LiteRT, onnxruntime) and must predict the Keras model's class on every image, probabilities
    within 1e-4 (quantized: test accuracy within 0.3 points). Needs: pip install 'mnist-zoo[export]'.

    \b
    Examples:
      mnist-zoo export runs/20261122-120000-cnn --format tflite --format onnx
      mnist-zoo export runs/20261122-120000-cnn --format tflite --quantize int8
      mnist-zoo export my_model.keras --format savedmodel -o serving/
    """
    from mnist_zoo.exports.stage import run_export

    result = run_export(model_path, list(formats), output_dir, quantize, force, dataset,
                        data_dir and str(data_dir), device, report=_echo_err, progressbar=_progressbar())
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    from mnist_zoo.report.tables import format_exports

    click.echo(f"model: {result.model_path}\ndata: {result.dataset_source}\n")
    click.echo(format_exports(result.checks, result.test_images))


# ----------------------------------------------------------------------------- plot-history


@cli.command("plot-history")
@click.argument("run_dirs", nargs=-1, type=click.Path(file_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="PNG to write (default: <run>/history.png, or history.png here for several runs).")
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_RUNS_ROOT,
              show_default=True, help="Where to look for the most recent run when no RUN_DIR is given.")
def plot_history(run_dirs, output, runs_dir):
    """Plot loss and accuracy curves of one or more runs (default: the most recent run).

    \b
    Examples:
      mnist-zoo plot-history
      mnist-zoo plot-history runs/A runs/B -o compare.png
    """
    from mnist_zoo.api.reports import plot_history as draw
    from mnist_zoo.rundir import latest_run

    run_dirs = list(run_dirs) or [latest_run(runs_dir)]
    output = output or (run_dirs[0] / "history.png" if len(run_dirs) == 1 else Path("history.png"))
    draw(run_dirs, path=output)
    click.echo(str(output))


# ----------------------------------------------------------------------------- doctor


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@click.option("--smoke", is_flag=True, help="Also train one batch of each model and time a step.")
@click.option("--dataset", type=click.Choice(DATASETS), default="mnist", show_default=True)
@click.option("--data-dir", type=click.Path(path_type=Path), help="A data folder to check (default: $MNIST_ZOO_DATA_DIR, else the download cache).")
@click.option("--runs-dir", type=click.Path(path_type=Path), default=DEFAULT_RUNS_ROOT, show_default=True,
              help="The folder new runs go into.")
def doctor(as_json, smoke, dataset, data_dir, runs_dir):
    """Check this machine before training: versions, CPU and precision, GPU (and why none), data, runs folder.

    Exit status 0 when training can run, 1 (with the reasons) when it cannot.

    \b
    Examples:
      mnist-zoo doctor
      mnist-zoo doctor --smoke --json
    """
    from mnist_zoo.doctor import diagnose

    diagnosis = diagnose(dataset, data_dir and str(data_dir), runs_dir, smoke)
    if as_json:
        click.echo(json.dumps(diagnosis.as_dict(), indent=2))
    else:
        from mnist_zoo.report.tables import format_diagnosis

        click.echo(format_diagnosis(diagnosis))
    if not diagnosis.ready:
        raise click.exceptions.Exit(1)


# ----------------------------------------------------------------------------- sweep


@cli.command()
@click.argument("target", metavar="SWEEP_FILE_OR_DIR")
@click.option("--sweep-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the trials and results go (default: sweeps/<sweep file name>/).")
@click.option("--storage", metavar="URL", help="The study's database: sqlite:///PATH, postgresql://..., mysql://... "
              "(default: $MNIST_ZOO_STORAGE, which keeps a password out of `ps`, else study.db in the sweep directory).")
@click.option("--study", "study_name", metavar="NAME", help="The study's name (default: the sweep file's); "
              "workers started with the same storage and name share its trials.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes on this machine.")
@click.option("--report", "report_only", is_flag=True, help="Only report: the trials so far, best.yaml, the plots.")
@click.option("--no-report", is_flag=True, help="Only run trials (e.g. on extra machines that share a study).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder with the IDX files or mnist.npz, for every trial (default: the base config's, "
                   "else $MNIST_ZOO_DATA_DIR, else download).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def sweep(target, sweep_dir, storage, study_name, workers, report_only, no_report, data_dir, as_json):
    """Search hyperparameters with Optuna: each trial is an ordinary run directory.

    SWEEP_FILE_OR_DIR is a sweep file (YAML: base config, search space, objective, budget), the
    name of a bundled one (mlp_quick, cnn_quick, cnn_record_seeds), or a sweep directory to
    report on. The same command started on several machines with the same --storage and --study
    shares the study's trials; --workers runs several on this machine. A rerun continues the
    study up to its trial count.

    \b
    Examples:
      mnist-zoo sweep mlp_quick --workers 2
      mnist-zoo sweep my_sweep.yaml --storage postgresql://me@db.lan/sweeps --study lr
      mnist-zoo sweep sweeps/mlp_quick --report
    """
    from mnist_zoo.errors import SweepWorkerError
    from mnist_zoo.sweeps.stage import resolve_target, run_sweep, sweep_report

    if report_only and no_report:
        raise click.UsageError("give either --report or --no-report, not both")
    setup, report_only = resolve_target(target, sweep_dir, storage, study_name, report_only)
    if not report_only:
        try:
            run_sweep(setup, workers, _echo_err, data_dir and str(data_dir))
        except SweepWorkerError as error:
            raise click.exceptions.Exit(error.exit_status) from None  # the worker said why on stderr
    if no_report:
        return
    results = sweep_report(setup)
    _print_results(results, results.notes, as_json)


def _print_results(results, notes: list[str], as_json: bool) -> None:
    """A sweep's or lesson's results: as JSON, or as tables with their notes and written files on stderr."""
    if as_json:
        click.echo(json.dumps(results.as_dict(), indent=2))
        return
    click.echo(str(results))
    for note in notes:
        _echo_err(f"note: {note}")
    for path in results.written:
        _echo_err(f"wrote {path}")


# ----------------------------------------------------------------------------- lesson


@cli.command()
@click.argument("name", metavar="NAME|FILE|list")
@click.option("--quick", is_flag=True, help="A subset and few epochs: a few minutes on 2 cores, for a class demo.")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path),
              help="The lesson's folder (default: lessons/NAME/, or lessons/NAME-quick/ with --quick).")
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
              help="Override one config key for every variant (repeatable), e.g. --set data.train_limit=5000.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes on this machine.")
@click.option("--storage", metavar="URL", help="The study's database, as for `sweep` (default: "
              "$MNIST_ZOO_STORAGE, else study.db in the lesson's folder).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder with the IDX files or mnist.npz (default: $MNIST_ZOO_DATA_DIR, else download).")
@click.option("--report", "report_only", is_flag=True, help="Train nothing: report on what the folder holds.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def lesson(name, quick, output_dir, overrides, workers, storage, data_dir, report_only, as_json):
    """Run one of the course's comparisons and answer its question with a plot and a measured sentence.

    NAME is a bundled lesson (`mnist-zoo lesson list` shows them, with their times) or a lesson
    file. Each variant trains as a trial of a grid sweep in the lesson's folder: a rerun (after
    Ctrl-C, kill -9, or with more --workers) trains only what is missing. The folder gets the
    plots, results.md and lesson.json.

    \b
    Examples:
      mnist-zoo lesson list
      mnist-zoo lesson activations --quick
      mnist-zoo lesson optimizers --workers 2
    """
    from mnist_zoo.config.loading import parse_overrides
    from mnist_zoo.lessons.stage import run_lesson

    if name == "list":
        from mnist_zoo.lessons.listing import lesson_lines

        for line in lesson_lines():
            click.echo(line)
        return
    try:
        result = run_lesson(name, quick, output_dir, parse_overrides(list(overrides)), workers,
                            storage or os.environ.get("MNIST_ZOO_STORAGE") or None, data_dir and str(data_dir),
                            report_only, _echo_err)
    except TrainingInterrupted as error:
        _echo_err(f"Interrupted by {error.signal_name}: the finished variants are kept; run the same command "
                  "again to train the rest.")
        raise click.exceptions.Exit(128 + error.signal_number) from None
    _print_results(result, result.problems, as_json)


# ----------------------------------------------------------------------------- serve


@cli.command()
@click.argument("paths", metavar="[RUN_DIR_OR_MODEL]...", nargs=-1, type=click.Path(path_type=Path))
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_RUNS_ROOT, show_default=True,
              help="Also serve every finished run in this folder.")
@click.option("--no-runs", is_flag=True, help="Serve only the models named, not the runs in --runs-dir.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 makes the page reachable from the network.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port (0: a free one).")
@click.option("--access-log", is_flag=True, help="Print a line per request.")
@click.option("--unsafe", is_flag=True,
              help="Allow the models named (not those found in --runs-dir) to run code: Lambda layers, "
                   "SavedModel folders. Trusted files only.")
@_device_option
def serve(paths, runs_dir, no_runs, host, port, access_log, unsafe, device):
    """Serve a page to draw digits on, and a JSON API, running the zoo's models side by side.

    Serves every finished run in --runs-dir and any run directory or model file named (.keras,
    .tflite, .onnx, a SavedModel folder); an ensemble's folder (see evaluate --ensemble) is one
    model. Drawings and uploads are prepared as `predict`
    prepares pictures. Keras files are loaded in safe mode; SavedModel folders, which are
    programs, only with --unsafe. Stop it with Ctrl-C.

    \b
    Examples:
      mnist-zoo serve
      mnist-zoo serve runs/20261122-120000-cnn runs/20261122-120000-cnn/export/model.tflite --no-runs
    """
    from mnist_zoo.report.tables import format_served
    from mnist_zoo.web.launch import open_page_server

    server = open_page_server(list(paths), None if no_runs else runs_dir, host, port, unsafe, device)
    for reason in server.skipped:
        _echo_err(f"skipped {reason}")
    click.echo(format_served(server.described_models()))
    if server.exposed:
        _echo_err(f"Warning: listening on {host}: the page and the API are reachable from the network, "
                  "by anyone who can reach this machine. Use --host 127.0.0.1 to keep them on this machine.")
    count = f"{len(server.zoo.models)} model{'s' if len(server.zoo.models) != 1 else ''}"
    server.run(access_log=access_log, ready=lambda: click.echo(f"\nServing {count} at {server.url} (Ctrl-C to stop)"))
    _echo_err("Stopped.")


# ----------------------------------------------------------------------------- models and config


@cli.command()
def models():
    """List the registered models with their parameter counts."""
    from mnist_zoo.models.registry import describe_models
    from mnist_zoo.report.tables import format_models

    click.echo(format_models(describe_models()))


@cli.command()
@click.argument("target", metavar="MODEL_OR_CONFIG")
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
@click.option("--unsafe", is_flag=True, help="Allow .keras models with Lambda layers (runs their code).")
@_device_option
def summary(target, as_json, unsafe, device):
    """Layer table with parameters and multiply-accumulates (MACs) of one forward pass.

    MODEL_OR_CONFIG is a .keras file, a run directory, a YAML config, or a bundled config name
    (cnn, seeds/lab_cnn, ...); a config is built without training. Two MAC columns: the standard
    count, and the course material's, which counts each bias as one more input.

    \b
    Examples:
      mnist-zoo summary cnn
      mnist-zoo summary runs/20261122-160303-mlp --json
    """
    from mnist_zoo.inference.summary import run_summary

    result = run_summary(target, unsafe, device)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    from mnist_zoo.report.tables import format_summary

    click.echo(format_summary(result.source, result.layers, result.total))


@cli.command()
@click.argument("paths", metavar="RUN_DIR...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--sort", "sort_key", default="test_accuracy", show_default=True,
              type=click.Choice(SORT_KEYS),
              help="Accuracies sort best first; sizes and times smallest first.")
@click.option("--format", "output_format", type=click.Choice(["text", "md", "json"]), default="text",
              show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Also plot test accuracy against parameters and training time into this PNG.")
def compare(paths, sort_key, output_format, output):
    """A leaderboard of finished runs: size, compute, time and accuracy side by side.

    RUN_DIR is a run directory or a folder of runs (e.g. runs/). Unfinished runs are listed
    as skipped. An ensemble's folder (see evaluate --ensemble) is one row, its members' costs
    added up.

    \b
    Examples:
      mnist-zoo compare runs/
      mnist-zoo compare runs/*-cnn runs/*-mlp --format md -o compare.png
    """
    from mnist_zoo.api.reports import compare as compare_runs
    from mnist_zoo.report.tables import format_leaderboard

    result = compare_runs(list(paths), sort=sort_key)
    if output_format == "json":
        click.echo(json.dumps([row.as_dict() for row in result.rows], indent=2))
    else:
        click.echo(format_leaderboard(result.rows, markdown=output_format == "md"))
    for message in result.skipped:
        _echo_err(f"skipped {message}")
    if output:
        result.plot(output)
        _echo_err(f"wrote {output}")


@cli.group("config")
def config_group():
    """Show, list and check configs."""


@config_group.command("show")
@_config_options
def config_show(model_name, config_path, overrides):
    """Print the fully resolved config (defaults filled in, overrides applied)."""
    from mnist_zoo.config.loading import config_to_yaml

    click.echo(config_to_yaml(_load_selected_config(model_name, config_path, overrides)), nl=False)


@config_group.command("preview-augmentation")
@_config_options
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("augmentation.png"),
              show_default=True, help="The PNG to write.")
@click.option("--images", type=click.IntRange(1, 30), default=10, show_default=True, help="Digits shown (rows).")
@click.option("--variants", type=click.IntRange(1, 16), default=8, show_default=True,
              help="Augmented versions of each (columns).")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Folder with the IDX files or mnist.npz.")
def config_preview_augmentation(model_name, config_path, overrides, output, images, variants, data_dir):
    """Draw training digits as the config's data.augmentation changes them.

    Each row is one digit: the original, then the changes the first training steps draw for it.

    \b
    Examples:
      mnist-zoo config preview-augmentation --model cnn_record -o grid.png
      mnist-zoo config preview-augmentation --model cnn --set data.augmentation.rotation=15
    """
    from mnist_zoo.api.reports import preview_augmentation

    config = _load_selected_config(model_name, config_path, overrides)
    preview_augmentation(config, path=output, images=images, variants=variants, data_dir=data_dir)
    click.echo(f"wrote {output}")


@config_group.command("list")
def config_list():
    """List the bundled configs usable with --model."""
    from mnist_zoo.config.loading import bundled_config_descriptions
    from mnist_zoo.report.tables import table

    click.echo(table(["name", "description"], bundled_config_descriptions(), align="ll"))


@config_group.command("reference")
def config_reference():
    """Print the config reference (every key, type, default) as Markdown."""
    from mnist_zoo.config.reference import render_reference

    click.echo(render_reference(), nl=False)


@config_group.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def config_check(files):
    """Validate config files; exit status 2 if any is invalid."""
    from mnist_zoo.config.loading import load_config

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
