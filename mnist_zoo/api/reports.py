"""`compare`, `plot_history`, `preview_augmentation`, `models`, `doctor`: runs side by side, data as trained on, this machine."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_zoo.rundir import DEFAULT_RUNS_ROOT


def _paths(runs: Any) -> list[Path]:
    if isinstance(runs, (str, os.PathLike)):
        runs = [runs]
    return [Path(os.fspath(run)) for run in runs]


@dataclass(frozen=True, eq=False)
class Comparison:
    """A leaderboard of finished runs; what `mnist-zoo compare` prints.

    Attributes:
        rows: one `RunRow` per finished run (run, model, parameters, forward_macs, epochs,
            train_seconds, test_accuracy, ...), in the order asked for.
        skipped: why each other run was left out (unfinished, unreadable).
    """

    rows: list
    skipped: list[str]

    def as_dicts(self) -> list[dict]:
        """The rows as plain dicts (what `compare --format json` prints)."""
        return [row.as_dict() for row in self.rows]

    def plot(self, path: str | os.PathLike | None = None):
        """Test accuracy against parameters and training time (a `Figure`); also saved when `path` is given."""
        from mnist_zoo.report.plots import comparison_figure, save_figure

        figure = comparison_figure(self.rows)
        return save_figure(figure, path) if path else figure

    def __str__(self) -> str:
        from mnist_zoo.report.tables import format_leaderboard

        return format_leaderboard(self.rows)

    def __repr__(self) -> str:
        return f"Comparison({len(self.rows)} runs, {len(self.skipped)} skipped)\n{self}"

    def _repr_html_(self) -> str:
        import html

        return f"<pre>{html.escape(str(self))}</pre>"


def compare(runs: Any = DEFAULT_RUNS_ROOT, *, sort: str = "test_accuracy") -> Comparison:
    """Finished runs side by side: size, compute, time and accuracy.

    Args:
        runs: a `Run`, a run directory or a folder of runs (default 'runs'), or a list of them.
        sort: 'test_accuracy' or 'best_val_accuracy' (best first), or 'parameters',
            'forward_macs', 'train_seconds', 'seconds_per_epoch' (smallest first).

    Returns:
        The `Comparison`: print it, `.rows`, `.plot()`.

    Raises:
        RunDirError: a path is neither a run nor a folder of runs, or none has finished.
        ValueError: an unknown `sort`.
    """
    from mnist_zoo.report.compare import SORT_KEYS, compare_runs

    if sort not in SORT_KEYS:
        raise ValueError(f"sort={sort!r}: expected one of {', '.join(SORT_KEYS)}")
    result = compare_runs(_paths(runs), sort)
    return Comparison(result.rows, result.skipped)


def plot_history(runs: Any = None, *, path: str | os.PathLike | None = None,
                 runs_dir: str | os.PathLike = DEFAULT_RUNS_ROOT):
    """Loss and accuracy per epoch of one or more runs, train solid and validation dashed.

    Args:
        runs: a `Run` or run directory, or a list of them (default: the newest run in `runs_dir`).
        path: also save the figure as this PNG.
        runs_dir: where to look for the newest run.

    Returns:
        A matplotlib `Figure`: Jupyter shows it inline; `figure.savefig(...)` writes it anywhere.

    Raises:
        RunDirError: a run has no history yet, or `runs_dir` holds no run.
    """
    from mnist_zoo import rundir
    from mnist_zoo.report.plots import history_figure, save_figure

    paths = _paths(runs) if runs is not None else [rundir.latest_run(Path(runs_dir))]
    figure = history_figure([(path_.resolve().name, rundir.read_history(path_)) for path_ in paths])
    return save_figure(figure, path) if path else figure


def preview_augmentation(model: Any = "cnn", *, path: str | os.PathLike | None = None, images: int = 10,
                         variants: int = 8, set: Any = None, data_dir: str | os.PathLike | None = None):  # noqa: A002
    """The training digits as a config's `data.augmentation` changes them, in a grid.

    One row per digit (the first training image of each class, then the next ones), the original
    first, then the changes training steps 0, 1, ... draw for it with the config's seed.

    Args:
        model: a bundled config's name, a YAML path or a `RunConfig` (as `mz.load_config` takes).
        path: also save the figure as this PNG.
        images: digits shown (rows), 1-30.
        variants: changes per digit (columns), 1-16.
        set: config overrides, e.g. {'data.augmentation.rotation': 15}.
        data_dir: the data folder (default: the config's, else $MNIST_ZOO_DATA_DIR, else the download).

    Returns:
        A matplotlib `Figure`.

    Raises:
        ConfigError: the config turns no augmentation on.
        ValueError: `images` or `variants` out of range.
    """
    import numpy as np

    from mnist_zoo.api.train import load_config
    from mnist_zoo.data.augmentation import preview_batches
    from mnist_zoo.data.datasets import load_dataset
    from mnist_zoo.errors import ConfigError
    from mnist_zoo.report.plots import augmentation_figure, save_figure

    if not 1 <= images <= 30 or not 1 <= variants <= 16:
        raise ValueError(f"images={images}, variants={variants}: expected 1-30 images and 1-16 variants")
    config = load_config(model, set=set, data_dir=data_dir)
    augmentation = config.data.augmentation
    if not augmentation.enabled:
        raise ConfigError(f"{config.name}: data.augmentation changes nothing (all off); turn something on, "
                          "e.g. --set data.augmentation.rotation=15")
    dataset = load_dataset(config.data.dataset, config.data.data_dir)
    labels = dataset.train_labels
    # One digit per class first (a learner wants to see every digit), then the next of each class.
    per_class = [np.flatnonzero(labels == digit) for digit in range(len(dataset.class_names))]
    order = [indices[rank] for rank in range(images) for indices in per_class if rank < len(indices)][:images]
    chosen = dataset.train_images[order]
    changed = preview_batches(augmentation, config.train.seed, chosen, variants)
    figure = augmentation_figure(chosen, changed, labels[order], dataset.class_names, augmentation.describe())
    return save_figure(figure, path) if path else figure


def list_models() -> list[dict]:
    """The registered model types: [{'name', 'parameters', 'description'}], each built with its defaults."""
    from mnist_zoo.models.registry import describe_models

    return [{"name": name, "parameters": parameters, "description": description}
            for name, parameters, description in describe_models()]


def diagnose(*, dataset: str = "mnist", data_dir: str | os.PathLike | None = None,
           runs_dir: str | os.PathLike = DEFAULT_RUNS_ROOT, smoke: bool = False):
    """Checks this machine before training: versions, CPU and precision, GPU, data, runs folder.

    Returns:
        The `Diagnosis`: `.ready`, `.checks`, `.as_dict()`; print it for the table `mnist-zoo doctor` shows.
    """
    from mnist_zoo.api.common import check_choice
    from mnist_zoo.doctor import diagnose

    check_choice("dataset", dataset)
    return diagnose(dataset, data_dir and str(data_dir), Path(runs_dir), smoke)
