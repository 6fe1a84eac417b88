"""Builds the optimizer, learning-rate schedule, loss and metrics a config asks for."""

from __future__ import annotations

from mnist_zoo.config.run import LossSpec, OptimizerSpec, ScheduleSpec

_OPTIMIZER_CLASSES = {
    "sgd": "SGD", "rmsprop": "RMSprop", "adagrad": "Adagrad", "adadelta": "Adadelta",
    "adam": "Adam", "adamw": "AdamW", "adamax": "Adamax", "nadam": "Nadam",
}


def make_learning_rate(base_rate: float, schedule: ScheduleSpec, steps_per_epoch: int, epochs: int):
    """A float or a Keras `LearningRateSchedule` (stepped per batch) for the optimizer.

    Built from Keras's own schedules so that saved optimizers load without custom objects.
    """
    import keras

    schedules = keras.optimizers.schedules
    params = schedule.params
    total_steps = max(1, steps_per_epoch * epochs)
    if schedule.name == "constant":
        return base_rate
    if schedule.name == "step":
        return schedules.ExponentialDecay(
            base_rate,
            decay_steps=steps_per_epoch * params.get("step_epochs", 1),
            decay_rate=params.get("factor", 0.5),
            staircase=True,
        )
    if schedule.name == "exponential":
        return schedules.ExponentialDecay(
            base_rate, decay_steps=steps_per_epoch, decay_rate=params.get("decay_rate", 0.9)
        )
    if schedule.name == "cosine":
        warmup_steps = min(total_steps - 1, round(params.get("warmup_epochs", 0) * steps_per_epoch))
        return schedules.CosineDecay(
            0.0 if warmup_steps else base_rate,
            decay_steps=total_steps - warmup_steps,
            alpha=params.get("alpha", 0.0),
            warmup_target=base_rate if warmup_steps else None,
            warmup_steps=warmup_steps,
        )
    # one_cycle: linear warm-up to the peak, then cosine annealing.
    warmup_steps = min(total_steps - 1, round(params.get("warmup_fraction", 0.25) * total_steps))
    return schedules.CosineDecay(
        base_rate / params.get("initial_divisor", 25.0),
        decay_steps=total_steps - warmup_steps,
        alpha=params.get("final_fraction", 0.01),
        warmup_target=base_rate,
        warmup_steps=warmup_steps,
    )


def make_optimizer(spec: OptimizerSpec, learning_rate, fast_paths: bool = True):
    """The Keras optimizer `spec` names, with its parameters and the given learning rate.

    With `fast_paths`, Adam and AdamW update with TensorFlow's fused kernel (`fast_paths.fuse_adam_update`).
    """
    import keras

    from mnist_zoo.train.fast_paths import fuse_adam_update

    params = {key: value for key, value in spec.params.items() if key != "learning_rate"}
    optimizer_class = getattr(keras.optimizers, _OPTIMIZER_CLASSES[spec.name])
    optimizer = optimizer_class(learning_rate=learning_rate, **params)
    return fuse_adam_update(optimizer) if fast_paths else optimizer


def make_loss(spec: LossSpec, output_activation: str):
    """The Keras loss; cross-entropies read logits when the output layer has no activation."""
    import keras

    from_logits = output_activation == "linear"
    if spec.name == "categorical_crossentropy":
        return keras.losses.CategoricalCrossentropy(
            from_logits=from_logits, label_smoothing=spec.params.get("label_smoothing", 0.0)
        )
    if spec.name == "sparse_categorical_crossentropy":
        return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    return {
        "mean_squared_error": keras.losses.MeanSquaredError,
        "hinge": keras.losses.Hinge,
        "categorical_hinge": keras.losses.CategoricalHinge,
    }[spec.name]()


def make_metrics(spec: LossSpec, fast_paths: bool = True) -> list:
    """Accuracy matching the label encoding, always reported under the name 'accuracy'.

    With `fast_paths`, it reads the output layer's logits (`fast_paths.accuracy_from_logits`).
    """
    import keras

    from mnist_zoo.train.fast_paths import accuracy_from_logits

    metric_class = keras.metrics.CategoricalAccuracy if spec.one_hot_labels else keras.metrics.SparseCategoricalAccuracy
    metric = metric_class(name="accuracy")
    return [accuracy_from_logits(metric) if fast_paths else metric]
