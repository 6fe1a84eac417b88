"""The models a server runs: found in run directories and model files, opened once, predicted side by side."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mnist_zoo import rundir
from mnist_zoo.errors import MnistZooError, ModelFileError

DEFAULT_TOP_K = 3


class UnknownModelError(MnistZooError):
    """A request named a model id that is not among those served."""


class ZooClosedError(MnistZooError):
    """A request came after the server began shutting down: its models no longer run."""


@dataclass
class ServedModel:
    """One model file opened in its runtime, with what the page shows about it."""

    id: str
    path: Path
    run_dir: Path | None
    classifier: object
    """A `runtimes.Classifier`."""
    dataset: str
    class_names: tuple[str, ...]
    architecture: str | None
    parameters: int | None
    test_accuracy: float | None
    """On the test set: from the run's metrics.json (its own model) or an `evaluate` report; None if neither."""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def name(self) -> str:
        """The run's name for a run's own model, else the file's name."""
        if rundir.is_own_model(self.path, self.run_dir):
            return self.run_dir.name
        return self.path.name

    def describe(self) -> dict:
        """What GET /api/models says about the model."""
        return {
            "id": self.id,
            "name": self.name,
            "run": self.run_dir.name if self.run_dir is not None else None,
            "file": self.path.name,
            "runtime": self.classifier.kind,
            "architecture": self.architecture,
            "parameters": self.parameters,
            "dataset": self.dataset,
            "classes": list(self.class_names),
            "test_accuracy": self.test_accuracy,
        }

    def predict(self, image: np.ndarray, top_k: int) -> dict:
        """The top-k classes of one 28x28 uint8 image, as `mnist-zoo predict --json` gives them, and the time taken."""
        with self.lock:
            start = time.perf_counter()
            probabilities = self.classifier.probabilities(image[None])[0]
            milliseconds = 1000 * (time.perf_counter() - start)
        return self.record(probabilities, top_k, milliseconds, 1)

    def record(self, probabilities: np.ndarray, top_k: int, milliseconds: float, batch_size: int) -> dict:
        """One image's answer: the model's id, the record `predict --json` writes, and the call's time and batch."""
        from mnist_zoo.inference.prediction import PreparedInput, ranked

        item = PreparedInput(self.path, top_k=ranked(probabilities, top_k))
        record = item.record(self.class_names)
        del record["input"]
        return {"model": self.id, **record, "milliseconds": round(milliseconds, 3), "batch_size": batch_size}


MAX_BATCH = 64


class JointKerasCall:
    """All the served Keras models in one traced TensorFlow function: one call runs them all.

    Each call into TensorFlow costs a fixed overhead of Python binding and graph dispatch (most
    of a small model's time); a drawing shown to every model pays it once instead of per model.
    Each model runs its own `Predictor` graph inside, so its numbers are those of `predict`.
    """

    def __init__(self, models: list[ServedModel]):
        import tensorflow as tf

        self.models = models
        self.ids = [model.id for model in models]
        predictors = [model.classifier.predictor for model in models]
        self._predictors = predictors
        self._call = tf.function(lambda images: [predictor._forward(images) for predictor in predictors],
                                 input_signature=[tf.TensorSpec((None, 28, 28), tf.uint8)])
        if models:
            self._call(np.zeros((1, 28, 28), np.uint8))  # traced now, not on the first request

    def probabilities(self, images: np.ndarray) -> list[np.ndarray]:
        """Each model's class probabilities (n, 10) for uint8 images (n, 28, 28), in `models` order."""
        from mnist_zoo.inference.predictor import to_probabilities

        outputs = self._call(images)
        return [to_probabilities(output.numpy(), predictor.output_kind, predictor.output_dtype)
                for output, predictor in zip(outputs, self._predictors)]


class BatchingWorker:
    """The thread that runs the models for a server: the requests waiting when it is free share one call per model.

    A call costs nearly the same for one image as for a few (mostly the runtime's per-call
    overhead), so concurrent requests share calls instead of queueing for one each. One thread
    for all models, calling them one after the other: model threads of their own would only
    compete for the same cores, and each call would take several times as long.
    """

    def __init__(self, models: list[ServedModel], max_batch: int = MAX_BATCH):
        self.max_batch = max_batch
        self.joint = JointKerasCall([model for model in models if model.classifier.kind == "keras"])
        self._waiting: list[tuple[np.ndarray, list[ServedModel], Future]] = []
        self._condition = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="mnist-zoo predict", daemon=True)
        self._thread.start()

    def submit(self, image: np.ndarray, models: list[ServedModel]) -> Future:
        """Queues one 28x28 uint8 image for `models`; the future gets [(probabilities, milliseconds, batch size)]."""
        future: Future = Future()
        with self._condition:
            if self._closed:
                raise ZooClosedError("the server is shutting down; its models no longer answer")
            self._waiting.append((image, models, future))
            self._condition.notify()
        return future

    def _serve(self) -> None:
        while True:
            with self._condition:
                while not self._waiting and not self._closed:
                    self._condition.wait()
                if not self._waiting:
                    return
                batch, self._waiting = self._waiting[:self.max_batch], self._waiting[self.max_batch:]
            # A request whose client went away has its future cancelled: it is left out, as
            # setting the result of a cancelled future raises (and would end this thread).
            batch = [item for item in batch if item[2].set_running_or_notify_cancel()]
            if not batch:
                continue
            try:
                answers = self._predict(batch)
            except Exception as error:  # the requests answer 500 with it; the worker goes on
                for *_, future in batch:
                    future.set_exception(error)
                continue
            for (*_, future), answer in zip(batch, answers):
                future.set_result(answer)

    def _predict(self, batch) -> list[list[tuple[np.ndarray, float, int]]]:
        """For each request of `batch`, its models' answers, in the order it named them."""
        found: list[dict[str, tuple]] = [{} for _ in batch]
        models = {model.id: model for _, wanted, _ in batch for model in wanted}
        if len(self.joint.models) > 1 and all(set(self.joint.ids) <= {model.id for model in wanted}
                                              for _, wanted, _ in batch):
            start = time.perf_counter()
            joint_rows = self.joint.probabilities(np.stack([image for image, _, _ in batch]))
            milliseconds = 1000 * (time.perf_counter() - start)
            for model_id, rows in zip(self.joint.ids, joint_rows):
                for index, row in enumerate(rows):
                    found[index][model_id] = (row, milliseconds, len(batch))
                del models[model_id]
        for model in models.values():
            asking = [index for index, (_, wanted, _) in enumerate(batch) if model in wanted]
            with model.lock:
                start = time.perf_counter()
                rows = model.classifier.probabilities(np.stack([batch[index][0] for index in asking]))
                milliseconds = 1000 * (time.perf_counter() - start)
            for index, row in zip(asking, rows):
                found[index][model.id] = (row, milliseconds, len(asking))
        return [[answers[model.id] for model in wanted] for (_, wanted, _), answers in zip(batch, found)]

    def close(self) -> None:
        """Answers what is waiting, then stops the thread."""
        with self._condition:
            self._closed = True
            self._condition.notify()
        self._thread.join()


@dataclass
class Zoo:
    """The served models by id, in the order the page shows them, and the runs left out with the reason."""

    models: dict[str, ServedModel]
    skipped: list[str] = field(default_factory=list)
    worker: BatchingWorker | None = field(default=None, repr=False)
    closed: bool = field(default=False, repr=False)

    def select(self, model_id: str | None) -> list[ServedModel]:
        """All models (None), or the one with this id.

        Raises:
            UnknownModelError: no served model has this id.
        """
        if model_id is None:
            return list(self.models.values())
        if model_id not in self.models:
            served = ", ".join(self.models) or "none"
            raise UnknownModelError(f"no served model has the id {model_id!r}; served: {served}")
        return [self.models[model_id]]

    def predict(self, image: np.ndarray, model_id: str | None = None, top_k: int = DEFAULT_TOP_K) -> list[dict]:
        """Every selected model's top-k for one 28x28 uint8 image, one model after the other."""
        return [model.predict(image, top_k) for model in self.select(model_id)]

    async def predict_batched(self, image: np.ndarray, model_id: str | None = None,
                              top_k: int = DEFAULT_TOP_K) -> list[dict]:
        """As `predict`, for a server: through the `BatchingWorker`, which shares calls among concurrent requests."""
        import asyncio

        models = self.select(model_id)
        self.start()
        answers = await asyncio.wrap_future(self.worker.submit(image, models))
        return [model.record(row, top_k, milliseconds, batch_size)
                for model, (row, milliseconds, batch_size) in zip(models, answers)]

    def start(self) -> None:
        """Starts the batching worker of `predict_batched` (done by its first call otherwise).

        Raises:
            ZooClosedError: the zoo was closed: a request arriving during a shutdown must not
                start a new thread that nothing would stop.
        """
        if self.closed:
            raise ZooClosedError("the server is shutting down; its models no longer answer")
        if self.worker is None:
            self.worker = BatchingWorker(list(self.models.values()))

    def close(self) -> None:
        """Stops the batching worker for good (a server's shutdown): later requests are refused."""
        self.closed = True
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.close()


def _finished_runs(folder: Path) -> tuple[list[Path], list[str]]:
    """The runs directly inside `folder` that finished (metrics.json and a model), and why others were left out."""
    runs, skipped = [], []
    for child in sorted(path for path in folder.iterdir() if (path / rundir.CONFIG_FILE).is_file()):
        if not (child / rundir.METRICS_FILE).is_file():
            status = rundir.read_status(child).get("status", "unknown")
            skipped.append(f"{child}: not finished (status: {status})")
        elif not any((child / name).is_file() for name in (rundir.BEST_MODEL, rundir.LAST_MODEL)):
            skipped.append(f"{child}: holds no {rundir.BEST_MODEL}")
        else:
            runs.append(child)
    return runs, skipped


def find_models(paths: list[Path], runs_dir: Path | None) -> tuple[list[Path], list[Path], list[str]]:
    """Which model files to serve.

    Args:
        paths: run directories, model files (.keras, .tflite, .onnx, SavedModel folders) or
            folders of runs, as the user named them.
        runs_dir: a folder whose finished runs are all served (skipped if it does not exist).

    Returns:
        (files the user named, files of the runs found, why runs were left out).

    Raises:
        ModelFileError: a named path holds no model.
    """
    named, found, skipped = [], [], []
    for path in map(Path, paths):
        is_run_folder = path.is_dir() and not (path / rundir.CONFIG_FILE).is_file() \
            and not (path / "saved_model.pb").is_file()
        if is_run_folder:
            runs, left_out = _finished_runs(path)
            if not runs:
                raise ModelFileError(f"{path}: neither a model, a run directory nor a folder holding finished runs")
            named += [rundir.resolve_model_path(run)[0] for run in runs]
            skipped += left_out
        else:
            named.append(rundir.resolve_model_path(path)[0])
    if runs_dir is not None and Path(runs_dir).is_dir():
        runs, left_out = _finished_runs(Path(runs_dir))
        found += [rundir.resolve_model_path(run)[0] for run in runs]
        skipped += left_out
    return named, found, skipped


def _unique_id(wanted: str, taken: dict) -> str:
    candidate, number = wanted, 1
    while candidate in taken:
        number += 1
        candidate = f"{wanted}-{number}"
    return candidate


def _model_facts(classifier, model_file: Path, run_dir: Path | None):
    """(architecture, parameters, test accuracy) of an opened model file."""
    from mnist_zoo.inference.evaluation import read_report
    from mnist_zoo.models.summary import architecture

    model = getattr(classifier, "model", None)
    if model is None and run_dir is not None:  # an export: the run's config rebuilds its network
        from mnist_zoo.config.loading import load_config
        from mnist_zoo.models.registry import build_model

        try:
            model = build_model(load_config(run_dir / rundir.CONFIG_FILE).model)
        except MnistZooError:
            model = None
    accuracy = None
    if rundir.is_own_model(model_file, run_dir) and model_file.name == rundir.BEST_MODEL:
        import json

        try:
            accuracy = json.loads((run_dir / rundir.METRICS_FILE).read_text(encoding="utf-8")).get("test_accuracy")
        except (OSError, ValueError):
            accuracy = None
    if accuracy is None:
        report = read_report(model_file, run_dir, classifier.kind)
        accuracy = report.get("accuracy") if report else None
    if model is None:
        return None, None, accuracy
    return architecture(model), int(model.count_params()), accuracy


def open_model(model_file: Path, run_dir: Path | None, model_id: str, unsafe: bool = False) -> ServedModel:
    """Opens one model file in its runtime (Keras files in safe mode) and traces it on a blank image.

    Args:
        model_file: the file (`rundir.resolve_model_path` of what the user named).
        run_dir: the run it belongs to, or None.
        model_id: its id in the API.
        unsafe: trust the file to run code (Lambda layers, a SavedModel folder).

    Raises:
        ModelFileError, MissingDependencyError: as `runtimes.open_classifier`.
    """
    from mnist_zoo.data.catalog import CLASS_NAMES
    from mnist_zoo.inference.evaluation import run_data_settings
    from mnist_zoo.inference.runtimes import open_classifier

    dataset = run_data_settings(run_dir)[0]
    classifier = open_classifier(model_file, unsafe=unsafe)
    classifier.probabilities(np.zeros((1, 28, 28), np.uint8))  # the first call traces: not on a user's request
    architecture, parameters, accuracy = _model_facts(classifier, model_file, run_dir)
    return ServedModel(model_id, model_file, run_dir, classifier, dataset, tuple(CLASS_NAMES[dataset]),
                       architecture, parameters, accuracy)


def open_zoo(paths: list[Path], runs_dir: Path | None, unsafe: bool = False) -> Zoo:
    """Opens every model to serve: those named, then every finished run in `runs_dir`.

    A named model that cannot be opened is an error; a run found in `runs_dir` that cannot be
    opened is left out, with the reason in `Zoo.skipped`. Each file is served once.

    Args:
        paths: run directories, model files or folders of runs, as the user named them.
        runs_dir: a folder whose finished runs are all served (None: none).
        unsafe: trust the models named in `paths` to run code (Lambda layers, SavedModel
            folders). Runs found in `runs_dir` are never trusted: nobody named them.

    Raises:
        ModelFileError: a named model cannot be opened, or there is no model to serve at all.
        MissingDependencyError: a named export needs a runtime that is not installed.
    """
    named, found, skipped = find_models(paths, runs_dir)
    models: dict[str, ServedModel] = {}
    seen: set[Path] = set()
    for model_file, is_named in [(path, True) for path in named] + [(path, False) for path in found]:
        if model_file.resolve() in seen:
            continue
        seen.add(model_file.resolve())
        _, run_dir = rundir.resolve_model_path(model_file)
        if rundir.is_own_model(model_file, run_dir):
            wanted = run_dir.name
        else:
            wanted = f"{run_dir.name}/{model_file.name}" if run_dir else model_file.name
        try:
            model = open_model(model_file, run_dir, _unique_id(wanted, models), unsafe=unsafe and is_named)
        except MnistZooError as error:
            if is_named:
                raise
            skipped.append(str(error))
            continue
        models[model.id] = model
    if not models:
        where = f" and no finished run in {runs_dir}/" if runs_dir is not None else ""
        raise ModelFileError(f"no model to serve: none named{where}; train one first "
                             "(mnist-zoo train --model cnn) or name a run directory or model file")
    return Zoo(models, skipped)
