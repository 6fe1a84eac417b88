"""Which tf.distribute strategy a run trains under: one device, or MirroredStrategy over several."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

DISTRIBUTIONS = ("auto", "none", "mirrored", "multi_worker")
MULTI_WORKER_ISSUE = "keras-team/keras#20585"


@dataclass(frozen=True)
class Distribution:
    """The strategy of a run (None: the default, one device) and how to describe it."""

    strategy: object | None
    replicas: int
    description: str

    @property
    def spread(self) -> bool:
        """True when training runs on several replicas (a strategy), False on one device."""
        return self.strategy is not None

    def scope(self):
        """The strategy's scope (build and compile the model in it), or a scope that does nothing."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()


def multi_worker_refusal() -> str:
    """Why train.distribution: multi_worker is refused, and what to do instead."""
    return (f"multi_worker is not supported: Keras 3's model.fit fails under MultiWorkerMirroredStrategy "
            f"({MULTI_WORKER_ISSUE}, open); to use many machines, run a sweep whose workers share one study "
            "(mnist-zoo sweep FILE --storage postgresql://... on each machine)")


def choose_distribution(setting: str) -> Distribution:
    """The strategy for `train.distribution`.

    Args:
        setting: 'none'; 'mirrored': MirroredStrategy over every visible GPU, or every logical CPU
            device when there is no GPU; 'auto': mirrored when more than one GPU is visible, else
            none ('multi_worker' is refused when the config is validated).
    """
    if setting == "none":
        return Distribution(None, 1, "one device")
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    if setting == "auto" and len(gpus) < 2:
        return Distribution(None, 1, "one device")
    devices = [device.name for device in (gpus or tf.config.list_logical_devices("CPU"))]
    strategy = tf.distribute.MirroredStrategy(devices=devices)
    return Distribution(strategy, strategy.num_replicas_in_sync,
                        f"MirroredStrategy over {len(devices)} device{'s' if len(devices) != 1 else ''} "
                        f"({', '.join(name.split('device:')[-1] for name in devices)})")
