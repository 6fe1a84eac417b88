"""The lesson stage: trains a lesson's grid with the sweep engine, then measures, plots and answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnist_zoo import rundir
from mnist_zoo.errors import ConfigError, RunDirError
from mnist_zoo.lessons.spec import Lesson, load_lesson

DEFAULT_LESSONS_ROOT = Path("lessons")
LESSON_COPY = "lesson.yaml"
"""The lesson file's copy in its folder: what `--report` reads."""
LESSON_RECORD = "lesson.json"
TABLE_FILE = "results.md"
OWN_FILES = {"sweep.yaml", "sweep.json", "study.db", "study.db-journal", "study.db-wal", "study.db-shm", "trials",
             LESSON_COPY, LESSON_RECORD, TABLE_FILE}
"""What a lesson folder holds besides its plots: any other file means the folder is someone else's."""


@dataclass
class LessonResult:
    """A lesson's results: what `mnist-zoo lesson` prints and writes."""

    name: str
    question: str
    quick: bool
    folder: Path
    records: list
    """`measures.TrialRecord` of each finished variant, in the lesson's order."""
    answer: list[str]
    """The answer, computed from the results."""
    notes: list[str]
    """The lesson's own notes (what the material reports, what to look for)."""
    table: str
    """The results as a Markdown table."""
    written: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Variants not finished or not readable."""

    def as_dict(self) -> dict:
        return {"lesson": self.name, "question": self.question, "mode": "quick" if self.quick else "full",
                "folder": str(self.folder), "answer": self.answer, "notes": self.notes,
                "variants": [record.as_dict() for record in self.records], "table": self.table,
                "written": [str(path) for path in self.written], "problems": self.problems}

    def __str__(self) -> str:
        parts = [self.question, self.table, " ".join(self.answer)]
        if self.notes:
            parts.append("\n".join(self.notes))
        return "\n\n".join(parts)

    def _repr_html_(self) -> str:
        import html

        return f"<pre>{html.escape(str(self))}</pre>"


def lesson_folder(lesson: Lesson, output_dir: Path | None = None) -> Path:
    """Where a lesson's mode lives: `--output-dir`, else lessons/NAME/ (full) or lessons/NAME-quick/."""
    if output_dir is not None:
        return Path(output_dir)
    return DEFAULT_LESSONS_ROOT / (f"{lesson.name}-quick" if lesson.quick else lesson.name)


def prepare_lesson_folder(lesson: Lesson, folder: Path, storage: str | None = None):
    """Sets up (or rejoins) the lesson's folder as the sweep directory of its grid; returns the `SweepSetup`.

    Raises:
        ConfigError: the folder holds another lesson or mode (its sweep.yaml differs), or files
            that are not a lesson's (a user's project is never written into).
    """
    from mnist_zoo.sweeps.stage import SWEEP_FILE, prepare_sweep

    folder = Path(folder)
    sweep_file = folder / SWEEP_FILE
    if folder.is_dir():
        check_lesson_folder(lesson, folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not sweep_file.is_file():
        rundir.write_text(sweep_file, lesson.sweep_text)
    rundir.write_text(folder / LESSON_COPY, lesson.path.read_text(encoding="utf-8"))
    return prepare_sweep(sweep_file, folder, storage, study_name(lesson))


def study_name(lesson: Lesson) -> str:
    """The lesson's study: its name, mode and sweep, so that a shared database keeps each apart."""
    import hashlib

    digest = hashlib.sha256(lesson.sweep_text.encode("utf-8")).hexdigest()[:10]
    return f"lesson-{lesson.name}-{'quick' if lesson.quick else 'full'}-{digest}"


def check_lesson_folder(lesson: Lesson, folder: Path) -> None:
    """Refuses a folder that is not this lesson's, in this mode, with these --set values.

    A folder is this lesson's when its sweep.yaml is the lesson's (an empty folder, or one with
    only this lesson's files, may become it). Any other file means the folder is someone else's,
    and a symlink among the lesson's own entries could make the lesson write elsewhere.

    Raises:
        ConfigError: another lesson or mode, a folder that is not a lesson's, or a symlinked entry.
    """
    from mnist_zoo.config.loading import MAX_CONFIG_BYTES
    from mnist_zoo.files import read_regular_file
    from mnist_zoo.sweeps.stage import SWEEP_FILE

    plots = {plot.file for plot in lesson.spec.plots}
    entries = list(folder.iterdir())
    linked = sorted(entry.name for entry in entries if entry.is_symlink())
    if linked:
        raise ConfigError(f"{folder}: {', '.join(linked)} is a symbolic link; a lesson folder holds its own files "
                          "only: choose another --output-dir")
    strangers = sorted(entry.name for entry in entries if entry.name not in OWN_FILES | plots)
    if strangers:
        raise ConfigError(f"{folder}: not this lesson's folder (it holds {', '.join(strangers[:3])}"
                          f"{', ...' if len(strangers) > 3 else ''}); choose another --output-dir")
    sweep_file = folder / SWEEP_FILE
    if sweep_file.exists():
        def too_large(size: int) -> ConfigError:
            return ConfigError(f"{sweep_file}: {size:,} bytes, not a lesson's sweep file")

        try:
            text = read_regular_file(sweep_file, MAX_CONFIG_BYTES, ConfigError, too_large).decode("utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"{sweep_file}: unreadable ({error})") from None
        if text != lesson.sweep_text:
            raise ConfigError(f"{folder}: holds another lesson, another mode (--quick or not) or other --set "
                              "values; choose another --output-dir, or delete the folder to start over")


def run_lesson(name_or_file: str | Path, quick: bool = False, output_dir: Path | None = None,
               overrides: dict[str, Any] | None = None, workers: int = 1, storage: str | None = None,
               data_dir: str | None = None, report_only: bool = False,
               report=lambda message: None) -> LessonResult:
    """Trains what the lesson still lacks, then measures, plots and answers.

    Args:
        name_or_file: a bundled lesson's name or a lesson file.
        quick: the quick mode (a subset, a few epochs).
        output_dir: the lesson's folder (default: `lesson_folder`).
        overrides: config overrides for every variant (`--set`).
        workers, storage: as for `sweep`: local worker processes, the study's database.
        data_dir: where this machine has the data.
        report_only: train nothing; report on what the folder holds.
        report: one-line progress messages.

    Raises:
        ConfigError: an invalid lesson file, or a folder that is not this lesson's.
        RunDirError: `report_only` on a folder without a lesson, or no variant finished.
        TrainingInterrupted: Ctrl-C; the same command continues where it stopped.
    """
    from mnist_zoo.sweeps.stage import open_existing, run_sweep

    from mnist_zoo.sweeps.stage import SWEEP_FILE

    lesson = load_lesson(name_or_file, quick, overrides)
    folder = lesson_folder(lesson, output_dir)
    if report_only:
        if not (folder / SWEEP_FILE).is_file():
            raise RunDirError(f"{folder}: no lesson here yet; run it first (mnist-zoo lesson {lesson.name}"
                              f"{' --quick' if quick else ''})")
        check_lesson_folder(lesson, folder)  # the lesson's own plots and answer, for its own trials
        setup = open_existing(folder, storage)
    else:
        if workers > 1 and lesson.sweep.get("set", {}).get("train.time_limit_seconds") is not None:
            raise ConfigError(f"{lesson.name}: compares variants at equal training time; with --workers {workers} "
                              "they would share the cores and the times would not be equal: run it with one worker")
        setup = prepare_lesson_folder(lesson, folder, storage)
        report(f"lesson {lesson.name}{' (quick)' if quick else ''}: {setup.spec.trial_count} variants in {folder}")
        run_sweep(setup, workers, report, data_dir)
    return lesson_report(lesson, setup)


def lesson_report(lesson: Lesson, setup) -> LessonResult:
    """Measures the finished variants; writes the plots, results.md and lesson.json into the lesson's folder.

    Raises:
        RunDirError: no variant has finished.
    """
    from mnist_zoo.lessons.answer import answer_sentences, markdown_table, markdown_text
    from mnist_zoo.lessons.measures import read_trials
    from mnist_zoo.lessons.plots import draw_plot, variant_colours
    from mnist_zoo.sweeps.study import open_study

    spec = lesson.spec
    study = open_study(setup.spec, setup.storage, setup.study_name)
    records, problems, missing = read_trials(study, setup.spec, setup.sweep_dir, spec.answer.per)
    if not records:
        raise RunDirError(f"{setup.sweep_dir}: no variant of the lesson has finished yet"
                          + (f" ({'; '.join(problems)})" if problems else ""))
    answer = answer_sentences(records, spec)
    if missing:
        answer.insert(0, f"({len(records)} of {len(records) + len(missing)} variants finished; not yet: "
                         f"{'; '.join(missing)}.)")
    result = LessonResult(lesson.name, spec.question, lesson.quick, setup.sweep_dir, records, answer,
                          list(spec.notes), markdown_table(records, spec), problems=problems)
    colours = variant_colours(records)
    for plot in spec.plots:
        path = setup.sweep_dir / plot.file
        draw_plot(plot, records, spec.question, path, colours)
        result.written.append(path)
    images = "\n".join(f"![{markdown_text(plot.title or spec.question)}]({plot.file})" for plot in spec.plots)
    page = f"# {markdown_text(spec.question)}\n\n{result.table}\n\n{markdown_text(' '.join(result.answer))}\n\n"
    page += "".join(f"{markdown_text(note)}\n\n" for note in spec.notes) + f"{images}\n"
    rundir.write_text(setup.sweep_dir / TABLE_FILE, page)
    result.written += [setup.sweep_dir / TABLE_FILE, setup.sweep_dir / LESSON_RECORD]
    rundir.write_json(setup.sweep_dir / LESSON_RECORD, result.as_dict())
    return result
