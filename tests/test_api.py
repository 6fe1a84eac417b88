"""The Python API: `import mnist_zoo as mz` does what the CLI does, returns objects, never prints unless asked."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import mnist_zoo as mz
from mnist_zoo.models.registry import MODELS
from tests.helpers import SignalAt, copy_runs, history_without_times

def tiny(model: str, small_mnist_dir, **overrides) -> dict:
    """`mz.train` options for the registry's tiny variant of `model` on the small data."""
    settings = {f"model.{key}": value for key, value in MODELS[model].tiny.items()}
    settings.update({"data.validation_size": 200, **overrides})
    return {"set": settings, "data_dir": small_mnist_dir, "epochs": 1, "verbose": 0}


def test_importing_the_package_loads_no_tensorflow_and_names_every_public_function():
    code = ("import sys, mnist_zoo as mz; assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules; "
            "print(mz.__all__)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    names = eval(result.stdout)  # noqa: S307 - our own process's printed list
    for name in ("train", "load_run", "evaluate", "predict", "export", "compare", "plot_history", "sweep", "Run"):
        assert name in names and name in dir(mz)
    for name in names:
        assert getattr(mz, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'trian'"):
        mz.trian  # noqa: B018


def test_train_returns_a_run_with_its_figures_and_prints_nothing_when_silent(tmp_path, small_mnist_dir, capsys):
    from matplotlib.figure import Figure

    run = mz.train("linear", output_dir=tmp_path, **tiny("linear", small_mnist_dir))
    assert capsys.readouterr() == ("", "")  # verbose=0: nothing on stdout or stderr
    assert isinstance(run, mz.Run) and run.path.parent == tmp_path and run.status == "complete"
    assert run.metrics["epochs_completed"] == 1 and len(run.history) == 1
    assert run.config.model.type == "linear" and run.config.data.validation_size == 200
    assert f"test accuracy {run.metrics['test_accuracy']:.2%}" in repr(run)
    assert "<table>" in run._repr_html_() and "test accuracy" in run._repr_html_()
    figure = run.plot_history()
    assert isinstance(figure, Figure) and [axis.get_title() for axis in figure.axes] == ["Loss per epoch",
                                                                                        "Accuracy per epoch"]
    saved = run.plot_history(tmp_path / "history.png")
    assert (tmp_path / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and isinstance(saved, Figure)
    assert "matplotlib.pyplot" not in sys.modules or not sys.modules["matplotlib.pyplot"].get_fignums()
    assert mz.load_run(run.path) == run and mz.load_run(run) is run


def test_messages_go_to_stderr_by_default_and_to_a_report_callable_when_given(tmp_path, small_mnist_dir, capsys):
    options = tiny("linear", small_mnist_dir)
    options.pop("verbose")
    mz.train("linear", output_dir=tmp_path / "a", verbose=2, **options)
    out, err = capsys.readouterr()
    assert "run directory: " in err and "device: " in err and "run directory" not in out
    messages = []
    mz.train("linear", output_dir=tmp_path / "b", verbose=0, report=messages.append, **options)
    assert messages[0].startswith("run directory: ") and any(line.startswith("data: ") for line in messages)


def test_evaluate_and_predict_return_the_cli_reports_as_objects(tmp_path, tiny_runs, small_mnist_dir):
    from click.testing import CliRunner

    from mnist_zoo.cli import cli

    run = mz.load_run(copy_runs(tiny_runs, tmp_path, ["mlp"])["mlp"])
    evaluation = run.evaluate()
    cli_report = json.loads((run.path / "evaluation.json").read_text())
    assert evaluation.report == cli_report and evaluation.accuracy == cli_report["accuracy"]
    assert evaluation.confusion_matrix.sum() == 500 and evaluation.confusion_matrix.shape == (10, 10)
    assert len(evaluation.misclassified) == round(500 * (1 - evaluation.accuracy))
    assert evaluation.plot_confusion_matrix().axes and evaluation.plot_misclassified().axes
    assert "most confused" in str(evaluation) and "<pre>" in evaluation._repr_html_()

    from mnist_zoo.data.datasets import load_dataset

    images = load_dataset("mnist", str(small_mnist_dir)).test_images
    np.save(tmp_path / "five.npy", images[:5])
    from_file = mz.predict(run, tmp_path / "five.npy", top_k=2)
    from_array = mz.predict(run, images[:5], top_k=2)
    from_floats = run.predict(images[:5].astype(np.float32) / 255.0, top_k=2)
    result = CliRunner().invoke(cli, ["predict", str(run.path), str(tmp_path / "five.npy"), "--top-k", "2", "--json"])
    assert from_file == json.loads(result.stdout)
    strip = [{key: value for key, value in record.items() if key != "input"} for record in from_file]
    assert [{key: value for key, value in record.items() if key != "input"} for record in from_array] == strip
    assert [record["prediction"] for record in from_floats] == [record["prediction"] for record in from_file]
    assert [record["input"] for record in from_array] == [f"array[{index}]" for index in range(5)]
    with pytest.raises(mz.DataError, match="expected 28x28 images"):
        mz.predict(run, np.zeros((3, 32, 32)))


def test_compare_and_summary(tmp_path, tiny_runs):
    comparison = mz.compare(list(tiny_runs.values()), sort="parameters")
    assert [row.model for row in comparison.rows] == sorted(
        MODELS, key=lambda name: mz.load_run(tiny_runs[name]).metrics["parameters"])
    assert comparison.as_dicts()[0]["parameters"] == comparison.rows[0].parameters
    assert comparison.plot().axes and "test acc" in str(comparison)
    with pytest.raises(ValueError, match="sort='speed': expected one of"):
        mz.compare(tiny_runs["mlp"], sort="speed")
    cnn = mz.load_run(tiny_runs["cnn"])
    assert mz.summary(cnn).total["parameters"] == cnn.metrics["parameters"] < mz.summary("cnn").total["parameters"]


def test_ctrl_c_keeps_the_last_epoch_and_resume_continues_it_exactly(tmp_path, small_mnist_dir):
    options = tiny("linear", small_mnist_dir)
    options["epochs"] = 2
    unbroken = mz.train("linear", run_dir=tmp_path / "unbroken", **options)
    with pytest.raises(mz.TrainingInterrupted) as caught:
        mz.train("linear", run_dir=tmp_path / "stopped", callbacks=[SignalAt(epoch=0)], **options)
    assert caught.value.run_dir == tmp_path / "stopped" and caught.value.epochs_completed == 1
    stopped = mz.load_run(caught.value.run_dir)
    assert stopped.status == "interrupted" and stopped.metrics is None and "epochs 1 of 2" in repr(stopped)
    with pytest.raises(ValueError, match="drop epochs"):
        mz.train(resume=stopped, epochs=3)
    resumed = stopped.resume(verbose=0)
    assert resumed == stopped and resumed.complete
    assert history_without_times(resumed.path) == history_without_times(unbroken.path)


def test_errors_are_the_librarys_exceptions_and_a_failed_new_run_leaves_nothing(tmp_path, small_mnist_dir):
    with pytest.raises(mz.ConfigError, match="no bundled config"):
        mz.train("resnet", output_dir=tmp_path)
    with pytest.raises(mz.ConfigError, match="dropout_rate"):
        mz.train("mlp", set={"model.dropout_rate": 2}, output_dir=tmp_path)
    with pytest.raises(ValueError, match="force only applies to run_dir"):
        mz.train("mlp", force=True, output_dir=tmp_path)
    with pytest.raises(TypeError, match="shortcuts are"):
        mz.load_config("mlp", learning_rate=0.1)
    empty = tmp_path / "no-data"
    empty.mkdir()
    with pytest.raises(mz.DataError):
        mz.train("linear", data_dir=empty, output_dir=tmp_path / "runs", verbose=0)
    assert list((tmp_path / "runs").iterdir()) == []  # the run that never started is gone
    with pytest.raises(mz.RunDirError, match="not a run directory"):
        mz.load_run(tmp_path)


def test_load_config_takes_a_name_a_path_or_a_config_with_overrides(tmp_path):
    config = mz.load_config("mlp", set=["model.dropout_rate=0.25"], epochs=2)
    assert config.model.dropout_rate == 0.25 and config.train.epochs == 2
    path = tmp_path / "mine.yaml"
    from mnist_zoo.config.loading import config_to_yaml

    path.write_text(config_to_yaml(config))
    assert mz.load_config(path) == mz.load_config(str(path)) == config
    assert mz.load_config(config, set={"train.seed": 7}).train.seed == 7
    assert mz.load_config(config) is config


def test_every_public_name_survives_importing_every_subpackage():
    """A subpackage named like a public function would replace it on import (mz.serve and a serve/ package)."""
    import importlib
    import pkgutil

    for module in pkgutil.walk_packages(mz.__path__, "mnist_zoo."):
        if module.ispkg:
            importlib.import_module(module.name)
    for name in mz.__all__:
        value = getattr(mz, name)
        assert not isinstance(value, type(mz)), f"mz.{name} is the module {value.__name__}"


@pytest.mark.slow
def test_serve_runs_the_page_until_interrupted(tmp_path, tiny_runs):
    import urllib.request

    from tests.helpers import start_server, stop_server

    code = (f"import mnist_zoo as mz; mz.serve([{str(tiny_runs['mlp'])!r}], runs_dir=None, port=0)")
    process, url = start_server(cwd=tmp_path, command=[sys.executable, "-c", code])
    try:
        with urllib.request.urlopen(url + "api/models", timeout=30) as answer:
            models = json.loads(answer.read())["models"]
        assert [model["run"] for model in models] == [tiny_runs["mlp"].name]
    finally:
        returncode, _, stderr = stop_server(process)
    assert returncode == 0 and "Traceback" not in stderr


def test_a_run_stays_itself_after_a_change_of_directory_and_its_repr_never_raises(tmp_path, tiny_runs, monkeypatch):
    run_dir = copy_runs(tiny_runs, tmp_path, ["linear"])["linear"]
    monkeypatch.chdir(run_dir.parent)
    run = mz.load_run(run_dir.name)  # relative, as a notebook names it
    monkeypatch.chdir(tmp_path.parent)  # a notebook's %cd
    assert run.metrics is not None and run.history and run == mz.load_run(run_dir)
    assert repr(run).startswith(f"Run({run_dir.name!r}: ")
    (run_dir / "history.json").write_text("{half written")
    (run_dir / "metrics.json").unlink()
    assert "error" in repr(run) and "error" in run._repr_html_()  # says what is wrong instead of raising


def test_arguments_the_cli_would_refuse_are_value_errors(tmp_path, tiny_runs, small_mnist_dir):
    run = mz.load_run(tiny_runs["linear"])
    for call, message in [
        (lambda: mz.evaluate(run, device="CPU"), "device='CPU': expected one of 'auto', 'cpu', 'gpu'"),
        (lambda: mz.evaluate(run, dataset="fashion"), "dataset='fashion': expected one of"),
        (lambda: mz.train("linear", device="tpu", output_dir=tmp_path), "device='tpu'"),
        (lambda: mz.train(resume=run, seed=0), "drop seed"),
        (lambda: mz.train(resume=run, output_dir=tmp_path), "drop output_dir"),
        (lambda: mz.train("linear", run_dir=tmp_path / "a", output_dir=tmp_path), "either run_dir or output_dir"),
        (lambda: mz.train("linear", verbose=3, output_dir=tmp_path), "verbose=3"),
        (lambda: mz.predict(run, np.zeros((28, 28)), save_preprocessed=tmp_path), "save_preprocessed applies"),
        (lambda: mz.export(run, "pdf"), r"formats=\['pdf'\]: expected one or more of"),
        (lambda: mz.export(run, "tflite", quantize="int4"), "quantize='int4'"),
    ]:
        with pytest.raises(ValueError, match=message):
            call()
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


def test_verbose_is_the_calls_choice_not_recorded_in_the_run(tmp_path, small_mnist_dir):
    run = mz.train("linear", output_dir=tmp_path, **tiny("linear", small_mnist_dir))  # verbose=0
    assert run.config.train.verbose == mz.load_config("linear").train.verbose
