"""mnist-zoo: train, evaluate, compare and explain the classic MNIST models.

The Python API, for notebooks and scripts (docs/python-api.md)::

    import mnist_zoo as mz

    run = mz.train("cnn", epochs=3, set={"model.dropout_rate": 0.3})
    run.metrics, run.history, run.plot_history()
    report = run.evaluate(plots=True)
    mz.predict(run, ["seven.png"])
    mz.compare("runs")
    mz.lesson("activations", quick=True).answer

Importing the package loads no TensorFlow; each function imports what it needs when called.
"""

import importlib
import os

__version__ = "0.1.0"

# TensorFlow turns its oneDNN kernels on by itself only on CPUs with AVX-512 VNNI/BF16 or AMX.
# Elsewhere (AVX2 machines) it falls back to Eigen convolution gradients about 2x slower; a CNN
# training step takes ~0.7x the time with oneDNN (scripts/profile_training.py, docs/benchmarks.md).
# It must be set before TensorFlow is imported; an explicit TF_ENABLE_ONEDNN_OPTS=0 still wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

# Each public name, and the module that defines it; loaded on first use (PEP 562) so that
# `import mnist_zoo` and `mnist-zoo --help` stay instant.
_PUBLIC = {
    "train": "mnist_zoo.api.train",
    "load_config": "mnist_zoo.api.train",
    "Run": "mnist_zoo.api.run",
    "load_run": "mnist_zoo.api.run",
    "evaluate": "mnist_zoo.api.models",
    "predict": "mnist_zoo.api.models",
    "explain": "mnist_zoo.api.models",
    "export": "mnist_zoo.api.models",
    "summary": "mnist_zoo.api.models",
    "Evaluation": "mnist_zoo.api.models",
    "compare": "mnist_zoo.api.reports",
    "plot_history": "mnist_zoo.api.reports",
    "list_models": "mnist_zoo.api.reports",
    "preview_augmentation": "mnist_zoo.api.reports",
    "diagnose": "mnist_zoo.api.reports",
    "Comparison": "mnist_zoo.api.reports",
    "sweep": "mnist_zoo.api.sweep",
    "lesson": "mnist_zoo.api.lesson",
    "list_lessons": "mnist_zoo.api.lesson",
    "ServeError": "mnist_zoo.web.server",
    "serve": "mnist_zoo.api.serve",
    "RunConfig": "mnist_zoo.config.run",
    "MnistZooError": "mnist_zoo.errors",
    "ConfigError": "mnist_zoo.errors",
    "DataError": "mnist_zoo.errors",
    "ModelFileError": "mnist_zoo.errors",
    "RunDirError": "mnist_zoo.errors",
    "RunStoppedError": "mnist_zoo.errors",
    "DeviceError": "mnist_zoo.errors",
    "ExportError": "mnist_zoo.errors",
    "MissingDependencyError": "mnist_zoo.errors",
    "SweepWorkerError": "mnist_zoo.errors",
    "TrainingInterrupted": "mnist_zoo.errors",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value  # once: later lookups are plain attribute reads
        return value
    raise AttributeError(f"module 'mnist_zoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
