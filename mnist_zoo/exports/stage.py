"""The export stage: convert, run the file in its runtime on the test set, and only then give it its name."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from mnist_zoo import rundir
from mnist_zoo.errors import ExportError, MissingDependencyError, describe
from mnist_zoo.exports.formats import EXPORT_FORMATS, QUANTIZATIONS
from mnist_zoo.exports.wrapper import INPUT_NAME, OUTPUT_NAME

EXPORT_DIR = "export"
"""Where a run's exports go by default: <run>/export/."""
ONNX_OPSET = 17  # tf2onnx 1.17 converts up to 18; 17 is what onnxruntime, ONNX.js and Windows ML all run
FLOAT_TOLERANCE = 1e-4
"""Largest difference from Keras's probabilities a float32 export may show, on any image and class."""
QUANTIZED_ACCURACY_POINTS = 0.3
"""How far (percentage points) a quantized export's test accuracy may fall below the float model's."""
REPRESENTATIVE_IMAGES = 500  # training images that calibrate int8 quantization


def file_name(export_format: str, quantize: str = "none") -> str:
    """The file (or folder) name of an export: saved_model, model.tflite, model-int8.tflite, model.onnx."""
    if export_format == "savedmodel":
        return "saved_model"
    if export_format == "onnx":
        return "model.onnx"
    return "model.tflite" if quantize == "none" else f"model-{quantize}.tflite"


def _label(export_format: str, quantize: str) -> str:
    """How messages name an export: 'onnx', 'tflite (int8)'."""
    return export_format if quantize == "none" else f"{export_format} ({quantize})"


@dataclass(frozen=True)
class ExportCheck:
    """One exported file and what its runtime computed on the test set."""

    format: str
    path: str
    quantize: str
    size_bytes: int
    test_accuracy: float
    keras_accuracy: float
    agreement: float
    """Fraction of test images whose predicted class is the Keras model's."""
    max_probability_difference: float
    images_per_second: float
    single_image_ms: float

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ExportResult:
    """What `run_export` wrote and measured."""

    model_path: Path
    dataset_source: str
    test_images: int
    checks: list[ExportCheck]

    def as_dict(self) -> dict:
        """JSON-ready: the model, the data, and one dict per export."""
        return {"model": str(self.model_path), "data": self.dataset_source, "test_images": self.test_images,
                "exports": [check.as_dict() for check in self.checks]}


def _check_formats(formats: list[str], quantize: str) -> list[str]:
    formats = list(dict.fromkeys(formats))
    unknown = [name for name in formats if name not in EXPORT_FORMATS]
    if unknown or not formats:
        raise ExportError(f"unknown export format {', '.join(map(repr, unknown)) or '(none)'}; "
                          f"expected one or more of {', '.join(EXPORT_FORMATS)}")
    if quantize not in QUANTIZATIONS:
        raise ExportError(f"unknown quantization {quantize!r}; expected one of {', '.join(QUANTIZATIONS)}")
    if quantize != "none" and formats != ["tflite"]:
        raise ExportError(f"--quantize {quantize} applies to LiteRT only; export it alone with --format tflite")
    return formats


def _require_tools(formats: list[str]) -> None:
    """Fails before any work when a converter or runtime of the requested formats is missing."""
    import importlib.util

    from mnist_zoo.inference.runtimes import EXPORT_EXTRA

    needed = {"tflite": ["ai_edge_litert"], "onnx": ["tf2onnx", "onnx", "onnxruntime"]}
    missing = [module for name in formats for module in needed.get(name, [])
               if importlib.util.find_spec(module) is None]
    if missing:
        raise MissingDependencyError(f"exporting {', '.join(formats)} needs {', '.join(missing)}: {EXPORT_EXTRA}")


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())
    return path.stat().st_size


def _write_tflite(saved_model_dir: Path, path: Path, quantize: str, representative: np.ndarray) -> None:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    # Builtin operators only: a file that needs TensorFlow's own ops (the Flex delegate) would not
    # run in the plain LiteRT runtime of a phone.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([image[np.newaxis]] for image in representative)
        # Full integer: every operator in int8; the uint8 input is already integer, and the output
        # stays float32 probabilities so that the file is used exactly like the float one.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.float32
    path.write_bytes(converter.convert())


def _write_saved_model(model, path: Path) -> None:
    """A SavedModel whose `serve` endpoint (and serving_default signature) maps `image` to `probabilities`."""
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", lambda image: {OUTPUT_NAME: model(image, training=False)},
                         input_signature=[tf.TensorSpec((None, 28, 28), tf.uint8, name=INPUT_NAME)])
    archive.write_out(str(path), verbose=False)


def _write_onnx(model, path: Path) -> None:
    """An ONNX file with input `image` and output `probabilities`, both with a dynamic `batch` dimension."""
    import warnings

    import onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf2onnx's own deprecation warnings, not the user's business
        model.export(str(path), format="onnx", opset_version=ONNX_OPSET, verbose=False)
    graph_model = onnx.load(str(path))
    graph = graph_model.graph
    produced = graph.output[0].name  # tf2onnx names it after the TensorFlow tensor ("Identity:0")
    for node in graph.node:
        node.output[:] = [OUTPUT_NAME if name == produced else name for name in node.output]
        node.input[:] = [OUTPUT_NAME if name == produced else name for name in node.input]
    graph.output[0].name = OUTPUT_NAME
    for value in (graph.input[0], graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    onnx.checker.check_model(graph_model)
    onnx.save(graph_model, str(path))


def _write(export_format: str, model, path: Path, quantize: str, representative: np.ndarray, scratch: Path) -> None:
    """Writes one export of the inference `model` to `path`."""
    if export_format == "savedmodel":
        _write_saved_model(model, path)
    elif export_format == "onnx":
        _write_onnx(model, path)
    else:
        saved = scratch / "saved_model_for_litert"
        if not saved.exists():
            _write_saved_model(model, saved)
        _write_tflite(saved, path, quantize, representative)


def _verify(export_format: str, path: Path, quantize: str, images: np.ndarray, labels: np.ndarray,
            reference: np.ndarray) -> ExportCheck:
    """Runs the file in its runtime on the test set; raises ExportError if it computes something else."""
    from mnist_zoo.inference.runtimes import open_classifier, time_classifier

    # unsafe=True: this export wrote the file a moment ago, under a temporary name only it uses; a
    # SavedModel's graph is the one it built, not a stranger's program.
    classifier = open_classifier(path, unsafe=True)
    probabilities = classifier.probabilities(images)
    predicted, expected = probabilities.argmax(axis=1), reference.argmax(axis=1)
    accuracy, keras_accuracy = float((predicted == labels).mean()), float((expected == labels).mean())
    agreement = float((predicted == expected).mean())
    difference = float(np.abs(probabilities - reference).max()) if len(images) else 0.0
    name = _label(export_format, quantize)
    if quantize == "none":
        if agreement < 1.0 or difference > FLOAT_TOLERANCE:
            raise ExportError(
                f"the {name} export does not compute what the Keras model does: it predicts another class on "
                f"{round((1 - agreement) * len(images))} of {len(images)} test images, largest probability "
                f"difference {difference:.2e} (allowed {FLOAT_TOLERANCE:.0e}); nothing was written under its name")
    elif 100 * (keras_accuracy - accuracy) > QUANTIZED_ACCURACY_POINTS:
        raise ExportError(
            f"the {name} export loses {100 * (keras_accuracy - accuracy):.2f} points of test accuracy "
            f"({accuracy:.2%} against {keras_accuracy:.2%}; allowed {QUANTIZED_ACCURACY_POINTS}); "
            "nothing was written under its name")
    timing = time_classifier(classifier, images)
    return ExportCheck(export_format, str(path), quantize, _size(path), accuracy, keras_accuracy, agreement,
                       difference, timing.images_per_second, timing.single_image_ms)


def run_export(
    model_path: Path,
    formats: list[str],
    output_dir: Path | None = None,
    quantize: str = "none",
    force: bool = False,
    dataset: str | None = None,
    data_dir: str | None = None,
    device: str = "auto",
    report: Callable[[str], None] = lambda message: None,
    progressbar: bool = False,
) -> ExportResult:
    """Exports a `.keras` file or a run's best.keras, and verifies every file in its runtime.

    Every format gets the same model (`wrapper.inference_model`: uint8 (n, 28, 28) in, float32
    probabilities out, float32 throughout). Each file is written under a temporary name, run
    in its runtime on the whole test set, and renamed into place only if it predicts the Keras
    model's class on every image with probabilities within `FLOAT_TOLERANCE` (quantized LiteRT:
    test accuracy within `QUANTIZED_ACCURACY_POINTS` of the Keras model's).

    Args:
        model_path: a `.keras` file or a run directory.
        formats: some of `EXPORT_FORMATS`.
        output_dir: where the files go; default <run>/export/, or beside the `.keras` file.
        quantize: 'none', 'float16' or 'int8' (LiteRT only).
        force: replace existing exports of the same name.
        dataset, data_dir: the test set to verify on; default the run's, else MNIST.
        device: 'auto', 'cpu' or 'gpu' for the Keras side.
        report: receives one line per step.
        progressbar: show download progress bars on stderr.

    Raises:
        ExportError: a bad format, an existing file without `force`, a conversion that fails, or
            a file that computes something else (nothing is then left under its name).
        MissingDependencyError: the export extra is not installed.
        ModelFileError: the model cannot be loaded safely (Lambda layers are refused).
    """
    from mnist_zoo.data.datasets import load_dataset
    from mnist_zoo.exports.wrapper import float32_copy, inference_model
    from mnist_zoo.inference.evaluation import run_data_settings
    from mnist_zoo.inference.modelfile import load_classifier
    from mnist_zoo.inference.predictor import Predictor
    from mnist_zoo.runtime.device import select_device

    formats = _check_formats(formats, quantize)
    _require_tools(formats)
    model_file, run_dir = rundir.resolve_model_path(Path(model_path))
    folder = Path(output_dir) if output_dir else (run_dir / EXPORT_DIR if run_dir else model_file.parent)
    targets = {name: folder / file_name(name, quantize) for name in formats}
    existing = [str(path) for path in targets.values() if path.exists()]
    if existing and not force:
        raise ExportError(f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; "
                          "pass --force to replace, or --output DIR")
    run_dataset, run_data_dir = run_data_settings(run_dir)
    select_device(device)
    model = load_classifier(model_file)  # safe mode: a Lambda layer is refused, as on loading
    data = load_dataset(dataset or run_dataset, data_dir or run_data_dir, report, progressbar)
    images, labels = data.test_images, data.test_labels.astype(np.int64)
    float32_model = float32_copy(model)
    reference = Predictor(float32_model).probabilities(images)
    representative = data.train_images[np.random.default_rng(0).choice(len(data.train_images), REPRESENTATIVE_IMAGES,
                                                                       replace=False)]
    exported = inference_model(float32_model)
    exported(images[:1])  # Keras's exporters want a model that has been called once
    folder.mkdir(parents=True, exist_ok=True)
    rundir.remove_leftovers(folder)  # what exports killed mid-way left
    checks = []
    with rundir.scratch_folder(folder) as scratch:
        for name in formats:
            final = targets[name]
            report(f"exporting {_label(name, quantize)} to {final}")
            try:
                # The file gets its name only once it computes what the model does, in its runtime.
                with rundir.atomic_path(final, folder=name == "savedmodel") as partial:
                    _write(name, exported, partial, quantize, representative, scratch)
                    report(f"verifying {final.name} in its runtime on {len(images):,} test images")
                    check = _verify(name, partial, quantize, images, labels, reference)
            except (ExportError, MissingDependencyError):
                raise
            except Exception as error:  # converters raise many types; the user gets one line
                raise ExportError(f"converting to {name} failed ({describe(error)})") from None
            checks.append(dataclasses.replace(check, path=str(final)))
    return ExportResult(model_file, data.source, len(images), checks)
