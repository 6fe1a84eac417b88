"""A served model: one file opened in its runtime, what the page shows about it, and its answers."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mnist_zoo import rundir
from mnist_zoo.errors import MnistZooError

DEFAULT_TOP_K = 3


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
        """The run's name for a run's own model, an ensemble's folder name, else the file's name."""
        if rundir.is_own_model(self.path, self.run_dir):
            return self.run_dir.name
        if self.path.name == rundir.ENSEMBLE_FILE:
            return self.path.parent.resolve().name
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
            # POST /api/explain needs gradients and layers: a Keras model's, not an export's.
            "explainable": getattr(self.classifier, "model", None) is not None,
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


def _ensemble_facts(ensemble, model_file: Path):
    """(architecture, parameters, test accuracy) of an ensemble: its members' summed, its own report's accuracy."""
    facts = [_model_facts(member, member.path, rundir.resolve_model_path(member.path)[1]) for member in ensemble.members]
    kinds = {fact[0] for fact in facts}
    count = len(facts)
    architecture = f"{count} x {kinds.pop()}" if len(kinds) == 1 and None not in kinds else f"ensemble of {count}"
    parameters = sum(fact[1] for fact in facts) if all(fact[1] is not None for fact in facts) else None
    accuracy = rundir.read_ensemble_report(model_file, rundir.ENSEMBLE_EVALUATION_FILE).get("accuracy")
    return architecture, parameters, accuracy


def _model_facts(classifier, model_file: Path, run_dir: Path | None):
    """(architecture, parameters, test accuracy) of an opened model file."""
    from mnist_zoo.inference.evaluation import read_report
    from mnist_zoo.models.summary import architecture

    if classifier.kind == "ensemble":
        return _ensemble_facts(classifier, model_file)
    model = getattr(classifier, "model", None)
    if model is None and run_dir is not None:  # an export: the run's config rebuilds its network
        from mnist_zoo.config.loading import load_config
        from mnist_zoo.models.registry import build_model

        try:
            model = build_model(load_config(run_dir / rundir.CONFIG_FILE).model)
        except MnistZooError:
            model = None
    accuracy = None
    if rundir.is_runs_best_model(model_file, run_dir):
        accuracy = rundir.read_json_object(run_dir / rundir.METRICS_FILE).get("test_accuracy")
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
    from mnist_zoo.inference.evaluation import model_data_settings
    from mnist_zoo.inference.runtimes import open_classifier

    dataset = model_data_settings(model_file, run_dir)[0]
    classifier = open_classifier(model_file, unsafe=unsafe)
    classifier.probabilities(np.zeros((1, 28, 28), np.uint8))  # the first call traces: not on a user's request
    architecture, parameters, accuracy = _model_facts(classifier, model_file, run_dir)
    return ServedModel(model_id, model_file, run_dir, classifier, dataset, tuple(CLASS_NAMES[dataset]),
                       architecture, parameters, accuracy)
