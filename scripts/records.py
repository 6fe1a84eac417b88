"""Train the recipes' seeds and the record's ablations unattended, one line of results per run.

    python scripts/records.py                       # every job not yet in the results file
    python scripts/records.py --only record         # the record recipe's five seeds only
    python scripts/records.py --only record --seed 1   # its seed 1 only
    python scripts/records.py --list                # what is done and what is left
    python scripts/records.py --plot records.png   # test accuracy against training time

Each job is one `mnist-zoo train` in its own process, in a fixed run directory under
--runs-dir (default runs/: runs/record-seed1 for the record recipe's seed 1). A job whose
directory holds an interrupted run is continued with `--resume` (bit-exact, and `train_seconds`
adds up the epochs of every part), so the whole list can run across several sessions: stop it
at any time and start it again. A finished job appends one JSON line to --results (default
runs/records.jsonl; the lines behind docs/records.md are in docs/data/records.jsonl): the job,
seed, test and best-validation accuracy, best epoch, training seconds, precision, the date, the
CPU model, its bf16 flags and oneDNN's instruction-set cap if one was set, the command and the
checkout's commit (run it from a frozen copy, `git worktree add --detach`, if you edit meanwhile).

The jobs (every cnn_record job but record, record_float32, weight_decay and wd_trial trains it as
it was before weight decay entered it, with train.optimizer.weight_decay=null, as its documented
runs did; weight_decay and wd_trial set their own):
    record          cnn_record as bundled, seeds 1-5 (three for the single-model figure, five for
                    the ensemble)
    fast            cnn_fast (the speed recipe), seeds 1-3
    cnn             cnn (the default CNN), seeds 1-3
    no_ema          cnn_record without weight averaging, seeds 1-3
    no_augmentation cnn_record without data augmentation, seeds 1-3
    no_batch_norm   cnn_record without batch normalisation, seeds 1-3
    float32         cnn_record in float32, seed 1 (does bf16 keep the accuracy?)
    record_float32  the same with cnn_record as bundled (weight decay included)
    all_data        cnn_record on all 60,000 training images (no hold-out), seeds 1-5: the
                    members of the all-data ensemble, whose last.keras (epoch 30) answers,
                    since nothing is left to choose an epoch with
    label_smoothing cnn_record with label smoothing 0.1 (an ingredient added, not removed),
                    seeds 1-3 beside the recipe's and 6-10, five fresh seeds for a committee
    long            cnn_record for 45 epochs, decaying x0.932 per epoch so that the learning rate
                    ends where the recipe's does: seeds 1-2 beside the recipe's (chosen on
                    validation) and 11-15, five fresh seeds for a committee
    elastic         cnn_record with an elastic distortion (alpha 36, sigma 6) on top of its
                    rotations, zooms and shifts: seeds 1-2, a pilot beside the recipe's seeds
                    (compared on validation; not taken, so no committee trained with it)
    record_committee
                    cnn_record, five fresh seeds 21-25 holding out one validation
                    split (data.validation_seed=0): a committee scored on validation, the
                    baseline for committees chosen there
    weight_decay    cnn_record with decoupled weight decay 0.05, five fresh seeds 31-35 on
                    record_committee's validation split: a candidate committee, compared
                    with that baseline on validation before its test figure is read (refused)
    wd_trial_baseline, wd_trial
                    cnn_record without and with weight decay 0.05, the same seeds 41-45 in
                    both, holding out 10,000 validation images (data.validation_size=10000,
                    data.validation_seed=1): a paired trial decided on validation (weight
                    decay taken); run them interleaved, one seed of each at a time, with --seed
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # this checkout's mnist_zoo, not an installed one

# The ablations and the committee experiments trained cnn_record before the weight-decay trial took
# weight decay into it: they keep it off, so that running them again repeats their documented runs.
BEFORE_WEIGHT_DECAY = ("train.optimizer.weight_decay=null",)

# name -> (bundled config, seeds, --set overrides): the ablations remove one ingredient each.
JOBS: dict[str, tuple[str, tuple[int, ...], tuple[str, ...]]] = {
    "record": ("cnn_record", (1, 2, 3, 4, 5), ()),
    "fast": ("cnn_fast", (1, 2, 3), ()),
    "cnn": ("cnn", (1, 2, 3), ()),
    "no_ema": ("cnn_record", (1, 2, 3), BEFORE_WEIGHT_DECAY + ("train.optimizer.use_ema=false",)),
    "no_augmentation": ("cnn_record", (1, 2, 3), BEFORE_WEIGHT_DECAY + (
        "data.augmentation.rotation=0", "data.augmentation.zoom=0", "data.augmentation.translation=0")),
    "no_batch_norm": ("cnn_record", (1, 2, 3), BEFORE_WEIGHT_DECAY + ("model.batch_norm=false",)),
    "float32": ("cnn_record", (1,), BEFORE_WEIGHT_DECAY + ("train.precision=float32",)),
    "record_float32": ("cnn_record", (1,), ("train.precision=float32",)),
    "all_data": ("cnn_record", (1, 2, 3, 4, 5), BEFORE_WEIGHT_DECAY + ("data.validation_size=0",)),
    "label_smoothing": ("cnn_record", (1, 2, 3, 6, 7, 8, 9, 10), BEFORE_WEIGHT_DECAY + ("train.loss.label_smoothing=0.1",)),
    "long": ("cnn_record", (1, 2, 11, 12, 13, 14, 15), BEFORE_WEIGHT_DECAY + (
        "train.epochs=45", "train.schedule.decay_rate=0.932")),
    "elastic": ("cnn_record", (1, 2), BEFORE_WEIGHT_DECAY + (
        "data.augmentation.elastic_alpha=36", "data.augmentation.elastic_sigma=6")),
    "record_committee": ("cnn_record", (21, 22, 23, 24, 25), BEFORE_WEIGHT_DECAY + ("data.validation_seed=0",)),
    "weight_decay": ("cnn_record", (31, 32, 33, 34, 35), ("train.optimizer.weight_decay=0.05", "data.validation_seed=0")),
    "wd_trial_baseline": ("cnn_record", (41, 42, 43, 44, 45), BEFORE_WEIGHT_DECAY + (
        "data.validation_size=10000", "data.validation_seed=1")),
    "wd_trial": ("cnn_record", (41, 42, 43, 44, 45), ("train.optimizer.weight_decay=0.05", "data.validation_size=10000",
                                                      "data.validation_seed=1")),
}
PLOTTED = {"fast": "cnn_fast (speed recipe)", "cnn": "cnn (default)", "record": "cnn_record (record recipe)"}


def cpu_description() -> dict:
    """The CPU model and the flags that decide bf16 speed, from /proc/cpuinfo where there is one.

    Also oneDNN's instruction-set cap (ONEDNN_MAX_CPU_ISA, e.g. AVX2 to approximate an AVX2-only
    CPU on a newer one): None when the run used everything the CPU has.
    """
    from mnist_zoo.runtime.device import cpu_name, cpuinfo_field
    from mnist_zoo.runtime.precision import cpu_flags

    flags = cpu_flags()
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
    return {"cpu": cpu_name(), "cpu_family": cpuinfo_field("cpu family"), "cpu_model": cpuinfo_field("model"),
            "cpu_flags": [flag for flag in wanted if flag in flags], "cores": os.cpu_count(),
            "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA") or None}


def code_commit() -> str | None:
    """The checkout's commit (short hash, "+" if it has changes), so a figure names the code that made it."""
    try:
        commit = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=True, timeout=30).stdout.strip()
        changed = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
                                 capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None  # not a git checkout, or no git
    return commit + ("+" if changed else "")


def read_results(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def has_committed_epochs(run_dir: Path) -> bool:
    """Whether an unfinished run kept a checkpoint to continue from (last.keras exists only once it ends)."""
    from mnist_zoo.training.checkpoint import load_state

    return load_state(run_dir) is not None  # an unreadable checkpoint raises: better stop than start over


def run_job(name: str, config: str, seed: int, overrides: tuple[str, ...], args: argparse.Namespace) -> dict:
    """Train (or continue) one job and return its results line."""
    run_dir = args.runs_dir / f"{name}-seed{seed}"
    status_file = run_dir / "status.json"
    status = json.loads(status_file.read_text())["status"] if status_file.is_file() else None
    command = [sys.executable, "-m", "mnist_zoo", "train"]
    if status == "complete":
        command = None
    elif status is not None and has_committed_epochs(run_dir):
        command += ["--resume", str(run_dir)]
    else:
        command += ["--model", config, "--seed", str(seed), "--run-dir", str(run_dir), "--force",
                    "--set", "train.verbose=0"]
        if args.data_dir:
            command += ["--data-dir", str(args.data_dir)]
        for override in overrides:
            command += ["--set", override]
    if command:
        print(f"[{time.strftime('%H:%M:%S')}] {name} seed {seed}: {' '.join(command[1:])}", flush=True)
        subprocess.run(command, check=True, cwd=REPO_ROOT)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    user_command = " ".join(["mnist-zoo train --model", config, f"--seed {seed}"] + [f"--set {o}" for o in overrides])
    return {
        "job": name, "config": config, "seed": seed, "overrides": list(overrides),
        # Without a hold-out the best epoch is chosen on training accuracy (best_accuracy).
        "test_accuracy": metrics["test_accuracy"], "best_val_accuracy": metrics.get("best_val_accuracy"),
        "best_epoch": metrics["best_epoch"], "epochs": metrics["epochs_completed"],
        "train_seconds": round(metrics["train_seconds"], 1), "precision": metrics["precision"],
        "date": datetime.date.today().isoformat(), **cpu_description(), "command": user_command,
        "run_dir": str(run_dir), "commit": code_commit(),
    }


def plot(results: list[dict], path: Path) -> None:
    """Test accuracy against training time, one point per seed of each plotted recipe, log time axis."""
    from mnist_zoo.report.plots import new_figure, save_figure

    figure = new_figure(figsize=(8, 5))
    axis = figure.subplots()
    for name, label in PLOTTED.items():
        lines = [line for line in results if line["job"] == name]
        if not lines:
            continue
        seconds = [line["train_seconds"] for line in lines]
        accuracies = [100 * line["test_accuracy"] for line in lines]
        axis.scatter(seconds, accuracies, s=36, zorder=3,
                     label=f"{label}: mean {sum(accuracies) / len(accuracies):.2f} % ({len(lines)} seeds)")
    for level, text in ((99.0, "99 %"), (99.65, "99.65 %")):
        axis.axhline(level, color="grey", linestyle=":", linewidth=1)
        axis.annotate(text, (0, level), xycoords=("axes fraction", "data"), xytext=(4, 3),
                      textcoords="offset points", ha="left", fontsize=8, color="grey")
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    axis.set_xscale("log")
    axis.xaxis.set_major_locator(FixedLocator([10, 20, 30, 60, 120, 300, 600, 1200, 1800]))
    axis.xaxis.set_major_formatter(ScalarFormatter())
    axis.xaxis.set_minor_locator(NullLocator())
    axis.set_xlabel("training time, seconds (train_seconds, validation included; log scale)")
    axis.set_ylabel("test accuracy of best.keras, %")
    axis.grid(True, alpha=0.3, which="both")
    axis.legend(loc="lower right", fontsize=9)
    machine = next((f"{line['cpu']}, {line['cores']} cores ({', '.join(line['cpu_flags'])})" for line in results), "")
    axis.set_title(f"mnist-zoo recipes on MNIST, one point per seed\n{machine}", fontsize=10)
    save_figure(figure, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=sorted(JOBS), help="run only these jobs (repeatable)")
    parser.add_argument("--seed", type=int, action="append", dest="seeds", metavar="N",
                        help="run only these seeds of the chosen jobs (repeatable)")
    # Defaults in the current folder: the documented commands train, where a file of finished
    # jobs (docs/data/records.jsonl) would make them print "done" and train nothing.
    parser.add_argument("--results", type=Path, default=Path("runs") / "records.jsonl",
                        help="the JSON lines of finished jobs (default: runs/records.jsonl)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where the runs go (default: runs/)")
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("MNIST_ZOO_DATA_DIR"),
                        help="a folder with the MNIST files (default: $MNIST_ZOO_DATA_DIR, else mnist-zoo's download cache)")
    parser.add_argument("--list", action="store_true", help="print what is done and what is left, and stop")
    parser.add_argument("--plot", type=Path, metavar="PNG",
                        help="draw test accuracy against training time from the results, and stop")
    args = parser.parse_args()
    if args.plot:
        plot(read_results(args.results), args.plot)
        return
    args.runs_dir = args.runs_dir.resolve()
    args.data_dir = Path(args.data_dir).resolve() if args.data_dir else None

    jobs = args.only or list(JOBS)
    unknown = sorted(set(args.seeds or ()) - {seed for name in jobs for seed in JOBS[name][1]})
    if unknown:
        parser.error(f"--seed {unknown[0]}: no chosen job has that seed ({', '.join(jobs)}); "
                     f"their seeds are in the job list (--help)")

    done = {(line["job"], line["seed"]) for line in read_results(args.results)}
    for name in jobs:
        config, seeds, overrides = JOBS[name]
        for seed in seeds:
            if args.seeds and seed not in args.seeds:
                continue
            if (name, seed) in done:
                print(f"{name} seed {seed}: done", flush=True)
                continue
            if args.list:
                print(f"{name} seed {seed}: left", flush=True)
                continue
            line = run_job(name, config, seed, overrides, args)
            args.results.parent.mkdir(parents=True, exist_ok=True)
            with args.results.open("a") as results:
                results.write(json.dumps(line) + "\n")
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
