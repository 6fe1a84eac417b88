"""Load benchmark of `mnist-zoo serve`: concurrent clients drive POST /api/predict on 127.0.0.1.

Starts `mnist-zoo serve` on a free port with three models (the runs given, else the three zoo
models trained briefly on a slice of MNIST: the architecture sets the cost, not the accuracy),
then clients post the same drawing, a 280x280 RGBA PNG as the page sends it, for a bounded
time. Reports requests/s, p50/p90/p99 latency, errors, and the server's resident memory after
warm-up and at the end, with the CPU it ran on.

    python scripts/bench_serve.py --data-dir ../shared/data                 # 8 clients, 30 s
    python scripts/bench_serve.py --runs runs/a runs/b runs/c --clients 8 --seconds 30 --json
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ZOO_MODELS = ("linear", "mlp", "cnn")


def train_models(folder: Path, data_dir: str | None, train_limit: int) -> list[Path]:
    """The three zoo models, one epoch each on `train_limit` images: run directories."""
    runs = []
    for name in ZOO_MODELS:
        run = folder / name
        command = [sys.executable, "-m", "mnist_zoo", "train", "--model", name, "--epochs", "1",
                   "--run-dir", str(run), "--set", f"data.train_limit={train_limit}",
                   "--set", "data.validation_size=1000"]
        if data_dir:
            command += ["--data-dir", data_dir]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        runs.append(run)
    return runs


def drawing_png(data_dir: str | None) -> bytes:
    """A test digit as the page sends a drawing: white on black, 280x280, RGBA PNG."""
    from PIL import Image

    from mnist_zoo.data.datasets import load_dataset

    digit = load_dataset("mnist", data_dir).test_images[0]
    picture = Image.fromarray(digit).resize((280, 280), Image.Resampling.BILINEAR).convert("RGBA")
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def start_server(runs: list[Path], extra: list[str]) -> tuple[subprocess.Popen, str]:
    """`mnist-zoo serve` on a free port; returns the process and its URL once it listens."""
    command = [sys.executable, "-m", "mnist_zoo", "serve", "--no-runs", "--port", "0", *map(str, runs), *extra]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 180
    for line in process.stdout:
        if line.startswith("Serving "):
            url = line.split(" at ", 1)[1].split()[0]
            threading.Thread(target=process.stdout.read, daemon=True).start()  # keep the pipe drained
            return process, url
        if time.monotonic() > deadline:
            break
    process.kill()
    raise SystemExit(f"the server did not start: {' '.join(command)}")


def resident_mb(pid: int) -> float:
    """The process's resident memory (VmRSS), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def drive(host: str, port: int, body: bytes, clients: int, seconds: float) -> tuple[list[float], list[str]]:
    """`clients` threads, each with one keep-alive connection, post `body` until `seconds` pass."""
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + seconds

    def client():
        connection = http.client.HTTPConnection(host, port, timeout=10)
        while time.monotonic() < deadline:
            start = time.perf_counter()
            try:
                connection.request("POST", "/api/predict", body=body, headers={"Content-Type": "image/png"})
                response = connection.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException) as error:
                errors.append(type(error).__name__)
                connection.close()
                connection = http.client.HTTPConnection(host, port, timeout=10)
                continue
            latencies.append(time.perf_counter() - start)
            if response.status != 200 or len(json.loads(answer)["predictions"]) != 3:
                errors.append(f"HTTP {response.status}")
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", type=Path, help="Three run directories or model files to serve.")
    parser.add_argument("--data-dir", default=os.environ.get("MNIST_ZOO_DATA_DIR"))
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup-seconds", type=float, default=3.0)
    parser.add_argument("--train-limit", type=int, default=6000, help="Training images per model when training.")
    parser.add_argument("--json", action="store_true", help="Print the result as JSON.")
    args = parser.parse_args()

    from mnist_zoo.runtime.device import cpu_name
    from mnist_zoo.runtime.precision import cpu_flags

    with tempfile.TemporaryDirectory() as folder:
        runs = args.runs or train_models(Path(folder), args.data_dir, args.train_limit)
        body = drawing_png(args.data_dir)
        process, url = start_server(runs, [])
        try:
            host, port = url.split("//")[1].rstrip("/").rsplit(":", 1)
            drive(host, int(port), body, args.clients, args.warmup_seconds)
            memory_start = resident_mb(process.pid)
            started = time.perf_counter()
            latencies, errors = drive(host, int(port), body, args.clients, args.seconds)
            elapsed = time.perf_counter() - started
            memory_end = resident_mb(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=30)
    relevant = sorted(cpu_flags() & {"avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile"})
    result = {
        "cpu": cpu_name(), "cpu_flags": relevant, "cores": os.cpu_count(), "clients": args.clients,
        "seconds": round(elapsed, 1), "models": [str(run) for run in runs] if args.runs else list(ZOO_MODELS),
        "requests": len(latencies), "requests_per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 2) if latencies else None,
        "p90_ms": round(1000 * percentile(latencies, 0.90), 2) if latencies else None,
        "p99_ms": round(1000 * percentile(latencies, 0.99), 2) if latencies else None,
        "errors": len(errors), "error_kinds": sorted(set(errors)),
        "server_memory_mb_start": round(memory_start, 1), "server_memory_mb_end": round(memory_end, 1),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"CPU: {result['cpu']} ({', '.join(relevant) or 'no AVX2'}), {result['cores']} cores")
    print(f"{args.clients} clients for {result['seconds']} s, one drawing predicted by 3 models per request")
    print(f"  {result['requests_per_second']:,.1f} requests/s ({result['requests']:,} requests)")
    print(f"  latency p50 {result['p50_ms']} ms, p90 {result['p90_ms']} ms, p99 {result['p99_ms']} ms")
    print(f"  errors: {result['errors']} {' '.join(result['error_kinds'])}")
    print(f"  server memory: {result['server_memory_mb_start']} MB after warm-up, {result['server_memory_mb_end']} MB at the end")


if __name__ == "__main__":
    main()
