"""Builds the optimizer, learning-rate schedule, loss and metrics a config asks for."""

from __future__ import annotations

from mnist_zoo.config.run import LossSpec, OptimizerSpec, ScheduleSpec

def make_learning_rate(base_rate: float, schedule: ScheduleSpec, steps_per_epoch: int, epochs: int):
    """A float or a Keras `LearningRateSchedule` (stepped per batch) for the optimizer.

    Built from Keras's own schedules so that saved optimizers load without custom objects.
    """
    import keras

    schedules = keras.optimizers.schedules
    params = schedule.arguments
    total_steps = max(1, steps_per_epoch * epochs)
    if schedule.name == "constant":
        return base_rate
    if schedule.name == "step":
        return schedules.ExponentialDecay(
            base_rate,
            decay_steps=steps_per_epoch * params["step_epochs"],
            decay_rate=params["factor"],
            staircase=True,
        )
    if schedule.name == "exponential":
        return schedules.ExponentialDecay(
            base_rate, decay_steps=steps_per_epoch, decay_rate=params["decay_rate"]
        )
    if schedule.name == "cosine":
        warmup_steps = min(total_steps - 1, round(params["warmup_epochs"] * steps_per_epoch))
        return schedules.CosineDecay(
            0.0 if warmup_steps else base_rate,
            decay_steps=total_steps - warmup_steps,
            alpha=params["alpha"],
            warmup_target=base_rate if warmup_steps else None,
            warmup_steps=warmup_steps,
        )
    # one_cycle: linear warm-up to the peak, then cosine annealing.
    warmup_steps = min(total_steps - 1, round(params["warmup_fraction"] * total_steps))
    return schedules.CosineDecay(
        base_rate / params["initial_divisor"],
        decay_steps=total_steps - warmup_steps,
        alpha=params["final_fraction"],
        warmup_target=base_rate,
        warmup_steps=warmup_steps,
    )


def make_optimizer(spec: OptimizerSpec, learning_rate, fast_paths: bool = True):
    """The Keras optimizer `spec` names, with its parameters and the given learning rate.

    With `fast_paths`, Adam and AdamW update with TensorFlow's fused kernel (`fast_paths.fuse_adam_update`).
    """
    import keras

    from mnist_zoo.training.fast_paths import fuse_adam_update

    optimizer = keras.optimizers.get({"class_name": spec.name, "config": {**spec.arguments, "learning_rate": learning_rate}})
    return fuse_adam_update(optimizer) if fast_paths else optimizer


def make_loss(spec: LossSpec, output_activation: str):
    """The Keras loss; cross-entropies read logits when the output layer has no activation."""
    import keras

    arguments = spec.arguments
    if spec.name.endswith("crossentropy"):
        arguments["from_logits"] = output_activation == "linear"
    # keras.losses.get resolves snake_case names to the loss functions; the classes (which
    # take arguments) go by their CamelCase names.
    class_name = "".join(word.capitalize() for word in spec.name.split("_"))
    return keras.losses.get({"class_name": class_name, "config": arguments})


def make_metrics(spec: LossSpec, fast_paths: bool = True) -> list:
    """Accuracy matching the label encoding, always reported under the name 'accuracy'.

    With `fast_paths`, it reads the output layer's logits (`fast_paths.accuracy_from_logits`).
    """
    import keras

    from mnist_zoo.training.fast_paths import accuracy_from_logits

    metric_class = keras.metrics.CategoricalAccuracy if spec.one_hot_labels else keras.metrics.SparseCategoricalAccuracy
    metric = metric_class(name="accuracy")
    return [accuracy_from_logits(metric) if fast_paths else metric]
