"""Where a training step's time goes: TensorFlow's profiler, summed per operation.

Trains a bundled config's model the way `mnist-zoo train` does (same compile, same input
pipeline) on real MNIST for a warm-up pass, then profiles `--steps` more steps and prints the
operations that took the most thread time, per step. Run it with TF_ENABLE_ONEDNN_OPTS=0 to see
the kernels TensorFlow uses by itself on CPUs without AVX-512 VNNI/BF16.

    python scripts/profile_training.py cnn --data-dir ../shared/data
    TF_ENABLE_ONEDNN_OPTS=0 python scripts/profile_training.py cnn --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import mnist_zoo  # noqa: E402,F401  (before TensorFlow: it sets the oneDNN default)


def op_times(logdir: str) -> collections.Counter:
    """Seconds of thread time per TensorFlow operation, read from the profiler's XPlane file.

    Operations are named "layer path/op:OpType"; the leading function and loop scopes are cut.
    """
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    totals: collections.Counter = collections.Counter()
    for path in Path(logdir).rglob("*.xplane.pb"):
        space = xplane_pb2.XSpace()
        space.ParseFromString(path.read_bytes())
        for plane in space.planes:
            for line in plane.lines:
                if not line.name.startswith("tf_Compute"):
                    continue  # the executor threads that run the step's kernels
                for event in line.events:
                    name = plane.event_metadata[event.metadata_id].name
                    if name.count(":") == 1:  # a kernel ("scope/op:Type"), not "ExecutorState::Process"
                        totals[name.split("StatefulPartitionedCall/")[-1]] += event.duration_ps / 1e12
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="bundled config name, e.g. cnn")
    parser.add_argument("--data-dir", default=os.environ.get("MNIST_ZOO_DATA_DIR", str(REPO_ROOT.parent / "shared" / "data")))
    parser.add_argument("--steps", type=int, default=40, help="profiled training steps (default: 40)")
    parser.add_argument("--top", type=int, default=25, help="operations to list (default: 25)")
    args = parser.parse_args()

    import tensorflow as tf

    from mnist_zoo.config.loading import bundled_config_path, load_config
    from mnist_zoo.data.datasets import load_dataset
    from mnist_zoo.runtime.environment import onednn_enabled
    from mnist_zoo.data.batches import EpochShuffledDataset
    from mnist_zoo.training.fast_paths import gathered_in_train_step
    from mnist_zoo.models.registry import build_model
    from mnist_zoo.training.stage import compile_model

    config = load_config(bundled_config_path(args.config))
    data = load_dataset("mnist", args.data_dir)
    batch_size = config.train.batch_size
    count = args.steps * batch_size
    pipeline = EpochShuffledDataset(data.train_images[:count], data.train_labels[:count], batch_size,
                                    config.train.loss.one_hot_labels, seed=0)
    model = build_model(config.model)
    compile_model(model, config, steps_per_epoch=args.steps)
    with gathered_in_train_step(model, pipeline):  # the batches reach the step as in `mnist-zoo train`
        model.fit(pipeline.index_dataset, epochs=1, verbose=0, shuffle=False)  # tracing and first allocations
        logdir = tempfile.mkdtemp(prefix="mnist-zoo-profile-")
        tf.profiler.experimental.start(logdir)
        start = time.perf_counter()
        model.fit(pipeline.index_dataset, epochs=1, verbose=0, shuffle=False)
        wall = time.perf_counter() - start
    tf.profiler.experimental.stop()

    totals = op_times(logdir)
    busy = sum(totals.values())
    print(f"{args.config}: batch {batch_size}, {args.steps} steps, oneDNN {'on' if onednn_enabled() else 'off'}, "
          f"{1000 * wall / args.steps:.1f} ms per step (profiled), {1000 * busy / args.steps:.1f} thread-ms of kernels per step")
    print(f"{'thread-ms/step':>15} {'share':>6}  operation")
    for name, seconds in totals.most_common(args.top):
        print(f"{1000 * seconds / args.steps:15.2f} {seconds / busy:6.1%}  {name}")


if __name__ == "__main__":
    main()
