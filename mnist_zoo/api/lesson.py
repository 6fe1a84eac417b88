"""`lesson` and `list_lessons`: the course's comparisons, each one call."""

from __future__ import annotations

import os
from pathlib import Path


def lesson(name: str | os.PathLike, *, quick: bool = False, output_dir: str | os.PathLike | None = None,
           set: dict | None = None, workers: int = 1, storage: str | None = None,
           data_dir: str | os.PathLike | None = None, report_only: bool = False,
           verbose: str | int = "auto", report=None):
    """Runs one of the course's comparisons; what `mnist-zoo lesson NAME` does.

    Args:
        name: a bundled lesson ('activations', 'optimizers', ...; `list_lessons()`) or a lesson file.
        quick: a subset and few epochs (a few minutes on 2 cores).
        output_dir: the lesson's folder (default: lessons/NAME/, or lessons/NAME-quick/).
        set: config overrides for every variant, e.g. {"data.train_limit": 5000}.
        workers: worker processes on this machine.
        storage: the study's database URL (default: $MNIST_ZOO_STORAGE, else study.db in the folder).
        data_dir: a folder with the MNIST files (default: $MNIST_ZOO_DATA_DIR, else the download).
        report_only: train nothing; report on what the folder holds.
        verbose, report: the one-line messages, as for `mz.train`.

    Returns:
        The `LessonResult`: `.answer` (sentences computed from the results), `.records` (one
        per variant, with its measures and history), `.table` (Markdown), `.written` (the plots,
        results.md, lesson.json); print it for what the command prints.

    Raises:
        ConfigError: an invalid lesson file, or a folder that is not this lesson's.
        RunDirError: `report_only` and nothing to report.
        TrainingInterrupted: Ctrl-C; calling again continues with the variants that are missing.
    """
    from mnist_zoo.api.common import reporter
    from mnist_zoo.lessons.stage import run_lesson

    if workers < 1:
        raise ValueError(f"workers={workers}: expected 1 or more")
    if set is not None and not isinstance(set, dict):
        raise ValueError(f"set={set!r}: expected a dict of config keys, e.g. {{'train.epochs': 3}}")
    return run_lesson(name, quick, output_dir and Path(output_dir), set, workers,
                      storage or os.environ.get("MNIST_ZOO_STORAGE") or None, data_dir and str(data_dir),
                      report_only, reporter(verbose, report))


def list_lessons() -> list[dict]:
    """The bundled lessons: name, question, and the measured minutes of the quick and full modes."""
    from mnist_zoo.lessons.listing import lesson_rows

    return lesson_rows()
