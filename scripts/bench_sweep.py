"""Sweep benchmark: trials per hour with 1 and 2 local workers, and the storage's cost per trial (SQLite, PostgreSQL).

Trials per hour: the same sweep (the MLP, random sampler, no pruning, so every trial does the
same work) run with `mnist-zoo sweep --workers 1`, then `--workers 2`, each in a fresh sweep
directory. Storage: Optuna's own bookkeeping of a trial (ask, three reported epochs, tell, with
mnist-zoo's heartbeat settings) with a no-op objective, in an SQLite file and in a throw-away
PostgreSQL server on a loopback port (Debian's initdb and pg_ctl; skipped when absent).

    python scripts/bench_sweep.py --data-dir ../shared/data
    python scripts/bench_sweep.py --data-dir ../shared/data --trials 12 --json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


@contextlib.contextmanager
def throwaway_postgres():
    """A PostgreSQL server on a free loopback port in a temporary folder; yields its URL, or None without initdb."""
    binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not binaries:
        yield None
        return
    bin_dir = binaries[-1].parent
    folder = Path(tempfile.mkdtemp(prefix="mnist-zoo-postgres-"))
    run_as = []
    if os.geteuid() == 0:  # initdb refuses root: the server runs as the postgres user
        shutil.chown(folder, "postgres")
        folder.chmod(0o755)
        run_as = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = folder / "data"
    try:
        subprocess.run([*run_as, str(bin_dir / "initdb"), "-D", str(data), "-U", "zoo", "--auth=trust"],
                       check=True, capture_output=True)
        subprocess.run([*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-o",
                        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "-l", str(folder / "server.log"),
                        "-w", "start"], check=True, capture_output=True)
        yield f"postgresql://zoo@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def sweep_file(folder: Path, data_dir: str | None, trials: int, train_limit: int) -> Path:
    sweep = {
        "base": "mlp", "trials": trials, "sampler": "random", "pruner": "none",
        "set": {"train.epochs": 2, "data.train_limit": train_limit, "data.validation_size": 1000,
                **({"data.data_dir": data_dir} if data_dir else {})},
        "space": {"train.optimizer.learning_rate": {"log_uniform": [1e-4, 1e-2]},
                  "model.dropout_rate": {"uniform": [0.0, 0.5]}},
    }
    path = folder / "bench_sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def trials_per_hour(path: Path, folder: Path, workers: int) -> dict:
    out = folder / f"workers-{workers}"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mnist_zoo", "sweep", str(path), "--sweep-dir", str(out),
                    "--workers", str(workers), "--no-report"], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    trials = len(list(out.glob("trials/*/metrics.json")))
    return {"workers": workers, "trials": trials, "seconds": round(seconds, 1),
            "trials_per_hour": round(3600 * trials / seconds)}


def storage_cost(url: str, trials: int) -> float:
    """Milliseconds of Optuna bookkeeping per trial (no-op objective, three reported epochs)."""
    import optuna

    from mnist_zoo.sweeps.study import open_storage

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(storage=open_storage(url), study_name=f"bench-{time.time_ns()}",
                                direction="maximize")

    def objective(trial):
        value = trial.suggest_float("x", 0, 1)
        for step in range(1, 4):
            trial.report(value, step)
            trial.should_prune()
        return value

    study.optimize(objective, n_trials=3)  # tables created, connections open
    start = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    return 1000 * (time.perf_counter() - start) / trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("MNIST_ZOO_DATA_DIR"))
    parser.add_argument("--trials", type=int, default=8, help="Trials of the timed sweep.")
    parser.add_argument("--train-limit", type=int, default=6000, help="Training images per trial.")
    parser.add_argument("--storage-trials", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from mnist_zoo.runtime.device import cpu_name
    from mnist_zoo.runtime.precision import cpu_flags

    result = {"cpu": cpu_name(), "cpu_flags": sorted(cpu_flags() & {"avx2", "avx512f", "avx512_bf16",
                                                                     "avx512_vnni", "amx_bf16"}),
              "cores": os.cpu_count()}
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        path = sweep_file(folder, args.data_dir, args.trials, args.train_limit)
        result["sweeps"] = [trials_per_hour(path, folder, workers) for workers in (1, 2)]
        result["storage_ms_per_trial"] = {"sqlite": round(storage_cost(f"sqlite:///{folder / 'bench.db'}",
                                                                       args.storage_trials), 1)}
        with throwaway_postgres() as url:
            if url:
                result["storage_ms_per_trial"]["postgresql"] = round(storage_cost(url, args.storage_trials), 1)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"CPU: {result['cpu']} ({', '.join(result['cpu_flags'])}), {result['cores']} cores")
    for sweep in result["sweeps"]:
        print(f"  {sweep['workers']} worker(s): {sweep['trials']} trials in {sweep['seconds']} s = "
              f"{sweep['trials_per_hour']:,} trials/hour")
    for storage, milliseconds in result["storage_ms_per_trial"].items():
        print(f"  {storage}: {milliseconds} ms of Optuna bookkeeping per trial")


if __name__ == "__main__":
    main()
