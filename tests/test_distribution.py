"""train.distribution: MirroredStrategy on two logical CPU devices trains, resumes, and learns what one device learns."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from mnist_zoo.cli import cli

# A process of its own: logical devices must be set before TensorFlow starts, and stay for its life.
SCRIPT = textwrap.dedent("""
    import json, os, signal, sys
    import tensorflow as tf

    devices = int(sys.argv[1])
    if devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
    import keras
    from mnist_zoo.config.loading import bundled_config_path, load_config
    from mnist_zoo.errors import TrainingInterrupted
    from mnist_zoo.training.stage import train_run

    from pathlib import Path
    run_dir, data_dir, distribution, stop_after = Path(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
    # The mlp config has the fast paths on and runs 32 steps per call: both go off under the strategy.
    # Augmentation and weight averaging are on: the replicas change their shares of each batch as
    # one device changes the whole, and the average is what validation and best.keras see.
    config = load_config(bundled_config_path("mlp"), {
        "data.data_dir": data_dir, "data.validation_size": 200, "train.epochs": 3, "train.verbose": 0,
        "model.hidden_units": [64], "train.distribution": distribution,
        "data.augmentation.rotation": 10, "data.augmentation.translation": 0.1,
        "train.optimizer.use_ema": True, "train.optimizer.ema_momentum": 0.5})
    assert config.train.fast_paths and config.train.steps_per_execution == 32

    class StopAfter(keras.callbacks.Callback):  # Ctrl-C after an epoch, as a user would
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == stop_after:
                os.kill(os.getpid(), signal.SIGINT)

    from mnist_zoo.training import fast_paths
    gathering = fast_paths.gathered_in_train_step

    def gathered_in_train_step(*args, **kwargs):  # counts the fits whose step gathers its own batch
        gathered.append(True)
        return gathering(*args, **kwargs)
    fast_paths.gathered_in_train_step = gathered_in_train_step

    class Step(keras.callbacks.Callback):  # what each fit's training step is made of
        def on_train_begin(self, logs=None):
            steps.append({"steps_per_execution": self.model.steps_per_execution,
                          "gathered_in_train_step": bool(gathered),
                          "fused_adam": "update_step" in vars(self.model.optimizer),
                          "weight_averaging": bool(self.model.optimizer.use_ema)})
            gathered.clear()

    messages, steps, gathered = [], [], []
    os.makedirs(run_dir, exist_ok=True)
    try:
        result = train_run(config, run_dir, report=messages.append,
                           extra_callbacks=[Step(), *([StopAfter()] if stop_after else [])])
    except TrainingInterrupted:
        result = train_run(config, run_dir, report=messages.append, extra_callbacks=[Step()], resume=True)
    print(json.dumps({"metrics": result.metrics, "messages": messages, "steps": steps}))
""")


def train(tmp_path: Path, data_dir: Path, name: str, devices: int, distribution: str, stop_after: int = 0) -> dict:
    run_dir = tmp_path / name
    completed = subprocess.run([sys.executable, "-c", SCRIPT, str(devices), str(run_dir), str(data_dir), distribution,
                                str(stop_after)], capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return {**json.loads(completed.stdout.strip().splitlines()[-1]), "run_dir": run_dir}


NOTE = ("note: train.fast_paths and train.steps_per_execution off under MirroredStrategy "
        "(one step per call, plain Keras)")


def test_mirrored_on_two_devices_trains_resumes_and_matches_one_device(tmp_path, small_mnist_dir):
    mirrored = train(tmp_path, small_mnist_dir, "mirrored", 2, "mirrored", stop_after=1)
    single = train(tmp_path, small_mnist_dir, "single", 1, "none")
    environment = json.loads((mirrored["run_dir"] / "environment.json").read_text())
    assert environment["distribution"]["replicas"] == 2
    assert "MirroredStrategy over 2 devices" in environment["distribution"]["strategy"]
    history = json.loads((mirrored["run_dir"] / "history.json").read_text())["epochs"]
    assert [record["epoch"] for record in history] == [1, 2, 3]  # resumed after epoch 1, nothing lost or repeated
    assert (mirrored["run_dir"] / "best.keras").is_file()

    # docs/commands.md (Several devices): under a strategy the fast paths and steps_per_execution
    # above 1 are switched off, with a note; in the run that started and in the one that resumed
    # it. On one device the same config takes both (which shows the observed attributes do see them).
    plain = {"steps_per_execution": 1, "gathered_in_train_step": False, "fused_adam": False, "weight_averaging": True}
    assert mirrored["steps"] == [plain, plain]
    assert [message for message in mirrored["messages"] if message.startswith("note: ")] == [NOTE, NOTE]
    assert single["steps"] == [{"steps_per_execution": 32, "gathered_in_train_step": True, "fused_adam": True,
                                "weight_averaging": True}]
    assert not any(message.startswith("note: ") for message in single["messages"])

    # docs/commands.md (Several devices): "its test accuracy is within noise of the same run on one
    # device". The same seed, data order, global batch and learning rate, the same augmented
    # images, and no dropout in this MLP: the two runs differ only in the order of floating-point
    # sums (two half-batch gradients summed across the replicas; Keras's Adam update against the
    # fused kernel of the fast paths). On a 2-core Zen 3 EPYC they got the same 317 of 500 test
    # images right and test losses 3e-6 apart (relative); with each replica drawing its
    # augmentation for its half alone, 322 against 317 and 1e-2 apart. Allowed: two images of
    # 500, which a rounding difference can move across a decision boundary, and the loss to 1e-4.
    test_images = single["metrics"]["test_examples"]
    assert test_images == mirrored["metrics"]["test_examples"] == 500
    right = {run: round(result["metrics"]["test_accuracy"] * test_images)
             for run, result in (("mirrored", mirrored), ("single", single))}
    assert abs(right["mirrored"] - right["single"]) <= 2, right
    assert mirrored["metrics"]["test_loss"] == pytest.approx(single["metrics"]["test_loss"], rel=1e-4)
    # And it learned: chance is 10 %; 24 steps of this small MLP, augmented and averaged, reach about 63 %.
    assert mirrored["metrics"]["test_accuracy"] > 0.5


def test_multi_worker_is_refused_with_the_upstream_issue_and_the_way_to_use_many_machines():
    result = CliRunner().invoke(cli, ["config", "show", "--model", "mlp", "--set", "train.distribution=multi_worker"])
    assert result.exit_code == 2
    assert "keras-team/keras#20585" in result.output and "mnist-zoo sweep" in result.output


@pytest.mark.parametrize("setting", ["auto", "none"])
def test_one_device_trains_without_a_strategy(setting):
    from mnist_zoo.runtime.distribution import choose_distribution

    distribution = choose_distribution(setting)
    assert distribution.strategy is None and distribution.replicas == 1


AUGMENTATION_SCRIPT = textwrap.dedent("""
    import json
    from types import SimpleNamespace
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from mnist_zoo.data.augmentation import AugmentationConfig, Augmenter, augmented_batches
    from mnist_zoo.data.batches import EpochShuffledDataset

    augmenter = Augmenter(AugmentationConfig(rotation=15, translation=0.1, zoom=0.1, probability=0.75), seed=1)
    rng = np.random.default_rng(0)
    digits = np.zeros((81, 28, 28), "uint8")
    digits[:, 8:20, 10:18] = rng.integers(100, 256, (81, 12, 8))
    # Batches of 41 and 40 rows: the strategy splits the first unevenly (21 and 20 rows), the second evenly.
    data = EpochShuffledDataset(digits, np.zeros(81, "uint8"), batch_size=41, one_hot=False, shuffle=False)
    one_device = [augmenter(images, tf.constant(step, tf.int64)).numpy()
                  for step, (images, _) in enumerate(data.dataset)]

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = SimpleNamespace(optimizer=SimpleNamespace(iterations=tf.Variable(0, dtype=tf.int64)))
    augment = augmented_batches(augmenter, model)
    step = tf.function(lambda batch: augment(batch)[0])
    mirrored, shares = [], []
    for batch in strategy.experimental_distribute_dataset(data.dataset):  # as Keras's fit distributes it
        parts = [part.numpy() for part in strategy.experimental_local_results(strategy.run(step, args=(batch,)))]
        shares.append([len(part) for part in parts])
        mirrored.append(np.concatenate(parts))
        model.optimizer.iterations.assign_add(1)
    print(json.dumps({
        "shares": shares,
        "largest_difference": [float(np.abs(m - o).max()) for m, o in zip(mirrored, one_device)],
        "changed": [float(np.abs(o - images.numpy()).max()) for o, (images, _) in zip(one_device, data.dataset)]}))
""")


@pytest.mark.slow  # a process of its own, with two logical devices
def test_each_replica_changes_its_share_of_the_batch_as_one_device_would():
    # Drawn per replica from (seed, step) alone, both halves of a batch got the same changes; drawn
    # for the whole batch but sliced as if the shares were equal, an uneven split shifted them.
    completed = subprocess.run([sys.executable, "-c", AUGMENTATION_SCRIPT], capture_output=True, text=True,
                               timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["shares"] == [[21, 20], [20, 20]]
    assert all(change > 0.5 for change in result["changed"])  # the batches were changed, and a lot
    assert all(difference < 1e-6 for difference in result["largest_difference"]), result
