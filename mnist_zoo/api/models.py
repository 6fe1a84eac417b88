"""`evaluate`, `predict`, `explain`, `export`, `summary`: what can be done with a trained model, run or file."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from mnist_zoo.inference.evaluation import EvaluationResult

ModelLike = Any
"""A `Run`, a run directory, a `.keras`/`.tflite`/`.onnx` file or a SavedModel folder."""


def _path(model: ModelLike) -> Path:
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model={model!r}: expected a Run, a run directory or a model file path")
    return Path(os.fspath(model))


@dataclass(frozen=True, eq=False)
class Evaluation(EvaluationResult):
    """A model's scores on a test set: what `mnist-zoo evaluate` prints and evaluation.json holds.

    Attributes (those of `EvaluationResult`):
        report: everything as plain data (evaluation.json).
        model_path: the file evaluated.
        dataset_source: where the images came from.
        class_names: a name per class ('0'..'9', or Fashion-MNIST's).
        written: the files written (evaluation.json, and the PNGs with `plots=True`).
        images, labels, probabilities: the images scored (the test set, or with
            `split="validation"` the run's held-out ones), their labels and the predicted
            probabilities (n, 10): for your own plots.
        members: for an ensemble, each member's {'model', 'runtime', 'accuracy', 'loss'}; else [].
    """

    members: list = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.report["accuracy"]

    @property
    def loss(self) -> float:
        return self.report["loss"]

    @property
    def confusion_matrix(self) -> np.ndarray:
        """counts[true, predicted], (10, 10)."""
        return np.array(self.report["confusion_matrix"])

    @property
    def most_confused(self) -> list[dict]:
        """The most frequent mistakes: [{'true': 4, 'predicted': 9, 'count': 12}, ...]."""
        return self.report["most_confused"]

    @property
    def per_class(self) -> list[dict]:
        """Precision, recall, F1 and support of each class."""
        return self.report["per_class"]

    @property
    def misclassified(self) -> np.ndarray:
        """Indices of the misclassified test images, most confident mistakes first."""
        predictions = self.probabilities.argmax(axis=1)
        wrong = np.flatnonzero(predictions != self.labels)
        return wrong[np.argsort(-self.probabilities[wrong, predictions[wrong]], kind="stable")]

    def plot_confusion_matrix(self, path: str | os.PathLike | None = None):
        """The confusion-matrix heatmap as a matplotlib `Figure`; also saved as PNG when `path` is given."""
        from mnist_zoo.report.plots import confusion_matrix_figure, save_figure

        figure = confusion_matrix_figure(self.confusion_matrix, self.class_names, self._title())
        return save_figure(figure, path) if path else figure

    def plot_misclassified(self, path: str | os.PathLike | None = None, max_images: int = 36):
        """The most confident mistakes as a grid of digits (a `Figure`); also saved when `path` is given."""
        from mnist_zoo.report.plots import misclassified_figure, save_figure

        figure = misclassified_figure(self.images, self.labels, self.probabilities, self.class_names, max_images)
        return save_figure(figure, path) if path else figure

    def _title(self) -> str:
        return (f"Confusion matrix: {self.model_path.name} ({self.report['runtime']})\n"
                f"{self.report['dataset']} {self.report.get('split', 'test')} set, {self.accuracy:.2%} accuracy")

    def __repr__(self) -> str:
        return (f"Evaluation({self.model_path.name}, {self.report['runtime']}, {self.report['dataset']}: "
                f"accuracy {self.accuracy:.2%}, loss {self.loss:.4f}, {self.report['num_examples']} images)")

    def __str__(self) -> str:
        from mnist_zoo.report.tables import format_evaluation

        return format_evaluation(self.report, self.class_names)

    def _repr_html_(self) -> str:
        import html

        return f"<pre>{html.escape(str(self))}</pre>"


def evaluate(model: ModelLike, *, dataset: str | None = None, data_dir: str | os.PathLike | None = None,
             output_dir: str | os.PathLike | None = None, plots: bool = False, device: str = "auto",
             unsafe: bool = False, ensemble: bool = False, tta: int = 1, split: str = "test") -> Evaluation:
    """Scores a model on the test set (or its run's validation images), in its own runtime; what `mnist-zoo evaluate` does.

    Args:
        model: a `Run` or run directory (its best.keras), a `.keras`, `.tflite` or `.onnx`
            file, or a SavedModel folder (needs `unsafe`: it is a program); with `ensemble`, a
            list of them.
        ensemble: average the class probabilities of the models in `model` and score them as
            one (`Evaluation.members` then holds each member's own accuracy and loss); the report
            goes to `output_dir`, default the current folder.
        dataset: 'mnist' or 'fashion_mnist' (default: the run's, else 'mnist').
        data_dir: a folder with the IDX files or mnist.npz (default: the run's, else
            $MNIST_ZOO_DATA_DIR, else the download cache).
        output_dir: where evaluation.json (and plots) go (default: the run directory, or beside the file).
        plots: also write confusion_matrix.png and misclassified.png.
        device: 'auto', 'cpu' or 'gpu'.
        unsafe: allow Lambda layers and SavedModel folders (they run code: trusted files only).
        tta: test-time augmentation: average over this many views of each test image (2-32;
            1: none); the report goes to tta-evaluation.json, never evaluation.json.
        split: 'test', or 'validation': the images the model's run held out (all members' runs
            must have held out the same ones: `data.validation_seed`); the report goes to
            validation-evaluation.json.

    Returns:
        The `Evaluation`: `.accuracy`, `.confusion_matrix`, `.most_confused`, `.plot_confusion_matrix()`.

    Raises:
        ModelFileError, DataError, DeviceError: what the CLI reports as `Error: ...`.
    """
    from mnist_zoo.api.common import check_choice
    from mnist_zoo.inference.evaluation import run_evaluation

    check_choice("dataset", dataset, allow_none=True)
    check_choice("device", device)
    check_choice("split", split)
    from mnist_zoo.inference.tta import MAX_VIEWS

    if not 1 <= tta <= MAX_VIEWS:
        raise ValueError(f"tta={tta}: expected 1 (none) to {MAX_VIEWS} views")
    settings = (dataset, data_dir and str(data_dir), output_dir and Path(output_dir), device, unsafe, plots, False, tta,
                split)
    if ensemble:
        from mnist_zoo.inference.evaluation import run_ensemble_evaluation

        models = [model] if isinstance(model, (str, os.PathLike)) or hasattr(model, "path") else list(model)
        result = run_ensemble_evaluation([_path(member) for member in models], *settings)
        return Evaluation(**{item.name: getattr(result, item.name) for item in fields(result)})
    result = run_evaluation(_path(model), *settings)
    return Evaluation(**{item.name: getattr(result, item.name) for item in fields(result)})


def predict(model: ModelLike, inputs: Any, *, top_k: int = 3, device: str = "auto", unsafe: bool = False,
            save_preprocessed: str | os.PathLike | None = None) -> list[dict]:
    """Predicts the digit in pictures, `.npy` files or arrays; what `mnist-zoo predict --json` prints.

    Pictures are prepared as MNIST was made (grayscale, inverted if dark on light, cropped, scaled
    into 20x20, centred by mass in 28x28); arrays and `.npy` files are taken as MNIST images.

    Args:
        model: a `Run`, a run directory or a model file (see `evaluate`).
        inputs: a path or a list of paths (pictures, `.npy` files, folders of them), or a NumPy
            array of MNIST-format images: (28, 28) or (n, 28, 28), uint8 0-255 or float 0-1,
            a light digit on black.
        top_k: how many classes to list per input (1-10).
        device: 'auto', 'cpu' or 'gpu'.
        unsafe: allow Lambda layers and SavedModel folders (trusted files only).
        save_preprocessed: also write the 28x28 images the model saw there, as PNG files.

    Returns:
        One record per input, in order: {'input', 'prediction', 'class_index', 'top_k': [{'class',
        'class_index', 'probability'}, ...]}, or {'input', 'error'} for an input that could not be read.

    Raises:
        DataError: no picture or `.npy` file was found at all, or an array of the wrong shape.
        ModelFileError: the model cannot be loaded.
    """
    from mnist_zoo.api.common import check_choice
    from mnist_zoo.inference.prediction import run_prediction

    if not 1 <= top_k <= 10:
        raise ValueError(f"top_k={top_k}: expected 1 to 10")
    check_choice("device", device)
    if isinstance(inputs, np.ndarray):
        if save_preprocessed is not None:
            raise ValueError("save_preprocessed applies to pictures: an array is already what the model sees")
        from mnist_zoo.inference.prediction import predict_arrays

        return predict_arrays(_path(model), inputs, top_k, device, unsafe).records
    paths = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    result = run_prediction(_path(model), [Path(path) for path in paths], top_k, device, unsafe,
                            save_preprocessed and Path(save_preprocessed))
    return result.records


def explain(model: ModelLike, inputs: Any = None, *, output_dir: str | os.PathLike | None = None,
            parts: Iterable[str] | None = None, mistakes: int = 16, dataset: str | None = None,
            data_dir: str | os.PathLike | None = None, device: str = "auto", unsafe: bool = False):
    """Pictures what a model learned and why it answered, as `mnist-zoo explain` does.

    Args:
        model: a `Run`, a run directory or a model file (see `evaluate`).
        inputs: pictures, `.npy` files or folders (a path or a list), or an array of MNIST-format
            images; None: the first test digit of each class.
        output_dir: where the PNG files go; default `explain/` beside the model.
        parts: some of 'weights', 'feature-maps', 'attributions', 'mistakes'; default every
            part the model has.
        mistakes: how many of the most confidently wrong test digits to picture (0: none).
        dataset, data_dir: the test set; default the run's.
        device, unsafe: as for `predict`.

    Returns:
        The `ExplainResult`: `.written` (the PNG files), `.images` (each input's answer,
        runner-up, files and integrated-gradients check), `.mistakes`, `.notes`, `.record()`.

    Raises:
        DataError: no readable input, or more than 32.
        ModelFileError: the model cannot be loaded, or lacks a part asked for.
    """
    from mnist_zoo.api.common import check_choice
    from mnist_zoo.explanations.stage import run_explain

    check_choice("device", device)
    if not isinstance(inputs, (np.ndarray, type(None))):
        inputs = [Path(inputs)] if isinstance(inputs, (str, os.PathLike)) else [Path(item) for item in inputs]
    return run_explain(_path(model), inputs, output_dir and Path(output_dir), dataset,
                       data_dir and str(data_dir), device, unsafe, mistakes, list(parts) if parts else None)


def export(model: ModelLike, formats: str | Iterable[str], *, quantize: str = "none",
           output_dir: str | os.PathLike | None = None, force: bool = False, dataset: str | None = None,
           data_dir: str | os.PathLike | None = None, device: str = "auto", report=None):
    """Exports a model and verifies every file in its own runtime; what `mnist-zoo export` does.

    Args:
        model: a `Run`, a run directory (its best.keras) or a `.keras` file.
        formats: 'savedmodel', 'tflite', 'onnx', or several.
        quantize: 'none', 'float16' or 'int8' (LiteRT only).
        output_dir: where the files go (default: <run>/export/, or beside the .keras file).
        force: replace earlier exports of the same name.
        dataset, data_dir: the test set each file is verified on (see `evaluate`).
        device: 'auto', 'cpu' or 'gpu'.
        report: receives one line per step (default: silent).

    Returns:
        The `ExportResult`: `.checks` holds each file's path, size, accuracy and agreement.

    Raises:
        ExportError: a file would be replaced without `force`, or a file computes something else.
        MissingDependencyError: `pip install 'mnist-zoo[export]'` is needed.
    """
    from mnist_zoo.api.common import check_choice
    from mnist_zoo.exports.formats import EXPORT_FORMATS, QUANTIZATIONS
    from mnist_zoo.exports.stage import run_export

    formats = [formats] if isinstance(formats, str) else list(formats)
    unknown = [name for name in formats if name not in EXPORT_FORMATS]
    if unknown or not formats:
        raise ValueError(f"formats={formats!r}: expected one or more of {', '.join(map(repr, EXPORT_FORMATS))}")
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize={quantize!r}: expected one of {', '.join(map(repr, QUANTIZATIONS))}")
    check_choice("dataset", dataset, allow_none=True)
    check_choice("device", device)
    return run_export(_path(model), formats, output_dir and Path(output_dir), quantize, force, dataset,
                      data_dir and str(data_dir), device, report=report or (lambda message: None))


def summary(model: Any, *, unsafe: bool = False, device: str = "auto"):
    """Layer table with parameters and multiply-accumulates; what `mnist-zoo summary` prints.

    Args:
        model: a `Run`, a run directory, a `.keras` file, a YAML config, or a bundled config
            name ('cnn'); a config is built without training.
        unsafe: allow Lambda layers in a `.keras` file (trusted files only).
        device: 'auto', 'cpu' or 'gpu'.

    Returns:
        The `ModelSummary`: `.layers`, `.total`, `.as_dict()`.
    """
    from mnist_zoo.api.common import check_choice
    from mnist_zoo.inference.summary import run_summary

    check_choice("device", device)
    return run_summary(os.fspath(model) if isinstance(model, os.PathLike) else model, unsafe, device)
