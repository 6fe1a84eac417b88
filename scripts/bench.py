"""Benchmark: mnist-zoo against a plain Keras script, side by side on the same machine and data.

Every measurement runs in a fresh subprocess; the two sides alternate (keras, zoo, zoo, keras, ...)
so that slow phases of a noisy machine hit both. Reported: medians and zoo/keras ratios.

    python scripts/bench.py --quick --data-dir ../shared/data        # a minute or two
    python scripts/bench.py --full --data-dir ../shared/data -o docs/benchmarks-latest.md
    python scripts/bench.py --full --augmentation-only --repeats 3 --data-dir ../shared/data   # augmentation's cost
    python scripts/bench.py --full --augmentation-only --elastic --repeats 3 --data-dir ../shared/data   # with elastic
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MODES = {
    # train_limit: training images (before the 10 % validation hold-out); epochs: 1 warm-up + timed.
    "quick": {"train_limit": 6000, "epochs": 2, "repeats": 2, "target": 0.97, "max_epochs": 3},
    "full": {"train_limit": None, "epochs": 3, "repeats": 2, "target": 0.99, "max_epochs": 8},
}


# What `configs/cnn_record.yaml` augments with: the augmented epoch's cost is measured against a plain one.
AUGMENTATION = {"data.augmentation.rotation": 10, "data.augmentation.zoom": 0.1, "data.augmentation.translation": 0.1}
# The same with scripts/records.py's elastic distortion on top (job `elastic`).
ELASTIC_AUGMENTATION = {**AUGMENTATION, "data.augmentation.elastic_alpha": 36, "data.augmentation.elastic_sigma": 6}


# ----------------------------------------------------------------------------- the plain Keras side


def benchmarked_models() -> list[str]:
    """Every registered model, in registry order: a new model type is benchmarked without edits here."""
    from mnist_zoo.models.registry import MODELS

    return list(MODELS)


def keras_reference_model(name: str):
    """The same architecture, written the way the keras-io MNIST examples write them.

    The three classic models are written out as those examples do; any other registered model
    is the registry's own Keras model, trained the plain Keras way (compile, float32 arrays, fit).
    """
    import keras
    from keras import layers

    if name == "linear":
        body = [layers.Flatten(), layers.Dense(10, activation="softmax")]
    elif name == "mlp":
        body = [layers.Flatten(), layers.Dense(256, activation="relu"), layers.Dense(64, activation="relu"),
                layers.Dense(10, activation="softmax")]
    elif name == "cnn":
        body = [layers.Conv2D(32, kernel_size=(5, 5), activation="relu"), layers.MaxPooling2D(pool_size=(2, 2)),
                layers.Conv2D(64, kernel_size=(5, 5), activation="relu"), layers.MaxPooling2D(pool_size=(2, 2)),
                layers.Flatten(), layers.Dense(1024, activation="relu"), layers.Dropout(0.5),
                layers.Dense(10, activation="softmax")]
    else:
        from mnist_zoo.models.registry import MODELS, build_model

        body = None
        model = build_model(MODELS[name].config_class())
    if body is not None:
        model = keras.Sequential([keras.Input(shape=(28, 28, 1)), *body])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def keras_arrays(spec):
    import keras
    import numpy as np

    from mnist_zoo.data.datasets import load_dataset

    data = load_dataset("mnist", spec["data_dir"])
    limit = spec["train_limit"]
    x_train = (data.train_images[:limit].astype("float32") / 255)[..., np.newaxis]
    x_test = (data.test_images.astype("float32") / 255)[..., np.newaxis]
    return (x_train, keras.utils.to_categorical(data.train_labels[:limit], 10),
            x_test, keras.utils.to_categorical(data.test_labels, 10))


# ----------------------------------------------------------------------------- callbacks shared by both sides


def epoch_timer():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)

    return EpochTimer()


def test_accuracy_stopper(predict_accuracy, target: float):
    """Evaluates test accuracy after each epoch and stops training at `target`.

    Put it after `epoch_timer()` in the callback list: the timer closes each epoch first, so
    this evaluation is not part of the timed seconds.
    """
    import keras

    class StopAtTarget(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.accuracies = []

        def on_epoch_end(self, epoch, logs=None):
            self.accuracies.append(predict_accuracy(self.model))
            if self.accuracies[-1] >= target:
                self.model.stop_training = True

    return StopAtTarget()


# ----------------------------------------------------------------------------- workers (one subprocess each)


def work_train(spec) -> dict:
    """Epoch times and final test accuracy (or time to a target accuracy with spec['target'])."""
    target = spec.get("target")
    if spec["side"] in ("keras", "keras_onednn"):
        x_train, y_train, x_test, y_test = keras_arrays(spec)
        model = keras_reference_model(spec["model"])
        timer = epoch_timer()
        accuracy = lambda m: float((m.predict(x_test, verbose=0).argmax(1) == y_test.argmax(1)).mean())  # noqa: E731
        stopper = test_accuracy_stopper(accuracy, target) if target else None
        model.fit(x_train, y_train, batch_size=128, epochs=spec["epochs"], validation_split=0.1, verbose=0,
                  callbacks=[timer] + ([stopper] if stopper else []))
        final = accuracy(model)
    else:
        from mnist_zoo.config.loading import bundled_config_path, load_config
        from mnist_zoo.data.datasets import load_dataset
        from mnist_zoo.inference.predictor import Predictor
        from mnist_zoo.training.stage import train_run

        limit = spec["train_limit"]
        overrides = {"train.verbose": 0, "data.data_dir": spec["data_dir"], "data.validation_size": 0.1,
                     **spec.get("overrides", {})}
        if spec["epochs"] is not None:  # None: the config's own number of epochs (its whole schedule)
            overrides["train.epochs"] = spec["epochs"]
        if limit:
            overrides["data.train_limit"] = limit
        config = load_config(bundled_config_path(spec["model"]), overrides)
        test = load_dataset("mnist", spec["data_dir"])
        accuracy = lambda m: float((Predictor(m).probabilities(test.test_images).argmax(1) == test.test_labels).mean())  # noqa: E731
        timer = epoch_timer()
        stopper = test_accuracy_stopper(accuracy, target) if target else None
        with tempfile.TemporaryDirectory() as run_dir:
            result = train_run(config, Path(run_dir), extra_callbacks=[timer] + ([stopper] if stopper else []))
        final = result.metrics["test_accuracy"]
    out = {"epoch_seconds": timer.seconds, "test_accuracy": final}
    if stopper:
        reached = next((i for i, a in enumerate(stopper.accuracies) if a >= target), None)
        out.update(accuracies=stopper.accuracies, reached_epoch=None if reached is None else reached + 1,
                   seconds_to_target=None if reached is None else sum(timer.seconds[:reached + 1]))
    return out


def work_inference(spec) -> dict:
    """10k-image evaluation throughput and single-image latency of the (untrained) CNN."""
    import numpy as np

    from mnist_zoo.data.datasets import load_dataset

    data = load_dataset("mnist", spec["data_dir"])
    images, labels = data.test_images, data.test_labels
    if spec["side"] == "keras":
        import keras

        model = keras_reference_model("cnn")
        x = (images.astype("float32") / 255)[..., np.newaxis]
        y = keras.utils.to_categorical(labels, 10)
        evaluate = lambda: model.evaluate(x, y, verbose=0)  # noqa: E731
        single = lambda: model.predict(x[:1], verbose=0)  # noqa: E731
    else:
        from mnist_zoo.config.loading import bundled_config_path, load_config
        from mnist_zoo.inference.evaluation import classification_report
        from mnist_zoo.inference.predictor import Predictor
        from mnist_zoo.models.registry import build_model

        predictor = Predictor(build_model(load_config(bundled_config_path("cnn")).model))
        evaluate = lambda: classification_report(labels, predictor.probabilities(images), data.class_names)  # noqa: E731
        single = lambda: predictor.probabilities(images[:1])  # noqa: E731
    evaluate(), single()  # warm-up: tracing and first allocations
    eval_times = []
    for _ in range(3):
        start = time.perf_counter()
        evaluate()
        eval_times.append(time.perf_counter() - start)
    latencies = []
    for _ in range(50):
        start = time.perf_counter()
        single()
        latencies.append(time.perf_counter() - start)
    return {"images_per_second": len(images) / statistics.median(eval_times),
            "single_image_ms": 1000 * statistics.median(latencies)}


RUNTIMES = ("keras_predict", "predictor", "litert", "litert_int8", "onnxruntime")
"""The inference section's rows: Keras's model.predict, mnist-zoo's Predictor, and the exported files."""


def work_runtimes(spec) -> dict:
    """Throughput on the 10k test images and single-image latency of the CNN in every runtime.

    One process, so that every runtime meets the same machine state; the runtimes take turns in
    each of three rounds and the medians are reported. The CNN is the default architecture,
    untrained (speed does not depend on the weights); int8 is calibrated on training images.
    """
    import numpy as np

    from mnist_zoo.config.loading import bundled_config_path, load_config
    from mnist_zoo.data.datasets import load_dataset
    from mnist_zoo.exports import stage
    from mnist_zoo.exports.wrapper import inference_model
    from mnist_zoo.inference.runtimes import KerasClassifier, open_classifier, time_classifier
    from mnist_zoo.models.registry import build_model

    data = load_dataset("mnist", spec["data_dir"])
    images = data.test_images
    model = build_model(load_config(bundled_config_path("cnn")).model)
    exported = inference_model(model)
    exported(images[:1])
    representative = data.train_images[:stage.REPRESENTATIVE_IMAGES]
    x = (images.astype("float32") / 255)[..., np.newaxis]

    class KerasPredict:
        """model.predict as a Keras script calls it: float32 arrays, default batch size."""

        def scores(self, batch):
            return model.predict(x[:len(batch)] if len(batch) < len(x) else x, verbose=0)

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        stage._write("tflite", exported, folder / "model.tflite", "none", representative, folder)
        stage._write("tflite", exported, folder / "model-int8.tflite", "int8", representative, folder)
        stage._write("onnx", exported, folder / "model.onnx", "none", representative, folder)
        engines = {"keras_predict": KerasPredict(), "predictor": KerasClassifier(folder, model=model),
                   "litert": open_classifier(folder / "model.tflite"),
                   "litert_int8": open_classifier(folder / "model-int8.tflite"),
                   "onnxruntime": open_classifier(folder / "model.onnx")}
        rounds = {name: [] for name in engines}
        for _ in range(3):
            for name, engine in engines.items():
                rounds[name].append(time_classifier(engine, images))
    return {name: {"images_per_second": statistics.median(t.images_per_second for t in timings),
                   "single_image_ms": statistics.median(t.single_image_ms for t in timings)}
            for name, timings in rounds.items()}


def work_peak_memory(spec) -> dict:
    """Peak resident memory (MiB) of one CNN training epoch in a child process."""
    with tempfile.TemporaryDirectory() as out:
        if spec["side"] == "keras":
            code = ("import sys; sys.path.insert(0, %r); from scripts.bench import work_train; "
                    "work_train(%r)" % (str(REPO_ROOT), {**spec, "model": "cnn", "epochs": 1}))
            command = [sys.executable, "-c", code]
        else:
            command = [sys.executable, "-m", "mnist_zoo", "train", "--model", "cnn", "--epochs", "1",
                       "--data-dir", spec["data_dir"], "--output-dir", out, "--set", "train.verbose=0"]
            if spec["train_limit"]:
                command += ["--set", f"data.train_limit={spec['train_limit']}"]
        subprocess.run(command, check=True, capture_output=True)
    # The maximum over waited-for children: this worker's only child.
    return {"peak_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def work_ceiling(spec) -> dict:
    """Sustained float32 GFLOP/s of a large TensorFlow matmul: what this CPU can deliver."""
    import tensorflow as tf

    size = 2048
    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))
    matmul = tf.function(lambda x, y: tf.reduce_sum(tf.matmul(x, y)))
    matmul(a, b)
    rates = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(10):
            matmul(a, b).numpy()
        rates.append(10 * 2 * size**3 / (time.perf_counter() - start) / 1e9)
    return {"gflops": statistics.median(rates)}


WORKERS = {"train": work_train, "inference": work_inference, "runtimes": work_runtimes, "memory": work_peak_memory, "ceiling": work_ceiling,
           "settings": lambda spec: {}}  # only what every worker reports: the TensorFlow settings in force

# Multiply-accumulates of one CNN forward pass (weights only), times 2 FLOPs, times 3 for
# forward + both backward products: the float32 work of one training image.
CNN_FORWARD_MACS = 24 * 24 * 32 * 25 + 8 * 8 * 64 * 32 * 25 + 1024 * 1024 + 1024 * 10
CNN_TRAIN_FLOPS_PER_IMAGE = 3 * 2 * CNN_FORWARD_MACS


def run_worker(spec: dict) -> dict:
    """Runs one measurement in a fresh Python process and returns its JSON result.

    The plain Keras side runs with this machine's TensorFlow defaults, as a plain script would
    (mnist-zoo switches TensorFlow's oneDNN kernels on where TensorFlow leaves them off); the
    side "keras_onednn" is the same script with TF_ENABLE_ONEDNN_OPTS=1, to show what that
    switch alone is worth.
    """
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO_ROOT)}
    if spec.get("side") == "keras_onednn":
        env["TF_ENABLE_ONEDNN_OPTS"] = "1"
    result = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)],
                            capture_output=True, text=True, env=env, cwd=REPO_ROOT)
    if result.returncode != 0:
        raise RuntimeError(f"worker {spec} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- orchestration and report


def cpu_model() -> str:
    """The CPU's model name and the flags that change kernels and precision, e.g. 'Xeon (avx2, amx_bf16)'.

    Read here rather than with mnist_zoo.runtime.device: importing mnist_zoo in this process would
    set TF_ENABLE_ONEDNN_OPTS for the plain-Keras workers it starts.
    """
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    wanted = [flag for flag in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if flag in flags]
    return f"{model} ({', '.join(wanted)})" if wanted else model


def alternating(repeats: int, offset: int = 0):
    """keras, zoo | zoo, keras | ...: each side goes first equally often.

    On a machine whose CPU quota drains under sustained load, whoever runs second is slower,
    so the order also flips between measurements (`offset`).
    """
    for repeat in range(offset, offset + repeats):
        yield from (("keras", "zoo") if repeat % 2 == 0 else ("zoo", "keras"))


def help_seconds(repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mnist_zoo", "--help"], check=True, capture_output=True,
                       cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_augmentation(mode: str, data_dir: str, repeats: int, log, augmentation: dict = AUGMENTATION) -> dict:
    """The augmentation's own cost: the same mnist-zoo CNN epochs with and without it, alternating.

    Args:
        augmentation: the `--set` overrides of the augmented runs (`AUGMENTATION` or `ELASTIC_AUGMENTATION`).
    """
    settings = MODES[mode]
    base = {"data_dir": data_dir, "train_limit": settings["train_limit"], "kind": "train", "side": "zoo",
            "model": "cnn", "epochs": settings["epochs"]}
    runs = {"plain": [], "augmented": [], "overrides": augmentation}
    for repeat in range(repeats):
        for kind in (("plain", "augmented") if repeat % 2 == 0 else ("augmented", "plain")):
            log(f"cnn: mnist-zoo, {kind}")
            overrides = augmentation if kind == "augmented" else {}
            runs[kind].append(run_worker({**base, "overrides": overrides}))
    return runs


def augmentation_label(overrides: dict) -> str:
    """The augmented runs' changes in words, e.g. 'rotation 10°, zoom 0.1, shift 0.1'."""
    words = {"rotation": "rotation {:g}°", "zoom": "zoom {:g}", "translation": "shift {:g}",
             "elastic_alpha": "elastic α {:g}", "elastic_sigma": "σ {:g}"}
    return ", ".join(words[key.rsplit(".", 1)[1]].format(value) for key, value in overrides.items())


def measure(mode: str, data_dir: str, repeats: int, log) -> dict:
    settings = MODES[mode]
    base = {"data_dir": data_dir, "train_limit": settings["train_limit"]}
    # The small models' runs take seconds, and at that size a tenth of a second of this VM's noise
    # moves a ratio by 0.05-0.1: twice the repeats buy a steadier median at little cost.
    small_model_repeats = 2 * repeats
    results: dict = {"mode": mode, "cpu": cpu_model(),
                     "settings": {**settings, "repeats": repeats, "small_model_repeats": small_model_repeats}}
    for offset, model in enumerate(benchmarked_models()):
        runs = {"keras": [], "zoo": []}
        for side in alternating(repeats if model == "cnn" else small_model_repeats, offset):
            log(f"{model}: {side} training {settings['epochs']} epochs")
            runs[side].append(run_worker({**base, "kind": "train", "side": side, "model": model,
                                          "epochs": settings["epochs"]}))
        results[model] = runs
    if mode == "full":
        results["cnn"]["keras_onednn"] = []
        for _ in range(repeats):
            log("cnn: plain Keras with TF_ENABLE_ONEDNN_OPTS=1")
            results["cnn"]["keras_onednn"].append(run_worker({**base, "kind": "train", "side": "keras_onednn",
                                                              "model": "cnn", "epochs": settings["epochs"]}))
    results["augmentation"] = measure_augmentation(mode, data_dir, repeats, log)
    results["time_to_target"] = {"keras": [], "zoo": []}
    for side in alternating(max(1, repeats // 2), offset=1):
        log(f"cnn: {side} training until {settings['target']:.0%} test accuracy")
        # mnist-zoo runs its default recipe as is: the schedule spans the config's epochs.
        epochs = settings["max_epochs"] if side == "keras" else None
        results["time_to_target"][side].append(run_worker({**base, "kind": "train", "side": side, "model": "cnn",
                                                           "epochs": epochs, "target": settings["target"]}))
    results["inference"] = {"keras": [], "zoo": []}
    results["memory"] = {"keras": [], "zoo": []}
    for side in alternating(repeats):  # a few seconds each, and as exposed to the VM's speed swings
        log(f"inference: {side}")
        results["inference"][side].append(run_worker({**base, "kind": "inference", "side": side}))
    log("inference runtimes: Keras predict, Predictor, LiteRT, LiteRT int8, onnxruntime")
    results["runtimes"] = run_worker({**base, "kind": "runtimes"})
    for side in alternating(1):
        log(f"memory: {side}")
        results["memory"][side].append(run_worker({**base, "kind": "memory", "side": side}))
    log("--help")
    results["help_seconds"] = help_seconds()
    log("float32 matmul ceiling")
    results["ceiling_gflops"] = run_worker({"kind": "ceiling"})["gflops"]
    return results


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _timed_epoch_seconds(run) -> list:
    return run["epoch_seconds"][1:] or run["epoch_seconds"]  # after the warm-up epoch


def _timed_epochs(run):
    return statistics.median(_timed_epoch_seconds(run))


def _fastest_epoch(run):
    # This VM's speed swings ~1.8x from epoch to epoch (host load); the fastest epoch is the
    # code's speed when the machine is not held back, the median what a user sees.
    return min(_timed_epoch_seconds(run))


def _fmt(value, pattern="{:.2f}"):
    return "n/a" if value is None else pattern.format(value)


def augmentation_row(runs: dict) -> str:
    """The report's rows for `measure_augmentation`'s runs: median and fastest timed epochs, and their ratios."""
    plain, augmented = (_median([_timed_epochs(run) for run in runs[kind]]) for kind in ("plain", "augmented"))
    fastest_plain, fastest_augmented = (min(_fastest_epoch(run) for run in runs[kind]) for kind in ("plain", "augmented"))
    # Runs saved before the elastic option measured AUGMENTATION and did not record it.
    label = augmentation_label(runs.get("overrides", AUGMENTATION))
    return (f"| cnn: mnist-zoo seconds per epoch with augmentation ({label}) | "
            f"{plain:.2f} without | {augmented:.2f} with | {augmented / plain:.2f} (with / without) | ≤ 1.3 |\n"
            f"| cnn: the same, fastest timed epoch | {fastest_plain:.2f} without | {fastest_augmented:.2f} with | "
            f"{fastest_augmented / fastest_plain:.2f} (with / without) | |")


def augmentation_report(results: dict) -> str:
    """The report of an `--augmentation-only` run: the one row, then the machine."""
    settings = results["settings"]
    limit = settings["train_limit"] or "all 60,000"
    return ("| measurement | without | with | ratio | target |\n|---|---|---|---|---|\n"
            + augmentation_row(results["augmentation"])
            + f"\n\n{results['cpu']}, {os.cpu_count()} cores, Python {platform.python_version()}, mode {results['mode']}: "
            f"{limit} training images (10 % held out for validation), {settings['epochs']} epochs (the first "
            f"is a warm-up, excluded), {settings['repeats']} alternating repeats, medians\n")


def report(results: dict) -> str:
    """The Markdown report: one table of medians and ratios, then the machine."""
    rows = ["| measurement | plain Keras | mnist-zoo | zoo / keras | target |", "|---|---|---|---|---|"]
    targets = {"linear": "≤ 0.35", "mlp": "≤ 0.35", "cnn": "≤ 0.5"}
    epochs = results["settings"]["epochs"]
    seconds = {model: {side: _median([_timed_epochs(r) for r in runs]) for side, runs in results[model].items()}
               for model in benchmarked_models() if model in results}
    for model in seconds:
        keras_s, zoo_s = seconds[model]["keras"], seconds[model]["zoo"]
        rows.append(f"| {model}: seconds per epoch | {keras_s:.2f} | {zoo_s:.2f} | {zoo_s / keras_s:.2f} | {targets.get(model, '')} |")
        keras_s, zoo_s = (min(_fastest_epoch(r) for r in results[model][side]) for side in ("keras", "zoo"))
        rows.append(f"| {model}: fastest timed epoch, seconds | {keras_s:.2f} | {zoo_s:.2f} | {zoo_s / keras_s:.2f} | |")
        keras_a = _median([r["test_accuracy"] for r in results[model]["keras"]])
        zoo_a = _median([r["test_accuracy"] for r in results[model]["zoo"]])
        rows.append(f"| {model}: test accuracy after {epochs} epochs | {keras_a:.2%} | {zoo_a:.2%} | "
                    f"{100 * (zoo_a - keras_a):+.2f} points | cnn: ≥ -0.1 points |")
    if results["cnn"].get("keras_onednn"):
        onednn_s, zoo_s = seconds["cnn"]["keras_onednn"], seconds["cnn"]["zoo"]
        rows.append(f"| cnn: seconds per epoch, plain Keras with TF_ENABLE_ONEDNN_OPTS=1 | {onednn_s:.2f} | {zoo_s:.2f} | "
                    f"{zoo_s / onednn_s:.2f} | |")
    onednn = {side: all(r.get("onednn") for r in results["cnn"][side]) for side in ("keras", "zoo")}
    rows.append(f"| TensorFlow oneDNN kernels in use | {'on' if onednn['keras'] else 'off'} | "
                f"{'on' if onednn['zoo'] else 'off'} | | |")
    if results.get("augmentation"):
        rows.append(augmentation_row(results["augmentation"]))
    target = results["settings"]["target"]
    ttt = results["time_to_target"]
    keras_t = _median([r["seconds_to_target"] for r in ttt["keras"]])
    zoo_t = _median([r["seconds_to_target"] for r in ttt["zoo"]])
    keras_e = _median([r["reached_epoch"] for r in ttt["keras"]])
    zoo_e = _median([r["reached_epoch"] for r in ttt["zoo"]])
    ratio = _fmt(zoo_t / keras_t if keras_t and zoo_t else None)
    rows.append(f"| cnn: seconds to {target:.0%} test accuracy (epochs) | {_fmt(keras_t, '{:.1f}')} ({_fmt(keras_e, '{:.0f}')}) "
                f"| {_fmt(zoo_t, '{:.1f}')} ({_fmt(zoo_e, '{:.0f}')}) | {ratio} | ≤ 0.25 |")
    inference = {side: {key: _median([run[key] for run in results["inference"][side]])
                        for key in ("images_per_second", "single_image_ms")} for side in ("keras", "zoo")}
    rows.append(f"| cnn: 10k-image evaluation, images/s | {inference['keras']['images_per_second']:,.0f} | "
                f"{inference['zoo']['images_per_second']:,.0f} | "
                f"{inference['zoo']['images_per_second'] / inference['keras']['images_per_second']:.2f} | ≥ 7,000 images/s |")
    rows.append(f"| cnn: single-image prediction, ms | {inference['keras']['single_image_ms']:.2f} | "
                f"{inference['zoo']['single_image_ms']:.2f} | "
                f"{inference['zoo']['single_image_ms'] / inference['keras']['single_image_ms']:.2f} | ≤ 5 ms |")
    memory = {side: results["memory"][side][0]["peak_rss_mib"] for side in ("keras", "zoo")}
    rows.append(f"| cnn training: peak resident memory, MiB | {memory['keras']:,.0f} | {memory['zoo']:,.0f} | "
                f"{memory['zoo'] / memory['keras']:.2f} | |")
    rows.append(f"| `mnist-zoo --help`, seconds | | {results['help_seconds']:.3f} | | ≤ 0.3 s |")
    train_images = 0.9 * (results["settings"]["train_limit"] or 60000)  # 10 % held out
    floor = train_images * CNN_TRAIN_FLOPS_PER_IMAGE / (results["ceiling_gflops"] * 1e9)
    achieved = {side: train_images * CNN_TRAIN_FLOPS_PER_IMAGE / seconds["cnn"][side] / 1e9
                for side in ("keras", "zoo")}
    rows.append(f"| cnn: achieved GFLOP/s in training (float32 matmul ceiling: {results['ceiling_gflops']:.0f}) | "
                f"{achieved['keras']:.0f} | {achieved['zoo']:.0f} | | |")
    rows.append(f"| cnn: compute floor, seconds per epoch at the matmul ceiling ({train_images:,.0f} images) | "
                f"{floor:.2f} | {floor:.2f} | | |")
    settings = results["settings"]
    limit = settings["train_limit"] or "all 60,000"
    machine = (f"{results.get('cpu') or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
               f"mode {results['mode']}: {limit} training images (10 % held out for validation), "
               f"{settings['epochs']} epochs (the first is a warm-up, excluded from seconds per epoch), "
               f"{settings['repeats']} alternating repeats (linear and mlp: {settings.get('small_model_repeats', settings['repeats'])}), "
               f"medians; time to {settings['target']:.0%}: plain Keras up to "
               f"{settings['max_epochs']} epochs, mnist-zoo its default CNN recipe with its own epochs and schedule")
    return "\n".join(rows) + "\n\n" + machine + "\n" + runtimes_report(results.get("runtimes"))


def runtimes_report(runtimes: dict | None) -> str:
    """The inference section: the CNN in every runtime, against Keras's model.predict."""
    if not runtimes:
        return ""
    names = {"keras_predict": "Keras `model.predict`", "predictor": "mnist-zoo Predictor (Keras model, traced)",
             "litert": "LiteRT, float32 export", "litert_int8": "LiteRT, int8 export", "onnxruntime": "onnxruntime, float32 export"}
    base = runtimes["keras_predict"]["images_per_second"]
    rows = ["| cnn inference | 10k test images, images/s | x Keras predict | one image, ms |", "|---|---|---|---|"]
    for name in RUNTIMES:
        if name in runtimes:
            figures = runtimes[name]
            rows.append(f"| {names[name]} | {figures['images_per_second']:,.0f} | "
                        f"{figures['images_per_second'] / base:.2f} | {figures['single_image_ms']:.2f} |")
    best = max((name for name in RUNTIMES if name in runtimes), key=lambda name: runtimes[name]["images_per_second"])
    # Only the runtimes: the worker's answer also says whether oneDNN was on ("onednn": true).
    fastest_single = min(runtimes[name]["single_image_ms"] for name in RUNTIMES if name in runtimes and name != "keras_predict")
    return ("\n" + "\n".join(rows) + f"\n\nTargets: the fastest runtime at least 3x Keras predict's throughput "
            f"({names[best]}: {runtimes[best]['images_per_second'] / base:.2f}x), one image in at most 1 ms "
            f"(fastest: {fastest_single:.2f} ms). Three rounds in one process, runtimes taking turns, medians.\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_const", dest="mode", const="quick")
    group.add_argument("--full", action="store_const", dest="mode", const="full")
    parser.add_argument("--data-dir", default=os.environ.get("MNIST_ZOO_DATA_DIR", str(REPO_ROOT.parent / "shared" / "data")))
    parser.add_argument("--repeats", type=int, help="alternating repeats (default: 2; twice as many for linear and mlp)")
    parser.add_argument("--augmentation-only", action="store_true",
                        help="measure only the augmentation's cost (the CNN's epochs with and without it)")
    parser.add_argument("--elastic", action="store_true",
                        help="with --augmentation-only: augment with the elastic distortion on top (job 'elastic')")
    parser.add_argument("-o", "--output", type=Path, help="also write the Markdown report here (and .json beside it)")
    parser.add_argument("--from-json", type=Path, help="only print the report of an earlier run's .json")
    args = parser.parse_args()
    if args.elastic and not args.augmentation_only:
        parser.error("--elastic measures the augmentation's cost: give it with --augmentation-only")
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        print(augmentation_report(saved) if saved.get("augmentation_only") else report(saved))
        return
    if args.worker:
        spec = json.loads(args.worker)
        # Import order decides the oneDNN setting: mnist_zoo first sets its default (the zoo
        # side, as the CLI does); TensorFlow first leaves TensorFlow's own choice, as a plain
        # script has it (the keras side, whose data loading imports mnist_zoo later).
        if spec.get("side", "").startswith("keras"):
            import tensorflow  # noqa: F401
        from mnist_zoo.runtime.environment import onednn_enabled

        print(json.dumps({**WORKERS[spec["kind"]](spec), "onednn": onednn_enabled()}))
        return
    mode = args.mode or "quick"
    repeats = args.repeats or MODES[mode]["repeats"]
    start = time.perf_counter()
    log = lambda message: print(f"[{time.perf_counter() - start:6.0f} s] {message}", file=sys.stderr)  # noqa: E731
    data_dir = str(Path(args.data_dir).resolve())
    if args.augmentation_only:
        results = {"mode": mode, "augmentation_only": True, "cpu": cpu_model(),
                   "settings": {**MODES[mode], "repeats": repeats},
                   "augmentation": measure_augmentation(
                       mode, data_dir, repeats, log, ELASTIC_AUGMENTATION if args.elastic else AUGMENTATION)}
        text = augmentation_report(results)
    else:
        results = measure(mode, data_dir, repeats, log)
        text = report(results)
    print(text)
    if args.output:
        args.output.write_text(text)
        args.output.with_suffix(".json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
