"""`train` and `load_config`: a run from a bundled config, a YAML file or a `RunConfig`."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mnist_zoo.api.common import Reporter, check_choice, reporter
from mnist_zoo.api.run import Run
from mnist_zoo.rundir import DEFAULT_RUNS_ROOT



def load_config(model: Any = "cnn", *, set: Mapping[str, Any] | Iterable[str] | None = None,  # noqa: A002
                **settings: Any):
    """The validated `RunConfig` of a bundled config, a YAML file or a `RunConfig`, with overrides.

    Args:
        model: a bundled config's name ('cnn', 'mlp', 'linear', 'seeds/lab_cnn'; `mnist-zoo
            config list` shows them), a path to a YAML config, or a `RunConfig`.
        set: overrides by key path, as {'model.dropout_rate': 0.3} (values as they are) or
            ['model.dropout_rate=0.3'] (values read as YAML, like `--set`).
        **settings: shortcuts: epochs, batch_size, seed, dataset, data_dir, device.

    Returns:
        The frozen, validated `RunConfig`.

    Raises:
        ConfigError: an unknown name, an unreadable file, or a value that does not validate
            (the message names the key, what was received and what was expected).
        TypeError: an unknown shortcut.
    """
    from mnist_zoo.config.loading import apply_overrides, bundled_config_path, config_to_dict, validate_config
    from mnist_zoo.config.loading import load_config as load
    from mnist_zoo.config.run import RunConfig

    overrides = {**_overrides(set), **_shortcuts(settings)}
    if isinstance(model, RunConfig):
        return validate_config(apply_overrides(config_to_dict(model), overrides), model.name) if overrides else model
    if isinstance(model, os.PathLike) or (isinstance(model, str) and Path(model).suffix in (".yaml", ".yml")):
        return load(Path(model), overrides)
    if isinstance(model, str):
        return load(bundled_config_path(model), overrides)
    raise TypeError(f"model={model!r}: expected a bundled config name (e.g. 'cnn'), a YAML path or a RunConfig")


_SHORTCUTS = {"epochs": "train.epochs", "batch_size": "train.batch_size", "seed": "train.seed",
              "dataset": "data.dataset", "data_dir": "data.data_dir", "device": "train.device"}


def _shortcuts(settings: dict) -> dict:
    unknown = sorted(set(settings) - set(_SHORTCUTS))
    if unknown:
        raise TypeError(f"unexpected keyword argument{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                        f"the shortcuts are {', '.join(_SHORTCUTS)} (anything else: set={{'key.path': value}})")
    values = {_SHORTCUTS[name]: value for name, value in settings.items() if value is not None}
    if "data.data_dir" in values:
        from mnist_zoo.config.loading import data_dir_setting

        values["data.data_dir"] = data_dir_setting(values["data.data_dir"])
    return values


def _overrides(overrides) -> dict:
    from mnist_zoo.config.loading import parse_overrides

    if overrides is None:
        return {}
    if isinstance(overrides, Mapping):
        return dict(overrides)
    if isinstance(overrides, str):  # one 'key=value' string, not its characters
        overrides = [overrides]
    return parse_overrides(list(overrides))


def train(
    model: Any = None,
    *,
    set: Mapping[str, Any] | Iterable[str] | None = None,  # noqa: A002 - the CLI's --set
    epochs: int | None = None,
    batch_size: int | None = None,
    seed: int | None = None,
    dataset: str | None = None,
    data_dir: str | os.PathLike | None = None,
    device: str | None = None,
    output_dir: str | os.PathLike = DEFAULT_RUNS_ROOT,
    run_dir: str | os.PathLike | None = None,
    force: bool = False,
    resume: Run | str | os.PathLike | None = None,
    verbose: str | int = "auto",
    report: Reporter | None = None,
    callbacks: Iterable = (),
) -> Run:
    """Trains a model and returns its run directory as a `Run`; what `mnist-zoo train` does.

    Ctrl-C (in a terminal, or the notebook's interrupt button) stops after the current step and
    keeps the last complete epoch; `train(resume=run)` continues it exactly as if it had never
    stopped.

    Args:
        model: a bundled config's name (None: 'cnn'), a YAML config path, or a `RunConfig`.
        set: config overrides, {'model.dropout_rate': 0.3} or ['model.dropout_rate=0.3'].
        epochs, batch_size, seed, dataset, data_dir, device: shortcuts for the config keys
            train.epochs, train.batch_size, train.seed, data.dataset, data.data_dir, train.device.
        output_dir: the folder the new run directory is made in.
        run_dir: exactly this run directory instead (it must not exist, unless `force`).
        force: with `run_dir`: replace an earlier run there (only a folder mnist-zoo made).
        resume: an interrupted `Run` (or its path) to continue; only `data_dir`, `device` and
            `verbose` may then be given, the run's own config.yaml decides the rest.
        verbose: Keras's convention: 'auto' (the config's train.verbose, whose default is a
            progress bar in a terminal or notebook and a line per epoch in logs), 0 (silent),
            1 (progress bar), 2 (a line per epoch); for this call only, not recorded in the run.
            Unless 0, the one-line messages (run directory, device, data) go to stderr.
        report: receives those messages instead (e.g. `logging.getLogger(...).info`).
        callbacks: more Keras callbacks for `model.fit`.

    Returns:
        The finished `Run`: `run.metrics`, `run.history`, `run.plot_history()`, `run.evaluate()`.

    Raises:
        ConfigError, DataError, DeviceError, RunDirError: what the CLI reports as `Error: ...`.
        RunStoppedError: a write failed (disk full, no permission) after an epoch was committed;
            the run is kept and can be resumed.
        TrainingInterrupted: Ctrl-C or SIGTERM stopped training; its `run_dir` can be resumed.
        ValueError: options that do not go together (`resume` with a config, `force` without `run_dir`).
    """
    from mnist_zoo.training.runs import new_run_dir, resume_run, start_run

    messages = reporter(verbose, report)
    progressbar = verbose != 0 and sys.stderr.isatty()
    check_choice("device", device, allow_none=True)
    check_choice("dataset", dataset, allow_none=True)
    if verbose not in ("auto", 0, 1, 2):
        raise ValueError(f"verbose={verbose!r}: expected 'auto', 0, 1 or 2")
    # Keras's display is this call's choice, not the run's: it is not written into config.yaml.
    display = None if verbose == "auto" else verbose
    if resume is not None:
        given = [name for name, value in [("model", model), ("set", set), ("epochs", epochs), ("batch_size", batch_size),
                                          ("seed", seed), ("dataset", dataset), ("run_dir", run_dir)]
                 if value is not None] + (["force"] if force else []) + (
                     ["output_dir"] if Path(output_dir) != DEFAULT_RUNS_ROOT else [])
        if given:
            raise ValueError(f"resume continues the run's own config; drop {', '.join(given)} "
                             "(only data_dir, device and verbose may be given with it)")
        run_dir = Path(resume).expanduser()
        messages(f"run directory: {run_dir}")
        resume_run(run_dir, data_dir and str(data_dir), device, messages, tuple(callbacks), progressbar, display)
        return Run(run_dir)
    if run_dir is not None and Path(output_dir) != DEFAULT_RUNS_ROOT:
        raise ValueError("give either run_dir or output_dir, not both")
    config = load_config("cnn" if model is None else model, set=set, epochs=epochs, batch_size=batch_size, seed=seed,
                         dataset=dataset, data_dir=data_dir, device=device)
    run_dir = new_run_dir(config, Path(output_dir).expanduser(), run_dir and Path(run_dir).expanduser(), force)
    messages(f"run directory: {run_dir}")
    start_run(config, run_dir, messages, tuple(callbacks), progressbar, display)
    return Run(run_dir)
