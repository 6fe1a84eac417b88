"""Each layer's forward and backward pass timed alone, against the whole training step.

The profiler's per-kernel sums (`profile_training.py`) add up thread time: when two kernels run
at once on two cores, each looks twice as slow as it is. This script times every layer of a
bundled config's model on its own, one batch of the config's size, forward plus the gradients a
training step needs (the weights' and, except for the first layer, the input's), and prints
milliseconds and GFLOP/s per layer beside the sum and a real training step of the whole model.

    python scripts/profile_layers.py cnn
    python scripts/profile_layers.py cnn --rounds 30 --batch-size 256
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import mnist_zoo  # noqa: E402,F401  (before TensorFlow: it sets the oneDNN default)

WHOLE_STEP = "whole training step"


def layer_step(layer, input_shape, needs_input_gradient: bool):
    """A traced function: `layer` forward on a random batch, then the gradients training needs."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    inputs = tf.constant(rng.random(input_shape, dtype=np.float32))
    output_gradient = tf.constant(rng.random(layer.compute_output_shape(input_shape), dtype=np.float32))

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = layer(inputs, training=True)
            # The sum of outputs times a fixed tensor: its gradient is that tensor, as from the layer above.
            loss = tf.reduce_sum(outputs * output_gradient)
        sources = list(layer.trainable_variables) + ([inputs] if needs_input_gradient else [])
        return tape.gradient(loss, sources) if sources else [outputs]

    return step


def fastest_rounds(functions: dict, rounds: int, calls: int = 10) -> dict:
    """Per function, the fastest of `rounds` rounds of `calls` calls, in seconds per call.

    The functions take turns within each round, so a change of machine speed (this VM swings
    about 1.6x) reaches all of them alike; the fastest round is each one's unthrottled speed.
    """
    import numpy as np

    for function in functions.values():
        function()  # tracing
    times = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            start = time.perf_counter()
            for _ in range(calls):
                results = function()
            _ = [np.asarray(value) for value in results if value is not None]  # waits for the last call
            times[name].append((time.perf_counter() - start) / calls)
    return {name: min(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="bundled config name, e.g. cnn")
    parser.add_argument("--batch-size", type=int, help="default: the config's")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds of 10 calls each (default: 15)")
    args = parser.parse_args()

    import numpy as np

    from mnist_zoo.config.loading import bundled_config_path, load_config
    from mnist_zoo.runtime.environment import onednn_enabled
    from mnist_zoo.models.registry import build_model
    from mnist_zoo.models.summary import layer_macs
    from mnist_zoo.training.stage import compile_model

    config = load_config(bundled_config_path(args.config))
    batch_size = args.batch_size or config.train.batch_size
    model = build_model(config.model)
    steps, flops, first = {}, {}, True
    for layer in model.layers[1:]:  # after the Input layer
        steps[layer.name] = layer_step(layer, (batch_size, *layer.input.shape[1:]), needs_input_gradient=not first)
        macs, _ = layer_macs(layer)
        # Forward, the weights' gradient and (but for the first layer) the input's: one pass of MACs each.
        flops[layer.name] = 2 * batch_size * macs * (2 if first else 3) if macs else 0
        first = first and not layer.trainable_variables
    compile_model(model, config, steps_per_epoch=1)
    rng = np.random.default_rng(0)
    images = rng.random((batch_size, 28, 28, 1), dtype=np.float32)
    labels = np.eye(10, dtype=np.float32)[rng.integers(0, 10, batch_size)]
    seconds = fastest_rounds({**steps, WHOLE_STEP: lambda: model.train_on_batch(images, labels, return_dict=False)},
                             args.rounds)
    step = seconds.pop(WHOLE_STEP)
    rows = [(name, seconds[name], flops[name]) for name in steps]

    total = sum(layer_seconds for _, layer_seconds, _ in rows)
    print(f"{args.config}: batch {batch_size}, oneDNN {'on' if onednn_enabled() else 'off'}; "
          "forward + backward per layer, alone; fastest of the rounds")
    print(f"{'ms':>8} {'GFLOP/s':>8}  layer")
    for name, layer_seconds, layer_flops in rows:
        rate = f"{layer_flops / layer_seconds / 1e9:8.0f}" if layer_flops else f"{'':>8}"
        print(f"{1000 * layer_seconds:8.2f} {rate}  {name}")
    print(f"{1000 * total:8.2f} {'':>8}  sum of the layers")
    print(f"{1000 * step:8.2f} {'':>8}  whole training step (train_on_batch: loss, metrics, optimizer too)")


if __name__ == "__main__":
    main()
