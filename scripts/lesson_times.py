"""Times each bundled lesson's quick and full mode on this machine, and records the minutes in the lesson files.

    python scripts/lesson_times.py --data-dir DATA --mode quick            # time every lesson's quick mode
    python scripts/lesson_times.py --data-dir DATA --mode full --only zoo  # one lesson's full mode
    python scripts/lesson_times.py ... --write                              # and record the minutes
    python scripts/lesson_times.py --data-dir DATA --mode full --write --docs   # and write docs/lessons.md
    python scripts/lesson_times.py --data-dir DATA --docs-only                 # docs/lessons.md from the last run

Each lesson runs as `mnist-zoo lesson NAME [--quick]` in a fresh folder under --work-dir (wall
time from start to the written plots, so start-up, training, testing and plotting all count).
With --write, each lesson file's `minutes:` gets the mode's figure and `measured_on:` the date,
the CPU model and its core count; the rest of the file, comments included, stays as it is.
With --docs (full mode), docs/lessons.md is written from the lessons' own results (lesson.json)
and their plots are copied to docs/images/lessons/. Keep the machine otherwise idle while this runs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
LESSONS = REPO_ROOT / "configs" / "lessons"
sys.path.insert(0, str(REPO_ROOT / "scripts"))

from records import cpu_description  # noqa: E402


def time_lesson(name: str, quick: bool, args: argparse.Namespace) -> float:
    """Runs the lesson in a fresh folder; returns its wall time in minutes."""
    folder = args.work_dir / f"{name}-{'quick' if quick else 'full'}"
    shutil.rmtree(folder, ignore_errors=True)
    command = [sys.executable, "-m", "mnist_zoo", "lesson", name, "--output-dir", str(folder),
               "--data-dir", str(args.data_dir), *(["--quick"] if quick else [])]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=REPO_ROOT)
    return (time.perf_counter() - start) / 60


def record(path: Path, mode: str, minutes: float, measured_on: str) -> None:
    """Sets `minutes.<mode>` and `measured_on` in the lesson file's `lesson:` block, keeping everything else."""
    text = path.read_text(encoding="utf-8")
    found = re.search(r"^  minutes: \{(.*)\}$", text, flags=re.M)
    values = dict(re.findall(r"(quick|full): ([0-9.]+)", found.group(1))) if found else {}
    values[mode] = f"{minutes:.1f}"
    line = "  minutes: {" + ", ".join(f"{key}: {values[key]}" for key in ("quick", "full") if key in values) + "}"
    if found:
        text = text[:found.start()] + line + text[found.end():]
    else:
        text = text.replace("\nlesson:\n", f"\nlesson:\n{line}\n", 1) if "\nlesson:\n" in text \
            else text.replace("lesson:\n", f"lesson:\n{line}\n", 1)
    measured = f'  measured_on: "{measured_on}"'
    if re.search(r"^  measured_on: .*$", text, flags=re.M):
        text = re.sub(r"^  measured_on: .*$", measured, text, count=1, flags=re.M)
    else:
        text = text.replace(line + "\n", line + "\n" + measured + "\n", 1)
    path.write_text(text, encoding="utf-8")


DOCS = REPO_ROOT / "docs"
INTRO = """# Lessons

Each comparison the course makes is one command: `mnist-zoo lesson NAME` trains every variant
(as the trials of a grid sweep, so a rerun after Ctrl-C or kill -9 trains only what is missing),
draws the plots, and answers the question from what it measured. `mnist-zoo lesson list` shows
them; `--quick` runs a subset in a few minutes for a class demo. The options, the folder's files
and how to write a lesson file of your own: [commands.md](commands.md#lesson).

Below, every lesson's full mode as measured on {measured_on}, with TensorFlow {tf} and Keras
{keras}, by `python scripts/lesson_times.py --data-dir DATA --mode full --write` (each lesson
run as `mnist-zoo lesson NAME --data-dir DATA` in a fresh folder, its wall time recorded in the
lesson file), then `--docs-only`. The sentences under each table are the lesson's own output,
computed from these results.

| lesson | question | quick | full |
|---|---|---|---|
{rows}
"""


def write_docs(names: list[str], args: argparse.Namespace) -> None:
    """Writes docs/lessons.md from each lesson's full-mode folder, and copies its plots under docs/images/lessons/.

    The minutes and where they were measured come from the lesson files (`--write` records them).
    """
    import keras
    import tensorflow
    import yaml

    images = DOCS / "images" / "lessons"
    images.mkdir(parents=True, exist_ok=True)
    rows, sections, measured = [], [], set()
    minutes = {}
    for name in names:
        folder = args.work_dir / f"{name}-full"
        result = json.loads((folder / "lesson.json").read_text())
        block = yaml.safe_load((LESSONS / f"{name}.yaml").read_text())["lesson"]
        quick, minutes[name] = block.get("minutes", {}).get("quick"), block["minutes"]["full"]
        measured.add(block["measured_on"])
        rows.append(f"| [`{name}`](#{name}) | {result['question']} | "
                    f"{'-' if quick is None else f'{quick:.1f} min'} | {minutes[name]:.1f} min |")
        section = [f"## {name}", "", f"**{result['question']}** `mnist-zoo lesson {name}` "
                   f"({minutes[name]:.1f} min; `--quick`: {'-' if quick is None else f'{quick:.1f} min'})", ""]
        for plot in block["plots"]:
            target = images / f"{name}-{plot['file']}"
            target.write_bytes((folder / plot["file"]).read_bytes())
            section += [f"![{plot.get('title') or result['question']}](images/lessons/{target.name})", ""]
        section += [result["table"], "", " ".join(result["answer"]), ""]
        section += [f"{note}\n" for note in result["notes"]]
        sections.append("\n".join(section))
    page = INTRO.format(measured_on="; ".join(sorted(measured)), tf=tensorflow.__version__, keras=keras.__version__,
                        rows="\n".join(rows))
    (DOCS / "lessons.md").write_text(page + "\n" + "\n".join(sections), encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="A folder with the MNIST files.")
    parser.add_argument("--mode", choices=("quick", "full"), default="quick")
    parser.add_argument("--only", action="append", help="Time only these lessons (repeatable).")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/mnist-zoo-lesson-times"))
    parser.add_argument("--write", action="store_true", help="Record the minutes in the lesson files.")
    parser.add_argument("--docs", action="store_true",
                        help="After timing every lesson's full mode (with --write): write docs/lessons.md.")
    parser.add_argument("--docs-only", action="store_true",
                        help="Train nothing: write docs/lessons.md from the full-mode folders already in --work-dir.")
    args = parser.parse_args()
    names = args.only or sorted(path.stem for path in LESSONS.glob("*.yaml"))
    cpu = cpu_description()
    measured_on = f"{datetime.date.today()}, {cpu['cpu']} ({', '.join(cpu['cpu_flags'])}), {cpu['cores']} cores"
    print(f"{args.mode} mode, {measured_on}")
    if (args.docs or args.docs_only) and args.only:
        parser.error("--docs documents every lesson: give no --only")
    if args.docs and (args.mode != "full" or not args.write):
        parser.error("--docs documents the full mode's recorded times: give --mode full --write")
    if args.docs_only:
        write_docs(names, args)
        return 0
    timings = {}
    for name in names:
        timings[name] = time_lesson(name, args.mode == "quick", args)
        print(f"{name:<14} {timings[name]:6.1f} min", flush=True)
        if args.write:
            record(LESSONS / f"{name}.yaml", args.mode, timings[name], measured_on)
    if args.docs:
        write_docs(names, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
