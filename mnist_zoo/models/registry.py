"""The model registry: one explicit mapping from a model name to its config class and builder."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from mnist_zoo.models import cnn, linear, mlp


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its config class, builder, a one-line description and a tiny variant."""

    name: str
    config_class: type
    build: Callable
    description: str
    tiny: dict = field(default_factory=dict)
    """Model keys that make a variant of a few thousand parameters which trains in seconds and
    exercises every layer kind of the builder (dropout included): what the tests and the CI
    smoke run train, so a new model is covered by them without editing them."""


MODELS: dict[str, ModelEntry] = {
    "linear": ModelEntry("linear", linear.LinearConfig, linear.build, "softmax regression, 784-10"),
    "mlp": ModelEntry("mlp", mlp.MLPConfig, mlp.build, "multi-layer perceptron, 784-256-64-10 ReLU",
                      tiny={"hidden_units": [32], "dropout_rate": 0.2}),
    "cnn": ModelEntry(
        "cnn", cnn.CNNConfig, cnn.build, "LeNet-style CNN, 32c5-pool-64c5-pool-1024-dropout-10",
        tiny={"conv_layers": [{"filters": 4, "kernel_size": 3}], "hidden_units": [16], "dropout_rate": 0.3},
    ),
}


def build_model(model_config):
    """Builds the Keras model a validated model config describes.

    Args:
        model_config: one of the registered config classes.

    Returns:
        An uncompiled `keras.Model`.
    """
    return MODELS[model_config.type].build(model_config)


def describe_models(device: str = "auto") -> list[tuple[str, int, str]]:
    """(name, parameters, description) of every registered model, each built with its defaults.

    Args:
        device: where TensorFlow builds them ('auto', 'cpu' or 'gpu'); chosen before it starts.
    """
    from mnist_zoo.runtime.device import select_device

    select_device(device)  # memory growth before building: a GPU is not reserved whole
    return [(name, build_model(entry.config_class()).count_params(), entry.description)
            for name, entry in MODELS.items()]

