"""mnist-zoo lesson: the lesson files, the measured answer, the plots, and a lesson as a resumable grid sweep."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mnist_zoo.cli import cli
from mnist_zoo.errors import ConfigError
from tests.skips import import_or_skip

optuna = import_or_skip("optuna")

from mnist_zoo.lessons.answer import answer_sentences, format_value, markdown_table  # noqa: E402
from mnist_zoo.lessons.measures import TrialRecord  # noqa: E402
from mnist_zoo.lessons.spec import LessonSpec, bundled_lesson_names, load_lesson  # noqa: E402

COURSE_LESSONS = ["activations", "batch-size", "data-size", "depth", "initializers", "optimizers", "overfitting", "zoo"]


@pytest.fixture(autouse=True)
def _no_storage_from_the_environment(monkeypatch):
    monkeypatch.delenv("MNIST_ZOO_STORAGE", raising=False)


def test_the_course_lessons_are_bundled():
    assert bundled_lesson_names() == COURSE_LESSONS


@pytest.mark.parametrize("name", COURSE_LESSONS)
@pytest.mark.parametrize("quick", [False, True], ids=["full", "quick"])
def test_every_bundled_lesson_is_a_valid_grid_in_both_modes(name, quick):
    lesson = load_lesson(name, quick=quick)  # validated as the sweep engine reads it: every variant, every choice
    assert lesson.spec.question.endswith("?")
    assert lesson.sweep["sampler"] == "grid" and lesson.sweep["pruner"] == "none"
    assert lesson.sweep.get("variants"), "each lesson names its variants"


def test_the_quick_mode_trains_less():
    for name in COURSE_LESSONS:
        full, quick = load_lesson(name).sweep, load_lesson(name, quick=True).sweep
        assert full != quick, name


def test_lessons_are_not_configs_or_sweeps():
    from mnist_zoo.config.loading import bundled_config_names

    assert not [name for name in bundled_config_names() if name.startswith("lessons/")]


def write_lesson(folder: Path, **changes) -> Path:
    lesson = {
        "lesson": {"question": "Which learning rate?", "answer": {"by": "best_val_accuracy"},
                   "plots": [{"kind": "curves", "y": "val_accuracy", "file": "curves.png"}]},
        "base": "linear", "sampler": "grid",
        "variants": {"slow": {"set": {"train.optimizer": {"name": "sgd", "learning_rate": 0.001}}},
                     "fast": {"set": {"train.optimizer": {"name": "sgd", "learning_rate": 0.5}}}},
    }
    for key, value in changes.items():
        if key == "lesson":
            lesson["lesson"].update(value)
        else:
            lesson[key] = value
    path = folder / "my-lesson.yaml"
    path.write_text(yaml.safe_dump(lesson, sort_keys=False))
    return path


@pytest.mark.parametrize("changes, message", [
    ({"sampler": "tpe"}, "sampler: a lesson trains every variant (sampler: grid), received tpe"),
    ({"lesson": {"plots": [{"kind": "curves", "y": "test_accuracy", "file": "a.png"}]}},
     "'test_accuracy' is not an epoch metric"),
    ({"lesson": {"plots": [{"kind": "points", "x": "parameters", "y": "val_accuracy", "file": "a.png"}]}},
     "'val_accuracy' is not a run measure"),
    ({"lesson": {"plots": [{"kind": "curves", "y": "loss", "file": "../a.png"}]}}, "expected a plain name ending in .png"),
    ({"lesson": {"quick": {"variants": ["medium"]}}}, "lesson.quick.variants: medium not in variants"),
    ({"lesson": {"answer": {"by": "best_val_accuracy", "per": "train.batch_size"}}},
     "lesson.answer.per: 'train.batch_size' is not a key of space"),
    ({"variants": {"bad": {"set": {"train.epochs": -1}}}}, "variants.bad: does not make a valid config"),
    ({"pruner": "median"}, "pruner: a lesson trains every variant to the end"),
    ({"trials": 1}, "trials: a lesson trains every variant to the end"),
    ({"lesson": {"plots": [{"kind": "points", "x": "train.batchsize", "y": "test_accuracy", "file": "a.png"}]}},
     "x 'train.batchsize' is not a number in the config of the variant 'slow'"),
    ({"lesson": {"quick": {"set": {"train.epochz": 1}}}}, "unknown key 'epochz'"),
])
def test_a_bad_lesson_file_is_one_error_before_any_training(tmp_path, changes, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_lesson(write_lesson(tmp_path, **changes))


def test_a_sweep_file_is_not_a_lesson(tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"base": "linear", "trials": 2, "space": {"train.epochs": {"int": [1, 3]}}}))
    with pytest.raises(ConfigError, match="not a lesson file"):
        load_lesson(sweep)
    with pytest.raises(ConfigError, match=re.escape("no lesson file or bundled lesson named 'activation' (did you mean 'activations'?)")):
        load_lesson("activation")


# ----------------------------------------------------------------------------- the answer, computed


def record(variant: str, params: dict | None = None, **measures) -> TrialRecord:
    base = {"test_accuracy": 0.9, "best_val_accuracy": 0.9, "epochs": 5, "train_images": 55000,
            "train_seconds": 12.0}
    return TrialRecord(0, variant, params or {"variant": variant}, Path("."), [], {**base, **measures},
                       {"train": {}, "data": {}})


def spec(**answer) -> LessonSpec:
    return LessonSpec(question="Which?", answer={"by": "best_val_accuracy", **answer},
                      plots=[{"kind": "curves", "y": "val_accuracy", "file": "a.png"}])


def test_the_answer_ranks_the_variants_by_their_measured_values():
    records = [record("sigmoid", best_val_accuracy=0.951), record("relu", best_val_accuracy=0.979),
               record("tanh", best_val_accuracy=0.975)]
    assert answer_sentences(records, spec()) == [
        "relu reached the highest validation accuracy (best epoch) after 5 epochs on 55,000 training images: "
        "97.90 %; then tanh 97.50 %, sigmoid 95.10 %."]
    records = [record("adam", final_val_loss=0.08), record("sgd", final_val_loss=0.31)]
    sentence = answer_sentences(records, spec(by="final_val_loss", higher_is_better=False))[0]
    assert sentence.startswith("adam reached the lowest validation loss at the last epoch") and "sgd 0.31" in sentence


def test_a_variant_at_chance_is_said_not_to_have_learned():
    records = [record("glorot", test_accuracy=0.975), record("zeros", test_accuracy=0.1135),
               record("ones", test_accuracy=0.098)]
    assert answer_sentences(records, spec())[-1] == (
        "Did not learn, at or near chance (10 %) on the test set: zeros (11.35 %), ones (9.80 %).")


def test_a_per_key_answers_once_per_value_and_names_it_by_its_measure():
    records = [record("cnn", {"variant": "cnn", "data.train_limit": 5500}, train_images=500, best_val_accuracy=0.91),
               record("mlp", {"variant": "mlp", "data.train_limit": 5500}, train_images=500, best_val_accuracy=0.85),
               record("mlp", {"variant": "mlp", "data.train_limit": 60000}, train_images=55000, best_val_accuracy=0.98),
               record("cnn", {"variant": "cnn", "data.train_limit": 60000}, train_images=55000, best_val_accuracy=0.99)]
    sentences = answer_sentences(records, spec(per="data.train_limit", per_shown_as="train_images"))
    assert sentences[0].startswith("With 500 training images: cnn reached the highest") and "mlp 85.00 %" in sentences[0]
    assert sentences[1].startswith("With 55,000 training images: cnn reached") and "mlp 98.00 %" in sentences[1]


def test_a_time_limited_lesson_says_so():
    records = [record("batch 1", {"variant": "batch 1"}), record("batch 100", {"variant": "batch 100"}, epochs=40)]
    for item in records:
        item.config["train"]["time_limit_seconds"] = 60.0
    assert "after 60.0 s of training" in answer_sentences(records, spec())[0]


def test_the_table_has_a_row_per_variant_and_the_lessons_measures():
    table = markdown_table([record("relu", test_accuracy=0.97812)], spec(also=["test_accuracy"]))
    assert table.splitlines()[0] == ("| variant | validation accuracy (best epoch) | test accuracy | epochs trained "
                                     "| training time |")
    assert table.splitlines()[2] == "| relu | 90.00 % | 97.81 % | 5 | 12.0 s |"
    assert format_value("generalization_gap", 8.123) == "+8.12 points"


# ----------------------------------------------------------------------------- running lessons


def lesson_cli(*args: str):
    return CliRunner().invoke(cli, ["lesson", *args])


def png_size(path: Path) -> tuple[int, int]:
    import struct

    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


@pytest.mark.slow
def test_a_lesson_trains_each_variant_once_and_answers_from_its_results(tmp_path, small_mnist_dir):
    lesson_file = write_lesson(tmp_path, set={"train.epochs": 2, "data.validation_size": 200}, lesson={
        "plots": [{"kind": "curves", "y": "val_accuracy", "training_too": True, "file": "curves.png"},
                  {"kind": "points", "x": "variant", "y": "test_accuracy", "file": "points.png",
                   "references": [{"label": "course", "x": 0, "y": 92.0}]}],
        "notes": ["A note."]})
    out = tmp_path / "out"
    result = lesson_cli(str(lesson_file), "--output-dir", str(out), "--data-dir", str(small_mnist_dir), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    variants = {variant["variant"]: variant for variant in report["variants"]}
    assert list(variants) == ["slow", "fast"]  # the lesson's order, whatever order they trained in
    # The sentence states the measured figures, best first.
    best, other = sorted(variants.values(), key=lambda variant: -variant["measures"]["best_val_accuracy"])
    assert report["answer"][0].startswith(
        f"{best['variant']} reached the highest validation accuracy (best epoch) after 2 epochs on 1,800 training "
        f"images: {format_value('best_val_accuracy', best['measures']['best_val_accuracy'])}; then {other['variant']} "
        f"{format_value('best_val_accuracy', other['measures']['best_val_accuracy'])}.")
    for variant in variants.values():  # each measure is the run's own
        metrics = json.loads((Path(variant["run_dir"]) / "metrics.json").read_text())
        assert variant["measures"]["test_accuracy"] == metrics["test_accuracy"]
    assert report["notes"] == ["A note."]
    for name in ("curves.png", "points.png"):
        assert png_size(out / name) == (1280, 720)
    assert json.loads((out / "lesson.json").read_text())["answer"] == report["answer"]
    assert report["answer"][0] in (out / "results.md").read_text()
    # A rerun trains nothing; --report only reads.
    again = lesson_cli(str(lesson_file), "--output-dir", str(out), "--data-dir", str(small_mnist_dir), "--json")
    assert again.exit_code == 0 and "trial " not in again.stderr
    assert json.loads(again.stdout)["answer"] == report["answer"]
    assert lesson_cli(str(lesson_file), "--output-dir", str(out), "--report").exit_code == 0
    # Other --set values are another lesson: refused, not mixed into this folder.
    other_set = lesson_cli(str(lesson_file), "--output-dir", str(out), "--set", "train.epochs=3")
    assert other_set.exit_code == 2 and "holds another lesson" in other_set.output
    # The folder is a sweep directory too.
    assert CliRunner().invoke(cli, ["sweep", str(out), "--report", "--json"]).exit_code == 0


TINY = {"train.epochs": 1, "data.validation_size": 200, "train.tensorboard": False}
"""Every lesson's quick mode, shrunk further to one epoch of the small real subset (2,000 images)."""
TINY_CHANGES = {"batch-size": {"train.time_limit_seconds": 0.5}, "overfitting": {"data.train_limit": 600}}


@pytest.mark.slow
@pytest.mark.parametrize("name", COURSE_LESSONS)
def test_every_lesson_runs_its_quick_mode_on_a_small_real_subset(tmp_path, small_mnist_dir, name):
    import mnist_zoo as mz

    result = mz.lesson(name, quick=True, output_dir=tmp_path / name, data_dir=small_mnist_dir,
                       set={**TINY, **TINY_CHANGES.get(name, {})}, verbose=0)
    lesson = load_lesson(name, quick=True)
    assert len(result.records) == len(lesson.sweep["variants"]) * max(
        [len(dimension["choice"]) for dimension in lesson.sweep.get("space", {}).values()] or [1])
    assert not result.problems
    for plot in lesson.spec.plots:
        assert png_size(tmp_path / name / plot.file) == (1280, 720)
    best = max(result.records, key=lambda record: record.measures[lesson.spec.answer.by]
               * (1 if lesson.spec.answer.higher_is_better else -1))
    assert best.variant in result.answer[0]
    saved = json.loads((tmp_path / name / "lesson.json").read_text())
    assert saved["answer"] == result.answer and len(saved["variants"]) == len(result.records)


def test_ties_and_missing_figures_are_said_as_they_are():
    tied = [record("relu", best_val_accuracy=0.97901), record("elu", best_val_accuracy=0.97899),
            record("tanh", best_val_accuracy=0.95)]
    assert answer_sentences(tied, spec())[0].startswith("relu and elu tied for the highest validation accuracy")
    assert "then tanh 95.00 %" in answer_sentences(tied, spec())[0]
    unknown = [record("relu", best_val_accuracy=None), record("elu", best_val_accuracy=None)]
    assert answer_sentences(unknown, spec())[0] == "No variant has a measured validation accuracy (best epoch)."


def test_odd_run_files_give_no_figure_rather_than_a_wrong_one():
    from mnist_zoo.lessons.measures import number

    assert [number(value) for value in (0.5, 3, float("nan"), float("inf"), "0.9", None, True)] == [
        0.5, 3, None, None, None, None, None]


def test_a_dollar_in_a_variant_name_is_drawn_as_it_is(tmp_path):
    from mnist_zoo.lessons.plots import draw_plot, variant_colours
    from mnist_zoo.lessons.spec import PlotSpec

    records = [record("lr $0.1 and $\\foo$", test_accuracy=0.9), record("b|c", test_accuracy=0.8)]
    for item in records:
        item.history.extend([{"epoch": 1, "val_accuracy": 0.8}, {"epoch": 2, "val_accuracy": 0.9}])
    for plot in (PlotSpec(kind="curves", y="val_accuracy", file="a.png"),
                 PlotSpec(kind="points", x="variant", y="test_accuracy", file="b.png")):
        draw_plot(plot, records, "Is $x$ drawn?", tmp_path / plot.file, variant_colours(records))
        assert png_size(tmp_path / plot.file) == (1280, 720)
    assert "| b\\|c |" in markdown_table(records, spec())


def test_the_sentence_follows_the_numbers_when_they_flip():
    first = [record("relu", best_val_accuracy=0.98), record("sigmoid", best_val_accuracy=0.95)]
    flipped = [record("relu", best_val_accuracy=0.95), record("sigmoid", best_val_accuracy=0.98)]
    assert answer_sentences(first, spec())[0].startswith("relu reached the highest")
    assert answer_sentences(flipped, spec())[0].startswith("sigmoid reached the highest")
    assert "then relu 95.00 %" in answer_sentences(flipped, spec())[0]


@pytest.mark.slow
def test_a_lesson_killed_mid_variant_trains_only_what_is_missing_when_run_again(tmp_path, small_mnist_dir):
    import os
    import signal
    import time

    from tests.helpers import tree_signature

    lesson_file = write_lesson(tmp_path, heartbeat_seconds=1, set={"train.epochs": 30, "data.validation_size": 200},
                               variants={"a": {"set": {"train.optimizer": {"name": "sgd", "learning_rate": 0.1}}},
                                         "b": {"set": {"train.optimizer": {"name": "sgd", "learning_rate": 0.2}}},
                                         "c": {"set": {"train.optimizer": {"name": "sgd", "learning_rate": 0.3}}}})
    out = tmp_path / "out"
    command = [sys.executable, "-m", "mnist_zoo", "lesson", str(lesson_file), "--output-dir", str(out),
               "--data-dir", str(small_mnist_dir)]
    lesson = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    deadline = time.monotonic() + 180
    # The first variant finished, the second trained at least one epoch: kill -9 then.
    while time.monotonic() < deadline and not (len(list(out.glob("trials/*/metrics.json"))) == 1
                                               and len(list(out.glob("trials/*/history.json"))) == 2):
        time.sleep(0.1)
    os.killpg(lesson.pid, signal.SIGKILL)
    lesson.wait(timeout=30)
    finished = {path.parent.name: tree_signature(path.parent) for path in out.glob("trials/*/metrics.json")}
    assert len(finished) == 1
    # A report of the partial lesson says what is missing before it answers from what is there.
    partial = lesson_cli(str(lesson_file), "--output-dir", str(out), "--report", "--json")
    assert partial.exit_code == 0, partial.output
    answer = json.loads(partial.stdout)["answer"]
    assert re.fullmatch(r"\(1 of 3 variants finished; not yet: [abc]; [abc]\.\)", answer[0]), answer
    finished = {path.parent.name: tree_signature(path.parent) for path in out.glob("trials/*/metrics.json")}
    time.sleep(3.5)  # three heartbeats: the killed variant's trial is stale, and queued again
    again = subprocess.run([*command, "--json"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    started = [line for line in again.stderr.splitlines() if re.match(r"trial \d+: variant=", line)]
    assert len(started) == 2, again.stderr  # the killed variant and the one never started; not the finished one
    report = json.loads(again.stdout)
    assert sorted(variant["variant"] for variant in report["variants"]) == ["a", "b", "c"]
    assert {name: tree_signature(out / "trials" / name) for name in finished} == finished


def test_a_folder_with_other_files_is_never_written_into(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "notes.txt").write_text("mine")
    result = lesson_cli(str(write_lesson(tmp_path)), "--output-dir", str(project))
    assert result.exit_code == 2 and "not this lesson's folder (it holds notes.txt)" in result.output
    assert sorted(path.name for path in project.iterdir()) == ["notes.txt"]
    # A folder of the user's pictures is not a lesson's either: only the lesson's own plot names are.
    (project / "notes.txt").unlink()
    (project / "figure.png").write_bytes(b"mine")
    result = lesson_cli(str(write_lesson(tmp_path)), "--output-dir", str(project))
    assert result.exit_code == 2 and "(it holds figure.png)" in result.output


def test_a_symlink_in_a_lesson_folder_is_refused(tmp_path):
    folder = tmp_path / "lesson"
    folder.mkdir()
    (tmp_path / "elsewhere.db").write_bytes(b"")
    (folder / "study.db").symlink_to(tmp_path / "elsewhere.db")
    result = lesson_cli(str(write_lesson(tmp_path)), "--output-dir", str(folder))
    assert result.exit_code == 2 and "study.db is a symbolic link" in result.output


def test_report_with_another_lessons_name_is_refused(tmp_path):
    from mnist_zoo.lessons.stage import prepare_lesson_folder

    prepare_lesson_folder(load_lesson(write_lesson(tmp_path)), tmp_path / "mine")
    result = lesson_cli("optimizers", "--output-dir", str(tmp_path / "mine"), "--report")
    assert result.exit_code == 2 and "holds another lesson" in result.output


@pytest.mark.parametrize("key, value", [("train.batch_size", 64), ("train.optimizer.learning_rate", 0.1)])
def test_set_refuses_what_the_lessons_variants_vary(key, value):
    name = "batch-size" if key == "train.batch_size" else "optimizers"
    with pytest.raises(ConfigError, match=re.escape(f"--set {key}: the lesson varies it itself")):
        load_lesson(name, overrides={key: value})


def test_report_on_a_lesson_never_run_says_how_to_run_it(tmp_path):
    result = lesson_cli("zoo", "--quick", "--output-dir", str(tmp_path / "none"), "--report")
    assert result.exit_code == 2 and "run it first (mnist-zoo lesson zoo --quick)" in result.output


@pytest.mark.slow
def test_the_batch_size_lesson_compares_at_equal_time_and_extrapolates_cut_epochs(tmp_path, small_mnist_dir):
    out = tmp_path / "batch-size"
    result = lesson_cli("batch-size", "--quick", "--output-dir", str(out), "--data-dir", str(small_mnist_dir),
                        "--set", "train.time_limit_seconds=1.5", "--set", "data.validation_size=200", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    measures = {variant["variant"]: variant["measures"] for variant in report["variants"]}
    assert list(measures) == ["batch 1", "batch 10", "batch 100", "batch 1000"]
    # Batch 1 cannot finish one epoch of 1,800 steps in 1.5 s: its time per epoch is extrapolated from the cut one.
    assert 0 < measures["batch 1"]["epochs"] < 1 and measures["batch 1"]["seconds_per_epoch"] > 1.5
    # At equal time the large batch passes over more of the data. (Not "more than one epoch": on a
    # loaded machine its first epoch, tracing included, took longer than 1.5 s.)
    assert measures["batch 1000"]["epochs"] > measures["batch 1"]["epochs"]
    assert "after 1.50 s of training" in report["answer"][0]
    assert png_size(out / "seconds-per-epoch.png") == (1280, 720)


def test_lesson_list_names_each_lesson_with_its_question_and_times():
    result = subprocess.run([sys.executable, "-m", "mnist_zoo", "lesson", "list"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    for name in COURSE_LESSONS:
        line = next(line for line in result.stdout.splitlines() if line.startswith(name + " "))
        assert load_lesson(name).spec.question in line and "(quick " in line and ", full " in line


def test_mz_lesson_refuses_bad_arguments():
    import mnist_zoo as mz

    with pytest.raises(ValueError, match="workers=0"):
        mz.lesson("zoo", workers=0)
    with pytest.raises(ValueError, match="set="):
        mz.lesson("zoo", set=["train.epochs=1"])
    assert [row["name"] for row in mz.list_lessons()] == COURSE_LESSONS
