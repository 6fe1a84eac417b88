"""Evaluation: metrics on known inputs, foreign Keras models, and refused model files."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from mnist_zoo import rundir
from mnist_zoo.errors import ModelFileError
from mnist_zoo.inference.evaluation import classification_report, confusion_matrix, run_evaluation
from mnist_zoo.inference.modelfile import load_classifier
from mnist_zoo.inference.predictor import to_probabilities


def test_confusion_matrix_and_report_on_known_values():
    labels = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 1, 1, 1, 2, 0])
    probabilities = np.eye(3)[predicted] * 0.9 + 0.1 / 3
    matrix = confusion_matrix(labels, predicted, 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    report = classification_report(labels, probabilities, ["a", "b", "c"])
    assert report["accuracy"] == pytest.approx(4 / 6)
    rows = {row["name"]: row for row in report["per_class"]}
    assert rows["a"]["precision"] == pytest.approx(0.5) and rows["a"]["recall"] == pytest.approx(0.5)
    assert rows["b"]["precision"] == pytest.approx(2 / 3) and rows["b"]["recall"] == pytest.approx(1.0)
    assert rows["b"]["f1"] == pytest.approx(0.8)
    assert report["most_confused"] == [{"true": 0, "predicted": 1, "count": 1}, {"true": 2, "predicted": 0, "count": 1}]
    expected_loss = -np.mean(np.log(probabilities[np.arange(6), labels]))
    assert report["loss"] == pytest.approx(expected_loss)


def test_logits_are_turned_into_probabilities():
    probabilities = np.array([[0.2, 0.8], [0.5, 0.5]])
    assert np.array_equal(to_probabilities(probabilities), probabilities)
    logits = np.array([[2.0, -1.0], [0.0, 3.0]])
    converted = to_probabilities(logits)
    assert np.allclose(converted.sum(axis=1), 1) and converted.argmax(axis=1).tolist() == [0, 1]


def _trained_foreign_model(input_shape, logits: bool, images, labels):
    """A plain Keras classifier as a user's script would write it (seeded: the same model in any test order)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input(shape=input_shape),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation=None if logits else "softmax"),
    ])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=logits))
    x = (images.astype("float32") / 255).reshape((-1, *input_shape))
    model.fit(x, labels, epochs=3, batch_size=64, verbose=0)
    return model


@pytest.mark.parametrize("input_shape, logits", [((784,), False), ((28, 28), True), ((28, 28, 1), False)])
def test_evaluates_a_foreign_keras_model(tmp_path, small_mnist_dir, real_mnist, input_shape, logits):
    model = _trained_foreign_model(input_shape, logits, real_mnist.train_images[:2000], real_mnist.train_labels[:2000])
    path = tmp_path / "foreign.keras"
    model.save(path)
    result = run_evaluation(path, data_dir=str(small_mnist_dir), device="cpu", plots=True)
    assert result.report["num_examples"] == 500
    assert result.report["accuracy"] > 0.75  # 3 epochs of softmax regression on 2,000 images
    # The loss too: a softmax applied twice keeps the accuracy but not the loss.
    x_test = (real_mnist.test_images[:500].astype("float32") / 255).reshape((-1, *input_shape))
    keras_loss = model.evaluate(x_test, real_mnist.test_labels[:500], verbose=0)
    assert result.report["loss"] == pytest.approx(keras_loss, rel=1e-4)
    saved = json.loads((tmp_path / "foreign.evaluation.json").read_text())
    assert saved["accuracy"] == result.report["accuracy"]
    # The plots under the report's name too: two models in one folder keep each their own.
    assert (tmp_path / "foreign.confusion_matrix.png").stat().st_size > 10_000
    assert (tmp_path / "foreign.misclassified.png").stat().st_size > 10_000


def _save(model, path):
    model.save(path)
    return path


@pytest.mark.parametrize("shape, fragment", [((32, 32, 3), "input shape (32, 32, 3)"), ((784,), "output shape (5,)")])
def test_wrong_shapes_are_refused(tmp_path, shape, fragment):
    outputs = 5 if fragment.startswith("output") else 10
    model = keras.Sequential([keras.Input(shape=shape), keras.layers.Flatten(), keras.layers.Dense(outputs)])
    with pytest.raises(ModelFileError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        load_classifier(_save(model, tmp_path / "m.keras"))


def test_lambda_layer_refused_under_safe_mode(tmp_path):
    inputs = keras.Input(shape=(784,))
    outputs = keras.layers.Dense(10)(keras.layers.Lambda(lambda x: x * 2.0)(inputs))
    path = _save(keras.Model(inputs, outputs), tmp_path / "lambda.keras")
    with pytest.raises(ModelFileError, match="--unsafe"):
        load_classifier(path)
    assert load_classifier(path, unsafe=True).count_params() == 7850


def test_broken_model_files(tmp_path):
    empty = tmp_path / "empty.keras"
    empty.write_bytes(b"")
    text = tmp_path / "text.keras"
    text.write_text("hello")
    good = _save(keras.Sequential([keras.Input(shape=(784,)), keras.layers.Dense(10)]), tmp_path / "good.keras")
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    for path, fragment in [(tmp_path / "missing.keras", "not found"), (empty, "empty"),
                           (text, "not a .keras archive"), (truncated, "not a .keras archive")]:
        with pytest.raises(ModelFileError, match=fragment):
            load_classifier(path)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_low_precision_softmax_outputs_are_probabilities(tmp_path, small_mnist_dir, real_mnist, policy):
    # A plain Keras script under a mixed policy computes its softmax in bf16/fp16 unless told
    # otherwise: its rows sum to 1 only within that dtype's rounding.
    from mnist_zoo.inference.predictor import Predictor
    from mnist_zoo.runtime.precision import precision_scope
    from mnist_zoo.inference.prediction import PreparedInput, predict_top_k

    with precision_scope(policy):
        model = _trained_foreign_model((28, 28, 1), False, real_mnist.train_images[:2000],
                                       real_mnist.train_labels[:2000])
    assert model.outputs[0].dtype == policy.removeprefix("mixed_")
    path = tmp_path / "low.keras"
    model.save(path)
    images, labels = real_mnist.test_images[:500], real_mnist.test_labels[:500]
    x_test = (images.astype("float32") / 255)[..., None]
    keras_loss = model.evaluate(x_test, labels, verbose=0)
    keras_probabilities = model.predict(x_test, verbose=0).astype(np.float64)

    report = run_evaluation(path, data_dir=str(small_mnist_dir), device="cpu").report
    assert report["loss"] == pytest.approx(keras_loss, rel=1e-3)
    assert report["accuracy"] == pytest.approx((keras_probabilities.argmax(1) == labels).mean())

    loaded = load_classifier(path)
    probabilities = Predictor(loaded).probabilities(images)
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    expected = keras_probabilities / keras_probabilities.sum(axis=1, keepdims=True)
    assert np.abs(probabilities - expected).max() < 0.02  # one rounding step of the low-precision output
    inputs = [PreparedInput(tmp_path / "digit.npy", image=images[0])]
    predict_top_k(loaded, inputs, 3)
    best_class, best_probability = inputs[0].top_k[0]
    assert best_class == keras_probabilities[0].argmax()
    assert best_probability == pytest.approx(expected[0].max(), abs=0.02)


# ----------------------------------------------------------------------------- Fashion-MNIST, --output-dir

# Zalando's labels of the ten Fashion-MNIST classes, in class-index order (written out here, not
# read from the package's catalog, so that a wrong or shuffled name there fails).
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")


def invoke(*args):
    from click.testing import CliRunner

    from mnist_zoo.cli import cli

    return CliRunner().invoke(cli, list(map(str, args)), catch_exceptions=False)


@pytest.fixture(scope="module")
def small_fashion(tmp_path_factory, fashion_data):
    """2,000 real Fashion-MNIST training and 500 test images as IDX files, and the test arrays."""
    from mnist_zoo.data.datasets import load_dataset
    from tests.helpers import write_mnist_folder

    data = load_dataset("fashion_mnist", str(fashion_data))
    folder = write_mnist_folder(tmp_path_factory.mktemp("small_fashion"), data.train_images[:2000],
                                data.train_labels[:2000], data.test_images[:500], data.test_labels[:500])
    return folder, data.test_images[:500], data.test_labels[:500]


@pytest.fixture(scope="module")
def fashion_run(tmp_path_factory, small_fashion):
    """A run directory of the linear model trained one epoch on Fashion-MNIST (through `train`)."""
    from tests.helpers import train_tiny

    return train_tiny(tmp_path_factory.mktemp("fashion") / "run", small_fashion[0], "linear",
                      "--dataset", "fashion_mnist")


def per_class_names(output: str) -> list[str]:
    """The first column of the ten rows of evaluate's per-class table."""
    import re

    lines = output.splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith("class "))
    return [re.split(r"\s{2,}", row.strip())[0] for row in lines[start + 2: start + 12]]  # below the header's rule


def test_evaluate_and_predict_name_fashion_mnist_classes(tmp_path, fashion_run, small_fashion):
    # docs/commands.md (predict): "A run directory trained on Fashion-MNIST prints class names (`Sneaker`, ...)";
    # a run's config decides the data set, and for a bare file `--dataset` does.
    _, images, labels = small_fashion
    bare = tmp_path / "bare" / "model.keras"
    bare.parent.mkdir()
    bare.write_bytes((fashion_run / "best.keras").read_bytes())
    for args in ([fashion_run], [bare, "--dataset", "fashion_mnist", "--data-dir", small_fashion[0]]):
        result = invoke("evaluate", *args, "--output-dir", tmp_path / "reports")
        assert result.exit_code == 0, result.output
        assert per_class_names(result.stdout) == list(FASHION_CLASSES), result.stdout
        report = json.loads((tmp_path / "reports" / "evaluation.json").read_text())
        assert report["dataset"] == "fashion_mnist"
        assert [row["name"] for row in report["per_class"]] == list(FASHION_CLASSES)

    one_of_each = images[[int(np.flatnonzero(labels == index)[0]) for index in range(10)]]
    np.save(tmp_path / "clothes.npy", one_of_each)
    result = invoke("predict", fashion_run, tmp_path / "clothes.npy", "--json", "--top-k", "10")
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert len(records) == 10
    for record in records:
        assert record["prediction"] == FASHION_CLASSES[record["class_index"]]
        assert [(entry["class"], entry["class_index"]) for entry in record["top_k"]] == \
            [(FASHION_CLASSES[entry["class_index"]], entry["class_index"]) for entry in record["top_k"]]
        assert sorted(entry["class"] for entry in record["top_k"]) == sorted(FASHION_CLASSES)
    text = invoke("predict", fashion_run, tmp_path / "clothes.npy", "--top-k", "1")
    assert text.exit_code == 0, text.output
    assert [line.split(": ", 1)[1].split("  (")[0] for line in text.stdout.splitlines()] == \
        [record["prediction"] for record in records]


def test_evaluate_output_dir_gets_the_report_and_plots_and_the_model_folder_nothing(tmp_path, fashion_run,
                                                                                  small_fashion):
    # docs/commands.md (evaluate): the report goes into the run directory for the run's own model, beside
    # any other .keras file, "`--output-dir` elsewhere"; "`--plots` also writes
    # `confusion_matrix.png` and `misclassified.png`".
    from tests.helpers import tree_signature

    bare = tmp_path / "models" / "model.keras"
    bare.parent.mkdir()
    bare.write_bytes((fashion_run / "best.keras").read_bytes())
    run_before, models_before = tree_signature(fashion_run), tree_signature(bare.parent)
    for model, output, data in ((fashion_run, tmp_path / "from-run", []),
                                (bare, tmp_path / "from-file", ["--dataset", "fashion_mnist", "--data-dir",
                                                                small_fashion[0]])):
        result = invoke("evaluate", model, "--plots", "--output-dir", output, *data)
        assert result.exit_code == 0, result.output
        written = [output / "evaluation.json", output / "confusion_matrix.png", output / "misclassified.png"]
        assert sorted(output.iterdir()) == sorted(written)
        assert [line for line in result.stdout.splitlines() if line.startswith("wrote ")] == \
            [f"wrote {path}" for path in written]
        assert json.loads(written[0].read_text())["model"] == str(model if model == bare else model / "best.keras")
    assert tree_signature(fashion_run) == run_before  # no evaluation.json or plots in the run
    assert tree_signature(bare.parent) == models_before  # none beside the file
    assert [path.name for path in bare.parent.iterdir()] == ["model.keras"]


def test_a_runs_best_and_last_models_each_keep_their_own_reports(tmp_path, tiny_runs, small_mnist_dir):
    # Both files of one run used to write evaluation.json (and the plots): the later replaced the earlier.
    from mnist_zoo.inference.evaluation import read_report
    from tests.helpers import copy_runs

    run = copy_runs(tiny_runs, tmp_path, ["mlp"])["mlp"]
    reports = {}
    for model_file, split in [(rundir.BEST_MODEL, "test"), (rundir.LAST_MODEL, "test"),
                              (rundir.LAST_MODEL, "validation")]:
        result = run_evaluation(run / model_file, data_dir=str(small_mnist_dir), plots=True, split=split)
        reports[model_file, split] = result
    names = {(model_file, split): [path.name for path in result.written]
             for (model_file, split), result in reports.items()}
    assert names == {
        ("best.keras", "test"): ["evaluation.json", "confusion_matrix.png", "misclassified.png"],
        ("last.keras", "test"): ["last.evaluation.json", "last.confusion_matrix.png", "last.misclassified.png"],
        ("last.keras", "validation"): ["last.validation-evaluation.json", "last.validation-confusion_matrix.png",
                                       "last.validation-misclassified.png"]}
    for (model_file, split), result in reports.items():
        saved = json.loads(result.written[0].read_text())
        assert Path(saved["model"]).name == model_file and saved["accuracy"] == result.report["accuracy"]
        if split == "test":  # what the page shows for the file
            assert read_report(run / model_file, run, "keras") == saved
    # The reports and a temporary a killed writer left of one are the run's own: `train --force` may replace it.
    (run / rundir._temporary_name("last.evaluation", "partial", ".json")).write_text("{")
    assert rundir._foreign_entries(run) == []
