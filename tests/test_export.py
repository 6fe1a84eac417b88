"""Export: every format of every registry model, verified in its runtime; quantized LiteRT; refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mnist_zoo.cli import cli
from mnist_zoo.models.registry import MODELS
from tests.helpers import copy_runs, train_tiny
from tests.skips import import_or_skip

import_or_skip("onnxruntime")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_runs):
    """This module's copy of the session's tiny runs: exports and evaluations write into them."""
    return copy_runs(tiny_runs, tmp_path_factory.mktemp("export-runs"))


def export(*args: str):
    return CliRunner().invoke(cli, ["export", *args])


def keras_probabilities(run_dir: Path, images: np.ndarray) -> np.ndarray:
    from mnist_zoo.inference.modelfile import load_classifier
    from mnist_zoo.inference.predictor import Predictor

    return Predictor(load_classifier(run_dir / "best.keras")).probabilities(images)


@pytest.mark.parametrize("model", list(MODELS))
def test_every_format_is_verified_in_its_runtime_and_runs_there_at_any_batch_size(runs, model, real_mnist, tmp_path):
    run_dir = runs[model]
    folder = tmp_path / "export"
    result = export(str(run_dir), "--format", "savedmodel", "--format", "tflite", "--format", "onnx", "--json",
                    "-o", str(folder))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [check["format"] for check in report["exports"]] == ["savedmodel", "tflite", "onnx"]
    for check in report["exports"]:
        assert check["agreement"] == 1.0 and check["max_probability_difference"] <= 1e-4
        assert check["test_accuracy"] == check["keras_accuracy"] and check["size_bytes"] > 1000
    assert sorted(path.name for path in folder.iterdir()) == ["model.onnx", "model.tflite", "saved_model"]
    from mnist_zoo.inference.runtimes import open_classifier

    for name in ("saved_model", "model.tflite", "model.onnx"):  # each declares what it outputs
        assert open_classifier(folder / name, unsafe=True).output_kind == "probabilities", name

    # Each file used the way a user would, in its runtime directly: uint8 (n, 28, 28) in, probabilities out.
    images = real_mnist.test_images[:7]
    expected = keras_probabilities(run_dir, images)
    import onnxruntime
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [(item.name, item.type, item.shape) for item in session.get_inputs()] == [("image", "tensor(uint8)", ["batch", 28, 28])]
    assert [item.name for item in session.get_outputs()] == ["probabilities"]
    onnx_output = session.run(["probabilities"], {"image": images})[0]

    interpreter = Interpreter(model_path=str(folder / "model.tflite"))
    assert interpreter.get_signature_list() == {"serving_default": {"inputs": ["image"], "outputs": ["probabilities"]}}
    details = interpreter.get_input_details()[0]
    assert details["dtype"] == np.uint8 and list(details["shape_signature"]) == [-1, 28, 28]
    interpreter.resize_tensor_input(details["index"], [len(images), 28, 28])
    interpreter.allocate_tensors()
    interpreter.set_tensor(details["index"], images)
    interpreter.invoke()
    litert_output = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])

    loaded = tf.saved_model.load(str(folder / "saved_model"))
    saved_output = loaded.serve(tf.constant(images))["probabilities"].numpy()
    single = loaded.signatures["serving_default"](image=tf.constant(images[:1]))["probabilities"].numpy()
    for output in (onnx_output, litert_output, saved_output):
        assert output.dtype == np.float32 and output.shape == (7, 10)
        np.testing.assert_allclose(output, expected, atol=1e-4)
    np.testing.assert_allclose(single, expected[:1], atol=1e-4)


def test_text_report_and_a_keras_file_exports_beside_itself(runs, tmp_path, small_mnist_dir):
    model_file = tmp_path / "mine.keras"
    model_file.write_bytes((runs["linear"] / "best.keras").read_bytes())
    result = export(str(model_file), "--format", "onnx", "--data-dir", str(small_mnist_dir))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "model.onnx").is_file()
    assert any(line.startswith("onnx") and "100.00%" in line for line in result.stdout.splitlines())
    assert "verified on 500 test images" in result.stdout


def test_a_mixed_precision_run_exports_as_float32(tmp_path, small_mnist_dir):
    run_dir = train_tiny(tmp_path / "bf16", small_mnist_dir, "cnn", "--set", "train.precision=mixed_bfloat16")
    assert json.loads((run_dir / "environment.json").read_text())["precision"] == "mixed_bfloat16"
    result = export(str(run_dir), "--format", "tflite", "--format", "onnx", "--json")
    assert result.exit_code == 0, result.output
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(run_dir / "export" / "model.tflite"))
    tensor_types = {detail["dtype"] for detail in interpreter.get_tensor_details()}
    assert np.float32 in tensor_types and not {np.float16} & tensor_types  # no bf16/fp16 tensors inside
    for check in json.loads(result.stdout)["exports"]:
        assert check["agreement"] == 1.0


@pytest.mark.parametrize("quantize", ["float16", "int8"])
def test_quantized_litert_is_smaller_and_keeps_its_accuracy(runs, mnist_data, quantize, tmp_path):
    run_dir = runs["mlp"]
    float_export = export(str(run_dir), "--format", "tflite", "-o", str(tmp_path / "float"), "--json")
    assert float_export.exit_code == 0, float_export.output
    float_size = json.loads(float_export.stdout)["exports"][0]["size_bytes"]
    result = export(str(run_dir), "--format", "tflite", "--quantize", quantize, "--data-dir", str(mnist_data),
                    "--json", "-o", str(tmp_path / "quantized"))
    assert result.exit_code == 0, result.output
    check = json.loads(result.stdout)["exports"][0]
    assert check["quantize"] == quantize and Path(check["path"]).name == f"model-{quantize}.tflite"
    assert 100 * (check["keras_accuracy"] - check["test_accuracy"]) <= 0.3
    assert check["agreement"] > 0.95  # a tiny one-epoch model: many images sit near a class boundary
    assert check["size_bytes"] < float_size * (0.6 if quantize == "float16" else 0.35)
    # Its outputs are read as the probabilities they are (rounded to int8 steps), not as logits.
    assert check["max_probability_difference"] < 0.15
    keras_loss = json.loads(CliRunner().invoke(cli, ["evaluate", str(run_dir), "--json", "--data-dir",
                                                     str(mnist_data)]).stdout)["loss"]
    quantized = json.loads(CliRunner().invoke(cli, ["evaluate", check["path"], "--json", "--data-dir",
                                                    str(mnist_data)]).stdout)
    assert quantized["runtime"] == "tflite" and quantized["loss"] == pytest.approx(keras_loss, abs=0.03)
    if quantize == "int8":
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=check["path"])
        kinds = {detail["dtype"] for detail in interpreter.get_tensor_details()}
        assert np.int8 in kinds and interpreter.get_input_details()[0]["dtype"] == np.uint8


def test_a_failed_verification_is_an_error_and_leaves_nothing(runs, tmp_path, monkeypatch):
    from mnist_zoo.exports import stage

    monkeypatch.setattr(stage, "FLOAT_TOLERANCE", -1.0)  # no file can pass
    result = export(str(runs["linear"]), "--format", "onnx", "-o", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "does not compute what the Keras model does" in result.output
    assert list((tmp_path / "out").iterdir()) == []  # neither the file nor its partial copy


def test_existing_exports_are_kept_without_force(runs, tmp_path):
    out = tmp_path / "out"
    assert export(str(runs["linear"]), "--format", "onnx", "-o", str(out)).exit_code == 0
    before = (out / "model.onnx").read_bytes()
    refused = export(str(runs["linear"]), "--format", "onnx", "-o", str(out))
    assert refused.exit_code == 2 and "pass --force" in refused.output
    assert export(str(runs["mlp"]), "--format", "onnx", "-o", str(out), "--force").exit_code == 0
    assert (out / "model.onnx").read_bytes() != before
    assert sorted(path.name for path in out.iterdir()) == ["model.onnx"]


def test_a_lambda_model_is_refused(tmp_path, small_mnist_dir):
    import keras

    inputs = keras.Input((28, 28, 1))
    outputs = keras.layers.Dense(10, activation="softmax")(
        keras.layers.Flatten()(keras.layers.Lambda(lambda x: x * 2.0)(inputs)))
    keras.Model(inputs, outputs).save(tmp_path / "lambda.keras")
    result = export(str(tmp_path / "lambda.keras"), "--format", "onnx", "--data-dir", str(small_mnist_dir))
    assert result.exit_code == 2 and "Lambda" in result.output
    assert not (tmp_path / "model.onnx").exists()


@pytest.mark.parametrize("args, message", [
    (["--format", "onnx", "--quantize", "int8"], "applies to LiteRT only"),
    (["--format", "pt"], "Invalid value for '--format'"),
])
def test_bad_requests_are_one_line_errors(runs, args, message):
    result = export(str(runs["linear"]), *args)
    assert result.exit_code == 2 and message in result.output


def test_a_missing_extra_names_the_pip_command(runs, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    result = export(str(runs["linear"]), "--format", "onnx")
    assert result.exit_code == 2 and "pip install 'mnist-zoo[export]'" in result.output


def test_export_runs_as_a_real_command(runs, tmp_path):
    result = subprocess.run([sys.executable, "-m", "mnist_zoo", "export", str(runs["linear"]), "--format", "savedmodel",
                             "-o", str(tmp_path / "out")], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "savedmodel" in result.stdout and (tmp_path / "out" / "saved_model" / "saved_model.pb").is_file()
    assert "verifying saved_model" in result.stderr


def test_kill_9_mid_export_leaves_the_previous_files_whole_and_the_next_export_clears_up(runs, tmp_path):
    import os
    import signal
    import time

    out = tmp_path / "out"
    first = export(str(runs["cnn"]), "--format", "onnx", "--format", "savedmodel", "-o", str(out))
    assert first.exit_code == 0, first.output
    before = (out / "model.onnx").read_bytes()
    process = subprocess.Popen([sys.executable, "-m", "mnist_zoo", "export", str(runs["cnn"]), "--format", "onnx",
                                "--format", "savedmodel", "-o", str(out), "--force"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(out.glob(".*partial*")) and time.monotonic() < deadline:  # a file being written or verified
        assert process.poll() is None, "the export finished before it could be killed"
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert list(out.glob(".*")), "nothing was left to clear up"
    assert (out / "model.onnx").read_bytes() == before or _opens(out / "model.onnx")  # whole: old or new
    assert _opens(out / "saved_model")
    again = export(str(runs["cnn"]), "--format", "onnx", "--format", "savedmodel", "-o", str(out), "--force")
    assert again.exit_code == 0, again.output
    assert not list(out.glob(".*"))  # the killed export's partial files and scratch folder are gone


def _opens(path: Path) -> bool:
    from mnist_zoo.inference.runtimes import open_classifier

    return open_classifier(path, unsafe=True).probabilities(np.zeros((2, 28, 28), np.uint8)).shape == (2, 10)


# ----------------------------------------------------------------------------- exported files in evaluate and predict


@pytest.fixture(scope="module")
def exported_cnn(runs):
    result = export(str(runs["cnn"]), "--format", "savedmodel", "--format", "tflite", "--format", "onnx", "--force")
    assert result.exit_code == 0, result.output
    folder = runs["cnn"] / "export"
    return {"keras": runs["cnn"] / "best.keras", "savedmodel": folder / "saved_model",
            "tflite": folder / "model.tflite", "onnx": folder / "model.onnx"}


@pytest.mark.parametrize("kind", ["savedmodel", "tflite", "onnx"])
def test_evaluate_runs_an_export_in_its_runtime_with_the_same_report(exported_cnn, kind):
    keras_report = json.loads(CliRunner().invoke(cli, ["evaluate", str(exported_cnn["keras"]), "--json"]).stdout)
    unsafe = ["--unsafe"] if kind == "savedmodel" else []  # a SavedModel is a program: loaded only if trusted
    result = CliRunner().invoke(cli, ["evaluate", str(exported_cnn[kind]), "--json", "--plots", *unsafe])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["runtime"] == kind and keras_report["runtime"] == "keras"
    for key in ("accuracy", "confusion_matrix", "per_class", "most_confused", "num_examples"):
        assert report[key] == keras_report[key], key
    assert report["loss"] == pytest.approx(keras_report["loss"], abs=1e-5)
    path = exported_cnn[kind]
    # Beside the file under its own name: the run's evaluation.json and the other exports' stay.
    assert (path.parent / f"{path.name}.evaluation.json").is_file()
    assert (path.parent / f"{path.name}.confusion_matrix.png").stat().st_size > 10_000
    text = CliRunner().invoke(cli, ["evaluate", str(path), *unsafe]).stdout
    assert f"({kind})" in text.splitlines()[0] and "most confused" in text


def test_predict_gives_the_same_answer_in_every_runtime(exported_cnn, tmp_path, real_mnist):
    np.save(tmp_path / "digits.npy", real_mnist.test_images[:5])
    answers = {}
    for kind, path in exported_cnn.items():
        unsafe = ["--unsafe"] if kind == "savedmodel" else []  # a SavedModel is a program: loaded only if trusted
        result = CliRunner().invoke(cli, ["predict", str(path), str(tmp_path / "digits.npy"), "--json", *unsafe])
        assert result.exit_code == 0, result.output
        answers[kind] = json.loads(result.stdout)
    for kind, records in answers.items():
        assert [r["class_index"] for r in records] == [r["class_index"] for r in answers["keras"]], kind
        for ours, theirs in zip(records, answers["keras"]):
            assert ours["top_k"][0]["probability"] == pytest.approx(theirs["top_k"][0]["probability"], abs=1e-4)


@pytest.mark.parametrize("name, content", [
    ("random.tflite", bytes(range(256)) * 40),
    ("random.onnx", bytes(range(256)) * 40),
    ("truncated.tflite", None),
    ("truncated.onnx", None),
    ("empty.onnx", b""),
])
def test_broken_exported_files_are_one_line_errors(exported_cnn, tmp_path, small_mnist_dir, name, content):
    path = tmp_path / name
    if content is None:
        source = exported_cnn[Path(name).suffix.lstrip(".")]
        content = source.read_bytes()[: source.stat().st_size // 3]
    path.write_bytes(content)
    np.save(tmp_path / "x.npy", np.zeros((28, 28), np.uint8))
    for args in (["evaluate", str(path), "--data-dir", str(small_mnist_dir)], ["predict", str(path), str(tmp_path / "x.npy")]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, result.output
        errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and str(path) in errors[0]


@pytest.mark.slow  # a real process
def test_a_broken_export_is_one_line_on_a_real_terminal_too(tmp_path):
    path = tmp_path / "random.tflite"
    path.write_bytes(bytes(range(256)) * 40)
    np.save(tmp_path / "x.npy", np.zeros((28, 28), np.uint8))
    result = subprocess.run([sys.executable, "-m", "mnist_zoo", "predict", str(path), str(tmp_path / "x.npy")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("Error:")] == [
        f"Error: {path}: not a readable .tflite model" + line.split("not a readable .tflite model", 1)[1]
        for line in result.stderr.splitlines() if "not a readable .tflite model" in line]


def test_the_docs_snippets_run_on_an_export(exported_cnn, real_mnist, monkeypatch):
    import re

    from tests.helpers import REPO_ROOT

    page = (REPO_ROOT / "docs" / "commands.md").read_text()
    snippet = re.search(r"Using the files elsewhere.*?```python\n(.*?)```", page, re.S).group(1)
    monkeypatch.chdir(exported_cnn["tflite"].parent.parent)  # the run directory: export/... paths
    namespace = {"images": real_mnist.test_images[:9]}
    exec(compile(snippet, "docs/commands.md", "exec"), namespace)
    expected = keras_probabilities(exported_cnn["keras"].parent, real_mnist.test_images[:9])
    np.testing.assert_allclose(np.asarray(namespace["probabilities"]), expected, atol=1e-4)


def test_a_damaged_saved_model_folder_is_a_one_line_error(exported_cnn, tmp_path, small_mnist_dir):
    import shutil

    damaged = tmp_path / "saved_model"
    shutil.copytree(exported_cnn["savedmodel"], damaged)
    pb = damaged / "saved_model.pb"
    pb.write_bytes(pb.read_bytes()[:200])
    result = CliRunner().invoke(cli, ["evaluate", str(damaged), "--data-dir", str(small_mnist_dir), "--unsafe"])
    assert result.exit_code == 2 and "not a readable SavedModel" in result.output
    empty = tmp_path / "not_a_model"
    empty.mkdir()
    result = CliRunner().invoke(cli, ["predict", str(empty / "x.onnx"), str(tmp_path)])
    assert result.exit_code == 2 and "Error:" in result.output


def test_evaluating_an_export_without_its_runtime_names_the_pip_command(exported_cnn, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed: importing it fails
    result = CliRunner().invoke(cli, ["evaluate", str(exported_cnn["onnx"])])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == (
        "Error: running .onnx files needs the onnxruntime package: pip install 'mnist-zoo[export]'")
