"""Test accuracy after every epoch of one training recipe: for comparing learning-rate schedules.

    python scripts/recipe_accuracy.py cnn '{"train.batch_size": 256, "train.optimizer.learning_rate": 0.003}'
    python scripts/recipe_accuracy.py cnn '{"train.seed": 7}' --data-dir ../shared/data

The first argument is a bundled config name, the second a JSON object of overrides (the keys of
`--set`). Prints one line per epoch (epoch, test accuracy, seconds since the start) and a JSON
line with all accuracies at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # this checkout's mnist_zoo, not an installed one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="bundled config name, e.g. cnn")
    parser.add_argument("overrides", nargs="?", default="{}", help="JSON object of config overrides")
    parser.add_argument("--data-dir", default=os.environ.get("MNIST_ZOO_DATA_DIR", str(REPO_ROOT.parent / "shared" / "data")))
    args = parser.parse_args()

    # mnist_zoo before Keras: importing it sets the oneDNN default that `mnist-zoo train` runs with.
    from mnist_zoo.config.loading import bundled_config_path, load_config
    from mnist_zoo.data.datasets import load_dataset
    from mnist_zoo.runtime.environment import onednn_enabled
    from mnist_zoo.inference.predictor import Predictor
    from mnist_zoo.training.stage import train_run

    import keras

    overrides = {"train.verbose": 0, "data.data_dir": args.data_dir, **json.loads(args.overrides)}
    config = load_config(bundled_config_path(args.config), overrides)
    test = load_dataset(config.data.dataset, args.data_dir)
    start = time.perf_counter()
    accuracies = []

    class TestAccuracy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            predicted = Predictor(self.model).probabilities(test.test_images).argmax(1)
            accuracies.append(float((predicted == test.test_labels).mean()))
            print(f"epoch {epoch + 1}: test accuracy {accuracies[-1]:.4f} ({time.perf_counter() - start:.0f} s)", flush=True)

    with tempfile.TemporaryDirectory() as run_dir:
        train_run(config, Path(run_dir), extra_callbacks=[TestAccuracy()])
    print(json.dumps({"config": args.config, "overrides": json.loads(args.overrides), "test_accuracy": accuracies,
                      "onednn": onednn_enabled()}))


if __name__ == "__main__":
    main()
