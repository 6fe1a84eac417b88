"""docs/records.md and README's record figures: each one equal to the data file it was read from.

The figures come from long trainings that the suite cannot repeat (scripts/records.py writes
docs/data/records.jsonl; `evaluate --ensemble` writes the ensembles' evaluation files). These
tests pin every table cell and README figure to those files, so a retrained seed or a new
ensemble cannot leave a stale figure behind in the prose.
"""

from __future__ import annotations

import json
import os
import re
import statistics
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA = REPO_ROOT / "docs" / "data"
RECORDS_PAGE = (REPO_ROOT / "docs" / "records.md").read_text(encoding="utf-8")
EXPERIMENTS_PAGE = (REPO_ROOT / "docs" / "record-experiments.md").read_text(encoding="utf-8")
README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
CNN_RECORD_YAML = (REPO_ROOT / "configs" / "cnn_record.yaml").read_text(encoding="utf-8")


def data_lines(name: str) -> list[dict]:
    """The JSON lines of a docs/data file."""
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]


def by_seed(name: str, job: str | None = None) -> dict[int, dict]:
    """The lines of a docs/data file (of one job, if given), by seed: one line per seed."""
    lines = [line for line in data_lines(name) if job is None or line["job"] == job]
    seeds = {line["seed"]: line for line in lines}
    assert len(seeds) == len(lines), f"{name} {job or ''}: a seed appears twice"
    return seeds


def results(job: str) -> dict[int, dict]:
    """The records.jsonl lines of one job, by seed (one line per seed)."""
    return by_seed("records.jsonl", job)


def section(heading: str) -> str:
    """The text under `heading` (a whole heading line) of docs/records.md or docs/record-experiments.md,
    up to the next heading."""
    page = RECORDS_PAGE if f"\n{heading}\n" in RECORDS_PAGE else EXPERIMENTS_PAGE
    start = page.index(f"\n{heading}\n") + len(heading) + 2
    following = re.search(r"\n#{1,3} ", page[start:])
    return page[start:start + following.start()] if following else page[start:]


def table_rows(text: str) -> list[list[str]]:
    """The cells of every table row in `text` after the header and the |---| line."""
    rows = [line for line in text.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]


def percent(fraction: float) -> str:
    return f"{100 * fraction:.2f} %"


def duration(seconds: float) -> str:
    """A training-time cell's start: "1,217 s (20.3 min)"."""
    return f"{seconds:,.0f} s ({seconds / 60:.1f} min)"


def ensemble_report(name: str) -> dict:
    return json.loads((DATA / name).read_text())


def error_count(report: dict) -> int:
    """The test images an evaluation report's model got wrong."""
    return round((1 - report["accuracy"]) * report["num_examples"])


def members_mean(report: dict) -> float:
    """The mean accuracy of an ensemble report's members, each alone."""
    return statistics.mean(member["accuracy"] for member in report["members"])


def errors_cell(report: dict) -> str:
    """A committee's accuracy cell with its error count: "99.73 % (27 errors)"."""
    return f"{percent(report['accuracy'])} ({error_count(report)} errors)"


def ensemble_cell(report: dict) -> str:
    """An ensemble's accuracy cell: "**99.74 %** (26 errors)"."""
    return f"**{percent(report['accuracy'])}** ({error_count(report)} errors)"


RECORD_HEADING = "## The record recipe"
NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}


def recipe_lines() -> dict[int, dict]:
    """The runs of cnn_record as bundled (with weight decay), seeds 1-5, by seed."""
    return by_seed("record-weight-decay.jsonl")


# The two record tables: cnn_record as bundled, and before weight decay (its own runs, committee and TTA report).
RECORD_TABLES = {
    "bundled": (RECORD_HEADING, recipe_lines, "record-weight-decay-ensemble-evaluation.json",
                "record-weight-decay-ensemble-tta-evaluation.json"),
    "before weight decay": ("### The recipe before weight decay: {mean}", lambda: results("record"),
                            "record-ensemble-evaluation.json", "record-ensemble-tta-evaluation.json"),
}


def record_table(name: str) -> tuple[dict[int, dict], dict[str, list[str]], dict, dict]:
    """A record table's runs by seed, its rows by label, and its committee's reports (plain and TTA)."""
    heading, lines_of, report, tta_report = RECORD_TABLES[name]
    lines = lines_of()
    mean_3 = statistics.mean(lines[seed]["test_accuracy"] for seed in (1, 2, 3))
    rows = {row[0]: row for row in table_rows(section(heading.format(mean=percent(mean_3))))}
    return lines, rows, ensemble_report(report), ensemble_report(tta_report)


@pytest.mark.parametrize("name", list(RECORD_TABLES))
def test_record_table_rows_are_the_results_file_lines(name):
    lines, rows, _, _ = record_table(name)
    for seed, line in lines.items():
        _, test, validation, seconds = rows[str(seed)]
        assert test == percent(line["test_accuracy"])
        assert validation == f"{percent(line['best_val_accuracy'])} ({line['best_epoch']})"
        assert seconds.startswith(duration(line["train_seconds"]))
    assert sorted(lines) == [1, 2, 3, 4, 5]
    assert all(line["job"] == "record" and line["config"] == "cnn_record" and line["overrides"] == []
               for line in lines.values())


@pytest.mark.parametrize("name", list(RECORD_TABLES))
def test_record_means_are_the_seeds_means(name):
    lines, rows, _, _ = record_table(name)
    mean_3 = statistics.mean(lines[seed]["test_accuracy"] for seed in (1, 2, 3))
    mean_5 = statistics.mean(line["test_accuracy"] for line in lines.values())
    assert rows["**mean of seeds 1-3**"][1] == f"**{percent(mean_3)}**"
    assert rows["mean of seeds 1-5"][1] == percent(mean_5)
    # The bar: a mean of at least 99.65 %, no seed below 99.6 %.
    assert mean_3 >= 0.9965 and min(lines[seed]["test_accuracy"] for seed in (1, 2, 3)) >= 0.996


@pytest.mark.parametrize("name", list(RECORD_TABLES))
def test_record_ensemble_rows_are_the_evaluation_files(name):
    lines, rows, plain, tta = record_table(name)
    # The evaluated members are the five seeds of the table, best.keras each.
    for report in (plain, tta):
        assert [member["accuracy"] for member in report["members"]] == [lines[s]["test_accuracy"] for s in range(1, 6)]
        # (a TTA report names them from the committee's folder: record-ensemble/../runs/...)
        assert all(os.path.normpath(member["model"]).endswith(f"record-seed{seed}/best.keras")
                   for seed, member in zip(range(1, 6), report["members"]))
    hours = sum(line["train_seconds"] for line in lines.values()) / 3600
    assert rows["**ensemble of seeds 1-5** (`evaluate --ensemble`)"][1:] == [
        ensemble_cell(plain), "", f"the members' times added: {hours:.1f} hours"]
    assert tta["tta"]["views"] == 8 and tta["accuracy"] < plain["accuracy"]  # "makes it worse"
    assert rows["the ensemble with `--tta 8`"][1] == percent(tta["accuracy"])


def test_the_bundled_recipe_is_the_config_its_runs_trained():
    """cnn_record.yaml holds the weight decay its runs had (commit c787b83's config), and its header their figures."""
    config = yaml.safe_load(CNN_RECORD_YAML)
    assert config["train"]["optimizer"]["weight_decay"] == 0.05
    lines = recipe_lines()
    assert {line["commit"] for line in lines.values()} == {"c787b83"}  # whose cnn_record has weight decay 0.05
    assert all((line["cpu_family"], line["cpu_model"], line["precision"]) == ("26", "2", "mixed_bfloat16")
               for line in lines.values())
    mean_3 = statistics.mean(lines[seed]["test_accuracy"] for seed in (1, 2, 3))
    report = ensemble_report("record-weight-decay-ensemble-evaluation.json")
    header = " ".join(line.lstrip("# ") for line in CNN_RECORD_YAML.splitlines()[:3])
    assert (f"The record recipe: {percent(mean_3)} test accuracy from one network (mean of 3 seeds) and "
            f"{percent(report['accuracy'])} from a committee of five seeds") in header
    assert f"reaches **{percent(mean_3)}**" in README
    prose = " ".join(README.split())
    accuracies = [line["test_accuracy"] for line in lines.values()]
    assert f"seeds 1-5 score {100 * min(accuracies):.2f}-{percent(max(accuracies))})" in prose
    assert f"The committee of its seeds 1-5 scores **{percent(report['accuracy'])}** as an ensemble" in prose
    record_text = " ".join(section(RECORD_HEADING).split())
    assert f"The committee of seeds 1-5 makes {error_count(report)} test errors: {percent(report['accuracy'])}, past " \
           "99.75 %" in record_text and report["accuracy"] >= 0.9975
    without = by_seed("record-zen5.jsonl")  # the same CPU, before weight decay
    assert (f"seeds 2 and 3 trained without it in {without[2]['train_seconds']:,.0f} s and "
            f"{without[3]['train_seconds']:,.0f} s") in record_text


def assert_committee_table(rows: dict[str, list[str]], report: dict, lines: dict[int, dict], seeds: range,
                           models: list[str], epochs: int = 30) -> None:
    """A committee section's table: one row per member (its test accuracy as the ensemble report lists it,
    its training time from its results line), the members' mean and the committee's cell."""
    members = report["members"]
    assert [member["model"] for member in members] == models
    assert all(line.get("note") is None and line["epochs"] == epochs for line in lines.values())
    for seed, member in zip(seeds, members):
        row = rows[str(seed)]
        assert row[1] == percent(member["accuracy"])
        assert row[-1].startswith(duration(lines[seed]["train_seconds"]))
    assert rows["mean"][1] == percent(members_mean(report))
    assert rows[f"**ensemble of seeds {seeds[0]}-{seeds[-1]}**"][1] == ensemble_cell(report)


def test_all_data_table_is_the_ensemble_report_and_the_results_file():
    """The all-data section: each member's last.keras figure, its time, the mean and the committee."""
    lines = results("all_data")
    report = ensemble_report("record-all-ensemble-evaluation.json")
    rows = {row[0]: row for row in table_rows(section(f"## The ensemble trained on all 60,000 images: {percent(report['accuracy'])}"))}
    # The members are the five seeds' last epochs: without a hold-out nothing else may choose.
    seeds = range(1, 6)
    assert_committee_table(rows, report, lines, seeds, [f"runs/record-all-seed{s}/last.keras" for s in seeds])


def test_readme_gives_every_measured_seed_and_committee_of_the_bundled_recipe():
    """README's spread before weight decay: every seed of cnn_record then (one validation split or not), every committee."""
    lines = [line for name in ("records.jsonl", "record-zen5.jsonl", "record-committee-zen5.jsonl", "record-avx2.jsonl")
             for line in data_lines(name)
             if line["job"] in ("record", "record_committee") and set(line["overrides"]) <= {"data.validation_seed=0"}]
    accuracies = [line["test_accuracy"] for line in lines]
    prose = " ".join(README.split())
    assert (f"before weight decay, {len(lines)} seeds measured on three CPU kinds scored {100 * min(accuracies):.2f}-"
            f"{percent(max(accuracies))}, mean {percent(statistics.mean(accuracies))}") in prose
    committees = [ensemble_report(name)["accuracy"] for name in (
        "record-ensemble-evaluation.json", "record-committee-ensemble-evaluation.json",
        "record-committee-zen5-ensemble-evaluation.json")]
    assert (f"committees of five seeds {100 * min(committees):.2f}-{percent(max(committees))} (three committees of "
            f"the recipe, on two CPU kinds)") in prose


ABLATION = {
    "`cnn_record`": "record",
    "without augmentation": "no_augmentation",
    "without batch norm": "no_batch_norm",
    "without weight averaging": "no_ema",
}


def test_ablation_rows_are_the_results_file_lines():
    rows = table_rows(section("### Ablation: each ingredient removed, same seeds"))
    assert len(rows) == len(ABLATION)
    for row in rows:
        job = next(job for label, job in ABLATION.items() if row[0].startswith(label))
        by_seed = results(job)
        assert row[1:4] == [percent(by_seed[seed]["test_accuracy"]) for seed in (1, 2, 3)], row[0]
        mean = percent(statistics.mean(by_seed[seed]["test_accuracy"] for seed in (1, 2, 3)))
        assert row[4].strip("*") == mean, row[0]


def test_speed_table_rows_are_their_runs():
    """The speed recipe's table: each row's cells from its CPU's run lines, and each row meets 99 % in 30 s."""
    lines = data_lines("speed-recipe-xeon.jsonl") + data_lines("speed-recipe-epyc.jsonl")
    table = table_rows(section("## The speed recipe"))
    # (the CPU, its family number, has AMX, has bf16, oneDNN's cap) -> the row's label, in the table's
    # order. The family tells a Zen 5 (26) from a Zen 4; lines from before records.py wrote it have none.
    labels = {("Intel(R) Xeon(R) Processor", None, True, True, None): "Intel Xeon with AMX and AVX512-BF16",
              ("Intel(R) Xeon(R) Processor", None, True, True, "AVX2"): "the same, oneDNN held to AVX2",
              ("AMD EPYC", "26", False, True, None): "AMD EPYC (Zen 5) with AVX512-BF16, no AMX",
              ("AMD EPYC", "26", False, True, "AVX2"): "the same, oneDNN held to AVX2",
              ("AMD EPYC", None, False, True, None): "AMD EPYC (Zen 4) with AVX512-BF16, no AMX",
              ("AMD EPYC", None, False, True, "AVX2"): "the same, oneDNN held to AVX2",
              ("AMD EPYC", None, False, False, None): "AMD EPYC (Zen 3) with AVX2 only"}
    assert [row[0] for row in table] == list(labels.values())
    assert len(lines) == 3 * len(labels)
    for (cpu, family, amx, bf16, cap), row in zip(labels, table):
        runs = sorted((line for line in lines if line["cpu"] == cpu and line.get("cpu_family") == family
                       and ("amx_bf16" in line["cpu_flags"]) == amx and ("avx512_bf16" in line["cpu_flags"]) == bf16
                       and line["onednn_max_cpu_isa"] == cap),
                      key=lambda line: line["seed"])
        assert [line["seed"] for line in runs] == [1, 2, 3], row[0]
        assert all(line["job"] == "fast" and "avx2" in line["cpu_flags"] for line in runs)
        accuracies = [line["test_accuracy"] for line in runs]
        assert row[1:4] == [percent(accuracy) for accuracy in accuracies], row[0]
        assert row[4] == f"**{percent(statistics.mean(accuracies))}**", row[0]
        assert row[5] == ", ".join(f"{line['train_seconds']:.1f} s" for line in runs), row[0]
        assert max(line["train_seconds"] for line in runs) <= 30 and statistics.mean(accuracies) >= 0.99, row[0]


def paragraph(start: str) -> str:
    """The paragraph of docs/records.md or docs/record-experiments.md that begins with `start`, its line
    breaks as spaces."""
    page = RECORDS_PAGE if f"\n{start}" in RECORDS_PAGE else EXPERIMENTS_PAGE
    text = page[page.index(f"\n{start}") + 1:]
    return " ".join(text[:text.index("\n\n")].split())


def test_avx2_only_record_seed_is_its_run():
    """The record recipe on an AVX2-only CPU, and the float32 against bf16 comparison: each figure from its line."""
    (line,) = data_lines("record-avx2.jsonl")
    assert (line["job"], line["seed"], line["cpu_flags"], line["precision"]) == ("record", 1, ["avx2"], "float32")
    assert line["onednn_max_cpu_isa"] is None  # a real AVX2-only CPU, not one held to AVX2
    assert (f"seed 1 on 2 cores of an AMD EPYC (Zen 3) with AVX2 only scores {percent(line['test_accuracy'])} "
            f"(best validation {percent(line['best_val_accuracy'])}, epoch {line['best_epoch']}) in "
            f"{duration(line['train_seconds'])} of training") in paragraph("**On a CPU without native bf16**")
    xeon_float32, bf16 = results("float32")[1], results("record")[1]
    text = paragraph("Does bf16 keep the accuracy?")
    assert (f"seed 1 in float32 scored {percent(line['test_accuracy'])} on the Zen 3 EPYC and "
            f"{percent(xeon_float32['test_accuracy'])} on the Xeon") in text
    assert (f"best validation {percent(xeon_float32['best_val_accuracy'])}, epoch {xeon_float32['best_epoch']}), "
            f"against {percent(bf16['test_accuracy'])} in bf16") in text
    # The recipe as bundled: seed 1 in float32 against its bf16 run on the same CPU kind.
    (now,) = data_lines("record-float32.jsonl")
    now_bf16 = recipe_lines()[1]
    assert (now["job"], now["seed"], now["overrides"], now["precision"]) == \
        ("record_float32", 1, ["train.precision=float32"], "float32")
    assert (now["cpu_family"], now["cpu_model"]) == (now_bf16["cpu_family"], now_bf16["cpu_model"])
    def figures(run):
        return (f"{percent(run['test_accuracy'])} (best validation {percent(run['best_val_accuracy'])}, "
                f"epoch {run['best_epoch']})")

    assert f"seed 1 in float32 scores {figures(now)}, against {figures(now_bf16)} in bf16" in text
    assert f"({now['train_seconds']:,.0f} s of training in all" in text
    config_comments = " ".join(line.strip().lstrip("# ") for line in CNN_RECORD_YAML.splitlines())
    assert (f"seed 1 scored {percent(now_bf16['test_accuracy'])} in bf16, {percent(now['test_accuracy'])} "
            "in float32") in config_comments


def test_label_smoothing_committee_is_the_ensemble_report_and_the_results_file():
    """The label-smoothing section: five fresh seeds' best.keras, their times, the mean and the committee."""
    lines = results("label_smoothing")
    report = ensemble_report("record-label-smoothing-ensemble-evaluation.json")
    text = section(f"## A committee with label smoothing: {percent(report['accuracy'])}")
    rows = {row[0]: row for row in table_rows(text)}
    # Seeds never used for the recipe's own figures, each answering with its best-validation checkpoint.
    seeds = range(6, 11)
    committee = {seed: lines[seed] for seed in seeds}
    assert_committee_table(rows, report, committee, seeds, [f"runs/label_smoothing-seed{s}/best.keras" for s in seeds])
    for seed, line in committee.items():
        assert line["overrides"][-1] == "train.loss.label_smoothing=0.1"
        _, test, validation, _ = rows[str(seed)]
        assert test == percent(line["test_accuracy"])
        assert validation == f"{percent(line['best_val_accuracy'])} ({line['best_epoch']})"
    prose = " ".join(text.split())
    assert f"gains {100 * (report['accuracy'] - members_mean(report)):.2f} points" in prose
    assert f"makes {error_count(report)} test errors" in prose


def test_label_smoothing_on_the_recipes_seeds_is_their_runs():
    """Label smoothing on seeds 1-3 against the recipe's seeds 1-3: every figure from the results file."""
    smoothed, record = results("label_smoothing"), results("record")
    text = paragraph("Nor is there a sign that it helps a single network.")
    seeds = (1, 2, 3)
    with_it = " / ".join(percent(smoothed[seed]["test_accuracy"]) for seed in seeds)
    without = " / ".join(percent(record[seed]["test_accuracy"]) for seed in seeds)
    mean_with = statistics.mean(smoothed[seed]["test_accuracy"] for seed in seeds)
    mean_without = statistics.mean(record[seed]["test_accuracy"] for seed in seeds)
    assert f"{with_it}, mean {percent(mean_with)}, against {without} (mean {percent(mean_without)})" in text
    assert all(smoothed[seed]["test_accuracy"] < record[seed]["test_accuracy"] for seed in seeds)  # "scored lower each time"
    times = [f"{smoothed[seed]['train_seconds']:,.0f} s" for seed in seeds]
    assert f"{times[0]}, {times[1]} and {times[2]} of training" in text


def test_fresh_install_retraining_is_its_runs():
    """The recipe's seeds 1-3 retrained on a Zen 5: each cell, the mean in the heading, no seed below 99.6 %."""
    lines = sorted(data_lines("record-zen5.jsonl"), key=lambda line: line["seed"])
    assert [(line["job"], line["seed"], line["overrides"]) for line in lines] == [("record", 1, []), ("record", 2, []),
                                                                                  ("record", 3, [])]
    assert all(line["precision"] == "mixed_bfloat16" and "avx512_bf16" in line["cpu_flags"] for line in lines)
    mean = statistics.mean(line["test_accuracy"] for line in lines)
    rows = {row[0]: row for row in table_rows(section(f"### The recipe before weight decay, retrained from a fresh install: "
                                                      f"{percent(mean)}"))}
    for line in lines:
        _, test, validation, seconds = rows[str(line["seed"])]
        assert test == percent(line["test_accuracy"])
        assert validation == f"{percent(line['best_val_accuracy'])} ({line['best_epoch']})"
        assert seconds.startswith(duration(line["train_seconds"]))
    assert rows["**mean**"][1] == f"**{percent(mean)}**"
    assert min(line["test_accuracy"] for line in lines) >= 0.996
    assert f"their mean came out at {percent(mean)} again" in paragraph("mnist-zoo trains batch normalisation")


def test_speed_recipe_figures_in_readme_and_prose_are_the_runs():
    """README's times and means for the speed recipe, and the prose's claims of equal figures, from the runs."""
    lines = data_lines("speed-recipe-xeon.jsonl") + data_lines("speed-recipe-epyc.jsonl")
    fastest = [line for line in lines if line["onednn_max_cpu_isa"] is None
               and ("amx_bf16" in line["cpu_flags"] or line.get("cpu_family") == "26")]
    seconds = [line["train_seconds"] for line in fastest]
    assert f"passes 99 % in {min(seconds):.0f}-{max(seconds):.0f} s of training on a Zen 5 EPYC or a Xeon" in README
    assert max(line["train_seconds"] for line in lines) < 20 and "in under 20 s on every CPU measured" in README
    by_row: dict[tuple, list[dict]] = {}
    for line in lines:
        key = (line["cpu"], line.get("cpu_family"), tuple(line["cpu_flags"]), line["onednn_max_cpu_isa"])
        by_row.setdefault(key, []).append(line)
    means = [statistics.mean(line["test_accuracy"] for line in row) for row in by_row.values()]
    assert f"(means of 3 seeds of {percent(min(means))[:-2]}-{percent(max(means))}" in README

    def figures(row: list[dict]) -> list[float]:
        return [line["test_accuracy"] for line in sorted(row, key=lambda line: line["seed"])]
    native = {figures(row) == figures(fastest[:3]) for key, row in by_row.items() if key[3] is None and "avx512f" in key[2]
              and (key[1] == "26" or "amx_bf16" in key[2])}
    held = [figures(row) for key, row in by_row.items() if key[3] == "AVX2" or key[2] == ("avx2",)]
    text = paragraph("Test accuracy of `best.keras` (the best validation epoch; here always the second)")
    assert native == {True} and "The Xeon and the Zen 5 compute the same three test figures" in text
    zen3 = figures(by_row[("AMD EPYC", None, ("avx2",), None)])
    assert sum(row == zen3 for row in held) == 3 and "held to AVX2, both compute the Zen 3's" in text
    assert f"({', '.join(percent(value) for value in zen3)})" in text
    first_pass = sorted(data_lines("speed-recipe-zen5-first-pass.jsonl"), key=lambda line: line["seed"])
    assert [line["test_accuracy"] for line in first_pass] == figures(fastest[3:])
    assert ("took " + ", ".join(f"{line['train_seconds']} s" for line in first_pass[:-1])
            + f" and {first_pass[-1]['train_seconds']} s") in text


def test_fresh_install_retraining_against_the_first_seeds_and_label_smoothing():
    """The retrained seeds' shifts from the recipe's first seeds 1-3, and label smoothing against them."""
    retrained = {line["seed"]: line["test_accuracy"] for line in data_lines("record-zen5.jsonl")}
    first = {seed: line["test_accuracy"] for seed, line in results("record").items() if seed <= 3}
    assert percent(statistics.mean(first.values())) == percent(statistics.mean(retrained.values()))
    shifts = ", ".join(f"{abs(retrained[seed] - first[seed]) * 100:.2f}" for seed in (1, 2)) + " and " + \
        f"{abs(retrained[3] - first[3]) * 100:.2f}"
    assert f"seeds 1-3 moved by {shifts} points" in paragraph("mnist-zoo trains batch normalisation")
    smoothed = {seed: line["test_accuracy"] for seed, line in results("label_smoothing").items() if seed <= 3}
    assert smoothed[1] < retrained[1] and smoothed[2] < retrained[2] and smoothed[3] == retrained[3]
    assert "lower on seeds 1 and 2 and ties on seed 3" in paragraph("Nor is there a sign that it helps a single network.")


def test_longer_schedule_pilot_and_committee_are_their_runs():
    """The 45-epoch section: the validation pilot that chose it, then five fresh seeds and their one committee."""
    lines = results("long")
    assert sorted(lines) == [1, 2, 11, 12, 13, 14, 15]
    assert all(line["overrides"] == ["train.epochs=45", "train.schedule.decay_rate=0.932"] and line["epochs"] == 45
               for line in lines.values())
    report = ensemble_report("record-long-ensemble-evaluation.json")
    text = section(f"## A committee of longer-trained networks: {percent(report['accuracy'])}")
    committee_table = text.index("| seed | test accuracy")
    rows = {row[0]: row for row in table_rows(text[:committee_table])}
    # The pilot: validation against the recipe retrained on the same machine, the only figure the choice read.
    retrained = by_seed("record-zen5.jsonl")
    for seed in (1, 2):
        assert rows[str(seed)][1:] == [f"{percent(retrained[seed]['best_val_accuracy'])} ({retrained[seed]['best_epoch']})",
                                       f"{percent(lines[seed]['best_val_accuracy'])} ({lines[seed]['best_epoch']})",
                                       percent(lines[seed]["test_accuracy"])]
    validation = [statistics.mean(runs[seed]["best_val_accuracy"] for seed in (1, 2)) for runs in (retrained, lines)]
    assert validation[1] > validation[0]  # the rule that took the longer schedule
    tests = [statistics.mean(runs[seed]["test_accuracy"] for seed in (1, 2)) for runs in (retrained, lines)]
    assert rows["mean"][1:] == [percent(validation[0]), percent(validation[1]), percent(tests[1])]
    prose = " ".join(text.split())
    assert f"score {percent(tests[1])} on average, against {percent(tests[0])} for the same seeds with 30 epochs" in prose
    assert f"runs took {lines[1]['train_seconds']:,.0f} s and {lines[2]['train_seconds']:,.0f} s of training" in prose
    # The committee: seeds never used before, each answering with its best-validation checkpoint.
    seeds = range(11, 16)
    committee = {seed: lines[seed] for seed in seeds}
    committee_rows = {row[0]: row for row in table_rows(text[committee_table:])}
    assert_committee_table(committee_rows, report, committee, seeds, [f"runs/long-seed{s}/best.keras" for s in seeds],
                           epochs=45)
    for seed, line in committee.items():
        _, test, best_validation, _ = committee_rows[str(seed)]
        assert test == percent(line["test_accuracy"])
        assert best_validation == f"{percent(line['best_val_accuracy'])} ({line['best_epoch']})"


def test_the_committees_of_five_are_summed_up_by_their_reports():
    """The conclusions and the record section's sentence: ranges and counts from the reports."""
    reports = {name: ensemble_report(f"record-{file}ensemble-evaluation.json")
               for name, file in (("recipe", ""), ("all_data", "all-"), ("label_smoothing", "label-smoothing-"),
                                  ("long", "long-"), ("one_split", "committee-"))}
    def span(accuracies):
        return "-".join(f"{100 * accuracy:.2f}" for accuracy in (min(accuracies), max(accuracies)))

    retrained = ensemble_report("record-committee-zen5-ensemble-evaluation.json")  # seeds 21-25 on a Zen 5
    six = [report["accuracy"] for report in reports.values()] + [retrained["accuracy"]]
    record_text = " ".join(section(RECORD_HEADING).split())
    assert (f"for 45 epochs or on one validation split, scored {span(six)} % (mean "
            f"{percent(statistics.mean(six))}); one with weight decay scored") in record_text
    one_split = " ".join(section(f"## A committee on one validation split: {percent(reports['one_split']['accuracy'])}")
                         .split())
    assert f"Five committees of five, {span([report['accuracy'] for report in reports.values()])} %." in one_split
    mean = statistics.mean(report["accuracy"] for report in reports.values())
    assert f"committees of five of this network average {percent(mean)}" in one_split
    assert (f"with these seeds retrained on a Zen 5 ({percent(retrained['accuracy'])}, [below]") in one_split
    assert f"six committees average {percent(statistics.mean(six))}" in one_split
    assert percent(reports["one_split"]["accuracy"]) == percent(reports["long"]["accuracy"])  # "as the 45-epoch one did"
    long = reports["long"]
    text = " ".join(section(f"## A committee of longer-trained networks: {percent(long['accuracy'])}").split())
    assert (f"the five score {percent(members_mean(long))} on average "
            f"(the recipe's seeds 1-5: {percent(members_mean(reports['recipe']))})") in text
    errors = {name: error_count(report) for name, report in reports.items()}
    assert errors["long"] - errors["recipe"] == 1 == errors["long"] - errors["all_data"]
    assert f"makes {errors['long']} test errors, one more than the recipe's committees of five" in text
    four = [reports[name]["accuracy"] for name in ("recipe", "all_data", "label_smoothing", "long")]
    assert f"trained four ways, land at {100 * min(four):.2f}-{100 * max(four):.2f} %" in text
    # The label-smoothing section's comparison with every hard-target committee on the page.
    hard = [report for name, report in reports.items() if name != "label_smoothing"] + [
        retrained, ensemble_report("weight-decay-committee-ensemble-evaluation.json")]
    gains = sorted(f"{100 * (report['accuracy'] - members_mean(report)):.2f}" for report in hard)
    counts = sorted(map(error_count, hard))
    smoothing = " ".join(section("## A committee with label smoothing: 99.70 %").split())
    smoothed_gain = f"{100 * (reports['label_smoothing']['accuracy'] - members_mean(reports['label_smoothing'])):.2f}"
    assert len(hard) == 6 and f"gains {smoothed_gain} points over its members' mean, against " \
        f"{gains[0]}-{gains[-1]} for the six committees with hard targets on this page" in smoothing
    assert f"makes {errors['label_smoothing']} test errors against their {counts[0]}-{counts[-1]}" in smoothing
    # The members' chosen epochs, against the 30-epoch recipe's.
    long_epochs = {seed: line["best_epoch"] for seed, line in results("long").items() if seed >= 11}
    record_epochs = [line["best_epoch"] for line in results("record").values()]
    assert [seed for seed, epoch in long_epochs.items() if epoch > 30] == [14]
    assert sorted(seed for seed, epoch in long_epochs.items() if epoch == min(long_epochs.values())) == [11, 15]
    assert f"seeds 11 and 15 kept epoch {min(long_epochs.values())}, and only seed 14's best validation came after epoch 30 ({long_epochs[14]}); the 30-epoch recipe's seeds kept epochs {min(record_epochs)}-{max(record_epochs)}" in text


def test_elastic_pilot_table_is_its_runs_and_the_rule_that_refused_it():
    elastic, xeon = results("elastic"), results("record")
    zen5 = by_seed("record-zen5.jsonl")
    text = section("## An elastic distortion: tried on validation, not taken")
    rows = table_rows(text)
    assert [row[0] for row in rows] == ["1", "2", "mean"]
    for row, seed in zip(rows, (1, 2)):
        line = elastic[seed]
        assert line["overrides"] == ["data.augmentation.elastic_alpha=36", "data.augmentation.elastic_sigma=6"]
        assert row[1] == f"{percent(xeon[seed]['best_val_accuracy'])}, {percent(zen5[seed]['best_val_accuracy'])}"
        assert row[2] == f"{percent(line['best_val_accuracy'])} ({line['best_epoch']})"
        assert row[3] == percent(line["test_accuracy"])

    def mean(lines, key):
        return statistics.mean(lines[seed][key] for seed in (1, 2))

    bar = mean(xeon, "best_val_accuracy")
    assert rows[2][1:] == [f"{percent(bar)}, {percent(mean(zen5, 'best_val_accuracy'))}",
                           percent(mean(elastic, "best_val_accuracy")), percent(mean(elastic, "test_accuracy"))]
    assert bar > mean(zen5, "best_val_accuracy")  # "the higher of the two bars"
    assert mean(elastic, "best_val_accuracy") <= bar  # the rule: not taken
    assert all(elastic[seed]["best_val_accuracy"] < min(xeon[seed]["best_val_accuracy"], zen5[seed]["best_val_accuracy"])
               for seed in (1, 2))  # "both seeds validated worse ... on either CPU"
    prose = " ".join(text.split())
    def fine(fraction):  # three decimals: the means of two seeds end in 5
        return f"{100 * fraction:.3f} %"

    assert (f"{fine(mean(elastic, 'test_accuracy'))} on average, against {fine(mean(xeon, 'test_accuracy'))} "
            f"(AMX Xeon) and {fine(mean(zen5, 'test_accuracy'))} (Zen 5)") in prose
    times = " and ".join(f"{elastic[seed]['train_seconds']:,.0f} s" for seed in (1, 2))
    assert f"{times} of training" in prose
    assert all((elastic[seed]["cpu_family"], elastic[seed]["cpu_model"]) == ("6", "167") for seed in (1, 2))


def test_the_committee_on_one_split_is_its_runs_and_its_two_reports():
    lines = results("record_committee")
    assert sorted(lines) == [21, 22, 23, 24, 25]
    assert all(line["overrides"] == ["data.validation_seed=0"] and line["config"] == "cnn_record"
               for line in lines.values())
    validation = ensemble_report("record-committee-validation-evaluation.json")
    test = ensemble_report("record-committee-ensemble-evaluation.json")
    assert (validation["split"], validation["num_examples"], test["split"], test["num_examples"]) == \
        ("validation", 5000, "test", 10000)
    names = [f"runs/record_committee-seed{seed}/best.keras" for seed in lines]
    assert [member["model"] for member in validation["members"]] == names == [m["model"] for m in test["members"]]
    text = section(f"## A committee on one validation split: {percent(test['accuracy'])}")
    rows = {row[0]: row for row in table_rows(text)}
    for seed, line in lines.items():
        assert rows[str(seed)][1:] == [f"{percent(line['best_val_accuracy'])} ({line['best_epoch']})",
                                       percent(line["test_accuracy"]), duration(line["train_seconds"])]
    for member, line in zip(validation["members"], lines.values()):  # the report re-scores each run's choice
        assert abs(member["accuracy"] - line["best_val_accuracy"]) < 1e-6
    assert rows["mean"][1:3] == [percent(members_mean(validation)), percent(members_mean(test))]
    committee_row = rows["**committee of seeds 21-25**"]
    assert committee_row[1:3] == [ensemble_cell(validation), ensemble_cell(test)]
    hours = sum(line["train_seconds"] for line in lines.values()) / 3600
    assert committee_row[3] == f"the members' times added: {hours:.1f} hours"
    prose = " ".join(text.split())
    member_errors = {name: sorted(round((1 - m["accuracy"]) * report["num_examples"]) for m in report["members"])
                     for name, report in (("validation", validation), ("test", test))}
    assert (f"It makes {error_count(validation)} validation errors against its members' "
            f"{member_errors['validation'][0]}-{member_errors['validation'][-1]} and {error_count(test)} test errors "
            f"against their {member_errors['test'][0]}-{member_errors['test'][-1]}") in prose
    assert error_count(validation) == member_errors["validation"][0] and error_count(test) == member_errors["test"][0]
    (gain,) = {f"{100 * (report['accuracy'] - members_mean(report)):.2f}" for report in (validation, test)}
    assert f"gains {gain} points over the mean of its members on either set" in prose
    recipe = results("record")
    recipe_validation = [line["best_val_accuracy"] for line in recipe.values()]
    def span(values):
        return f"{100 * min(values):.2f}-{percent(max(values))}"

    assert (f"the members validate at {span([member['accuracy'] for member in validation['members']])} (mean "
            f"{percent(members_mean(validation))}), where the recipe's seeds 1-5 validate at "
            f"{span(recipe_validation)} (mean "
            f"{percent(statistics.mean(recipe_validation))}) on their own splits, yet the two groups score alike on "
            f"the test set (means {percent(members_mean(test))} and "
            f"{percent(statistics.mean(line['test_accuracy'] for line in recipe.values()))})") in prose
    assert f"has to beat {percent(validation['accuracy'])} on this split" in prose
    zen5 = ensemble_report("record-committee-zen5-validation-evaluation.json")
    assert f"{percent(zen5['accuracy'])} on a Zen 5 (compare like with like" in prose
    assert all((line["cpu_family"], line["cpu_model"]) == ("6", "167") for line in lines.values())


def test_the_weight_decay_committee_is_its_runs_its_reports_and_the_rule_that_refused_it():
    lines, baseline = results("weight_decay"), ensemble_report("record-committee-validation-evaluation.json")
    assert sorted(lines) == [31, 32, 33, 34, 35]
    assert all(line["overrides"] == ["train.optimizer.weight_decay=0.05", "data.validation_seed=0"]
               and line["config"] == "cnn_record" and (line["cpu_family"], line["cpu_model"]) == ("26", "2")
               for line in lines.values())
    validation = ensemble_report("weight-decay-committee-validation-evaluation.json")
    test = ensemble_report("weight-decay-committee-ensemble-evaluation.json")
    names = [f"runs/weight_decay-seed{seed}/best.keras" for seed in lines]
    assert [m["model"] for m in validation["members"]] == names == [m["model"] for m in test["members"]]
    assert (validation["split"], validation["num_examples"], test["split"], test["num_examples"]) == \
        ("validation", 5000, "test", 10000)
    assert validation["accuracy"] <= baseline["accuracy"]  # the rule: not taken
    heading = f"## Weight decay for committee members: refused on validation, {percent(test['accuracy'])} on the test set"
    text = section(heading)
    rows = {row[0]: row for row in table_rows(text)}
    for seed, line in lines.items():
        assert rows[str(seed)][1:3] == [f"{percent(line['best_val_accuracy'])} ({line['best_epoch']})",
                                        percent(line["test_accuracy"])]
        assert rows[str(seed)][3].startswith(duration(line["train_seconds"]))
    for member, line in zip(validation["members"], lines.values()):
        assert abs(member["accuracy"] - line["best_val_accuracy"]) < 1e-6
    assert rows["mean"][1:3] == [percent(members_mean(validation)), percent(members_mean(test))]
    hours = sum(line["train_seconds"] for line in lines.values()) / 3600
    assert rows["**committee of seeds 31-35**"][1:] == [ensemble_cell(validation), ensemble_cell(test),
                                                       f"the members' times added: {hours:.1f} hours"]
    prose = " ".join(text.split())
    assert (f"The committee made {error_count(validation)} validation errors, three more than the baseline's "
            f"{error_count(baseline)}") in prose and error_count(validation) - error_count(baseline) == 3
    def span(report):
        accuracies = [member["accuracy"] for member in report["members"]]
        return f"{100 * min(accuracies):.2f}-{percent(max(accuracies))}, mean {percent(members_mean(report))}"

    assert f"(its members {span(validation)}, against {span(baseline)})" in prose
    one_split_test = ensemble_report("record-committee-ensemble-evaluation.json")
    assert error_count(one_split_test) - error_count(test) == 3  # "three better on 10,000 test images"
    others = [ensemble_report(f"record-{name}ensemble-evaluation.json")["accuracy"]
              for name in ("", "all-", "label-smoothing-", "long-", "committee-")]
    assert test["accuracy"] > max(others)  # "the highest committee on this page"
    assert f"**{percent(test['accuracy'])}** ({error_count(test)} errors), from members no better alone " \
           f"(mean {percent(members_mean(test))}, as the recipe's seeds 1-5)" in prose
    recipe_mean = statistics.mean(line["test_accuracy"] for line in results("record").values())
    assert percent(recipe_mean) == percent(members_mean(test))
    record_text = " ".join(section(RECORD_HEADING).split())
    assert f"one with weight decay scored {percent(test['accuracy'])} on the test set, but the validation " \
           "split had refused it" in record_text


def test_the_one_split_baseline_retrained_on_the_zen5_is_its_runs_and_reports():
    lines = {line["seed"]: line for line in data_lines("record-committee-zen5.jsonl")}
    assert sorted(lines) == [21, 22, 23, 24, 25]
    assert all(line["job"] == "record_committee" and line["overrides"] == ["data.validation_seed=0"]
               and (line["cpu_family"], line["cpu_model"]) == ("26", "2") for line in lines.values())
    assert {line["commit"] for line in lines.values()} == {line["commit"] for line in results("weight_decay").values()}
    committees = {
        "the recipe, seeds 21-25, AMX Xeon": ("record-committee-validation-evaluation.json",
                                              "record-committee-ensemble-evaluation.json"),
        "the recipe, seeds 21-25, Zen 5": ("record-committee-zen5-validation-evaluation.json",
                                           "record-committee-zen5-ensemble-evaluation.json"),
        "with weight decay, seeds 31-35, Zen 5": ("weight-decay-committee-validation-evaluation.json",
                                                  "weight-decay-committee-ensemble-evaluation.json"),
    }
    reports = {name: tuple(map(ensemble_report, files)) for name, files in committees.items()}
    validation, test = reports["the recipe, seeds 21-25, Zen 5"]
    for member, seed in zip(validation["members"], lines):
        assert member["model"] == f"runs/record_committee-seed{seed}/best.keras"
        assert abs(member["accuracy"] - lines[seed]["best_val_accuracy"]) < 1e-6
    heading = f"## Weight decay for committee members: refused on validation, {percent(reports['with weight decay, seeds 31-35, Zen 5'][1]['accuracy'])} on the test set"
    text = section(heading)
    rows = {row[0]: row[1:] for row in table_rows(text.split("**The baseline retrained on the same CPU.**")[1])}
    for name, (validation, test) in reports.items():
        assert rows[name] == [percent(members_mean(validation)), errors_cell(validation), percent(members_mean(test)),
                              errors_cell(test)]
    xeon, zen5, decay = (reports[name] for name in committees)
    prose = " ".join(text.split())
    assert f"score {100 * (xeon[1]['accuracy'] - zen5[1]['accuracy']):.2f} points lower" in prose
    assert f"({error_count(zen5[1])} test errors against {error_count(xeon[1])})" in prose
    assert error_count(zen5[0]) == error_count(decay[0]) and percent(members_mean(zen5[0])) == \
        percent(members_mean(decay[0]))  # "ties the recipe on validation"
    assert f"({error_count(decay[0])} errors each, members' mean {percent(members_mean(decay[0]))} each)" in prose
    assert error_count(zen5[1]) - error_count(decay[1]) == 8  # "by eight errors"
    assert f"{100 * (members_mean(decay[1]) - members_mean(zen5[1])):.2f} points better on average" in prose


def test_the_experiments_page_table_is_every_committees_reports():
    """record-experiments.md's index: each committee's validation and test cells from its reports."""
    committees = {  # row label's text -> (test report, validation report or None, seeds)
        "the recipe before weight decay": ("record-ensemble-evaluation.json", None, "1-5"),
        "trained on all 60,000 images": ("record-all-ensemble-evaluation.json", None, "1-5"),
        "label smoothing 0.1": ("record-label-smoothing-ensemble-evaluation.json", None, "6-10"),
        "45 epochs": ("record-long-ensemble-evaluation.json", None, "11-15"),
        "the recipe on one split": ("record-committee-ensemble-evaluation.json",
                                    "record-committee-validation-evaluation.json", "21-25"),
        "the same, retrained": ("record-committee-zen5-ensemble-evaluation.json",
                                "record-committee-zen5-validation-evaluation.json", "21-25"),
        "weight decay 0.05": ("weight-decay-committee-ensemble-evaluation.json",
                              "weight-decay-committee-validation-evaluation.json", "31-35"),
        "the recipe, 10,000 held out": ("trial-recipe-ensemble-evaluation.json",
                                        "trial-recipe-validation-evaluation.json", "41-45"),
        "weight decay 0.05, 10,000 held out": ("trial-weight-decay-ensemble-evaluation.json",
                                               "trial-weight-decay-validation-evaluation.json", "41-45"),
        "the recipe with weight decay": ("record-weight-decay-ensemble-evaluation.json", None, "1-5"),
    }
    table = EXPERIMENTS_PAGE[:EXPERIMENTS_PAGE.index("\n## ")]
    rows = {re.match(r"\[(.+?)\]", row[0]).group(1): row[1:] for row in table_rows(table)}
    assert list(rows) == list(committees)

    for name, (test_file, validation_file, seeds) in committees.items():
        test = ensemble_report(test_file)
        assert rows[name][0] == seeds and rows[name][3] == errors_cell(test), name
        assert test.get("split", "test") == "test" and f"seed{seeds.split('-')[0]}/" in test["members"][0]["model"], name
        if validation_file:
            assert rows[name][2] == errors_cell(ensemble_report(validation_file)), name
    accuracies = [ensemble_report(test_file)["accuracy"] for test_file, *_ in committees.values()]
    before = accuracies[0], accuracies[4], accuracies[5]  # the recipe before weight decay: 1-5, and 21-25 on two CPUs
    intro = " ".join(table.split())
    assert f"scored {100 * min(before):.2f}-{percent(max(before))} on the test set" in intro
    recipe = ensemble_report("record-weight-decay-ensemble-evaluation.json")
    assert f"the recipe's seeds 1-5 now score {percent(recipe['accuracy'])} as a committee" in intro
    # The last section's range: every committee of five in the index.
    last = " ".join(section(f"## The recipe with weight decay: {percent(recipe['accuracy'])}").split())
    assert f"committees of five of this network have scored {100 * min(accuracies):.2f}-{percent(max(accuracies))}." in last


def test_the_weight_decay_trial_is_its_runs_its_reports_and_its_rule():
    """The paired trial on 10,000 validation images: every cell from its runs and reports, the rule's outcome."""
    lines = data_lines("weight-decay-trial.jsonl")
    runs = {(line["job"], line["seed"]): line for line in lines}
    assert len(runs) == len(lines) == 10 and {seed for _, seed in runs} == {41, 42, 43, 44, 45}
    split = ["data.validation_size=10000", "data.validation_seed=1"]
    assert all(line["overrides"] == (["train.optimizer.weight_decay=0.05"] if line["job"] == "wd_trial" else [])
               + split and line["config"] == "cnn_record" and (line["cpu_family"], line["cpu_model"]) == ("26", "2")
               for line in lines)
    arms = {"wd_trial_baseline": "trial-recipe", "wd_trial": "trial-weight-decay"}
    reports = {job: (ensemble_report(f"{name}-validation-evaluation.json"), ensemble_report(f"{name}-ensemble-evaluation.json"))
               for job, name in arms.items()}
    for job, (validation, test) in reports.items():
        assert (validation["split"], validation["num_examples"], test.get("split", "test"), test["num_examples"]) == \
            ("validation", 10000, "test", 10000)
        for seed, member, test_member in zip(range(41, 46), validation["members"], test["members"]):
            assert member["model"] == test_member["model"] == f"trial-runs/{job}-seed{seed}/best.keras"
            assert abs(member["accuracy"] - runs[job, seed]["best_val_accuracy"]) < 1e-6
            assert abs(test_member["accuracy"] - runs[job, seed]["test_accuracy"]) < 1e-6
    text = section("## Weight decay on 10,000 validation images: taken")
    rows = {row[0]: row[1:] for row in table_rows(text)}
    for seed in range(41, 46):
        assert rows[str(seed)] == [f"{percent(runs[job, seed]['best_val_accuracy'])} ({runs[job, seed]['best_epoch']})"
                                   for job in arms] + [percent(runs[job, seed]["test_accuracy"]) for job in arms]
    assert rows["mean"] == [percent(members_mean(reports[job][0])) for job in arms] + \
        [percent(members_mean(reports[job][1])) for job in arms]
    (recipe_validation, recipe_test), (decay_validation, decay_test) = reports.values()

    assert rows["**committee of seeds 41-45**"] == [errors_cell(recipe_validation), ensemble_cell(decay_validation),
                                                    errors_cell(recipe_test), errors_cell(decay_test)]
    # The rule fixed before the runs: fewer committee errors and a higher members' mean, both.
    assert error_count(decay_validation) < error_count(recipe_validation)
    assert members_mean(decay_validation) > members_mean(recipe_validation)
    prose = " ".join(text.split())
    assert (f"its committee made {error_count(decay_validation)} errors against the recipe's "
            f"{error_count(recipe_validation)}") in prose and "**Weight decay is taken**" in prose
    paired = [runs["wd_trial", seed]["best_val_accuracy"] - runs["wd_trial_baseline", seed]["best_val_accuracy"]
              for seed in range(41, 46)]
    assert [sum(d > 1e-6 for d in paired), sum(d < -1e-6 for d in paired), sum(abs(d) <= 1e-6 for d in paired)] == [3, 1, 1]
    assert (f"the weight-decay committee made {error_count(decay_test)} test errors, the recipe's "
            f"{error_count(recipe_test)}, and the members score alike (mean {percent(members_mean(decay_test))} each)") in prose
    assert percent(members_mean(decay_test)) == percent(members_mean(recipe_test))
    seconds = [line["train_seconds"] for line in lines]
    assert f"{min(seconds):.0f}-{max(seconds):.0f} s of training per run" in prose
    record_text = " ".join(section(RECORD_HEADING).split())
    assert (f"took weight decay ({error_count(decay_validation)} committee errors against "
            f"{error_count(recipe_validation)}), while its test figure came out "
            f"{NUMBER_WORDS[error_count(decay_test) - error_count(recipe_test)]} errors behind") in record_text


def test_the_recipe_with_weight_decay_section_is_its_runs_and_its_committees_report():
    """The experiments page's last section: the seeds' means and the committee, from their lines and report."""
    lines = recipe_lines()
    report = ensemble_report("record-weight-decay-ensemble-evaluation.json")
    for member, line in zip(report["members"], lines.values()):
        assert abs(member["accuracy"] - line["test_accuracy"]) < 1e-6
    text = " ".join(section(f"## The recipe with weight decay: {percent(report['accuracy'])}").split())
    mean_3 = statistics.mean(lines[seed]["test_accuracy"] for seed in (1, 2, 3))
    without = statistics.mean(line["test_accuracy"] for line in data_lines("record-zen5.jsonl"))
    assert f"Seeds 1-3 average {percent(mean_3)}, against {percent(without)} without weight decay on the same CPU" in text
    assert (f"scores **{percent(report['accuracy'])}** ({error_count(report)} errors), from members that average "
            f"{percent(members_mean(report))} alone") in text


def test_weight_decay_beside_the_ablation_is_the_trial_and_the_runs():
    """records.md's paragraph on weight decay after the ablation: the trial's validation figures, seeds 1-3 on a Zen 5."""
    validation = {arm: ensemble_report(f"trial-{arm}-validation-evaluation.json") for arm in ("recipe", "weight-decay")}
    text = paragraph("Weight decay, added after the ablation, had a test of its own")
    assert (f"its members validated at {percent(members_mean(validation['weight-decay']))} against "
            f"{percent(members_mean(validation['recipe']))} on the same seeds (better on three of five) and its committee "
            f"made {error_count(validation['weight-decay'])} errors against {error_count(validation['recipe'])}") in text
    with_it, without = recipe_lines(), by_seed("record-zen5.jsonl")

    def seeds(lines, which):
        mean = statistics.mean(lines[seed]["test_accuracy"] for seed in (1, 2, 3))
        return f"{percent(mean)} {which} ({', '.join(percent(lines[seed]['test_accuracy']) for seed in (1, 2, 3))})"

    assert f"average {seeds(with_it, 'with it')} and {seeds(without, 'without it')}" in text


def test_the_recipe_from_a_fresh_install_is_its_runs_and_repeats_the_table():
    """Seeds 1-3 of cnn_record as bundled, installed afresh: each cell from its line, each figure the table's again."""
    lines = by_seed("recipes-zen5.jsonl", "record")
    assert sorted(lines) == [1, 2, 3]
    assert all(line["overrides"] == [] and line["commit"] == "a3dad83" and line["precision"] == "mixed_bfloat16"
               and (line["cpu_family"], line["cpu_model"]) == ("26", "2") for line in lines.values())
    mean = statistics.mean(line["test_accuracy"] for line in lines.values())
    rows = {row[0]: row[1:] for row in table_rows(section(f"### Seeds 1-3 from a fresh install: {percent(mean)}"))}
    for seed, line in lines.items():
        assert rows[str(seed)][:2] == [percent(line["test_accuracy"]),
                                       f"{percent(line['best_val_accuracy'])} ({line['best_epoch']})"]
        assert rows[str(seed)][2].startswith(duration(line["train_seconds"]))
    assert rows["**mean**"][0] == f"**{percent(mean)}**"
    # The bar, from a fresh install: a mean of at least 99.65 %, none below 99.6 %, each in 20 minutes.
    assert mean >= 0.9965 and min(line["test_accuracy"] for line in lines.values()) >= 0.996
    assert max(line["train_seconds"] for line in lines.values()) <= 20 * 60
    table = recipe_lines()  # "digit for digit" the table's runs
    for seed, line in lines.items():
        assert [line[key] for key in ("test_accuracy", "best_val_accuracy", "best_epoch")] == \
            [table[seed][key] for key in ("test_accuracy", "best_val_accuracy", "best_epoch")]


def test_the_accuracy_time_plot_paragraph_is_its_runs():
    """The plot's paragraph: the three recipes' mean times and accuracies on one machine, from their lines."""
    lines = data_lines("recipes-zen5.jsonl")
    assert sorted((line["job"], line["seed"]) for line in lines) == sorted(
        (job, seed) for job in ("record", "fast", "cnn") for seed in (1, 2, 3))
    assert len({(line["cpu"], line["cpu_family"], line["cpu_model"], line["commit"]) for line in lines}) == 1

    def mean(job, key):
        return statistics.mean(line[key] for line in lines if line["job"] == job)

    fast, cnn, record = (mean(job, "train_seconds") for job in ("fast", "cnn", "record"))
    gains = [100 * (mean(better, "test_accuracy") - mean(worse, "test_accuracy"))
             for better, worse in (("cnn", "fast"), ("record", "cnn"))]
    assert (f"the default CNN takes {cnn / fast:.1f} times the speed recipe's {fast:.0f} s for {gains[0]:.2f} points "
            f"more, the record recipe {record / cnn:.0f} times the default's {cnn:.0f} s for another {gains[1]:.2f}.") \
        in paragraph("The three bundled CNN recipes, one point per seed")


def test_the_tta_section_is_the_two_committees_reports():
    """Test-time augmentation's verdict: each committee's TTA figure and the digits it lost, from the reports."""
    def lost(prefix):
        plain = ensemble_report(f"{prefix}-ensemble-evaluation.json")
        tta = ensemble_report(f"{prefix}-ensemble-tta-evaluation.json")
        return error_count(tta) - error_count(plain), f"({percent(tta['accuracy'])} against {percent(plain['accuracy'])})"

    (now, now_figures), (before, before_figures) = lost("record-weight-decay"), lost("record")
    text = " ".join(section("## Test-time augmentation").split())
    assert (f"the record recipe's committee lost {now} test digits with `--tta 8` {now_figures}, and the committee "
            f"of the recipe before weight decay {before} {before_figures}") in text
    record_text = " ".join(section(RECORD_HEADING).split())
    plain = ensemble_report("record-weight-decay-ensemble-evaluation.json")
    tta = ensemble_report("record-weight-decay-ensemble-tta-evaluation.json")
    assert f"makes the committee worse ({percent(tta['accuracy'])}, {now} more errors)" in record_text
    assert error_count(tta) - error_count(plain) == now
