"""mnist-zoo explain: the files for every registry model and a foreign one, the attributions' own checks
(a model that reads only one corner, completeness), feature maps and kernels against Keras, bad inputs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from mnist_zoo.cli import cli
from mnist_zoo.errors import DataError, ModelFileError
from mnist_zoo.models.registry import MODELS

CORNER = 7


def _explain(model, tmp_path, small_mnist_dir, inputs=None, **options):
    from mnist_zoo.explanations.stage import run_explain

    return run_explain(model, inputs, tmp_path / "explain", data_dir=str(small_mnist_dir), **options)


@pytest.mark.parametrize("name", list(MODELS))
def test_every_registry_model_gets_its_pictures(name, tiny_runs, tmp_path, small_mnist_dir):
    result = _explain(tiny_runs[name], tmp_path, small_mnist_dir, mistakes=4)
    files = {path.name for path in result.written}
    assert {"inputs.png", "mistakes.png"} <= files
    assert len(result.images) == 10  # the first test digit of each class
    assert sum(name.startswith("attributions-") for name in files) == 10
    has_maps = any(type(layer).__name__ == "Conv2D" for layer in
                   __import__("keras").saving.load_model(tiny_runs[name] / "best.keras").layers)
    assert sum(name.startswith("feature-maps-") for name in files) == (10 if has_maps else 0)
    assert any(name.startswith("weights-") for name in files)
    for path in result.written:
        assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for record in result.images:
        assert [check["completeness_error"] <= 0.01 for check in record["integrated_gradients"]] == [True, True]
    assert len(result.mistakes) <= 4


def _corner_model():
    """A network that reads only the top-left 7x7 pixels: nothing else can matter to it."""
    import keras

    inputs = keras.Input((28, 28, 1))
    corner = keras.layers.Cropping2D(((0, 28 - CORNER), (0, 28 - CORNER)))(inputs)
    hidden = keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(corner))
    outputs = keras.layers.Dense(10, activation="softmax")(hidden)
    model = keras.Model(inputs, outputs)
    generator = np.random.default_rng(0)
    model.set_weights([generator.normal(0, 0.5, weight.shape).astype("float32") for weight in model.get_weights()])
    return model


def _corner_share(maps: np.ndarray) -> float:
    mass = np.abs(maps).reshape(len(maps), 28, 28)
    return float(mass[:, :CORNER, :CORNER].sum() / mass.sum())


def test_attributions_of_a_corner_reading_model_stay_in_the_corner():
    from mnist_zoo.explanations import attribution
    from mnist_zoo.explanations.network import explainable_model

    model, note = explainable_model(_corner_model())
    assert note is None
    inputs = np.random.default_rng(1).uniform(0, 1, (4, 28, 28, 1)).astype("float32")
    classes = np.array([0, 3, 5, 9])
    assert _corner_share(attribution.gradient_saliency(model, inputs, classes)) >= 0.95
    assert _corner_share(attribution.smoothgrad(model, inputs, classes, samples=8)) >= 0.95
    integrated = attribution.integrated_gradients(model, inputs, classes)
    assert _corner_share(np.stack([item.attributions for item in integrated])) >= 0.95
    assert all(item.completeness_error <= 0.01 for item in integrated)


def test_integrated_gradients_add_up_to_the_score_difference(tiny_runs, real_mnist):
    """Completeness (Sundararajan et al. 2017): sum of attributions = f(x) - f(black), within 1 %."""
    import keras

    from mnist_zoo.explanations.attribution import class_scores_and_gradients, integrated_gradients
    from mnist_zoo.explanations.network import explainable_model, model_inputs

    for name in MODELS:
        model, _ = explainable_model(keras.saving.load_model(tiny_runs[name] / "best.keras"))
        inputs = model_inputs(model, real_mnist.test_images[:3])
        classes = np.array([7, 2, 1])
        for single, target, result in zip(inputs, classes, integrated_gradients(model, inputs, classes)):
            score = class_scores_and_gradients(model, single[None], [target])[0][0]
            black = class_scores_and_gradients(model, np.zeros_like(single[None]), [target])[0][0]
            assert result.attributions.sum() == pytest.approx(score - black, rel=0.01, abs=1e-4), name


def test_explained_scores_are_the_logits_in_float32():
    """A mixed-precision softmax model is explained through a float32 copy whose output is its logits."""
    import keras

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        inputs = keras.Input((28, 28, 1))
        hidden = keras.layers.Dense(8, activation="relu")(keras.layers.Flatten()(inputs))
        model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", dtype="float32")(hidden))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    from mnist_zoo.explanations.network import explainable_model

    copy, note = explainable_model(model)
    assert note is None and all(layer.dtype_policy.compute_dtype == "float32" for layer in copy.layers[1:])
    x = np.random.default_rng(0).uniform(0, 1, (5, 28, 28, 1)).astype("float32")
    logits = np.asarray(copy(x))
    softmax = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(softmax / softmax.sum(1, keepdims=True), np.asarray(model(x), np.float32), atol=0.02)


def test_feature_maps_and_kernels_are_the_layers_own(tiny_runs, real_mnist):
    import keras

    from mnist_zoo.explanations.features import feature_maps, weight_images
    from mnist_zoo.explanations.network import model_inputs

    model = keras.saving.load_model(tiny_runs["cnn"] / "best.keras")
    inputs = model_inputs(model, real_mnist.test_images[:2])
    pictured = feature_maps(model, inputs)
    assert pictured
    for layer_maps in pictured:
        layer = model.get_layer(layer_maps.name)
        expected = keras.Model(model.inputs, layer.output)(inputs, training=False)
        np.testing.assert_allclose(layer_maps.maps, np.asarray(expected), atol=1e-6)
    kernels = next(item for item in weight_images(model, [str(digit) for digit in range(10)]) if item.kind == "kernels")
    weights = np.asarray(model.get_layer(kernels.layer).kernel)
    for index, image in enumerate(kernels.images):
        np.testing.assert_array_equal(image, weights[:, :, 0, index])


def test_the_linear_templates_are_its_weights_per_class(tiny_runs):
    import keras

    from mnist_zoo.explanations.features import weight_images

    model = keras.saving.load_model(tiny_runs["linear"] / "best.keras")
    (templates,) = weight_images(model, [str(digit) for digit in range(10)])
    kernel = np.asarray(model.get_layer(templates.layer).kernel)
    assert templates.kind == "templates" and templates.labels == [str(digit) for digit in range(10)]
    for digit in range(10):
        np.testing.assert_array_equal(templates.images[digit], kernel[:, digit].reshape(28, 28))


def test_a_foreign_keras_model_is_explained(tmp_path, small_mnist_dir, real_mnist):
    """Any Keras classifier on 28x28 images: its layers are read as they are."""
    import keras

    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(6, 3, activation="tanh", name="edges")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
    path = tmp_path / "foreign.keras"
    model.save(path)
    digits = tmp_path / "digits.npy"
    np.save(digits, real_mnist.test_images[:2])
    result = _explain(path, tmp_path, small_mnist_dir, [digits], mistakes=2)
    files = {path.name for path in result.written}
    assert {"weights-edges.png", "feature-maps-00-digits.npy_0.png", "attributions-01-digits.npy_1.png"} <= files
    assert [record["input"] for record in result.images] == [f"{digits}[0]", f"{digits}[1]"]


def test_an_ensemble_gets_the_inputs_and_mistakes_only(tiny_runs, tmp_path, small_mnist_dir):
    from mnist_zoo.inference.ensemble import resolve_members, write_ensemble_file

    write_ensemble_file(tmp_path / "team", resolve_members([tiny_runs["mlp"], tiny_runs["cnn"]]), "mnist")
    result = _explain(tmp_path / "team", tmp_path, small_mnist_dir, mistakes=3)
    assert {path.name for path in result.written} == {"inputs.png", "mistakes.png"}
    assert any("outside Keras" in note for note in result.notes)
    with pytest.raises(ModelFileError, match="no weights"):
        _explain(tmp_path / "team", tmp_path, small_mnist_dir, parts=["weights"])


def test_feature_maps_asked_of_a_model_without_convolutions_is_an_error(tiny_runs, tmp_path, small_mnist_dir):
    result = CliRunner().invoke(cli, ["explain", str(tiny_runs["mlp"]), "--only", "feature-maps",
                                      "--data-dir", str(small_mnist_dir), "--output-dir", str(tmp_path / "out")])
    assert result.exit_code == 2 and "no convolution or pooling layer" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_a_pictures_files_are_named_after_it_without_its_suffix(tiny_runs, tmp_path, small_mnist_dir, real_mnist):
    from PIL import Image

    picture = tmp_path / "my digit.PNG"
    Image.fromarray(real_mnist.test_images[0]).save(picture, format="PNG")
    result = _explain(tiny_runs["linear"], tmp_path, small_mnist_dir, [picture], mistakes=0, parts=["attributions"])
    assert [path.name for path in result.written] == ["inputs.png", "attributions-00-my_digit.png"]


def test_bad_inputs_get_one_line_errors(tiny_runs, tmp_path, small_mnist_dir):
    from PIL import Image

    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    huge = tmp_path / "huge.png"
    Image.new("1", (8000, 8000)).save(huge)  # 64 megapixels in a few kilobytes
    for path, message in ((text, "notes.png"), (huge, "pixels")):
        result = CliRunner().invoke(cli, ["explain", str(tiny_runs["linear"]), str(path), "--data-dir",
                                          str(small_mnist_dir), "--output-dir", str(tmp_path / "out")])
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    with pytest.raises(DataError, match="at most 32"):
        _explain(tiny_runs["linear"], tmp_path, small_mnist_dir, np.zeros((33, 28, 28), np.uint8))


def test_cli_json_lists_the_files_and_the_checks(tiny_runs, tmp_path, small_mnist_dir, real_mnist):
    digit = tmp_path / "seven.npy"
    np.save(digit, real_mnist.test_images[0])
    result = CliRunner().invoke(cli, ["explain", str(tiny_runs["cnn"]), str(digit), "--json", "--mistakes", "2",
                                      "--data-dir", str(small_mnist_dir), "--output-dir", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["runtime"] == "keras" and len(record["mistakes"]) <= 2
    (image,) = record["images"]
    assert image["input"] == str(digit) and len(image["files"]) == 2
    assert all(check["completeness_error"] <= 0.01 for check in image["integrated_gradients"])
    assert set(record["files"]) >= set(image["files"])


def test_python_api_explains_an_array_by_default_beside_the_model(tiny_runs, tmp_path, small_mnist_dir, real_mnist):
    import mnist_zoo as mz
    from tests.helpers import copy_runs

    run = copy_runs(tiny_runs, tmp_path, models=["linear"])["linear"]
    result = mz.explain(run, real_mnist.test_images[:2], data_dir=small_mnist_dir, parts=["weights"])
    assert result.output_dir == run / "explain"
    assert {path.name for path in result.written} == {"inputs.png", "weights-output.png"}
    with pytest.raises(ValueError, match="unknown part"):
        mz.explain(run, parts=["saliency"], data_dir=small_mnist_dir)
    with pytest.raises(ValueError, match="mistakes=65"):
        mz.explain(run, mistakes=65, data_dir=small_mnist_dir)


@pytest.mark.slow
def test_explain_as_a_real_subprocess(tiny_runs, tmp_path, small_mnist_dir):
    done = subprocess.run([sys.executable, "-m", "mnist_zoo", "explain", str(tiny_runs["linear"]), "--only", "weights",
                           "--data-dir", str(small_mnist_dir), "--output-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"wrote {tmp_path / 'weights-output.png'}" in done.stdout


def test_a_batch_norm_bf16_cnn_is_explained_in_float32_and_adds_up(tmp_path, small_mnist_dir):
    from tests.helpers import train_tiny

    run = train_tiny(tmp_path / "run-bn", small_mnist_dir, "cnn", "--set", "model.batch_norm=true",
                     "--set", "train.precision=mixed_bfloat16")
    result = _explain(run, tmp_path, small_mnist_dir, mistakes=2)
    assert not [note for note in result.notes if "own precision" in note]
    for record in result.images:
        assert all(check["complete"] for check in record["integrated_gradients"]), record
    assert any(path.name.startswith("feature-maps-") for path in result.written)
