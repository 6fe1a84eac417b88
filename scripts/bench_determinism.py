"""Seconds per CNN epoch with `train.deterministic` off and on, alternating fresh processes.

    python scripts/bench_determinism.py --data-dir ../shared/data      # about 10 minutes

`enable_op_determinism()` cannot be switched off inside a process, so each measurement is its own
process; the order flips every round because this VM's CPU is throttled under sustained load.
The first epoch of each run (tracing) is not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

WORKER = r"""
import json, sys, tempfile
from pathlib import Path
from mnist_zoo.config.loading import bundled_config_path, load_config
from mnist_zoo.training.stage import train_run
data_dir, images, deterministic = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "on"
config = load_config(bundled_config_path("cnn"), {
    "train.verbose": 0, "train.epochs": 3, "train.deterministic": deterministic, "data.data_dir": data_dir,
    "data.train_limit": images, "data.validation_size": images // 5})
with tempfile.TemporaryDirectory() as run_dir:
    train_run(config, Path(run_dir))
    history = json.loads((Path(run_dir) / "history.json").read_text())["epochs"]
print(json.dumps([record["epoch_seconds"] for record in history[1:]]))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("MNIST_ZOO_DATA_DIR", str(REPO_ROOT.parent / "shared" / "data")))
    parser.add_argument("--images", type=int, default=25_000, help="training images (a fifth is held out)")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()

    seconds = {"off": [], "on": []}
    for round_number in range(args.rounds):
        for setting in (("off", "on") if round_number % 2 == 0 else ("on", "off")):
            result = subprocess.run([sys.executable, "-c", WORKER, args.data_dir, str(args.images), setting],
                                    capture_output=True, text=True, check=True, cwd=REPO_ROOT)  # this checkout's mnist_zoo
            epochs = json.loads(result.stdout.strip().splitlines()[-1])
            seconds[setting] += epochs
            print(f"deterministic {setting}: " + ", ".join(f"{value:.1f}" for value in epochs) + " s", flush=True)
    off, on = statistics.median(seconds["off"]), statistics.median(seconds["on"])
    print(f"median seconds per epoch: off {off:.1f}, on {on:.1f} ({on / off:.2f}x)")


if __name__ == "__main__":
    main()
