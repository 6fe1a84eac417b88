"""Runs a classifier file in its own runtime: .keras in Keras, a SavedModel in TensorFlow, .tflite in LiteRT, .onnx in onnxruntime."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_zoo import rundir
from mnist_zoo.errors import MissingDependencyError, ModelFileError, describe
from mnist_zoo.inference import model_limits
from mnist_zoo.inference.modelfile import check_mnist_io

EXPORT_EXTRA = "pip install 'mnist-zoo[export]'"
PROBABILITIES_OUTPUT = "probabilities"
"""An output of this name declares probabilities (mnist-zoo's exports name theirs so); others are judged by value."""
# Images per call into a runtime: small batches keep the activations in cache (see Predictor).
BATCH_SIZE = 256


def file_kind(path: Path) -> str | None:
    """'keras', 'savedmodel', 'tflite', 'onnx' or 'ensemble' from a path's name (a folder: its saved_model.pb)."""
    path = Path(path)
    if rundir.is_ensemble_name(path):
        return "ensemble"
    if path.is_dir():
        return "savedmodel" if (path / "saved_model.pb").is_file() else None
    return {".keras": "keras", ".tflite": "tflite", ".onnx": "onnx"}.get(path.suffix.lower())


def _require(module: str, purpose: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(f"{purpose} needs the {module} package: {EXPORT_EXTRA}") from None


class Classifier:
    """A model file opened in its runtime. `probabilities` maps uint8 images (n, 28, 28) to (n, 10) rows that sum to 1."""

    kind: str = ""
    output_kind: str | None = None
    """'probabilities' or 'logits' where the file declares it; None: decided from the values."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def scores(self, images: np.ndarray) -> np.ndarray:
        """The file's raw outputs (n, 10) for uint8 images (n, 28, 28), float32."""
        batches = [self._run(images[start:start + BATCH_SIZE]) for start in range(0, len(images), BATCH_SIZE)]
        return np.concatenate(batches).astype(np.float32) if batches else np.zeros((0, 10), np.float32)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        from mnist_zoo.inference.predictor import to_probabilities

        return to_probabilities(self.scores(images), self.output_kind)

    def _run(self, images: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def _as_input(images: np.ndarray, dtype, shape) -> np.ndarray:
    """uint8 MNIST images as a runtime's input: kept uint8, or scaled to [0, 1] floats, reshaped."""
    from mnist_zoo.data.batches import PIXEL_SCALE

    if np.dtype(dtype) == np.uint8:
        batch = images
    else:
        batch = images.astype(np.float32) * np.float32(PIXEL_SCALE)
    return batch.reshape((len(images), *[int(size) for size in shape[1:]])).astype(dtype, copy=False)


class KerasClassifier(Classifier):
    """A `.keras` file through `Predictor` (one traced TensorFlow function)."""

    kind = "keras"

    def __init__(self, path: Path, unsafe: bool = False, model=None):
        from mnist_zoo.inference.modelfile import load_classifier
        from mnist_zoo.inference.predictor import Predictor

        super().__init__(path)
        self.model = model if model is not None else load_classifier(self.path, unsafe=unsafe)
        self.predictor = Predictor(self.model)
        self.output_kind = self.predictor.output_kind

    def scores(self, images: np.ndarray) -> np.ndarray:
        return self.predictor.scores(images)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        return self.predictor.probabilities(images)


class SavedModelClassifier(Classifier):
    """A SavedModel folder, reloaded with `tf.saved_model.load`; its serving_default signature is called.

    A SavedModel is a TensorFlow program: its graph may hold ops that read and write files
    (ReadFile, WriteFile, ...), run when it is called. It is loaded only if the user trusts it.

    Args:
        path: the folder (holding saved_model.pb).
        unsafe: load it; without it the folder is refused before TensorFlow reads anything.

    Raises:
        ModelFileError: `unsafe` is False, or the folder is too large, unreadable or not an MNIST classifier.
    """

    kind = "savedmodel"

    def __init__(self, path: Path, unsafe: bool = False):
        super().__init__(path)
        if not unsafe:
            raise ModelFileError(f"{self.path}: a SavedModel folder is a TensorFlow program (its graph can read and "
                                 "write files when run); load it only if you trust it, with --unsafe")
        model_limits.check_file_size(self.path)
        import tensorflow as tf

        try:
            self.loaded = tf.saved_model.load(str(self.path))
        except Exception as error:  # TensorFlow raises many types for a damaged folder
            raise ModelFileError(f"{self.path}: not a readable SavedModel ({describe(error)})") from None
        # The signature, not the `serve` function: only a signature says what its outputs are called.
        self.signature = self.loaded.signatures.get("serving_default")
        if self.signature is None:
            raise ModelFileError(f"{self.path}: the SavedModel has no serving_default signature")
        _, inputs = self.signature.structured_input_signature
        outputs = self.signature.structured_outputs
        check_mnist_io(self.path, [spec.shape for spec in inputs.values()],
                       [spec.shape for spec in outputs.values()])
        (self.input_name, spec), = inputs.items()
        self.input_dtype, self.input_shape = spec.dtype.as_numpy_dtype, spec.shape
        if list(outputs) == [PROBABILITIES_OUTPUT]:
            self.output_kind = "probabilities"

    def _run(self, images: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        batch = tf.constant(_as_input(images, self.input_dtype, self.input_shape))
        return next(iter(self.signature(**{self.input_name: batch}).values())).numpy()


class LiteRTClassifier(Classifier):
    """A `.tflite` file in the LiteRT interpreter (`ai-edge-litert`), its batch resized to each call's."""

    kind = "tflite"

    def __init__(self, path: Path):
        super().__init__(path)
        interpreter_module = _require("ai_edge_litert.interpreter", "running .tflite files")
        content = model_limits.read_model_file(self.path)  # once: the bytes checked are the bytes run
        try:
            self.interpreter = interpreter_module.Interpreter(model_content=content, num_threads=2)
            tensors = self.interpreter.get_tensor_details()
        except Exception as error:  # LiteRT raises ValueError or RuntimeError for a bad flatbuffer
            raise ModelFileError(f"{self.path}: not a readable .tflite model ({describe(error)})") from None
        # Declared shapes, before allocate_tensors would reserve them.
        model_limits.check_tensor_bytes(self.path, [(item["shape"], item["dtype"]) for item in tensors])
        inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        check_mnist_io(self.path, [item["shape"] for item in inputs], [item["shape"] for item in outputs])
        self.input, self.output = inputs[0], outputs[0]
        signatures = self.interpreter.get_signature_list()
        if [signature.get("outputs") for signature in signatures.values()] == [[PROBABILITIES_OUTPUT]]:
            self.output_kind = "probabilities"
        self._batch = None

    def _run(self, images: np.ndarray) -> np.ndarray:
        if self._batch != len(images):
            self.interpreter.resize_tensor_input(self.input["index"], [len(images), *self.input["shape"][1:]])
            self.interpreter.allocate_tensors()
            self._batch = len(images)
        batch = _as_input(images, np.float32 if self.input["dtype"] != np.uint8 else np.uint8, self.input["shape"])
        scale, zero_point = self.input["quantization"]
        if self.input["dtype"] not in (np.uint8, np.float32) and scale:  # an int8 input: quantize
            batch = np.clip(np.round(batch / scale + zero_point), -128, 127).astype(self.input["dtype"])
        self.interpreter.set_tensor(self.input["index"], batch)
        self.interpreter.invoke()
        result = self.interpreter.get_tensor(self.output["index"])
        scale, zero_point = self.output["quantization"]
        if result.dtype != np.float32 and scale:  # an integer output: dequantize
            result = (result.astype(np.float32) - zero_point) * scale
        return result


class OnnxClassifier(Classifier):
    """An `.onnx` file in onnxruntime (CPU)."""

    kind = "onnx"

    def __init__(self, path: Path):
        super().__init__(path)
        onnxruntime = _require("onnxruntime", "running .onnx files")
        _require("onnx", "checking .onnx files")
        content = model_limits.read_model_file(self.path)  # once: the bytes checked are the bytes run
        model_limits.check_onnx_graph(self.path, content)
        try:
            options = onnxruntime.SessionOptions()
            options.log_severity_level = 3  # its warnings are about graph optimizations, not the user's file
            self.session = onnxruntime.InferenceSession(content, options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types for a bad file
            raise ModelFileError(f"{self.path}: not a readable .onnx model ({describe(error)})") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        check_mnist_io(self.path, [item.shape for item in inputs], [item.shape for item in outputs])
        self.input = inputs[0]
        dtypes = {"tensor(uint8)": np.uint8, "tensor(float)": np.float32}
        if self.input.type not in dtypes:
            raise ModelFileError(f"{self.path}: input type {self.input.type}, expected uint8 or float images")
        self.input_dtype = dtypes[self.input.type]
        if outputs[0].name == PROBABILITIES_OUTPUT:
            self.output_kind = "probabilities"

    def _run(self, images: np.ndarray) -> np.ndarray:
        batch = _as_input(images, self.input_dtype, self.input.shape)
        return self.session.run(None, {self.input.name: batch})[0]


def open_classifier(path: Path, unsafe: bool = False) -> Classifier:
    """Opens a `.keras`, `.tflite` or `.onnx` file or a SavedModel folder in its runtime, or an ensemble file's members.

    Args:
        path: the model file or folder.
        unsafe: allow files that run code: Lambda layers in `.keras` files, and SavedModel folders
            (refused without it). Only for files you trust.

    Raises:
        ModelFileError: not a model file of a known kind, unreadable, not shaped for MNIST, or a
            SavedModel without `unsafe`.
        MissingDependencyError: the runtime for its kind is not installed.
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: no such model file or folder")
    kind = file_kind(path)
    if kind is None:
        raise ModelFileError(f"{path}: not a model file; expected a .keras, .tflite or .onnx file, a "
                             "SavedModel folder (with saved_model.pb) or an ensemble's ensemble.json")
    if path.is_file() and path.stat().st_size == 0:
        raise ModelFileError(f"{path}: model file is empty")
    if kind == "ensemble":
        from mnist_zoo.inference.ensemble import open_ensemble, read_ensemble_file

        # Never `unsafe` through a file: its members may sit anywhere on disk, and nobody named
        # them. Members that run code are trusted only when named on the command line.
        return open_ensemble(read_ensemble_file(path)[0], unsafe=False, path=path)
    if kind == "keras":
        return KerasClassifier(path, unsafe=unsafe)
    if kind == "savedmodel":
        return SavedModelClassifier(path, unsafe=unsafe)
    return {"tflite": LiteRTClassifier, "onnx": OnnxClassifier}[kind](path)


@dataclass(frozen=True)
class Timing:
    """Throughput on many images and latency of one, measured in a runtime."""

    images_per_second: float
    single_image_ms: float


def time_classifier(classifier: Classifier, images: np.ndarray, repeats: int = 20) -> Timing:
    """Images per second over `images` (after a warm-up), and the median time to classify one image."""
    classifier.scores(images[:BATCH_SIZE])  # warm-up: tracing, allocation, resizing
    start = time.perf_counter()
    classifier.scores(images)
    throughput = len(images) / (time.perf_counter() - start)
    single = images[:1]
    classifier.scores(single)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        classifier.scores(single)
        times.append(time.perf_counter() - start)
    return Timing(throughput, 1000 * float(np.median(times)))
