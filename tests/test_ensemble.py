"""Ensembles: averaged probabilities equal a hand computation; evaluate --ensemble through the CLI."""

from __future__ import annotations

import json
import shutil

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
    assert "model: ensemble of 2 (ensemble)" in result.output
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
