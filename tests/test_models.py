"""Model builders: output shapes, parameter counts, and every option a config can name."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_zoo.config.loading import bundled_config_names, bundled_config_path, load_config, validate_config
from mnist_zoo.models.registry import MODELS, build_model
from mnist_zoo.fields import InitializerSpec, ConstraintSpec

# Parameter counts stated in the issue and in ../shared/SEEDS.md: every network of the course
# material must keep them. Every registry model (its defaults) and every bundled config has an
# entry: a model type added later gets one here with the count its author expects.
EXPECTED_PARAMETERS = {
    "linear": 7_850,
    "mlp": 218_058,
    "cnn": 1_111_946,
    "seeds/intro_dense512": 407_050,
    "seeds/intro_dense256_normal": 203_530,
    "seeds/keras_intro_mlp": 218_058,
    "seeds/lab_mlp": 244_840,
    "seeds/lab_mlp_392": 127_240,
    "seeds/lab_cnn": 56_420,
    "cnn_fast": 109_146,
    "cnn_record": 327_242,
}


def test_every_registry_model_and_bundled_config_has_an_expected_parameter_count():
    # Checked here, once, rather than in the parametrized tests below: docs/extending.md's model
    # checklist (tests/test_extending.py runs those with -k NEW_MODEL on a copy of the package)
    # adds no entry here, and a build and shape check of the new model is still worth running.
    missing = sorted((set(MODELS) | set(bundled_config_names())) - set(EXPECTED_PARAMETERS))
    assert not missing, f"no expected parameter count in EXPECTED_PARAMETERS for {missing}: add the count you expect"


@pytest.mark.parametrize("name", list(MODELS))
def test_registry_default_builds_with_expected_parameters(name):
    model = build_model(MODELS[name].config_class())
    if name in EXPECTED_PARAMETERS:  # a missing entry fails the test above
        assert model.count_params() == EXPECTED_PARAMETERS[name]
    output = model(np.zeros((2, 28, 28, 1), dtype=np.float32))
    assert tuple(output.shape) == (2, 10)
    assert np.allclose(np.asarray(output).sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("name", bundled_config_names())
def test_bundled_config_builds_with_reported_parameters(name):
    config = load_config(bundled_config_path(name))
    model = build_model(config.model)
    if name in EXPECTED_PARAMETERS:  # a missing entry fails test_every_registry_model_and_bundled_config_...
        assert model.count_params() == EXPECTED_PARAMETERS[name]
    if config.reference.parameters is not None:
        assert model.count_params() == config.reference.parameters


def test_cnn_feature_map_shapes_follow_the_lecture():
    model = build_model(MODELS["cnn"].config_class())
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in model.layers}
    assert shapes["conv_1"] == (24, 24, 32) and shapes["pool_1"] == (12, 12, 32)
    assert shapes["conv_2"] == (8, 8, 64) and shapes["pool_2"] == (4, 4, 64)
    assert shapes["dense_1"] == (1024,) and shapes["dropout_1"] == (1024,)


ACTIVATIONS = ["sigmoid", "tanh", "relu", "softplus", "leaky_relu", "elu", "selu", "gelu", "swish"]


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_activation_builds_and_runs(activation):
    config = validate_config({"model": {"type": "mlp", "hidden_units": [8], "activation": activation}}, "t")
    model = build_model(config.model)
    # Keras names swish "silu"; every other activation keeps its name.
    assert model.get_layer("dense_1").activation.__name__ == {"swish": "silu"}.get(activation, activation)
    assert np.isfinite(np.asarray(model(np.ones((1, 28, 28, 1), np.float32)))).all()


@pytest.mark.parametrize("spec", sorted(InitializerSpec.KINDS))
def test_every_initializer_builds(spec):
    if spec == "identity":  # needs a square kernel
        model_config = {"type": "mlp", "hidden_units": [784, 784], "kernel_initializer": spec}
    else:
        model_config = {"type": "mlp", "hidden_units": [8], "kernel_initializer": spec}
    if spec == "constant":
        model_config["kernel_initializer"] = {"name": "constant", "value": 0.5}
    model = build_model(validate_config({"model": model_config}, "t").model)
    assert model.count_params() > 0


def test_initializer_parameters_reach_keras():
    config = validate_config(
        {"model": {"type": "linear", "kernel_initializer": {"name": "constant", "value": 0.25}}}, "t"
    )
    kernel = build_model(config.model).get_layer("output").kernel
    assert np.allclose(np.asarray(kernel), 0.25)


@pytest.mark.parametrize("spec", sorted(ConstraintSpec.KINDS))
def test_every_constraint_and_regularizer_builds(spec):
    config = validate_config(
        {"model": {
            "type": "mlp", "hidden_units": [8], "kernel_constraint": spec,
            "kernel_regularizer": {"l2": 1e-4}, "bias_regularizer": {"l1": 1e-5},
            "activity_regularizer": {"l1": 1e-6, "l2": 1e-6},
        }}, "t",
    )
    layer = build_model(config.model).get_layer("dense_1")
    assert layer.kernel_constraint is not None and layer.kernel_regularizer is not None


def test_use_bias_false_removes_biases():
    config = validate_config({"model": {"type": "mlp", "hidden_units": [16], "use_bias": False}}, "t")
    assert build_model(config.model).count_params() == 784 * 16 + 16 * 10


def test_per_layer_dropout_and_average_pooling_cnn():
    config = validate_config(
        {"model": {"type": "cnn", "pooling": "average", "hidden_units": [32, 16], "dropout_rate": [0.1, 0.2],
                   "conv_layers": [{"filters": 4, "kernel_size": [3, 3], "padding": "same", "dropout_rate": 0.1}]}},
        "t",
    )
    model = build_model(config.model)
    names = [layer.name for layer in model.layers]
    assert "conv_dropout_1" in names and model.get_layer("dropout_2").rate == 0.2
    assert type(model.get_layer("pool_1")).__name__ == "AveragePooling2D"


def test_linear_output_gives_logits():
    config = validate_config({"model": {"type": "linear", "output_activation": "linear"}}, "t")
    assert build_model(config.model).get_layer("output").activation.__name__ == "linear"
