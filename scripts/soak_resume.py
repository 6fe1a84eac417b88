"""Kill -9 soak: SIGKILL `mnist-zoo train` (or `export`) at random moments, resume, and compare with an unbroken run.

    python scripts/soak_resume.py --data-dir ../shared/data                 # 30 kills of train, about 4 minutes
    python scripts/soak_resume.py --data-dir ../shared/data --target export --kills 15
    python scripts/soak_resume.py --data-dir ../shared/data --target sweep --kills 10

train: a small CNN with dropout (its random-number state must survive too) trains into one run
directory; each attempt is started (`train --run-dir`, or `train --resume` once the run has its
config.yaml) and killed after a random delay drawn over the whole life of a process: start-up,
epochs, checkpoint commits, the final evaluation. After every kill the run directory is checked:
every JSON file parses, the checkpoint's state names files that exist, best.keras loads. When the
run completes, its history.json (without timings), last.keras and best.keras weights and test
accuracy must equal the unbroken reference's bit for bit; then a new run starts, until N kills.

export: `mnist-zoo export RUN --format savedmodel --format tflite --format onnx --force` is
killed at random; after each kill every file under a final name must open in its runtime and
predict like the Keras model, and the next export must succeed.

sweep: a one-worker `mnist-zoo sweep` of 6 trials is killed at random and run again after its
heartbeats go stale; every killed run directory must be consistent, and each finished sweep must
hold all 6 trials, each with a complete run directory, and a best.yaml that passes `config check`. The kill delays use the system's
random source (not a seed): each soak explores new moments, and prints them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # this process loads models to compare them: no start-up chatter

MNIST_ZOO = [sys.executable, "-m", "mnist_zoo"]
SOAK_CONFIG = {
    "model": {"type": "cnn", "conv_layers": [{"filters": 8, "kernel_size": 5}], "hidden_units": [32],
              "dropout_rate": 0.3},
    "data": {"validation_size": 500, "train_limit": 3000, "test_limit": 1000},
    "train": {"epochs": 6, "batch_size": 32, "verbose": 0, "schedule": {"name": "one_cycle", "warmup_fraction": 0.1}},
}


def run(command: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT)


def history_without_times(run_dir: Path) -> list[dict]:
    return [{key: value for key, value in record.items() if key != "epoch_seconds"}
            for record in json.loads((run_dir / "history.json").read_text())["epochs"]]


def model_weights(path: Path) -> list:
    import keras

    return keras.saving.load_model(path, compile=False).get_weights()


def same_weights(first: Path, second: Path) -> bool:
    import numpy as np

    ours, theirs = model_weights(first), model_weights(second)
    return len(ours) == len(theirs) and all(np.array_equal(a, b) for a, b in zip(ours, theirs))


def check_consistent(run_dir: Path) -> list[str]:
    """What is wrong with a killed run directory: unparsable files, a checkpoint naming missing files."""
    from mnist_zoo.training import checkpoint

    problems = []
    for path in run_dir.glob("*.json"):
        try:
            json.loads(path.read_text())
        except ValueError as error:
            problems.append(f"{path.name} does not parse ({error})")
    try:
        checkpoint.load_state(run_dir)  # raises unless its state parses and its files exist
    except Exception as error:  # noqa: BLE001 - any failure is a finding
        problems.append(f"checkpoint: {error}")
    if (run_dir / "best.keras").exists():
        try:
            model_weights(run_dir / "best.keras")
        except Exception as error:  # noqa: BLE001
            problems.append(f"best.keras does not load ({error})")
    return problems


def where(run_dir: Path) -> str:
    """Where a run stood at the kill: before its config, before its first commit, after N epochs, finishing."""
    from mnist_zoo import rundir
    from mnist_zoo.training import checkpoint

    if not (run_dir / "config.yaml").exists():
        return "start-up"
    if (run_dir / "metrics.json").exists():
        return "finished"
    try:
        state = checkpoint.load_state(run_dir)
    except Exception as error:  # noqa: BLE001 - reported by check_consistent
        return f"unreadable checkpoint ({error})"
    half_written = [path.name for path in run_dir.rglob(".*") if rundir.is_temporary_name(path.name)]
    epochs = state.epochs_completed if state else 0
    return f"after {epochs} epochs" + (" (mid-write: " + ", ".join(half_written) + ")" if half_written else "")


def timed_reference(command: list[str], what: str) -> float:
    """Runs `command` unbroken, to the end; its seconds, which bound the kill delays. Exits if it fails."""
    start = time.monotonic()
    result = run(command)
    if result.returncode != 0:
        sys.exit(f"the reference {what} failed:\n{result.stderr}")
    return time.monotonic() - start


def start_and_kill(command: list[str], delay: float | None) -> tuple[subprocess.Popen, bool]:
    """Starts `command` and SIGKILLs it after `delay` seconds (None: lets it finish); and whether it was killed."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT)
    try:
        process.wait(timeout=delay)
        return process, False
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return process, True


def soak_train(args, work: Path, config_path: Path) -> bool:
    reference = work / "reference"
    lifetime = timed_reference([*MNIST_ZOO, "train", "--config", str(config_path), "--run-dir", str(reference)], "run")
    print(f"reference: {len(history_without_times(reference))} epochs in {lifetime:.1f} s (one process)", flush=True)
    chance = random.SystemRandom()
    kills, compared, identical = 0, 0, True
    run_number = 1
    while True:
        run_dir = work / f"soak-{run_number}"
        if _is_complete(run_dir):
            same = _compare(run_dir, reference)
            compared += 1
            identical &= same
            run_number += 1
            if kills >= args.kills:
                break
            continue
        resume = (run_dir / "config.yaml").exists()
        command = ([*MNIST_ZOO, "train", "--resume", str(run_dir)] if resume
                   else [*MNIST_ZOO, "train", "--config", str(config_path), "--run-dir", str(run_dir)])
        if not resume and run_dir.exists():
            shutil.rmtree(run_dir)  # killed before it wrote its config: as a user, start it again
        # Once N kills are done, the last run is let finish.
        delay = chance.uniform(0.2, lifetime) if kills < args.kills else None
        process, killed = start_and_kill(command, delay)
        if killed:
            kills += 1
            moment = where(run_dir) if run_dir.exists() else "start-up"
            problems = check_consistent(run_dir) if run_dir.exists() else []
            print(f"kill {kills:3d} after {delay:5.2f} s: {moment}" + (f"  PROBLEMS: {problems}" if problems else ""),
                  flush=True)
            if problems:
                return False
            continue
        if process.returncode != 0:
            print(f"run {run_number} failed (exit {process.returncode}):\n{process.stderr.read()}")
            return False
    print(f"{kills} kills survived, {compared} runs compared with the unbroken run: "
          f"{'results identical' if identical else 'RESULTS DIFFER'}")
    return identical


def _is_complete(run_dir: Path) -> bool:
    from mnist_zoo import rundir

    return rundir.read_status(run_dir).get("status") == "complete"


def _compare(run_dir: Path, reference: Path) -> bool:
    """Whether a soaked run ended exactly as the unbroken one, and left no half-written file."""
    from mnist_zoo import rundir

    same = (history_without_times(run_dir) == history_without_times(reference)
            and same_weights(run_dir / "last.keras", reference / "last.keras")
            and same_weights(run_dir / "best.keras", reference / "best.keras")
            and json.loads((run_dir / "metrics.json").read_text())["test_accuracy"]
            == json.loads((reference / "metrics.json").read_text())["test_accuracy"])
    leftovers = sorted(path.name for path in run_dir.rglob(".*") if path.name not in (".lock", rundir.RUN_MARKER))
    print(f"{run_dir.name} complete: {'identical to the unbroken run' if same else 'DIFFERENT'}"
          + (f", leftovers {leftovers}" if leftovers else ""), flush=True)
    return same and not leftovers


def soak_export(args, work: Path, config_path: Path) -> bool:
    from mnist_zoo.inference.runtimes import open_classifier

    source = work / "source"
    timed_reference([*MNIST_ZOO, "train", "--config", str(config_path), "--run-dir", str(source)], "training to export")
    export = [*MNIST_ZOO, "export", str(source), "--format", "savedmodel", "--format", "tflite",
              "--format", "onnx", "--force"]
    lifetime = timed_reference(export, "export")
    print(f"reference export: {lifetime:.1f} s", flush=True)
    import numpy as np

    from mnist_zoo.data.datasets import load_dataset

    images = load_dataset("mnist", args.data_dir).test_images[:200]
    expected = open_classifier(source / "best.keras").probabilities(images).argmax(axis=1)
    finals = [source / "export" / name for name in ("saved_model", "model.tflite", "model.onnx")]
    chance = random.SystemRandom()
    kills = attempts = 0
    while kills < args.kills:
        attempts += 1
        delay = chance.uniform(0.2, lifetime)
        _, killed = start_and_kill(export, delay)
        kills += killed
        outcome = f"kill {kills}" if killed else "finished before the kill"
        problems = []
        for final in finals:
            if not final.exists():
                problems.append(f"{final.name} missing")  # a forced export replaces; it never deletes first
                continue
            try:
                # unsafe=True: the SavedModel is the one this soak's own export wrote.
                predicted = open_classifier(final, unsafe=True).probabilities(images).argmax(axis=1)
                if not np.array_equal(predicted, expected):
                    problems.append(f"{final.name} predicts differently")
            except Exception as error:  # noqa: BLE001
                problems.append(f"{final.name}: {error}")
        print(f"export {attempts:3d} after {delay:5.2f} s: {outcome}" + (f"  PROBLEMS: {problems}" if problems else ""),
              flush=True)
        if problems:
            return False
    result = run(export)
    leftovers = sorted(path.name for path in (source / "export").glob(".*"))
    print(f"final export: exit {result.returncode}; leftovers: {leftovers or 'none'}")
    ok = result.returncode == 0 and not leftovers
    print(f"{kills} export kills survived ({attempts} exports started): {'every file intact' if ok else 'PROBLEMS'}")
    return ok


def soak_sweep(args, work: Path, config_path: Path) -> bool:
    """SIGKILL a sweep worker at random moments; rerun it; at the end the study has every trial it asked for."""
    config = yaml.safe_load(config_path.read_text())
    sweep = {
        "base": "linear",
        "set": {"data.data_dir": config["data"]["data_dir"], "data.train_limit": 3000, "data.validation_size": 500,
                "data.test_limit": 1000, "train.epochs": 4},
        "trials": 6, "sampler": "random", "pruner": "none", "heartbeat_seconds": 1, "seed": 0,
        "space": {"train.optimizer.learning_rate": {"log_uniform": [0.01, 1.0]}},
    }
    sweep_file = work / "sweep.yaml"
    sweep_file.write_text(yaml.safe_dump(sweep))

    def command(sweep_dir: Path) -> list[str]:
        return [*MNIST_ZOO, "sweep", str(sweep_file), "--sweep-dir", str(sweep_dir), "--no-report"]

    lifetime = timed_reference(command(work / "reference-sweep"), "sweep")
    print(f"reference sweep: {sweep['trials']} trials in {lifetime:.1f} s (one worker)", flush=True)
    chance = random.SystemRandom()
    kills, sweeps_checked, ok = 0, 0, True
    number = 1
    while True:
        sweep_dir = work / f"sweep-{number}"
        delay = chance.uniform(0.2, lifetime) if kills < args.kills else None
        process, killed = start_and_kill(command(sweep_dir), delay)
        if killed:
            kills += 1
            problems = [problem for trial in sorted((sweep_dir / "trials").glob("*")) if trial.is_dir()
                        for problem in check_consistent(trial)] if (sweep_dir / "trials").is_dir() else []
            print(f"kill {kills:3d} after {delay:5.2f} s" + (f"  PROBLEMS: {problems}" if problems else ""), flush=True)
            if problems:
                return False
            time.sleep(3.5)  # three missed heartbeats: the killed trial is stale, and is run again
            continue
        if process.returncode != 0:
            print(f"sweep {number} failed (exit {process.returncode}):\n{process.stderr.read()}")
            return False
        report = run([*MNIST_ZOO, "sweep", "--report", str(sweep_dir), "--json"])
        trials = json.loads(report.stdout)["trials"]
        finished = [trial for trial in trials if trial["state"] in ("complete", "pruned")]
        complete_runs = all(_is_complete(Path(trial["run_dir"])) for trial in finished)
        best = run([*MNIST_ZOO, "config", "check", str(sweep_dir / "best.yaml")]).returncode == 0 \
            if (sweep_dir / "best.yaml").exists() else True
        good = len(finished) == sweep["trials"] and complete_runs and best
        failed = len(trials) - len(finished)
        print(f"sweep {number} complete: {len(finished)} of {sweep['trials']} trials finished "
              f"({failed} killed trials marked failed and run again), run directories complete: {complete_runs}",
              flush=True)
        ok &= good
        sweeps_checked += 1
        number += 1
        if kills >= args.kills:
            break
    print(f"{kills} sweep worker kills survived, {sweeps_checked} sweeps checked: "
          f"{'every trial accounted for' if ok else 'TRIALS LOST'}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("MNIST_ZOO_DATA_DIR", str(REPO_ROOT.parent / "shared" / "data")))
    parser.add_argument("--target", choices=["train", "export", "sweep"], default="train")
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=SOAK_CONFIG["train"]["epochs"])
    parser.add_argument("--work-dir", type=Path, help="keep the runs here (default: a temporary folder)")
    args = parser.parse_args()

    from mnist_zoo.runtime.device import cpu_name
    from mnist_zoo.runtime.precision import cpu_flags

    flags = " ".join(sorted(cpu_flags() & {"avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile"}))
    print(f"CPU: {cpu_name()} ({flags}); {args.kills} SIGKILLs of {args.target}", flush=True)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="soak-"))
    work.mkdir(parents=True, exist_ok=True)
    config = json.loads(json.dumps(SOAK_CONFIG))
    config["data"]["data_dir"] = str(Path(args.data_dir).resolve())
    config["train"]["epochs"] = args.epochs
    config_path = work / "soak.yaml"
    config_path.write_text(yaml.safe_dump(config))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    ok = {"train": soak_train, "export": soak_export, "sweep": soak_sweep}[args.target](args, work, config_path)
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
