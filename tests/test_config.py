"""Config loading and validation: good configs load, bad ones fail with a precise message."""

from __future__ import annotations

import pytest

from mnist_zoo.config.loading import apply_overrides, bundled_config_names, bundled_config_path, config_to_yaml, load_config, validate_config
from mnist_zoo.config.run import RunConfig
from mnist_zoo.errors import ConfigError
from mnist_zoo.models.registry import MODELS


def write(tmp_path, text: str, name: str = "config.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", bundled_config_names())
def test_every_bundled_config_loads(name):
    config = load_config(bundled_config_path(name))
    assert isinstance(config, RunConfig)
    assert config.name == name.split("/")[-1]


def test_bundled_configs_cover_every_model_and_seed():
    names = set(bundled_config_names())
    assert set(MODELS) <= names
    assert {n for n in names if n.startswith("seeds/")} == {
        "seeds/intro_dense512", "seeds/intro_dense256_normal", "seeds/keras_intro_mlp",
        "seeds/lab_mlp", "seeds/lab_mlp_392", "seeds/lab_cnn",
    }


@pytest.mark.parametrize("model_type", list(MODELS))
def test_defaults_fill_every_section(model_type):
    config = validate_config({"model": {"type": model_type}}, "test")
    assert config.train.epochs > 0 and config.data.dataset == "mnist"
    assert type(config.model) is MODELS[model_type].config_class


def test_config_is_frozen():
    # docs/configs.md: validated "into frozen, typed objects". Pydantic refuses the assignment
    # at every level, and the value stays.
    import pydantic

    config = validate_config({"model": {"type": "mlp"}}, "test")
    for section, key, value in [(config.train, "epochs", 3), (config.model, "dropout_rate", 0.3),
                                (config, "name", "x")]:
        before = getattr(section, key)
        with pytest.raises(pydantic.ValidationError, match=rf"{key}\n  Instance is frozen") as refused:
            setattr(section, key, value)
        assert [(error["type"], error["loc"]) for error in refused.value.errors()] == [("frozen_instance", (key,))]
        assert getattr(section, key) == before


def test_resolved_yaml_round_trips(tmp_path):
    config = load_config(bundled_config_path("cnn"), ["train.epochs=2", "model.dropout_rate=0.3"])
    again = load_config(write(tmp_path, config_to_yaml(config), "cnn.yaml"))
    assert again == config


def test_yaml_exponent_without_dot_is_a_number(tmp_path):
    # PyYAML reads `1e-3` as a string (YAML 1.1); users mean a number.
    path = write(tmp_path, "model: {type: mlp}\ntrain: {optimizer: {name: adam, learning_rate: 1e-3}}\n")
    assert load_config(path).train.optimizer.learning_rate == pytest.approx(0.001)


def test_overrides_parse_yaml_values_and_expand_short_forms():
    data = apply_overrides(
        {"model": {"type": "mlp"}, "train": {"optimizer": "sgd"}},
        ["train.optimizer.momentum=0.9", "model.hidden_units=[32, 16]", "train.epochs=3"],
    )
    config = validate_config(data, "test")
    assert config.train.optimizer.name == "sgd" and config.train.optimizer.params["momentum"] == 0.9
    assert config.model.hidden_units == (32, 16)
    assert config.train.epochs == 3


@pytest.mark.parametrize(
    ("override", "section", "name", "param"),
    [
        ("train.loss.label_smoothing=0.1", "loss", "categorical_crossentropy", "label_smoothing"),
        ("train.optimizer.learning_rate=0.01", "optimizer", "adam", "learning_rate"),
    ],
)
def test_a_parameter_of_a_left_out_named_section_keeps_its_default_name(override, section, name, param):
    # The file leaves train.loss (...) at its default: the override means that default with one parameter.
    data = apply_overrides({"model": {"type": "mlp"}}, [override])
    spec = getattr(validate_config(data, "test").train, section)
    assert spec.name == name and spec.params[param] == float(override.split("=")[1])


def test_a_parameter_the_left_out_default_does_not_take_is_refused_naming_that_default():
    data = apply_overrides({"model": {"type": "mlp"}}, ["train.schedule.decay_rate=0.5"])
    with pytest.raises(ConfigError, match="schedule 'constant' has no parameter"):
        validate_config(data, "test")


@pytest.mark.parametrize("override", ["train.epochs", "=3", "train..epochs=3", "1x=2"])
def test_malformed_override_is_rejected(override):
    with pytest.raises(ConfigError, match="KEY.PATH=VALUE"):
        apply_overrides({}, [override])


BAD_CONFIGS = [
    # (yaml text, fragments the message must contain)
    ("model: {type: cnnn}", ["model.type", "'cnnn'", "did you mean 'cnn'"]),
    ("model: {type: mlp}\ntrain: {epoch: 3}", ["train", "unknown key 'epoch'", "did you mean 'epochs'"]),
    ("model: {type: mlp}\ntrain: {epochs: ten}", ["train.epochs", "valid integer", "'ten'"]),
    ("model: {type: mlp}\ntrain: {epochs: 0}", ["train.epochs", "greater than 0", "received 0"]),
    ("model: {type: mlp}\ntrain: {batch_size: -5}", ["train.batch_size", "greater than 0"]),
    ("model: {type: mlp, activation: rellu}", ["model.activation", "did you mean 'relu'", "'rellu'"]),
    ("model: {type: mlp}\ntrain: {optimizer: adma}", ["train.optimizer", "unknown optimizer 'adma'"]),
    ("model: {type: mlp}\ntrain: {optimizer: {name: adam, lr: 0.1}}", ["has no parameter 'lr'", "learning_rate"]),
    ("model: {type: mlp}\ntrain: {optimizer: {name: sgd, momentum: 1.5}}", ["momentum", "less than 1"]),
    ("model: {type: mlp}\ntrain: {loss: hinj}", ["unknown loss 'hinj'", "did you mean 'hinge'"]),
    ("model: {type: mlp}\ntrain: {schedule: {name: cosine, warmup: 1}}", ["no parameter 'warmup'", "warmup_epochs"]),
    ("model: {type: mlp, kernel_initializer: {name: random_normal, stddev: -1}}", ["stddev", "greater than 0"]),
    ("model: {type: mlp, kernel_initializer: he_nromal}", ["did you mean 'he_normal'"]),
    ("model: {type: mlp, kernel_regularizer: {l3: 0.1}}", ["unknown key 'l3'"]),
    ("model: {type: mlp, hidden_units: [10, 20], dropout_rate: [0.1]}", ["1 rates", "2 hidden layers"]),
    ("model: {type: mlp, dropout_rate: 1.0}", ["dropout_rate", "less than 1"]),
    ("model: {type: cnn, conv_layers: []}", ["at least one entry in conv_layers"]),
    ("model: {type: cnn, conv_layers: [{filters: 8, padding: sam}]}", ["conv_layers.0.padding", "did you mean 'same'"]),
    ("model: {type: mlp}\ndata: {dataset: kmnist}", ["data.dataset", "'kmnist'"]),
    ("model: {type: mlp}\ndata: {validation_size: -1}", ["data.validation_size"]),
    ("model: {type: mlp, output_activation: sigmoid}", ["needs model.output_activation softmax"]),
    (
        "model: {type: mlp}\ndata: {validation_size: 0}\ntrain: {early_stopping: {enabled: true}}",
        ["validation_size is 0"],
    ),
    ("train: {epochs: 3}", ["model", "Field required"]),
    ("- just\n- a list\n", ["expected a YAML mapping"]),
    ("model: {type: mlp\n", ["YAML syntax error", "line"]),
    ("model: !!python/object:os.system {type: mlp}\n", ["is not allowed", "safe loader"]),
]


@pytest.mark.parametrize("text, fragments", BAD_CONFIGS)
def test_bad_config_is_rejected_with_a_precise_message(tmp_path, text, fragments):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_unknown_bundled_name_suggests():
    with pytest.raises(ConfigError, match="did you mean 'cnn'"):
        bundled_config_path("cn")


def test_typed_override_values_are_not_reparsed():
    # A folder named 2024 must stay a string (YAML would read it as a number).
    data = apply_overrides({"model": {"type": "mlp"}}, {"data.data_dir": "2024", "train.epochs": 2})
    config = validate_config(data, "test")
    assert config.data.data_dir == "2024" and config.train.epochs == 2


# Defaults that are ours on purpose (documented in the config reference); every other default
# in a spec table must be the one Keras itself uses, so that naming a parameter or leaving it
# out cannot make a difference the user did not ask for.
_OUR_DEFAULTS = {("optimizer", "sgd", "learning_rate"), ("optimizer", "adadelta", "learning_rate")}


def _keras_class(kind: str, name: str):
    """The class Keras itself resolves `name` to (losses: the class, not the function of that name)."""
    import keras

    if kind == "loss":
        return getattr(keras.losses, "".join(word.capitalize() for word in name.split("_")))
    resolver = {"optimizer": keras.optimizers, "initializer": keras.initializers, "constraint": keras.constraints}[kind]
    return type(resolver.get({"class_name": name, "config": {"value": 0.0} if name == "constant" else {}}))


def _named_entries():
    from mnist_zoo.config.run import LossSpec, OptimizerSpec
    from mnist_zoo.fields import ConstraintSpec, InitializerSpec

    for spec_class in (OptimizerSpec, LossSpec, InitializerSpec, ConstraintSpec):
        for name in spec_class.KINDS:
            yield pytest.param(spec_class, name, id=f"{spec_class.KIND}-{name}")


@pytest.mark.parametrize("spec_class, name", _named_entries())
def test_spec_defaults_are_the_keras_defaults(spec_class, name):
    import inspect

    signature = inspect.signature(_keras_class(spec_class.KIND, name).__init__).parameters
    for key, param in spec_class.KINDS[name].items():
        assert key in signature, f"{spec_class.KIND} {name}: Keras takes no {key!r}"
        if (spec_class.KIND, name, key) in _OUR_DEFAULTS:
            continue
        assert param.default == signature[key].default, (spec_class.KIND, name, key)


@pytest.mark.parametrize("spec_class, name", _named_entries())
def test_spec_builds_the_keras_object_keras_resolves_for_its_name(spec_class, name):
    from mnist_zoo.models.common import make_constraint, make_initializer
    from mnist_zoo.training.optimization import make_loss, make_optimizer

    spec = spec_class(name=name)
    build = {"optimizer": lambda: make_optimizer(spec, 0.01, fast_paths=False),
             "loss": lambda: make_loss(spec, "softmax"),
             "initializer": lambda: make_initializer(spec),
             "constraint": lambda: make_constraint(spec)}[spec_class.KIND]
    built = build()
    assert type(built) is _keras_class(spec_class.KIND, name)
    config = built.get_config()
    for key, value in spec.arguments.items():
        if key in config and key != "learning_rate":
            assert config[key] == pytest.approx(value) if isinstance(value, float) else config[key] == value, key


def test_schedule_defaults_are_what_training_uses():
    from mnist_zoo.config.run import ScheduleSpec
    from mnist_zoo.training.optimization import make_learning_rate

    given = make_learning_rate(0.01, ScheduleSpec(name="one_cycle", warmup_fraction=0.25, initial_divisor=25.0,
                                                  final_fraction=0.01), steps_per_epoch=10, epochs=4)
    default = make_learning_rate(0.01, ScheduleSpec(name="one_cycle"), steps_per_epoch=10, epochs=4)
    assert given.get_config() == default.get_config()
    step = make_learning_rate(0.01, ScheduleSpec(name="step"), steps_per_epoch=10, epochs=4).get_config()
    assert (step["decay_steps"], step["decay_rate"]) == (10, 0.5)


def test_config_reference_shows_every_default():
    from mnist_zoo.config.reference import render_reference

    reference = render_reference()
    assert "`initial_divisor` (float (>= 1), `25.0`)" in reference
    assert "`factor` (float (> 0, <= 1), `0.5`)" in reference
    assert "`weight_decay` (float (>= 0), `0.004`)" in reference  # adamw's own default
