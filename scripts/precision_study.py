"""bf16 against float32 for every bundled config: test accuracy over seeds, and seconds per epoch.

    python scripts/precision_study.py --data-dir ../shared/data -o precision.json
    python scripts/precision_study.py --configs cnn seeds/lab_cnn --seeds 42 1 7
    python scripts/precision_study.py --from-json precision.json

Each run is a real `mnist-zoo train` process (so no run inherits another's state), with
`--set train.precision=P`. The report is a Markdown table per config: mean, min and max test
accuracy of each precision, the difference, and the median seconds per epoch (first epoch left
out: it includes tracing) with their ratio. The CPU model and its bf16/AMX flags head the report:
the figures hold for that CPU only. `train.precision: auto` is decided from such tables
(mnist_zoo/runtime/precision.py says how).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # this checkout's mnist_zoo, not an installed one

PRECISIONS = ("float32", "mixed_bfloat16")


def train_once(config: str, seed: int, precision: str, data_dir: str) -> dict:
    """One `mnist-zoo train` process; returns its metrics and per-epoch seconds."""
    with tempfile.TemporaryDirectory() as folder:
        run_dir = Path(folder) / "run"
        command = [sys.executable, "-m", "mnist_zoo", "train", "--model", config, "--seed", str(seed),
                   "--data-dir", data_dir, "--run-dir", str(run_dir), "--device", "cpu",
                   "--set", f"train.precision={precision}", "--set", "train.verbose=0"]
        environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        done = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=REPO_ROOT)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr}")
        metrics = json.loads((run_dir / "metrics.json").read_text())
        history = json.loads((run_dir / "history.json").read_text())["epochs"]
    seconds = [record["epoch_seconds"] for record in history]
    return {"config": config, "seed": seed, "precision": precision, "test_accuracy": metrics["test_accuracy"],
            "precision_used": metrics["precision"], "epoch_seconds": seconds}


def summarize(runs: list[dict]) -> list[dict]:
    """One row per config: accuracy statistics and median epoch seconds per precision."""
    rows = []
    for config in dict.fromkeys(run["config"] for run in runs):
        row = {"config": config}
        for precision in PRECISIONS:
            mine = [run for run in runs if run["config"] == config and run["precision"] == precision]
            if not mine:
                continue
            accuracies = [run["test_accuracy"] for run in mine]
            epochs = [second for run in mine for second in (run["epoch_seconds"][1:] or run["epoch_seconds"])]
            row[precision] = {"mean": statistics.mean(accuracies), "min": min(accuracies), "max": max(accuracies),
                              "seconds_per_epoch": statistics.median(epochs), "runs": len(mine)}
        rows.append(row)
    return rows


def markdown(study: dict) -> str:
    lines = [f"CPU: {study['cpu']} (bf16/AMX flags: {', '.join(study['bf16_flags']) or 'none'}); "
             f"seeds {', '.join(map(str, study['seeds']))}; TensorFlow {study['tensorflow']}, Keras {study['keras']}",
             "",
             "| config | float32 test acc mean (min-max) | bf16 test acc mean (min-max) | bf16 - float32 | "
             "float32 s/epoch | bf16 s/epoch | bf16 / float32 time |",
             "|---|---|---|---|---|---|---|"]
    for row in summarize(study["runs"]):
        if not all(precision in row for precision in PRECISIONS):
            continue
        single, half = row["float32"], row["mixed_bfloat16"]
        lines.append(
            f"| {row['config']} | {single['mean']:.2%} ({single['min']:.2%}-{single['max']:.2%}) | "
            f"{half['mean']:.2%} ({half['min']:.2%}-{half['max']:.2%}) | {100 * (half['mean'] - single['mean']):+.2f} | "
            f"{single['seconds_per_epoch']:.2f} | {half['seconds_per_epoch']:.2f} | "
            f"{half['seconds_per_epoch'] / single['seconds_per_epoch']:.2f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", help="bundled config names (default: every one)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 1, 7])
    parser.add_argument("--data-dir", default=os.environ.get("MNIST_ZOO_DATA_DIR", str(REPO_ROOT.parent / "shared" / "data")))
    parser.add_argument("-o", "--output", type=Path, help="write the study as JSON (and keep adding to it)")
    parser.add_argument("--from-json", type=Path, help="print the report of a saved study")
    args = parser.parse_args()

    if args.from_json:
        print(markdown(json.loads(args.from_json.read_text())))
        return
    import keras
    import tensorflow as tf

    from mnist_zoo.config.loading import bundled_config_names
    from mnist_zoo.runtime.device import cpu_name
    from mnist_zoo.runtime.precision import BF16_CPU_FLAGS, cpu_flags

    study = {"cpu": cpu_name(), "bf16_flags": sorted(cpu_flags() & BF16_CPU_FLAGS), "seeds": args.seeds,
             "tensorflow": tf.__version__, "keras": keras.__version__, "runs": []}
    if args.output and args.output.is_file():  # continue an interrupted study
        study["runs"] = json.loads(args.output.read_text())["runs"]
    done = {(run["config"], run["seed"], run["precision"]) for run in study["runs"]}
    for config in args.configs or bundled_config_names():
        for seed in args.seeds:
            for precision in PRECISIONS:
                if (config, seed, precision) in done:
                    continue
                run = train_once(config, seed, precision, args.data_dir)
                study["runs"].append(run)
                print(f"{config} seed {seed} {precision}: {run['test_accuracy']:.4f}, "
                      f"{statistics.median(run['epoch_seconds']):.2f} s/epoch", flush=True)
                if args.output:
                    args.output.write_text(json.dumps(study, indent=1) + "\n")
    print(markdown(study))


if __name__ == "__main__":
    main()
