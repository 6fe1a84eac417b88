"""The typed run config: its sections and named specs, each field with its default."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from mnist_zoo.data.augmentation import AugmentationConfig
from mnist_zoo.data.catalog import DATASETS
from mnist_zoo.models.registry import MODELS
from mnist_zoo.runtime.device import DEVICES
from mnist_zoo.runtime.distribution import DISTRIBUTIONS, multi_worker_refusal
from mnist_zoo.runtime.precision import PRECISIONS
from mnist_zoo.fields import (
    Fraction,
    Frozen,
    NamedSpec,
    NonNegativeFloat,
    NonNegativeInt,
    Param,
    PositiveFloat,
    PositiveInt,
    Probability,
    did_you_mean,
)


def _model_type(data: Any) -> str | None:
    model_type = data.get("type") if isinstance(data, dict) else getattr(data, "type", None)
    return model_type if isinstance(model_type, str) else None


ModelConfig = Annotated[
    Union[tuple(Annotated[entry.config_class, Tag(name)] for name, entry in MODELS.items())],
    Discriminator(_model_type),
]

# Keras's defaults (a test checks them against Keras), except the learning rate: 0.001 for
# every optimizer but adadelta, whose paper has no learning rate (1.0; Keras's 0.001 barely moves it).
_EPSILON = {"epsilon": Param(PositiveFloat, 1e-07)}
_CLIP = {"clipnorm": Param(PositiveFloat | None, None), "clipvalue": Param(PositiveFloat | None, None)}
# Weight averaging: validation, checkpoints and the saved models get the moving average of the
# weights (training.callbacks.AveragedWeights); the optimizer steps the raw weights.
_EMA = {"use_ema": Param(bool, False), "ema_momentum": Param(Fraction, 0.99)}
_DECAY_AND_CLIP = {"weight_decay": Param(NonNegativeFloat | None, None), **_CLIP, **_EMA}
_BETAS = {"beta_1": Param(Fraction, 0.9), "beta_2": Param(Fraction, 0.999)}


def _rate(default: float = 0.001) -> dict[str, Param]:
    return {"learning_rate": Param(PositiveFloat, default)}


class OptimizerSpec(NamedSpec):
    """A Keras optimizer and its arguments, e.g. `{name: sgd, learning_rate: 0.1, momentum: 0.9}`."""

    KIND: ClassVar[str] = "optimizer"
    KINDS: ClassVar[dict[str, dict[str, Param]]] = {
        "sgd": {**_rate(), "momentum": Param(Fraction, 0.0), "nesterov": Param(bool, False), **_DECAY_AND_CLIP},
        "rmsprop": {
            **_rate(), "rho": Param(Fraction, 0.9), "momentum": Param(Fraction, 0.0), **_EPSILON,
            "centered": Param(bool, False), **_DECAY_AND_CLIP,
        },
        "adagrad": {**_rate(), "initial_accumulator_value": Param(NonNegativeFloat, 0.1), **_EPSILON, **_DECAY_AND_CLIP},
        "adadelta": {**_rate(1.0), "rho": Param(Fraction, 0.95), **_EPSILON, **_DECAY_AND_CLIP},
        "adam": {**_rate(), **_BETAS, **_EPSILON, "amsgrad": Param(bool, False), **_DECAY_AND_CLIP},
        "adamw": {
            **_rate(), **_BETAS, **_EPSILON, "amsgrad": Param(bool, False),
            "weight_decay": Param(NonNegativeFloat, 0.004), **_CLIP, **_EMA,
        },
        "adamax": {**_rate(), **_BETAS, **_EPSILON, **_DECAY_AND_CLIP},
        "nadam": {**_rate(), **_BETAS, **_EPSILON, **_DECAY_AND_CLIP},
    }

    @property
    def learning_rate(self) -> float:
        """The base (or, for one-cycle, peak) learning rate."""
        return float(self.arguments["learning_rate"])


class LossSpec(NamedSpec):
    """The training loss, e.g. `categorical_crossentropy` or `{name: ..., label_smoothing: 0.1}`."""

    KIND: ClassVar[str] = "loss"
    KINDS: ClassVar[dict[str, dict[str, Param]]] = {
        "categorical_crossentropy": {"label_smoothing": Param(Fraction, 0.0)},
        "sparse_categorical_crossentropy": {},
        "mean_squared_error": {},
        "hinge": {},
        "categorical_hinge": {},
    }

    @property
    def one_hot_labels(self) -> bool:
        """Whether this loss wants one-hot labels (everything but the sparse loss)."""
        return self.name != "sparse_categorical_crossentropy"


_DECAY_FACTOR = Annotated[float, Field(gt=0, le=1)]


class ScheduleSpec(NamedSpec):
    """How the learning rate changes during training (stepped once per batch)."""

    KIND: ClassVar[str] = "schedule"
    KINDS: ClassVar[dict[str, dict[str, Param]]] = {
        "constant": {},
        # Multiply by `factor` every `step_epochs` epochs.
        "step": {"step_epochs": Param(PositiveInt, 1), "factor": Param(_DECAY_FACTOR, 0.5)},
        # Multiply by `decay_rate` per epoch, smoothly.
        "exponential": {"decay_rate": Param(_DECAY_FACTOR, 0.9)},
        # Optional linear warm-up, then cosine decay to `alpha` x the base rate.
        "cosine": {"warmup_epochs": Param(NonNegativeFloat, 0.0), "alpha": Param(Probability, 0.0)},
        # Linear warm-up from rate/initial_divisor to the peak rate over `warmup_fraction`
        # of training, then cosine annealing to `final_fraction` x the peak.
        "one_cycle": {
            "warmup_fraction": Param(Fraction, 0.25),
            "initial_divisor": Param(Annotated[float, Field(ge=1)], 25.0),
            "final_fraction": Param(Probability, 0.01),
        },
    }


class EarlyStoppingConfig(Frozen):
    """Stop when `monitor` has not improved by `min_delta` for `patience` epochs."""

    enabled: bool = False
    """Turn early stopping on."""
    monitor: Literal["val_accuracy", "val_loss"] = "val_accuracy"
    """The validation figure watched."""
    patience: PositiveInt = 3
    """Epochs without improvement before stopping."""
    min_delta: NonNegativeFloat = 0.0
    """Smallest change that counts as an improvement."""
    restore_best_weights: bool = True
    """End with the best epoch's weights (last.keras)."""


class DataConfig(Frozen):
    """Which data set, where it comes from, and how much of it to use."""

    dataset: Literal[DATASETS] = "mnist"
    """Which data set."""
    data_dir: str | None = None
    """Folder with the IDX files or mnist.npz; null: $MNIST_ZOO_DATA_DIR, else download."""
    validation_size: NonNegativeInt | Annotated[float, Field(gt=0, lt=1)] = 5000
    """Held out from the training set (seeded): a count, or a fraction < 1."""
    validation_seed: NonNegativeInt | None = None
    """Chooses the held-out images; null: train.seed. One value for a committee's runs: each holds out the same images."""
    train_limit: PositiveInt | None = None
    """Use only the first N training images (quick experiments)."""
    test_limit: PositiveInt | None = None
    """Use only the first N test images."""
    augmentation: AugmentationConfig = AugmentationConfig()
    """Random rotations, shifts, zooms and elastic distortions of training images (keys below); off by default."""


class TrainConfig(Frozen):
    """How the model is fitted."""

    epochs: PositiveInt = 10
    """Passes over the training set."""
    batch_size: PositiveInt = 128
    """Images per gradient step."""
    seed: NonNegativeInt = 42
    """Seeds weights, dropout, shuffling and the validation split (unless data.validation_seed)."""
    shuffle: bool = True
    """Reshuffle the training images every epoch (the order of epoch k depends only on seed and k)."""
    deterministic: bool = False
    """Deterministic TensorFlow ops: identical histories from identical runs (docs/commands.md, Repeatability)."""
    optimizer: OptimizerSpec = OptimizerSpec(name="adam")
    """A name or {name, params} (see the optimizer table)."""
    loss: LossSpec = LossSpec(name="categorical_crossentropy")
    """A name or {name, params} (see the loss table)."""
    schedule: ScheduleSpec = ScheduleSpec(name="constant")
    """Learning-rate schedule: a name or {name, params} (see the schedule table)."""
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()
    """Stop when validation stops improving (keys below)."""
    device: Literal[DEVICES] = "auto"
    """auto: a GPU if TensorFlow sees one, else the CPU."""
    precision: Literal[("auto", *PRECISIONS)] = "auto"
    """auto: mixed_float16 on tensor-core GPUs; mixed_bfloat16 on CPUs with native bf16 for models of 1 M+ MACs per image; else float32. A resumed run keeps its own."""
    fast_paths: bool = True
    """Fused Adam, accuracy from logits, fused batch norm, the batch gathered in the step (docs/benchmarks.md, Performance); false: plain Keras."""
    distribution: Literal[DISTRIBUTIONS] = "auto"
    """auto: MirroredStrategy when more than one GPU is visible; mirrored: over every visible GPU (no GPU: every logical CPU device); none; multi_worker: refused (keras-team/keras#20585). The batch size is the global one; the learning rate is not scaled."""
    tensorboard: bool = True
    """Write TensorBoard logs of every epoch to <run>/tensorboard/ (view: tensorboard --logdir runs)."""
    steps_per_execution: PositiveInt = 1
    """Training steps per TensorFlow call; > 1 cuts per-step overhead (progress updates less often)."""
    time_limit_seconds: PositiveFloat | None = None
    """Stop once this much training time (validation included, a resumed run's parts added) has passed, mid-epoch if need be: the cut epoch is validated and kept, its history record's epoch_fraction says how much of it ran. For comparisons at equal wall time."""
    verbose: Literal["auto", 0, 1, 2] = "auto"
    """Keras verbosity; auto: progress bar on a terminal, one line per epoch otherwise."""

    @field_validator("distribution")
    @classmethod
    def _refuse_multi_worker(cls, value: str) -> str:
        if value == "multi_worker":
            raise ValueError(multi_worker_refusal())
        return value


class ReferenceConfig(Frozen):
    """What the course material reports for this network (documentation; checked by the tests)."""

    source: str = ""
    """Where the network comes from."""
    parameters: PositiveInt | None = None
    """Parameter count the material reports."""
    test_accuracy: Probability | None = None
    """Test accuracy the material reports (0-1)."""
    notes: str = ""
    """Anything else worth knowing."""


class RunConfig(Frozen):
    """Everything a training run needs: the model, the data and the training recipe."""

    name: str = "unnamed"
    """Config name (default: the file name); names the run directory."""
    description: str = ""
    """One line shown by `config list`."""
    reference: ReferenceConfig = ReferenceConfig()
    """What the course material reports for this network (keys below)."""
    model: ModelConfig
    """The network (required); model.type picks the builder."""
    data: DataConfig = DataConfig()
    """The data (keys below)."""
    train: TrainConfig = TrainConfig()
    """The training recipe (keys below)."""

    @model_validator(mode="before")
    @classmethod
    def _check_model_type(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("model"), dict):
            model_type = data["model"].get("type")
            if not isinstance(model_type, str) or model_type not in MODELS:
                raise ValueError(
                    f"model.type: unknown model {model_type!r}{did_you_mean(model_type, MODELS)}; "
                    f"expected one of {', '.join(repr(name) for name in MODELS)}"
                )
        return data

    @model_validator(mode="after")
    def _check_combinations(self):
        if self.train.loss.name.endswith("crossentropy") and self.model.output_activation == "sigmoid":
            raise ValueError(
                f"train.loss: {self.train.loss.name} needs model.output_activation softmax (or linear "
                "for logits), received sigmoid"
            )
        if self.train.early_stopping.enabled and self.data.validation_size == 0:
            raise ValueError(
                "train.early_stopping monitors validation data but data.validation_size is 0; "
                "hold out validation images or disable early stopping"
            )
        return self
