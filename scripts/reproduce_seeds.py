"""Train every network of the course material (configs/seeds/ and the zoo defaults) on real MNIST
and compare with what the material reports.

    python scripts/reproduce_seeds.py -o docs/seeds-latest.md
    python scripts/reproduce_seeds.py --data-dir ~/mnist      # a folder with the MNIST files
    python scripts/reproduce_seeds.py --only seeds/lab_cnn seeds/lab_mlp

Each network trains from its own config with its own seed, in a run directory under --runs-dir
(kept, so `mnist-zoo compare` and `evaluate` work on them afterwards). The data come from
--data-dir, else $MNIST_ZOO_DATA_DIR, else mnist-zoo's download cache (downloaded if missing). Writes a Markdown table
(network, reported and reproduced test accuracy, reported and our parameter counts, time) and
the same as JSON beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # this checkout's mnist_zoo, not an installed one
ZOO_DEFAULTS = ["linear", "mlp", "cnn"]


def networks() -> list[str]:
    from mnist_zoo.config.loading import bundled_config_names

    return ZOO_DEFAULTS + [name for name in bundled_config_names() if name.startswith("seeds/")]


def reproduce(name: str, data_dir: str | None, runs_dir: Path, seed: int | None = None, extra: dict | None = None) -> dict:
    """Trains the bundled config `name` (with its own seed, or `seed`; `extra` overrides) and returns its row."""
    from mnist_zoo.config.loading import bundled_config_path, load_config
    from mnist_zoo.rundir import create_run_dir
    from mnist_zoo.training.stage import train_run

    overrides = {"train.verbose": 0, **({"data.data_dir": data_dir} if data_dir else {}), **(extra or {})}
    if seed is not None:
        overrides["train.seed"] = seed
    config = load_config(bundled_config_path(name), overrides)
    run_dir = create_run_dir(runs_dir, config.name)
    start = time.perf_counter()
    metrics = train_run(config, run_dir).metrics
    reference = config.reference
    return {
        "network": name,
        "description": config.description,
        "source": reference.source,
        "reported_accuracy": reference.test_accuracy,
        "reproduced_accuracy": metrics["test_accuracy"],
        "reported_parameters": reference.parameters,
        "parameters": metrics["parameters"],
        "epochs": metrics["epochs_completed"],
        "seed": config.train.seed,
        "seconds": time.perf_counter() - start,
        "run_dir": str(run_dir),
    }


def markdown(rows: list[dict]) -> str:
    def percent(value):
        return "not reported" if value is None else f"{value:.2%}"

    def verdict(row):
        if row["reported_accuracy"] is None:
            return ""
        gap = 100 * (row["reproduced_accuracy"] - row["reported_accuracy"])
        return f"{gap:+.2f} points"

    lines = ["| network | reported accuracy | reproduced accuracy | difference | parameters reported / ours | epochs | seed | time |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        reported = "-" if row["reported_parameters"] is None else f"{row['reported_parameters']:,}"
        lines.append(
            f"| `{row['network']}` | {percent(row['reported_accuracy'])} | {row['reproduced_accuracy']:.2%} | "
            f"{verdict(row)} | {reported} / {row['parameters']:,} | {row['epochs']} | {row['seed']} | {row['seconds']:.0f} s |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("MNIST_ZOO_DATA_DIR"),
                        help="a folder with the MNIST files (default: $MNIST_ZOO_DATA_DIR, else mnist-zoo's download cache)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/seeds"))
    parser.add_argument("--only", nargs="+", metavar="NAME", help="bundled config names (default: all networks)")
    parser.add_argument("--seed", type=int, help="train every network with this seed instead of its config's")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key of every network (repeatable), e.g. train.epochs=1")
    parser.add_argument("-o", "--output", type=Path, help="also write the Markdown table here (and .json beside it)")
    args = parser.parse_args()

    from mnist_zoo.config.loading import parse_overrides

    extra = parse_overrides(args.overrides)
    rows = []
    for name in args.only or networks():
        rows.append(reproduce(name, args.data_dir, args.runs_dir, args.seed, extra))
        row = rows[-1]
        print(f"{name}: {row['reproduced_accuracy']:.2%} (reported {row['reported_accuracy']}), "
              f"{row['parameters']:,} parameters, {row['seconds']:.0f} s", flush=True)
    table = markdown(rows)
    print("\n" + table)
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(table + "\n", encoding="utf-8")
        args.output.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
