"""The outputs README's tour and docs/commands.md show: each line one the command prints today, figures aside.

The pages' outputs were pasted from real runs; a change to what a command prints (a new column,
a reworded line, another batch size) would leave them stale without this test. Each command runs
here as the page gives it, from a folder holding runs named as the pages', on the suite's small
data set; every line shown must then appear in the real output once its numbers are masked (the
figures differ with the data, the machine and the date). "..." in a line shown stands for any
text. Commands that cannot run here are listed with the reason.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mnist_zoo.cli import cli
from mnist_zoo.config.loading import bundled_config_path
from mnist_zoo.data.datasets import load_dataset

REPO_ROOT = Path(__file__).resolve().parent.parent
README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
TOUR_START = README.index("## A short tour")
PAGES = {
    "README's tour": README[TOUR_START:README.index("\n## ", TOUR_START + 1)],
    **{f"docs/{name}": (REPO_ROOT / "docs" / name).read_text(encoding="utf-8")
       for name in ("commands.md", "configs.md", "explain.md", "security.md")},
}
# Where the pages' outputs say the data came from (the download cache of a user called "you"), and
# where the bundled configs are (mnist-zoo installed in a virtual environment of theirs).
SHOWN_DATA = "/home/you/.cache/mnist-zoo/mnist"
SHOWN_CONFIGS = "/home/you/venv/lib/python3.11/site-packages/mnist_zoo/configs"
# The commands not run here, and why (an interrupted one, whose output shows ^C, is never run).
NOT_RUN = {
    "export runs/r1 --format tflite --quantize int8": "converts and verifies in other runtimes: tests/test_export.py",
    "export runs/20261201-233710-cnn --format savedmodel --format tflite --format onnx": "tests/test_export.py",
    "export runs/20261201-233710-cnn --format tflite --quantize int8": "tests/test_export.py",
    "export runs/20261201-233710-cnn --format tflite --quantize float16": "tests/test_export.py",
    "evaluate runs/20261201-233710-cnn/export/model-int8.tflite": "needs an export: tests/test_export.py",
    "train --resume runs/20261208-005134-mlp": "continues an interrupted run: tests/test_signals.py",
    "train --model cnn_record --seed 21 --set data.validation_seed=0 --run-dir runs/committee-seed21":
        "30 minutes of training: tests/test_ensemble.py scores committees on validation",
    "evaluate runs/committee-seed* --ensemble --split validation --output-dir runs/committee":
        "the shell expands its glob; tests/test_ensemble.py",
    "serve": "a server: tests/test_serve.py",
    "sweep mlp_quick --workers 2": "a sweep: tests/test_sweep.py",
    "lesson activations --quick": "a lesson trains seven networks: tests/test_lessons.py",
    "plot-history runs/*-linear runs/*-mlp runs/*-cnn -o zoo.png": "the shell expands its globs: tests/test_cli.py",
    "doctor --smoke --data-dir /data": "reports this machine: tests/test_doctor.py",
    "doctor": "reports this machine: tests/test_doctor.py",
}
# What a command needs here beyond the page's arguments: the small data set has 2,000 training images.
EXTRA_ARGUMENTS = {"train": ["--set", "data.validation_size=500"]}


def page_commands(text: str) -> list[tuple[str, list[str]]]:
    """Each `$ mnist-zoo ...` line of a page's console blocks (comment dropped) with the output lines under it."""
    commands = []
    for block in re.findall(r"```console\n(.*?)```", text, re.S):
        current = None  # a block starts with a command
        for line in block.splitlines():
            if line.startswith("$ mnist-zoo "):
                current = (" ".join(shlex.split(line[len("$ mnist-zoo "):], comments=True)), [])
                commands.append(current)
            elif line.startswith("$ "):
                current = None  # another program's command: its output is not ours
            elif current is not None and line.strip() != "...":
                current[1].append(line)
    return commands


def masked(line: str) -> str:
    """A line with its numbers (and a CPU's name) masked and its runs of spaces and dashes shortened."""
    line = re.sub(r"CPU \(.*?\), precision: \w+", "CPU (name), precision: p", line)
    line = re.sub(r"\d+(?:\.\d+)?(?:us|ms|s)/step", "t/step", line)  # Keras picks the unit by the time
    line = re.sub(r"\d+(?:[.,]\d+)*(?:e[-+]?\d+)?", "0", line)
    return re.sub(r"-{2,}", "-", re.sub(r" +", " ", line)).strip()


def is_interrupted(shown: list[str]) -> bool:
    return any(line.startswith("^C") for line in shown)


COMMANDS = [(page, command, shown) for page, text in PAGES.items() for command, shown in page_commands(text)]
RUN = [(page, command, shown) for page, command, shown in COMMANDS if command not in NOT_RUN and not is_interrupted(shown)]


def test_every_command_shown_is_run_or_has_a_reason_not_to_be():
    shown_commands = {command for _, command, _ in COMMANDS}
    assert not set(NOT_RUN) - shown_commands, "NOT_RUN names commands no page shows any more"
    assert {command.split()[0] for _, command, _ in RUN} >= {"train", "evaluate", "predict", "compare", "config"}


@pytest.fixture
def pages_folder(tmp_path, monkeypatch, tiny_runs, small_mnist_dir) -> Path:
    """A folder like the pages': runs/r1 (a CNN), a timestamped MLP run, the pictures and config files they read."""
    from PIL import Image, ImageDraw

    shutil.copytree(tiny_runs["cnn"], tmp_path / "runs" / "r1")
    shutil.copytree(tiny_runs["cnn"], tmp_path / "runs" / "cnn")
    shutil.copytree(tiny_runs["mlp"], tmp_path / "runs" / "20261208-004712-mlp")
    os.utime(tmp_path / "runs" / "r1" / "history.json")  # the most recent run, as plot-history's output says
    seven = Image.new("RGB", (240, 320), "white")
    draw = ImageDraw.Draw(seven)
    draw.line([(40, 50), (200, 50)], fill="black", width=22)
    draw.line([(200, 50), (100, 290)], fill="black", width=22)
    seven.save(tmp_path / "seven.jpg")
    Image.new("L", (200, 200), 255).save(tmp_path / "blank.png")
    np.save(tmp_path / "test2130.npy", load_dataset("mnist", small_mnist_dir).test_images[130])
    (tmp_path / "my.yaml").write_text("name: my\nmodel: {type: mlp}\ntrain: {epochs: 3}\n")
    (tmp_path / "broken.yaml").write_text("name: broken\nmodel: {type: mlp}\ntrain: {epoch: 3}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MNIST_ZOO_DATA_DIR", str(small_mnist_dir))
    return tmp_path


@pytest.mark.parametrize("page, command, shown", RUN, ids=[f"{page}: {command}" for page, command, _ in RUN])
def test_every_line_shown_is_one_the_command_prints(pages_folder, small_mnist_dir, page, command, shown):
    arguments = shlex.split(command)
    result = CliRunner().invoke(cli, arguments + EXTRA_ARGUMENTS.get(arguments[0], []), catch_exceptions=False)
    printed = result.output.replace(str(small_mnist_dir), SHOWN_DATA).replace(
        str(bundled_config_path("cnn").parent), SHOWN_CONFIGS)
    lines = [masked(line) for line in printed.splitlines()]

    def found(line: str) -> bool:
        pattern = ".*".join(map(re.escape, masked(line).split("...")))  # "..." stands for any text
        return any(re.fullmatch(pattern, printed_line) for printed_line in lines)

    missing = [line for line in shown if not found(line)]
    assert not missing, f"{page} shows lines `mnist-zoo {command}` no longer prints:\n" + "\n".join(missing) + \
        f"\n\nit prints:\n{printed}"
    # A page that shows an `Error:` line shows a command that fails; the others succeed.
    assert (result.exit_code != 0) == any(line.startswith("Error:") for line in shown), printed
