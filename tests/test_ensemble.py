"""Ensembles: averaged probabilities equal a hand computation; evaluate --ensemble through the CLI; the
ensemble's folder as one model in predict, serve, compare and evaluate; hostile ensemble files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mnist_zoo.cli import cli
from mnist_zoo.errors import ModelFileError
from mnist_zoo.inference.ensemble import EnsembleClassifier, average_probabilities, resolve_members
from mnist_zoo.inference.evaluation import classification_report, run_ensemble_evaluation
from mnist_zoo.inference.runtimes import Classifier


class Fixed(Classifier):
    """A member that answers with given probabilities."""

    kind = "fixed"
    output_kind = "probabilities"

    def __init__(self, rows):
        super().__init__("fixed")
        self.rows = np.asarray(rows, np.float32)

    def _run(self, images):
        return self.rows[: len(images)]


def test_ensemble_averages_probabilities_as_by_hand():
    first = [[0.6, 0.4] + [0] * 8, [0.1, 0.9] + [0] * 8]
    second = [[0.2, 0.8] + [0] * 8, [0.3, 0.7] + [0] * 8]
    ensemble = EnsembleClassifier([Fixed(first), Fixed(second)])
    averaged = ensemble.probabilities(np.zeros((2, 28, 28), np.uint8))
    np.testing.assert_allclose(averaged[:, :2], [[0.4, 0.6], [0.2, 0.8]], atol=1e-7)
    np.testing.assert_allclose(averaged.sum(axis=1), 1, atol=1e-6)
    # The first member alone says class 0 for image 0; the committee says class 1.
    assert averaged.argmax(axis=1).tolist() == [1, 1]
    np.testing.assert_array_equal(average_probabilities([np.asarray(first, np.float32)]), np.asarray(first, np.float32))


def test_an_empty_ensemble_is_refused():
    with pytest.raises(ValueError, match="at least one"):
        EnsembleClassifier([])
    with pytest.raises(ModelFileError, match="at least one"):
        resolve_members([])


def test_ensemble_evaluation_averages_the_members(tmp_path, tiny_runs, small_mnist_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    members = [tiny_runs["mlp"], tiny_runs["cnn"], tiny_runs["linear"]]
    result = run_ensemble_evaluation(members, data_dir=str(small_mnist_dir))
    assert [row["model"] for row in result.members] == [str(run / "best.keras") for run in members]
    from mnist_zoo.inference.runtimes import open_classifier

    by_hand = np.mean([open_classifier(run / "best.keras").probabilities(result.images) for run in members], axis=0)
    np.testing.assert_allclose(result.probabilities, by_hand, atol=1e-6)
    expected = classification_report(result.labels, by_hand.astype(np.float32), result.class_names)
    assert result.report["accuracy"] == pytest.approx(expected["accuracy"])
    written = json.loads((tmp_path / "ensemble-evaluation.json").read_text())
    assert written["runtime"] == "ensemble" and len(written["members"]) == 3
    for member in result.members:  # each member's own line is its plain evaluation
        alone = classification_report(result.labels, open_classifier(member["model"]).probabilities(result.images),
                                      result.class_names)
        assert member["accuracy"] == pytest.approx(alone["accuracy"])


def test_the_same_member_twice_is_refused(tiny_runs):
    with pytest.raises(ModelFileError, match="given twice"):
        resolve_members([tiny_runs["mlp"], tiny_runs["mlp"] / "best.keras"])


def test_members_of_different_data_sets_are_refused(tmp_path, tiny_runs):
    fashion = tmp_path / "fashion-run"
    shutil.copytree(tiny_runs["mlp"], fashion)
    config = (fashion / "config.yaml").read_text()
    (fashion / "config.yaml").write_text(config.replace("dataset: mnist", "dataset: fashion_mnist"))
    with pytest.raises(ModelFileError, match="different data sets"):
        resolve_members([tiny_runs["mlp"], fashion])


def test_cli_evaluate_ensemble_prints_members_and_the_ensemble(tmp_path, tiny_runs, small_mnist_dir):
    runner = CliRunner()
    members = [str(tiny_runs["mlp"]), str(tiny_runs["cnn"] / "best.keras")]
    result = runner.invoke(cli, ["evaluate", *members, "--ensemble", "--data-dir", str(small_mnist_dir),
                                 "--output-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"model: {tmp_path / 'ensemble.json'} (ensemble)" in result.output
    assert "members, each alone:" in result.output and members[1] in result.output
    assert (tmp_path / "ensemble-evaluation.json").is_file()
    without_flag = runner.invoke(cli, ["evaluate", *members, "--data-dir", str(small_mnist_dir)])
    assert without_flag.exit_code == 2 and "--ensemble" in without_flag.output


def test_python_api_evaluates_an_ensemble(tmp_path, tiny_runs, small_mnist_dir):
    import mnist_zoo as mz

    evaluation = mz.evaluate([tiny_runs["mlp"], tiny_runs["cnn"]], ensemble=True, data_dir=small_mnist_dir,
                             output_dir=tmp_path)
    assert evaluation.report["runtime"] == "ensemble" and len(evaluation.members) == 2
    single = mz.evaluate(tiny_runs["mlp"], data_dir=small_mnist_dir, output_dir=tmp_path)
    assert single.members == [] and evaluation.members[0]["accuracy"] == single.accuracy


# ----------------------------------------------------------------------------- the ensemble's folder as one model


@pytest.fixture
def ensemble_folder(tmp_path, tiny_runs, small_mnist_dir):
    """Copies of the mlp and cnn runs, and the folder `evaluate --ensemble --output-dir` made of them."""
    from tests.helpers import copy_runs

    runs = copy_runs(tiny_runs, tmp_path / "runs", models=["mlp", "cnn"])
    folder = tmp_path / "runs" / "pair"
    result = CliRunner().invoke(cli, ["evaluate", str(runs["mlp"]), str(runs["cnn"]), "--ensemble",
                                      "--data-dir", str(small_mnist_dir), "--output-dir", str(folder)])
    assert result.exit_code == 0, result.output
    assert f"wrote {folder / 'ensemble.json'}" in result.output and "now stands for the ensemble" in result.output
    return folder, runs


def by_hand(runs, images):
    from mnist_zoo.inference.runtimes import open_classifier

    return np.mean([open_classifier(run / "best.keras").probabilities(images) for run in runs], axis=0)


def test_predict_takes_the_ensemble_folder_as_one_model(ensemble_folder, real_mnist, tmp_path):
    folder, runs = ensemble_folder
    digits = tmp_path / "digits.npy"
    np.save(digits, real_mnist.test_images[:4])
    result = CliRunner().invoke(cli, ["predict", str(folder), str(digits), "--json", "--top-k", "10"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    expected = by_hand([runs["mlp"], runs["cnn"]], real_mnist.test_images[:4])
    for record, row in zip(records, expected):
        answered = {item["class_index"]: item["probability"] for item in record["top_k"]}
        np.testing.assert_allclose([answered[index] for index in range(10)], row, atol=1e-6)


def test_evaluate_of_the_folder_repeats_the_ensemble_report(ensemble_folder, small_mnist_dir):
    folder, _ = ensemble_folder
    first = json.loads((folder / "ensemble-evaluation.json").read_text())
    members_file = (folder / "ensemble.json").read_text()
    result = CliRunner().invoke(cli, ["evaluate", str(folder), "--data-dir", str(small_mnist_dir), "--json"])
    assert result.exit_code == 0, result.output
    again = json.loads(result.stdout)
    assert again["accuracy"] == first["accuracy"] and len(again["members"]) == 2
    assert (folder / "ensemble.json").read_text() == members_file  # its own file is not rewritten


def test_the_folder_still_works_after_moving_with_its_runs(ensemble_folder, tmp_path, real_mnist):
    from mnist_zoo.inference.prediction import predict_arrays

    folder, runs = ensemble_folder
    moved = Path(shutil.copytree(tmp_path / "runs", tmp_path / "elsewhere" / "runs"))
    shutil.rmtree(tmp_path / "runs")
    result = predict_arrays(moved / "pair", real_mnist.test_images[:3], top_k=1)
    assert [record["top_k"][0]["class_index"] for record in result.records] == \
        by_hand([moved / runs["mlp"].name, moved / runs["cnn"].name], real_mnist.test_images[:3]).argmax(1).tolist()


def test_compare_shows_an_ensemble_row_with_its_members_costs_added(ensemble_folder):
    from mnist_zoo.report.compare import compare_runs, read_row

    folder, runs = ensemble_folder
    comparison = compare_runs([folder.parent], sort_key="train_seconds")
    rows = {row.run: row for row in comparison.rows}
    assert set(rows) == {"pair", runs["mlp"].name, runs["cnn"].name}
    members = [read_row(runs["mlp"]), read_row(runs["cnn"])]
    ensemble = rows["pair"]
    assert ensemble.model == "ensemble" and ensemble.epochs is None and ensemble.seconds_per_epoch is None
    assert ensemble.parameters == sum(row.parameters for row in members)
    assert ensemble.train_seconds == pytest.approx(sum(row.train_seconds for row in members))
    assert ensemble.test_accuracy == json.loads((folder / "ensemble-evaluation.json").read_text())["accuracy"]
    assert comparison.rows[-1].run == "pair"  # the costliest: both members' training
    result = CliRunner().invoke(cli, ["compare", str(folder.parent)])
    assert result.exit_code == 0, result.output
    assert "ensemble" in result.output


def test_compare_skips_an_ensemble_not_yet_evaluated(ensemble_folder):
    from mnist_zoo.report.compare import compare_runs

    folder, _ = ensemble_folder
    (folder / "ensemble-evaluation.json").unlink()
    comparison = compare_runs([folder.parent])
    assert "pair" not in {row.run for row in comparison.rows}
    assert any("evaluate it first" in reason for reason in comparison.skipped)


def test_compare_shows_the_validation_figure_of_the_folders_own_members_only(ensemble_folder, tiny_runs,
                                                                              small_mnist_dir):
    from mnist_zoo.report.compare import compare_runs
    from tests.helpers import copy_runs

    folder, runs = ensemble_folder
    linear = copy_runs(tiny_runs, folder.parent, models=["linear"])["linear"]

    def evaluate(*members, split="test"):
        result = CliRunner().invoke(cli, ["evaluate", *map(str, members), "--ensemble", "--split", split,
                                          "--data-dir", str(small_mnist_dir), "--output-dir", str(folder)])
        assert result.exit_code == 0, result.output

    def row():
        return {row.run: row for row in compare_runs([folder.parent]).rows}.get("pair")

    assert row().best_val_accuracy is None  # not scored on validation yet
    evaluate(runs["mlp"], runs["cnn"], split="validation")  # the same members: the test report stays
    validation = json.loads((folder / "ensemble-validation-evaluation.json").read_text())
    assert (row().best_val_accuracy, row().test_accuracy) == \
        (validation["accuracy"], json.loads((folder / "ensemble-evaluation.json").read_text())["accuracy"])
    # Other members in the same folder: the reports of the committee before go, not shown as this one's.
    evaluate(runs["mlp"], linear, split="validation")
    assert sorted(path.name for path in folder.iterdir()) == ["ensemble-validation-evaluation.json", "ensemble.json"]
    validation = json.loads((folder / "ensemble-validation-evaluation.json").read_text())
    # Chosen on validation before any test figure is read: a row without one.
    assert (row().best_val_accuracy, row().test_accuracy) == (validation["accuracy"], None)
    result = CliRunner().invoke(cli, ["compare", str(folder.parent), "--sort", "best_val_accuracy", "-o",
                                      str(folder.parent / "compare.png")])
    assert result.exit_code == 0, result.output
    evaluate(linear, runs["mlp"])  # the same members in another order: its reports stay
    assert (row().best_val_accuracy, row().test_accuracy) == \
        (validation["accuracy"], json.loads((folder / "ensemble-evaluation.json").read_text())["accuracy"])


def test_a_report_of_other_members_beside_an_ensemble_is_not_its_own(ensemble_folder, tiny_runs, small_mnist_dir):
    # An ensemble file NAME.ensemble.json evaluated in place reports into its folder, which may be
    # another committee's: compare and serve must not show that figure as the folder's committee's.
    from mnist_zoo import rundir
    from mnist_zoo.report.compare import compare_runs
    from tests.helpers import copy_runs

    folder, runs = ensemble_folder
    own = json.loads((folder / "ensemble-evaluation.json").read_text())
    assert own["ensemble_members"] == json.loads((folder / "ensemble.json").read_text())["members"]
    linear = copy_runs(tiny_runs, folder.parent, models=["linear"])["linear"]
    other = folder / "other.ensemble.json"
    other.write_text(json.dumps({**json.loads((folder / "ensemble.json").read_text()),
                                 "members": [f"../{runs['mlp'].name}/best.keras", f"../{linear.name}/best.keras"]}))
    result = CliRunner().invoke(cli, ["evaluate", str(other), "--data-dir", str(small_mnist_dir)])
    assert result.exit_code == 0, result.output
    assert rundir.read_ensemble_report(other, "ensemble-evaluation.json")["ensemble_members"] == \
        json.loads(other.read_text())["members"]  # the report is the other file's now
    assert rundir.read_ensemble_report(folder / "ensemble.json", "ensemble-evaluation.json") == {}
    comparison = compare_runs([folder.parent])
    assert "pair" not in {row.run for row in comparison.rows}
    assert any("pair: an ensemble without a readable" in reason for reason in comparison.skipped)


def test_serve_shows_the_ensemble_as_one_card(ensemble_folder, real_mnist):
    pytest.importorskip("starlette")
    from mnist_zoo.web.discovery import open_zoo

    folder, runs = ensemble_folder
    zoo = open_zoo([folder.parent], None)  # the folder of runs: two runs and the ensemble
    try:
        assert set(zoo.models) == {"pair", runs["mlp"].name, runs["cnn"].name}
        card = zoo.models["pair"].describe()
        assert card["runtime"] == "ensemble" and card["name"] == "pair"
        assert card["parameters"] == sum(zoo.models[run.name].parameters for run in runs.values())
        assert card["test_accuracy"] == json.loads((folder / "ensemble-evaluation.json").read_text())["accuracy"]
        answer = zoo.models["pair"].predict(real_mnist.test_images[0], top_k=10)
        expected = by_hand([runs["mlp"], runs["cnn"]], real_mnist.test_images[:1])[0]
        assert answer["class_index"] == int(expected.argmax())
        assert answer["top_k"][0]["probability"] == pytest.approx(float(expected.max()), abs=1e-6)
    finally:
        zoo.close()
    named = open_zoo([folder], None)  # named on its own
    try:
        assert list(named.models) == ["pair"]
    finally:
        named.close()


def test_a_fashion_ensemble_names_fashion_classes(tmp_path, tiny_runs, small_mnist_dir, real_mnist):
    from mnist_zoo.inference.ensemble import read_ensemble_file, write_ensemble_file
    from mnist_zoo.inference.prediction import predict_arrays

    fashion = Path(shutil.copytree(tiny_runs["mlp"], tmp_path / "fashion-run"))
    config = (fashion / "config.yaml").read_text()
    (fashion / "config.yaml").write_text(config.replace("dataset: mnist", "dataset: fashion_mnist"))
    write_ensemble_file(tmp_path / "team", resolve_members([fashion]), "fashion_mnist")
    assert read_ensemble_file(tmp_path / "team" / "ensemble.json")[1] == "fashion_mnist"
    record = predict_arrays(tmp_path / "team", real_mnist.test_images[:1]).records[0]
    from mnist_zoo.data.catalog import CLASS_NAMES

    assert record["prediction"] in CLASS_NAMES["fashion_mnist"]


# ----------------------------------------------------------------------------- hostile ensemble files


def _ensemble_file(folder, record) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ensemble.json"
    path.write_text(record if isinstance(record, str) else json.dumps(record))
    return path


GOOD = {"format": "mnist-zoo ensemble", "version": 1, "dataset": "mnist"}


@pytest.mark.parametrize("record, message", [
    ("{not json", "not a readable ensemble file"),
    ([1, 2], "not an ensemble file"),
    ({"members": ["a.keras"]}, "not an ensemble file"),  # no format: some other program's JSON
    ({**GOOD, "members": "a.keras"}, "not an ensemble file"),
    ({**GOOD, "members": [3]}, "not an ensemble file"),
    ({**GOOD, "members": []}, "at least one"),
    ({**GOOD, "members": ["missing.keras"]}, "no such model"),
    ({**GOOD, "dataset": "cifar10", "members": ["a.keras"]}, "unknown data set"),
    ({**GOOD, "members": [f"m{index}.keras" for index in range(33)]}, "at most 32"),
])
def test_hostile_ensemble_files_are_refused_in_one_line(tmp_path, record, message):
    from mnist_zoo.inference.runtimes import open_classifier

    path = _ensemble_file(tmp_path / "team", record)
    with pytest.raises(ModelFileError, match=message):
        open_classifier(path)
    result = CliRunner().invoke(cli, ["predict", str(path.parent), str(path)])
    assert result.exit_code != 0 and "Traceback" not in result.output and message.split()[0] in result.output


def test_an_ensemble_cannot_name_another_ensemble_or_itself(tmp_path, tiny_runs):
    from mnist_zoo.inference.ensemble import read_ensemble_file

    inner = _ensemble_file(tmp_path / "inner", {**GOOD, "members": [str(tiny_runs["mlp"] / "best.keras")]})
    outer = _ensemble_file(tmp_path / "outer", {**GOOD, "members": [str(inner)]})
    with pytest.raises(ModelFileError, match="cannot be a member"):
        read_ensemble_file(outer)
    itself = _ensemble_file(tmp_path / "loop", {**GOOD, "members": ["."]})
    with pytest.raises(ModelFileError, match="cannot be a member"):
        read_ensemble_file(itself)


def test_an_oversized_ensemble_file_is_refused_before_it_is_read(tmp_path):
    from mnist_zoo.inference.ensemble import read_ensemble_file
    from mnist_zoo.rundir import MAX_ENSEMBLE_FILE_BYTES

    path = _ensemble_file(tmp_path / "big", " " * (MAX_ENSEMBLE_FILE_BYTES + 1))
    with pytest.raises(ModelFileError, match="at most"):
        read_ensemble_file(path)


def test_deeply_nested_json_is_refused_not_a_crash(tmp_path):
    from mnist_zoo.inference.ensemble import read_ensemble_file

    path = _ensemble_file(tmp_path / "deep", "[" * 60_000)
    with pytest.raises(ModelFileError, match="nested too deeply"):
        read_ensemble_file(path)
    from mnist_zoo import rundir

    (tmp_path / "deep" / "ensemble-evaluation.json").write_text("[" * 60_000)
    assert rundir.read_json_object(tmp_path / "deep" / "ensemble-evaluation.json") == {}


def test_an_ensemble_is_never_written_over_a_run_or_a_folder_of_runs(tmp_path, tiny_runs, small_mnist_dir):
    from tests.helpers import copy_runs

    runs = copy_runs(tiny_runs, tmp_path / "runs", models=["mlp", "linear"])
    for folder in (tmp_path / "runs", runs["mlp"]):
        result = CliRunner().invoke(cli, ["evaluate", str(runs["mlp"]), str(runs["linear"]), "--ensemble",
                                          "--data-dir", str(small_mnist_dir), "--output-dir", str(folder)])
        assert result.exit_code == 2 and "folder of its own" in result.output, result.output
        assert not (folder / "ensemble.json").exists() and not (folder / "ensemble-evaluation.json").exists()


def test_an_ensemble_file_never_opens_members_that_run_code(tmp_path):
    import keras

    from mnist_zoo.inference.runtimes import open_classifier

    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Lambda(lambda x: x * 1.0),
                              keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    model.save(tmp_path / "lambda.keras")
    path = _ensemble_file(tmp_path / "team", {**GOOD, "members": ["../lambda.keras"]})
    assert open_classifier(tmp_path / "lambda.keras", unsafe=True).kind == "keras"  # named: trusted
    with pytest.raises(ModelFileError, match="(?i)lambda|safe"):
        open_classifier(path, unsafe=True)
