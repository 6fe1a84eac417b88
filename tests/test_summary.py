"""`mnist-zoo summary`: layer table, parameters and multiply-accumulates of one forward pass."""

from __future__ import annotations

import json

import keras
import pytest
from click.testing import CliRunner

from mnist_zoo.cli import cli
from mnist_zoo.models.registry import MODELS, build_model
from mnist_zoo.models.summary import summarize, totals


def invoke(*args):
    return CliRunner().invoke(cli, list(map(str, args)), catch_exceptions=False)


def test_default_cnn_reproduces_the_course_material_figures():
    rows = {row.name: row for row in summarize(build_model(MODELS["cnn"].config_class()))}
    material = {row.kind: row.macs_bias_as_input for row in rows.values() if row.macs_bias_as_input}
    conv = [row for row in rows.values() if row.kind == "Conv2D"]
    dense = [row for row in rows.values() if row.kind == "Dense"]
    # ../shared/SEEDS.md: conv1 479,232; conv2 3,407,872; dense 1,049,600; output 10,250.
    assert [row.macs_bias_as_input for row in conv + dense] == [479_232, 3_407_872, 1_049_600, 10_250]
    assert [row.output_shape for row in conv] == [(24, 24, 32), (8, 8, 64)]
    assert material  # every weighted layer has a count
    # The material prints the total as 4,946,964, but its own rows add up to 4,946,954.
    assert sum(row.macs_bias_as_input for row in conv + dense) == 4_946_954
    # The standard count: 24*24*32*25 + 8*8*64*800 + 1024*1024 + 1024*10.
    assert [row.macs for row in conv + dense] == [460_800, 3_276_800, 1_048_576, 10_240]


@pytest.mark.parametrize("name", list(MODELS))
def test_totals_match_keras_parameter_count(name):
    model = build_model(MODELS[name].config_class())
    total = totals(summarize(model))
    assert total["parameters"] == model.count_params()
    assert total["macs"] > 0 and total["macs_bias_as_input"] >= total["macs"]


def test_dense_macs_of_the_mlp():
    rows = summarize(build_model(MODELS["mlp"].config_class()))
    dense = [row for row in rows if row.kind == "Dense"]
    assert [row.macs for row in dense] == [784 * 256, 256 * 64, 64 * 10]
    assert [row.macs_bias_as_input for row in dense] == [785 * 256, 257 * 64, 65 * 10]


def test_unknown_layer_types_are_marked_not_guessed():
    inputs = keras.Input((28, 28, 1))
    outputs = keras.layers.Dense(10)(keras.layers.Flatten()(keras.layers.LayerNormalization()(inputs)))
    total = totals(summarize(keras.Model(inputs, outputs)))
    assert total["macs"] is None


def test_summary_of_a_bundled_config_as_a_table():
    result = invoke("summary", "cnn")
    assert result.exit_code == 0, result.output
    assert "479,232" in result.output and "3,407,872" in result.output and "1,111,946" in result.output
    assert "untrained" in result.output


def test_summary_of_a_seed_config_and_a_yaml_file(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text("model: {type: mlp, hidden_units: [16]}\n")
    result = invoke("summary", path, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["total"]["parameters"] == 784 * 16 + 16 + 16 * 10 + 10
    assert invoke("summary", "seeds/lab_cnn").exit_code == 0


def test_summary_of_a_saved_model_and_a_run_directory(tmp_path):
    model = build_model(MODELS["linear"].config_class())
    model.save(tmp_path / "best.keras")
    by_file = json.loads(invoke("summary", tmp_path / "best.keras", "--json").output)
    by_dir = json.loads(invoke("summary", tmp_path, "--json").output)
    assert by_file["total"] == by_dir["total"] == {"parameters": 7850, "macs": 7840, "macs_bias_as_input": 7850}


def test_summary_of_nothing_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(cli, ["summary", "cnnn"])
    assert result.exit_code == 2 and "did you mean 'cnn'" in result.output
    result = CliRunner().invoke(cli, ["summary", str(tmp_path / "missing.keras")])
    assert result.exit_code == 2 and "no such model file" in result.output


def test_summary_is_a_library_stage_and_the_cli_prints_it():
    from mnist_zoo.inference.summary import run_summary

    result = run_summary("mlp", device="cpu")
    assert result.total["parameters"] == 218_058 and result.layers[-1].name == "output"
    printed = json.loads(CliRunner().invoke(cli, ["summary", "mlp", "--json", "--device", "cpu"]).stdout)
    assert printed == json.loads(json.dumps(result.as_dict()))


def test_weightless_keras_layers_count_zero_and_custom_ones_are_not_guessed():
    class Doubling(keras.layers.Layer):
        def call(self, inputs):
            return inputs * 2

    inputs = keras.Input((28, 28, 1))
    x = keras.layers.SpatialDropout2D(0.1)(keras.layers.ZeroPadding2D(1)(inputs))
    x = keras.layers.GlobalAveragePooling2D()(x)
    rows = summarize(keras.Model(inputs, keras.layers.Dense(10)(x)))
    assert [row.macs for row in rows] == [0, 0, 0, 0, 10]
    custom = summarize(keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(Doubling()(inputs)))))
    assert custom[1].macs is None and totals(custom)["macs"] is None


@pytest.mark.parametrize("variant", ["default", "tiny"])
@pytest.mark.parametrize("name", list(MODELS))
def test_every_registered_model_has_a_multiply_accumulate_count(name, variant):
    from mnist_zoo.models.summary import require_forward_macs

    entry = MODELS[name]
    config = entry.config_class() if variant == "default" else entry.config_class(**entry.tiny)
    assert require_forward_macs(build_model(config)) > 0


def test_a_layer_without_a_mac_rule_is_an_error_for_the_precision_decision_not_a_silent_large_model():
    """precision: auto picks bf16 for models of 1 M+ MACs: an uncounted layer must not count as large."""
    from mnist_zoo.models.summary import require_forward_macs

    class Scale(keras.layers.Layer):  # a custom layer: its cost is not guessed
        def build(self, input_shape):
            self.factor = self.add_weight(shape=(), initializer="ones")

        def call(self, inputs):
            return inputs * self.factor

    inputs = keras.Input((28, 28, 1))
    outputs = keras.layers.Dense(10)(keras.layers.Flatten()(Scale(name="scale")(inputs)))
    with pytest.raises(ValueError, match=r"no multiply-accumulate rule for the layer scale \(Scale\); add one to"):
        require_forward_macs(keras.Model(inputs, outputs, name="custom"))
