"""Test-time augmentation: the average of the views, repeatable, reported apart from the single-view figure."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from mnist_zoo.cli import cli


def test_tta_averages_the_image_and_its_changed_copies(tiny_runs, real_mnist):
    import tensorflow as tf

    from mnist_zoo.data.augmentation import Augmenter
    from mnist_zoo.inference.runtimes import open_classifier
    from mnist_zoo.inference.tta import tta_augmentation, tta_probabilities

    classifier = open_classifier(tiny_runs["cnn"] / "best.keras")
    images = real_mnist.test_images[:50]
    augmentation = tta_augmentation(tiny_runs["cnn"])  # the tiny run does not augment: the default
    assert augmentation.rotation == 10 and augmentation.zoom == 0.1
    np.testing.assert_allclose(tta_probabilities(classifier, images, augmentation, 1), classifier.probabilities(images),
                               atol=1e-6)
    three = tta_probabilities(classifier, images, augmentation, 3)
    np.testing.assert_array_equal(three, tta_probabilities(classifier, images, augmentation, 3))  # repeatable
    augmenter = Augmenter(augmentation, 0)
    views = [images]
    for view in (1, 2):
        changed = augmenter(tf.constant(images[..., None].astype(np.float32) / 255),
                            tf.constant(view * 1_000_000, tf.int64)).numpy()[..., 0]
        views.append(np.clip(np.round(changed * 255), 0, 255).astype(np.uint8))
    assert not np.array_equal(views[1], views[2]) and not np.array_equal(views[0], views[1])
    by_hand = np.mean([classifier.probabilities(view) for view in views], axis=0)
    np.testing.assert_allclose(three, by_hand, atol=1e-6)


def test_evaluate_tta_writes_its_own_report_and_leaves_the_plain_one(tiny_runs, tmp_path, small_mnist_dir):
    from tests.helpers import copy_runs

    run = copy_runs(tiny_runs, tmp_path, models=["mlp"])["mlp"]
    runner = CliRunner()
    plain = runner.invoke(cli, ["evaluate", str(run), "--data-dir", str(small_mnist_dir)])
    assert plain.exit_code == 0, plain.output
    before = (run / "evaluation.json").read_text()
    result = runner.invoke(cli, ["evaluate", str(run), "--tta", "4", "--data-dir", str(small_mnist_dir)])
    assert result.exit_code == 0, result.output
    assert "test-time augmentation: 4 views" in result.output and f"wrote {run / 'tta-evaluation.json'}" in result.output
    assert (run / "evaluation.json").read_text() == before
    report = json.loads((run / "tta-evaluation.json").read_text())
    assert report["tta"]["views"] == 4 and "rotation" in report["tta"]["augmentation"]
    too_many = runner.invoke(cli, ["evaluate", str(run), "--tta", "33"])
    assert too_many.exit_code == 2


def test_an_ensemble_with_tta_reports_apart(tiny_runs, tmp_path, small_mnist_dir):
    import mnist_zoo as mz

    evaluation = mz.evaluate([tiny_runs["mlp"], tiny_runs["cnn"]], ensemble=True, tta=2, data_dir=small_mnist_dir,
                             output_dir=tmp_path / "team")
    assert evaluation.report["tta"]["views"] == 2
    assert (tmp_path / "team" / "ensemble-tta-evaluation.json").is_file()
    assert not (tmp_path / "team" / "ensemble-evaluation.json").exists()
    with pytest.raises(ValueError, match="tta=0"):
        mz.evaluate(tiny_runs["mlp"], tta=0, data_dir=small_mnist_dir)
