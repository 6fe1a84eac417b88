"""data.validation_seed and evaluate --split validation: a run's held-out images scored again, and
committees validated only when every member held out the same images."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from mnist_zoo import rundir
from mnist_zoo.cli import cli
from mnist_zoo.data.catalog import EVALUATION_SPLITS
from mnist_zoo.data.datasets import load_dataset, split_dataset, validation_split
from mnist_zoo.errors import DataError, ModelFileError
from mnist_zoo.inference.evaluation import run_ensemble_evaluation, run_evaluation
from tests.helpers import copy_runs, make_config, train_tiny, write_mnist_folder


def _config(small_mnist_dir, seed, **data):
    return make_config(small_mnist_dir, train={"seed": seed}, data=data)  # validation_size 200


def _rewrite_config(run_dir, **data):
    path = run_dir / rundir.CONFIG_FILE
    config = yaml.safe_load(path.read_text())
    config["data"].update(data)
    path.write_text(yaml.safe_dump(config))


def test_the_validation_seed_chooses_the_held_out_images_apart_from_the_run_seed(small_mnist_dir):
    dataset = load_dataset("mnist", str(small_mnist_dir))
    by_seed = {seed: validation_split(_config(small_mnist_dir, seed=seed), dataset)[1] for seed in (1, 2)}
    shared = {seed: validation_split(_config(small_mnist_dir, seed=seed, validation_seed=7), dataset)[1]
              for seed in (1, 2)}
    images_1 = validation_split(_config(small_mnist_dir, seed=1, validation_seed=7), dataset)[0]
    assert not np.array_equal(by_seed[1], by_seed[2])  # each run's own seed: different images
    np.testing.assert_array_equal(shared[1], shared[2])  # one validation seed: the same images
    # Unset, it is train.seed, so runs made before the option keep their split.
    np.testing.assert_array_equal(by_seed[1], split_dataset(dataset, 200, 1).val_labels)
    np.testing.assert_array_equal(images_1, split_dataset(dataset, 200, 7).val_images)


def test_a_run_scored_on_its_validation_images_gives_its_best_validation_accuracy(tmp_path, tiny_runs,
                                                                                 small_mnist_dir):
    run = copy_runs(tiny_runs, tmp_path, ["mlp"])["mlp"]
    metrics = json.loads((run / rundir.METRICS_FILE).read_text())
    before = sorted(path.name for path in run.iterdir())
    result = run_evaluation(run, data_dir=str(small_mnist_dir), split="validation")
    assert result.report["split"] == "validation" and result.report["num_examples"] == 200
    assert result.report["accuracy"] == pytest.approx(metrics["best_val_accuracy"], abs=1e-6)
    assert json.loads((run / "validation-evaluation.json").read_text())["accuracy"] == result.report["accuracy"]
    # Only its own report is added: no test-set evaluation.json, metrics.json as training left it.
    assert sorted(path.name for path in run.iterdir()) == sorted([*before, "validation-evaluation.json"])
    assert rundir._foreign_entries(run) == []  # the report is the run's: --force may replace the run
    assert json.loads((run / rundir.METRICS_FILE).read_text()) == metrics


def test_a_committee_is_validated_only_on_images_every_member_held_out(tmp_path, tiny_runs, small_mnist_dir,
                                                                       monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = copy_runs(tiny_runs, tmp_path / "runs", ["mlp", "cnn"])  # both seed 42: the same held-out images
    members = [runs["mlp"], runs["cnn"]]
    result = run_ensemble_evaluation(members, data_dir=str(small_mnist_dir), split="validation")
    assert result.report["num_examples"] == 200 and len(result.members) == 2
    assert (tmp_path / "ensemble-validation-evaluation.json").is_file()
    assert not (tmp_path / "ensemble-evaluation.json").exists()
    # Each member's line is that run's own best validation figure.
    for row, run in zip(result.members, members):
        best = json.loads((run / rundir.METRICS_FILE).read_text())["best_val_accuracy"]
        assert row["accuracy"] == pytest.approx(best, abs=1e-6)
    # Runs of two other seeds given one validation seed hold out the same images, and go together ...
    shared = [train_tiny(tmp_path / f"shared-{seed}", small_mnist_dir, "linear", "--seed", str(seed),
                         "--set", "data.validation_seed=3") for seed in (1, 2)]
    assert run_ensemble_evaluation(shared, data_dir=str(small_mnist_dir), split="validation",
                                   output_dir=tmp_path / "shared").report["num_examples"] == 200
    # ... but not with runs that held out the images seed 42 chose: refused, each named with its seed.
    with pytest.raises(ModelFileError, match=r"held out different validation images.*seed 42.*seed 3.*"
                                             r"data\.validation_seed"):
        run_ensemble_evaluation([runs["mlp"], shared[0]], data_dir=str(small_mnist_dir), split="validation",
                                output_dir=tmp_path / "mixed")


@pytest.mark.parametrize("change", ["validation_seed", "validation_size"])
def test_a_config_edited_after_training_cannot_pass_training_images_off_as_validation(tmp_path, tiny_runs,
                                                                                     small_mnist_dir, change):
    run = copy_runs(tiny_runs, tmp_path, ["mlp"])["mlp"]
    _rewrite_config(run, **{change: 3 if change == "validation_seed" else 300})
    with pytest.raises(ModelFileError, match="no longer give the images it held out"):
        run_evaluation(run, data_dir=str(small_mnist_dir), split="validation")
    assert not (run / "validation-evaluation.json").exists()


def test_other_data_files_are_refused_for_a_run_without_a_recorded_split(tmp_path, tiny_runs, small_mnist_dir,
                                                                         real_mnist):
    # Runs trained before environment.json recorded validation_sha256: the data set's checksum decides.
    run = copy_runs(tiny_runs, tmp_path, ["mlp"])["mlp"]
    environment = json.loads((run / rundir.ENVIRONMENT_FILE).read_text())
    del environment["validation_sha256"]
    (run / rundir.ENVIRONMENT_FILE).write_text(json.dumps(environment))
    assert run_evaluation(run, data_dir=str(small_mnist_dir), split="validation").report["num_examples"] == 200
    other = write_mnist_folder(tmp_path / "other", real_mnist.train_images[2000:4000],
                               real_mnist.train_labels[2000:4000], real_mnist.test_images[:500],
                               real_mnist.test_labels[:500])
    with pytest.raises(ModelFileError, match="no longer give the images it held out"):
        run_evaluation(run, data_dir=str(other), split="validation")


@pytest.mark.parametrize("case", ["outside a run", "nothing held out", "another data set"])
def test_validation_is_refused_where_there_are_no_held_out_images(tmp_path, tiny_runs, small_mnist_dir, case):
    run = copy_runs(tiny_runs, tmp_path, ["linear"])["linear"]
    if case == "outside a run":
        loose = tmp_path / "loose.keras"
        loose.write_bytes((run / "best.keras").read_bytes())
        with pytest.raises(ModelFileError, match="a run held out"):
            run_evaluation(loose, data_dir=str(small_mnist_dir), split="validation")
    elif case == "nothing held out":
        _rewrite_config(run, validation_size=0)
        with pytest.raises(DataError, match="validation_size: 0"):
            run_evaluation(run, data_dir=str(small_mnist_dir), split="validation")
    else:
        with pytest.raises(ModelFileError, match="--dataset fashion_mnist"):
            run_evaluation(run, dataset="fashion_mnist", data_dir=str(small_mnist_dir), split="validation")
    assert not (run / "validation-evaluation.json").exists()


def test_the_cli_says_which_images_it_scored(tmp_path, tiny_runs, small_mnist_dir):
    choices = next(param for param in cli.commands["evaluate"].params if param.name == "split").type.choices
    assert tuple(choices) == EVALUATION_SPLITS
    run = copy_runs(tiny_runs, tmp_path, ["mlp"])["mlp"]
    result = CliRunner().invoke(cli, ["evaluate", str(run), "--split", "validation", "--data-dir", str(small_mnist_dir)])
    assert result.exit_code == 0, result.output
    assert "split: the 200 validation images the run held out of the training set" in result.output
    assert "validation images: 200" in result.output and "test images" not in result.output
    refused = CliRunner().invoke(cli, ["evaluate", str(run), "--split", "train"])
    assert refused.exit_code == 2 and "'train' is not one of 'test', 'validation'" in refused.output


def test_the_python_api_takes_the_split(tmp_path, tiny_runs, small_mnist_dir):
    import mnist_zoo as mz

    run = copy_runs(tiny_runs, tmp_path, ["mlp"])["mlp"]
    evaluation = mz.evaluate(run, data_dir=small_mnist_dir, split="validation")
    assert evaluation.report["split"] == "validation" and len(evaluation.labels) == 200
    with pytest.raises(ValueError, match="split='train'"):
        mz.evaluate(run, split="train")
