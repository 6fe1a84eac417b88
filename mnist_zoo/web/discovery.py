"""Which models a server runs: those named, and every finished run in a folder, each opened once."""

from __future__ import annotations

from pathlib import Path

from mnist_zoo import rundir
from mnist_zoo.errors import MnistZooError, ModelFileError
from mnist_zoo.web.models import ServedModel, open_model
from mnist_zoo.web.zoo import Zoo


def _finished_runs(folder: Path) -> tuple[list[Path], list[str]]:
    """The runs (and ensembles) directly inside `folder` that finished (metrics.json and a model), and why others were left out."""
    runs, skipped = [], []
    children = sorted(path for path in folder.iterdir()
                      if (path / rundir.CONFIG_FILE).is_file() or rundir.is_ensemble_folder(path))
    for child in children:
        if rundir.is_ensemble_folder(child):
            runs.append(child)
        elif not (child / rundir.METRICS_FILE).is_file():
            status = rundir.read_status(child).get("status", "unknown")
            skipped.append(f"{child}: not finished (status: {status})")
        elif not any((child / name).is_file() for name in (rundir.BEST_MODEL, rundir.LAST_MODEL)):
            skipped.append(f"{child}: holds no {rundir.BEST_MODEL}")
        else:
            runs.append(child)
    return runs, skipped


def find_models(paths: list[Path], runs_dir: Path | None) -> tuple[list[Path], list[Path], list[str]]:
    """Which model files to serve.

    Args:
        paths: run directories, model files (.keras, .tflite, .onnx, SavedModel folders) or
            folders of runs, as the user named them.
        runs_dir: a folder whose finished runs are all served (skipped if it does not exist).

    Returns:
        (files the user named, files of the runs found, why runs were left out).

    Raises:
        ModelFileError: a named path holds no model.
    """
    named, found, skipped = [], [], []
    for path in map(Path, paths):
        is_run_folder = path.is_dir() and not (path / rundir.CONFIG_FILE).is_file() \
            and not (path / "saved_model.pb").is_file() and not rundir.is_ensemble_folder(path)
        if is_run_folder:
            runs, left_out = _finished_runs(path)
            if not runs:
                raise ModelFileError(f"{path}: neither a model, a run directory nor a folder holding finished runs")
            named += [rundir.resolve_model_path(run)[0] for run in runs]
            skipped += left_out
        else:
            named.append(rundir.resolve_model_path(path)[0])
    if runs_dir is not None and Path(runs_dir).is_dir():
        runs, left_out = _finished_runs(Path(runs_dir))
        found += [rundir.resolve_model_path(run)[0] for run in runs]
        skipped += left_out
    return named, found, skipped


def _unique_id(wanted: str, taken: dict) -> str:
    candidate, number = wanted, 1
    while candidate in taken:
        number += 1
        candidate = f"{wanted}-{number}"
    return candidate


def open_zoo(paths: list[Path], runs_dir: Path | None, unsafe: bool = False) -> Zoo:
    """Opens every model to serve: those named, then every finished run in `runs_dir`.

    A named model that cannot be opened is an error; a run found in `runs_dir` that cannot be
    opened is left out, with the reason in `Zoo.skipped`. Each file is served once.

    Args:
        paths: run directories, model files or folders of runs, as the user named them.
        runs_dir: a folder whose finished runs are all served (None: none).
        unsafe: trust the models named in `paths` to run code (Lambda layers, SavedModel
            folders). Runs found in `runs_dir` are never trusted: nobody named them.

    Raises:
        ModelFileError: a named model cannot be opened, or there is no model to serve at all.
        MissingDependencyError: a named export needs a runtime that is not installed.
    """
    named, found, skipped = find_models(paths, runs_dir)
    models: dict[str, ServedModel] = {}
    seen: set[Path] = set()
    for model_file, is_named in [(path, True) for path in named] + [(path, False) for path in found]:
        if model_file.resolve() in seen:
            continue
        seen.add(model_file.resolve())
        _, run_dir = rundir.resolve_model_path(model_file)
        if rundir.is_own_model(model_file, run_dir):
            wanted = run_dir.name
        elif model_file.name == rundir.ENSEMBLE_FILE:
            wanted = model_file.parent.resolve().name
        else:
            wanted = f"{run_dir.name}/{model_file.name}" if run_dir else model_file.name
        try:
            model = open_model(model_file, run_dir, _unique_id(wanted, models), unsafe=unsafe and is_named)
        except MnistZooError as error:
            if is_named:
                raise
            skipped.append(str(error))
            continue
        models[model.id] = model
    if not models:
        where = f" and no finished run in {runs_dir}/" if runs_dir is not None else ""
        raise ModelFileError(f"no model to serve: none named{where}; train one first "
                             "(mnist-zoo train --model cnn) or name a run directory or model file")
    return Zoo(models, skipped)
