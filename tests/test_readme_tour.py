"""README's short tour: each output line it shows is one the command prints today, figures aside.

The tour's outputs were pasted from real runs; a change to what a command prints (a new column,
a reworded line) would leave them stale without this test. Each command runs here as the tour
gives it, from a folder holding runs named as the tour's, on the suite's small data set; every
shown line must then appear in the real output once its numbers are masked (the figures differ
with the data, the machine and the date).
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from mnist_zoo.cli import cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
TOUR = README[README.index("## A short tour"):README.index("\n## ", README.index("## A short tour") + 1)]
# Where the tour's outputs say the data came from: the download cache of a user called "you".
TOUR_DATA = "/home/you/.cache/mnist-zoo/mnist"
# A tour command not run here, and why.
NOT_RUN = {"export": "an export converts and verifies in other runtimes: tests/test_export.py checks its table"}
# What a command needs here beyond the tour's arguments: the small data set has 2,000 training images.
EXTRA_ARGUMENTS = {"train": ["--set", "data.validation_size=500"]}


def tour_commands() -> list[tuple[list[str], list[str]]]:
    """Each `$ mnist-zoo ...` line of the tour's console blocks, as arguments, with the output lines under it."""
    commands = []
    for block in re.findall(r"```console\n(.*?)```", TOUR, re.S):
        for line in block.splitlines():
            if line.startswith("$ mnist-zoo "):
                commands.append((shlex.split(line[len("$ mnist-zoo "):], comments=True), []))
            elif commands and line.strip() != "...":
                commands[-1][1].append(line)
    return commands


def masked(line: str) -> str:
    """A line with its numbers (and a CPU's name) masked and its runs of spaces and dashes shortened."""
    line = re.sub(r"CPU \(.*?\), precision: \w+", "CPU (name), precision: p", line)
    line = re.sub(r"\d+(?:[.,]\d+)*(?:e[-+]?\d+)?", "0", line)
    return re.sub(r"-{2,}", "-", re.sub(r" +", " ", line)).strip()


def test_the_tour_runs_every_command_it_shows_but_export():
    names = [arguments[0] for arguments, _ in tour_commands()]
    assert names == ["train", "evaluate", "predict", "export", "compare"]


@pytest.fixture
def tour_folder(tmp_path, monkeypatch, tiny_runs, small_mnist_dir) -> Path:
    """A folder like the tour's: runs/r1 (a CNN), a timestamped MLP run, and the two pictures predict reads."""
    from PIL import Image, ImageDraw

    shutil.copytree(tiny_runs["cnn"], tmp_path / "runs" / "r1")
    shutil.copytree(tiny_runs["mlp"], tmp_path / "runs" / "20261208-004712-mlp")
    seven = Image.new("RGB", (240, 320), "white")
    draw = ImageDraw.Draw(seven)
    draw.line([(40, 50), (200, 50)], fill="black", width=22)
    draw.line([(200, 50), (100, 290)], fill="black", width=22)
    seven.save(tmp_path / "seven.jpg")
    Image.new("L", (200, 200), 255).save(tmp_path / "blank.png")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MNIST_ZOO_DATA_DIR", str(small_mnist_dir))
    return tmp_path


RUN = [command for command in tour_commands() if command[0][0] not in NOT_RUN]


@pytest.mark.parametrize("arguments, shown", RUN, ids=[arguments[0] for arguments, _ in RUN])
def test_every_line_the_tour_shows_is_one_the_command_prints(tour_folder, small_mnist_dir, arguments, shown):
    result = CliRunner().invoke(cli, arguments + EXTRA_ARGUMENTS.get(arguments[0], []), catch_exceptions=False)
    printed = result.output.replace(str(small_mnist_dir), TOUR_DATA)
    lines = {masked(line) for line in printed.splitlines()}
    missing = [line for line in shown if masked(line) not in lines]
    assert not missing, f"README's tour shows lines `mnist-zoo {' '.join(arguments)}` no longer prints:\n" + \
        "\n".join(missing) + f"\n\nit prints:\n{printed}"
    # The tour's predict shows a refused picture: the command exits 2 for it, and 0 for the others.
    assert result.exit_code == (2 if any(line.startswith("Error:") for line in shown) else 0), printed
