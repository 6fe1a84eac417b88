"""The benchmark script's own logic: same architectures on both sides, fair order, a complete report."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from mnist_zoo.models.registry import MODELS, build_model
from tests.helpers import load_script

bench = load_script("bench")


@pytest.mark.parametrize("name", list(MODELS))
def test_reference_models_match_the_zoo_architectures(name):
    reference = bench.keras_reference_model(name)
    assert reference.count_params() == build_model(MODELS[name].config_class()).count_params()


def test_each_side_goes_first_equally_often():
    for offset in (0, 1):
        order = list(bench.alternating(4, offset))
        firsts = Counter(order[i] for i in range(0, len(order), 2))
        assert firsts["keras"] == firsts["zoo"] == 2
    assert list(bench.alternating(1, 0))[0] != list(bench.alternating(1, 1))[0]


def _train(seconds, accuracy, **extra):
    return {"epoch_seconds": seconds, "test_accuracy": accuracy, **extra}


def _sample_results() -> dict:
    return {
        "mode": "quick",
        "settings": {**bench.MODES["quick"], "repeats": 2},
        **{model: {"keras": [_train([3, 2], 0.9), _train([3, 4], 0.92)], "zoo": [_train([2, 1], 0.91)] * 2}
           for model in ("linear", "mlp", "cnn")},
        "time_to_target": {"keras": [_train([5, 5], 0.99, seconds_to_target=10.0, reached_epoch=2)],
                           "zoo": [_train([5], 0.99, seconds_to_target=5.0, reached_epoch=1)]},
        "inference": {"keras": [{"images_per_second": 3000, "single_image_ms": 50}],
                      "zoo": [{"images_per_second": 6000, "single_image_ms": 2}]},
        "memory": {"keras": [{"peak_rss_mib": 900}], "zoo": [{"peak_rss_mib": 800}]},
        "help_seconds": 0.1,
        "ceiling_gflops": 100.0,
    }


def test_report_has_every_measurement():
    results = _sample_results()
    results["cnn"]["keras"] = [{**run, "onednn": False} for run in results["cnn"]["keras"]]
    results["cnn"]["zoo"] = [{**run, "onednn": True} for run in results["cnn"]["zoo"]]
    results["cnn"]["keras_onednn"] = [_train([3, 2], 0.9, onednn=True)]
    text = bench.report(results)
    assert "| cnn: seconds per epoch, plain Keras with TF_ENABLE_ONEDNN_OPTS=1 | 2.00 | 1.00 | 0.50 |" in text
    assert "| TensorFlow oneDNN kernels in use | off | on |" in text
    # Median of the timed (post-warm-up) epochs: keras 2 and 4 -> 3; zoo 1 -> ratio 0.33.
    assert "| cnn: seconds per epoch | 3.00 | 1.00 | 0.33 |" in text
    assert "| cnn: fastest timed epoch, seconds | 2.00 | 1.00 | 0.50 |" in text
    assert "| cnn: seconds to 97% test accuracy (epochs) | 10.0 (2) | 5.0 (1) | 0.50 |" in text
    assert "6,000" in text and "0.100" in text and "compute floor" in text
    results["augmentation"] = {"plain": [_train([9, 2], 0.9), _train([9, 4], 0.9)], "augmented": [_train([9, 3.3], 0.9)]}
    assert "| 3.00 without | 3.30 with | 1.10 (with / without) | ≤ 1.3 |" in bench.report(results)
    assert "| cnn: the same, fastest timed epoch | 2.00 without | 3.30 with | 1.65 (with / without) | |" in bench.report(results)
    # The runtimes worker's answer as run_worker returns it: the runtimes and whether oneDNN was on.
    results["runtimes"] = {**{name: {"images_per_second": 1000.0 * (index + 1), "single_image_ms": 2.0 - index / 10}
                                  for index, name in enumerate(bench.RUNTIMES)}, "onednn": True}
    assert "one image in at most 1 ms (fastest: 1.60 ms)" in bench.report(results)


def test_time_to_target_runs_the_zoo_default_recipe_as_is(monkeypatch):
    """Overriding the epochs would stretch the default recipe's schedule: it runs its own."""
    specs = []

    def fake_worker(spec):
        specs.append(spec)
        return {"gflops": 100.0} if spec["kind"] == "ceiling" else {}

    monkeypatch.setattr(bench, "run_worker", fake_worker)
    monkeypatch.setattr(bench, "help_seconds", lambda: 0.1)
    bench.measure("full", "data", repeats=2, log=lambda message: None)
    targets = [spec for spec in specs if spec.get("target")]
    assert {spec["side"]: spec["epochs"] for spec in targets} == {"keras": bench.MODES["full"]["max_epochs"], "zoo": None}
    timed = [spec for spec in specs if spec["kind"] == "train" and not spec.get("target")]
    assert timed and all(spec["epochs"] == bench.MODES["full"]["epochs"] for spec in timed)


def test_small_models_and_inference_get_more_runs(monkeypatch):
    specs = []
    monkeypatch.setattr(bench, "run_worker", lambda spec: specs.append(spec) or {"gflops": 100.0})
    monkeypatch.setattr(bench, "help_seconds", lambda: 0.1)
    results = bench.measure("quick", "data", repeats=2, log=lambda message: None)
    timed = Counter((spec["model"], spec["side"]) for spec in specs if spec["kind"] == "train" and not spec.get("target"))
    assert timed == {("linear", "keras"): 4, ("linear", "zoo"): 4, ("mlp", "keras"): 4, ("mlp", "zoo"): 4,
                     ("cnn", "keras"): 2, ("cnn", "zoo"): 6}  # 4 more: 2 with augmentation, 2 without
    augmented = [spec for spec in specs if spec.get("overrides")]
    assert len(augmented) == 2 and all(spec["overrides"] == bench.AUGMENTATION for spec in augmented)
    inference = Counter(spec["side"] for spec in specs if spec["kind"] == "inference")
    assert inference == {"keras": 2, "zoo": 2}
    results["inference"] = {"keras": [{"images_per_second": 3000, "single_image_ms": 50}],
                            "zoo": [{"images_per_second": rate, "single_image_ms": ms} for rate, ms in ((6000, 2), (9000, 4))]}
    assert "| cnn: 10k-image evaluation, images/s | 3,000 | 7,500 | 2.50 |" in bench.report({**_sample_results(), **{
        key: results[key] for key in ("settings", "inference")}})
    assert "(linear and mlp: 4)" in bench.report({**_sample_results(), "settings": results["settings"]})


def test_the_augmentation_alone_is_measured_alternating_and_reported(monkeypatch, tmp_path):
    specs = []
    monkeypatch.setattr(bench, "run_worker", lambda spec: specs.append(spec) or (
        _train([9, 4.5], 0.9) if spec.get("overrides") else _train([9, 3.0], 0.9)))
    runs = bench.measure_augmentation("full", "data", 3, log=lambda message: None)
    assert [bool(spec["overrides"]) for spec in specs] == [False, True, True, False, False, True]
    assert all(spec["train_limit"] is None and spec["epochs"] == bench.MODES["full"]["epochs"] for spec in specs)
    saved = tmp_path / "augmentation.json"
    saved.write_text(json.dumps({"mode": "full", "augmentation_only": True, "cpu": "A CPU (avx2)",
                                 "settings": {**bench.MODES["full"], "repeats": 3}, "augmentation": runs}))
    shown = subprocess.run([sys.executable, str(Path(bench.__file__)), "--from-json", str(saved)],
                           capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert "| 3.00 without | 4.50 with | 1.50 (with / without) | ≤ 1.3 |" in shown.stdout
    assert "A CPU (avx2), " in shown.stdout and "all 60,000 training images" in shown.stdout


def test_the_elastic_distortion_is_measured_on_top_of_the_record_augmentation(monkeypatch):
    specs = []
    monkeypatch.setattr(bench, "run_worker", lambda spec: specs.append(spec) or _train([9, 3.0], 0.9))
    runs = bench.measure_augmentation("quick", "data", 2, log=lambda message: None,
                                      augmentation=bench.ELASTIC_AUGMENTATION)
    augmented = [spec["overrides"] for spec in specs if spec["overrides"]]
    assert augmented == [bench.ELASTIC_AUGMENTATION] * 2
    assert bench.AUGMENTATION.items() < bench.ELASTIC_AUGMENTATION.items()
    assert "with augmentation (rotation 10°, zoom 0.1, shift 0.1, elastic α 36, σ 6) |" in bench.augmentation_row(runs)
    # A run saved before the option existed measured the record augmentation alone.
    del runs["overrides"]
    assert "with augmentation (rotation 10°, zoom 0.1, shift 0.1) |" in bench.augmentation_row(runs)


def test_elastic_is_refused_outside_the_augmentation_measurement():
    shown = subprocess.run([sys.executable, str(Path(bench.__file__)), "--elastic"], capture_output=True, text=True)
    assert shown.returncode == 2 and "--augmentation-only" in shown.stderr


def test_a_saved_run_renders_the_same_report(tmp_path):
    results = _sample_results()
    saved = tmp_path / "bench.json"
    saved.write_text(json.dumps(results))
    script = Path(bench.__file__)
    shown = subprocess.run([sys.executable, str(script), "--from-json", str(saved)], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == bench.report(results) + "\n"


@pytest.fixture
def other_installed_mnist_zoo(tmp_path) -> dict:
    """An environment in which `import mnist_zoo` outside this checkout finds a broken stand-in.

    The scripts measure the checkout they live in, not whatever version is installed.
    """
    decoy = tmp_path / "installed" / "mnist_zoo"
    decoy.mkdir(parents=True)
    (decoy / "__init__.py").write_text("raise ImportError('an installed mnist_zoo, not this checkout')\n")
    return {**os.environ, "PYTHONPATH": str(decoy.parent)}


def test_recipe_accuracy_script_reports_every_epoch(small_mnist_dir, other_installed_mnist_zoo):
    script = Path(__file__).resolve().parent.parent / "scripts" / "recipe_accuracy.py"
    overrides = {"train.epochs": 2, "data.validation_size": 200, "train.batch_size": 64}
    # Without this test process's TF_ENABLE_ONEDNN_OPTS: the script must set it as training does.
    env = {key: value for key, value in other_installed_mnist_zoo.items() if key != "TF_ENABLE_ONEDNN_OPTS"}
    result = subprocess.run(
        [sys.executable, str(script), "linear", json.dumps(overrides), "--data-dir", str(small_mnist_dir)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines[:2]] == ["epoch 1", "epoch 2"]
    report = json.loads(lines[-1])
    assert len(report["test_accuracy"]) == 2 and all(0.5 < value <= 1 for value in report["test_accuracy"])
    if platform.machine() == "x86_64":
        assert report["onednn"] is True


def test_reproduce_seeds_script_writes_the_table(small_mnist_dir, tmp_path, other_installed_mnist_zoo):
    import json
    import subprocess

    script = Path(__file__).resolve().parent.parent / "scripts" / "reproduce_seeds.py"
    output = tmp_path / "seeds.md"
    result = subprocess.run(
        [sys.executable, str(script), "--only", "linear", "--data-dir", str(small_mnist_dir),
         "--runs-dir", str(tmp_path / "runs"), "--seed", "3", "--set", "data.validation_size=200", "-o", str(output)],
        capture_output=True, text=True, timeout=300, env=other_installed_mnist_zoo,
    )
    assert result.returncode == 0, result.stderr
    table = output.read_text().splitlines()
    assert table[0].startswith("| network | reported accuracy | reproduced accuracy")
    assert table[2].startswith("| `linear` | 92.00% |") and "| 7,850 / 7,850 |" in table[2] and "| 3 |" in table[2]
    rows = json.loads(output.with_suffix(".json").read_text())
    assert rows[0]["seed"] == 3 and (tmp_path / "runs").is_dir() and 0.5 < rows[0]["reproduced_accuracy"] <= 1


def test_reproduce_seeds_covers_every_seed_config():
    reproduce_seeds = load_script("reproduce_seeds")

    names = reproduce_seeds.networks()
    assert names[:3] == ["linear", "mlp", "cnn"]
    assert {"seeds/lab_cnn", "seeds/lab_mlp", "seeds/lab_mlp_392", "seeds/intro_dense512"} <= set(names)


@pytest.mark.slow  # starts processes that import TensorFlow
def test_the_reference_side_keeps_tensorflows_own_onednn_choice(monkeypatch):
    # Importing mnist_zoo (as this test process did) switches oneDNN on; the plain Keras side
    # must still get TensorFlow's machine default, "keras_onednn" and the zoo side get it on.
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    code = "import tensorflow; from tensorflow.python.util import _pywrap_util_port as p; print(p.IsMklEnabled())"
    default = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}).stdout.split()[-1] == "True"
    assert bench.run_worker({"kind": "settings", "side": "keras"})["onednn"] is default
    assert bench.run_worker({"kind": "settings", "side": "zoo"})["onednn"] is True
    # keras_onednn is the keras side with the switch set: what its process gets, without starting one.
    started = []
    monkeypatch.setattr(bench.subprocess, "run", lambda command, **options: started.append(options["env"]) or
                        subprocess.CompletedProcess(command, 0, '{"onednn": true}', ""))
    bench.run_worker({"kind": "settings", "side": "keras_onednn"})
    assert started[0]["TF_ENABLE_ONEDNN_OPTS"] == "1"


def test_profile_script_lists_the_kernels_of_a_training_step(mnist_data):
    script = Path(__file__).resolve().parent.parent / "scripts" / "profile_training.py"
    result = subprocess.run([sys.executable, str(script), "mlp", "--data-dir", str(mnist_data), "--steps", "64", "--top", "8"],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("mlp: batch 256, 64 steps, oneDNN ") and "ms per step" in lines[0]
    table = lines[2:]
    assert len(table) == 8 and any("MatMul" in line for line in table)
    shares = [float(line.split()[1].rstrip("%")) for line in table]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 100.5


@pytest.mark.slow  # runs the profiling script as a process
def test_layer_profile_times_every_layer_and_the_whole_step():
    script = Path(__file__).resolve().parent.parent / "scripts" / "profile_layers.py"
    result = subprocess.run([sys.executable, str(script), "mlp", "--rounds", "2"],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("mlp: batch 256, oneDNN ")
    rows = {line.split()[-1]: line.split()[:-1] for line in lines[2:-2]}
    assert list(rows) == ["flatten", "dense_1", "dense_2", "output"]
    # Weighted layers carry a rate; the flatten moves data only.
    assert len(rows["flatten"]) == 1 and all(len(rows[name]) == 2 and float(rows[name][1]) > 0
                                             for name in ("dense_1", "dense_2", "output"))
    layers_ms = sum(float(values[0]) for values in rows.values())
    assert abs(float(lines[-2].split()[0]) - layers_ms) < 0.05 and lines[-2].endswith("sum of the layers")
    assert lines[-1].split()[1:4] == ["whole", "training", "step"] and float(lines[-1].split()[0]) > 0


def test_precision_study_report_compares_each_config_over_its_seeds():
    precision_study = load_script("precision_study")

    runs = [{"config": "cnn", "seed": seed, "precision": precision, "test_accuracy": accuracy,
             "precision_used": precision, "epoch_seconds": [30.0, *seconds]}
            for seed, precision, accuracy, seconds in [
                (42, "float32", 0.9936, [20.0, 22.0]), (1, "float32", 0.9930, [21.0]),
                (42, "mixed_bfloat16", 0.9920, [10.0, 11.0]), (1, "mixed_bfloat16", 0.9940, [12.0])]]
    row = precision_study.summarize(runs)[0]
    assert row["float32"]["mean"] == pytest.approx(0.9933) and row["float32"]["seconds_per_epoch"] == 21.0
    assert row["mixed_bfloat16"]["min"] == 0.9920 and row["mixed_bfloat16"]["seconds_per_epoch"] == 11.0
    study = {"cpu": "Test CPU", "bf16_flags": ["avx512_bf16"], "seeds": [42, 1], "tensorflow": "2.21",
             "keras": "3.15", "runs": runs}
    text = precision_study.markdown(study)
    assert "Test CPU (bf16/AMX flags: avx512_bf16)" in text
    assert "| cnn | 99.33% (99.30%-99.36%) | 99.30% (99.20%-99.40%) | -0.03 | 21.00 | 11.00 | 0.52x |" in text


def test_report_has_the_inference_runtimes_side_by_side():
    results = _sample_results()
    results["runtimes"] = {name: {"images_per_second": rate, "single_image_ms": ms} for name, rate, ms in [
        ("keras_predict", 5000, 60.0), ("predictor", 10000, 1.5), ("litert", 12000, 0.2),
        ("litert_int8", 30000, 0.05), ("onnxruntime", 15000, 0.15)]}
    text = bench.report(results)
    assert "| LiteRT, int8 export | 30,000 | 6.00 | 0.05 |" in text
    assert "| Keras `model.predict` | 5,000 | 1.00 | 60.00 |" in text
    assert "(LiteRT, int8 export: 6.00x)" in text and "(fastest: 0.05 ms)" in text
    del results["runtimes"]
    assert "cnn inference" not in bench.report(results)  # a run saved before the section existed


@pytest.mark.slow
def test_runtimes_worker_measures_every_runtime(small_mnist_dir):
    result = bench.work_runtimes({"data_dir": str(small_mnist_dir)})  # 500 test images: the figures, not their size
    assert set(result) == set(bench.RUNTIMES)
    assert all(figures["images_per_second"] > 0 and figures["single_image_ms"] > 0 for figures in result.values())


def test_the_elastic_cost_in_benchmarks_md_is_its_saved_run():
    """docs/benchmarks.md's elastic table is the report of docs/data/bench-elastic.json, cell for cell."""
    root = Path(__file__).resolve().parent.parent
    saved = json.loads((root / "docs" / "data" / "bench-elastic.json").read_text())
    assert saved["augmentation"]["overrides"] == bench.ELASTIC_AUGMENTATION
    page = (root / "docs" / "benchmarks.md").read_text()
    start = page.index("### With an elastic distortion")
    text = page[start:page.index("\n## ", start)]
    report = bench.augmentation_row(saved["augmentation"]).replace(" without |", " |").replace(" with |", " |") \
        .replace(" (with / without) |", " |")
    for row in report.splitlines():
        assert row in text
    plain = min(bench._fastest_epoch(run) for run in saved["augmentation"]["plain"])
    augmented = min(bench._fastest_epoch(run) for run in saved["augmentation"]["augmented"])
    assert f"{augmented - plain:.1f}-" in text and f"{saved['settings']['repeats']} --data-dir" in text


def test_reproduce_seeds_reads_the_data_from_the_download_cache_by_default(monkeypatch):
    # It used to default to ../shared/data, a folder only on the developers' machines.
    reproduce_seeds = load_script("reproduce_seeds")
    seen = []
    monkeypatch.delenv("MNIST_ZOO_DATA_DIR", raising=False)
    monkeypatch.setattr(reproduce_seeds, "reproduce", lambda name, data_dir, *args: seen.append(data_dir) or {
        "reproduced_accuracy": 0.9, "reported_accuracy": None, "parameters": 1, "seconds": 1.0})
    monkeypatch.setattr(reproduce_seeds, "markdown", lambda rows: "")
    monkeypatch.setattr(sys, "argv", ["reproduce_seeds.py", "--only", "linear"])
    reproduce_seeds.main()
    assert seen == [None]  # reproduce() then leaves data.data_dir to the config: the download cache
