"""Resumable training state: one atomic commit per completed epoch, in `<run>/checkpoint/`."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from mnist_zoo import rundir
from mnist_zoo.errors import RunDirError

CHECKPOINT_DIR = rundir.CHECKPOINT_DIR
STATE_FILE = "state.json"
STATE_FORMAT = 1
# The only names `commit` gives: a state.json naming anything else (../, an absolute path) was not ours.
MODEL_FILE_NAME = re.compile(r"epoch-\d{4,}\.keras")
STOPPING_FILE_NAME = re.compile(r"stopping-best-epoch-\d{4,}\.weights\.h5")


@dataclass
class TrainingState:
    """Everything besides the weights that an exact resume needs, as of the last completed epoch.

    The model and optimizer variables live in `model_file` (a `.keras` archive); the Dropout
    random-number states, which `.keras` files do not store, live in `seed_states`.
    """

    monitor: str
    """What best.keras tracks (higher is better)."""
    epochs_completed: int = 0
    history: list[dict] = field(default_factory=list)
    best_value: float | None = None
    best_epoch: int | None = None
    stopping: dict | None = None
    """The early-stopping rule's state (`StoppingRule.state()`), if enabled."""
    stopped_early: bool = False
    stopped_by_time_limit: bool = False
    """`train.time_limit_seconds` ended training (its last epoch may be partial)."""
    model_file: str | None = None
    stopping_weights_file: str | None = None
    """Weights of early stopping's best epoch (for restore_best_weights)."""
    seed_states: list[list[int]] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"format": STATE_FORMAT, **dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, data: dict) -> "TrainingState":
        if data.get("format") != STATE_FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {STATE_FORMAT}")
        names = {item.name for item in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR


def load_state(run_dir: Path) -> TrainingState | None:
    """The last committed state of `run_dir`, or None if no epoch was committed.

    Raises:
        RunDirError: the state file or the model file it names is unreadable.
    """
    path = checkpoint_dir(run_dir) / STATE_FILE
    if not path.is_file():
        return None
    try:
        state = TrainingState.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as error:
        raise RunDirError(f"{path}: unreadable training state ({error}); the run cannot be resumed") from None
    for name, pattern, example in ((state.model_file, MODEL_FILE_NAME, "epoch-0003.keras"),
                                   (state.stopping_weights_file, STOPPING_FILE_NAME, "stopping-best-epoch-0003.weights.h5")):
        if name is None:
            continue
        if not isinstance(name, str) or not pattern.fullmatch(name):
            raise RunDirError(f"{path}: names {name!r} as a checkpoint file, expected a name like {example} "
                              f"in {checkpoint_dir(run_dir)}; the run cannot be resumed")
        file = checkpoint_dir(run_dir) / name
        if file.is_symlink() or not file.is_file():
            raise RunDirError(f"{file}: missing or not a regular file; the run cannot be resumed")
    return state


def _seed_variables(model) -> list:
    # In model order: their names (seed_generator_2, ...) depend on what else the process built.
    return [variable for variable in model.variables if variable.path.endswith("seed_generator_state")]


def seed_generator_states(model) -> list[list[int]]:
    """The state of every random-number generator in `model` (Dropout layers), in model order."""
    import keras

    return [[int(x) for x in keras.ops.convert_to_numpy(variable).ravel()] for variable in _seed_variables(model)]


def commit(run_dir: Path, model, state: TrainingState, stopping_improved: bool) -> None:
    """Writes the state of the epoch just completed; the `state.json` rename is the commit point.

    Files are written first under new, epoch-numbered names, then the state that names them, and
    only then are the previous epoch's files deleted: a crash at any moment leaves a complete
    earlier or later state. best.keras is refreshed after the commit (see `sync_best_model`).
    """
    folder = checkpoint_dir(run_dir)
    epoch = state.epochs_completed
    state.model_file = f"epoch-{epoch:04d}.keras"
    rundir.save_model(model, folder / state.model_file)
    if stopping_improved:
        state.stopping_weights_file = f"stopping-best-epoch-{epoch:04d}.weights.h5"
        with rundir.atomic_path(folder / state.stopping_weights_file) as temporary:
            model.save_weights(temporary)
    state.seed_states = seed_generator_states(model)
    rundir.write_json(folder / STATE_FILE, state.to_json())
    keep = {STATE_FILE, state.model_file, state.stopping_weights_file}
    for path in folder.iterdir():
        if path.name not in keep:  # the previous epoch's files, and temporaries of a crashed write
            path.unlink(missing_ok=True)
    sync_best_model(run_dir, state)


def sync_best_model(run_dir: Path, state: TrainingState) -> None:
    """Makes best.keras the committed model if the last committed epoch was the best one.

    Idempotent: after a crash between the commit and this copy, a resume repeats it.
    """
    if state.best_epoch is None or state.best_epoch != state.epochs_completed or not state.model_file:
        return
    with rundir.atomic_path(Path(run_dir) / rundir.BEST_MODEL) as temporary:
        shutil.copyfile(checkpoint_dir(run_dir) / state.model_file, temporary)


def restore(model, run_dir: Path, state: TrainingState) -> None:
    """Loads the committed weights, optimizer variables and random states into `model`.

    `model` must be built and compiled exactly as the original run's was.
    """
    import keras

    if not state.model_file:
        return
    from mnist_zoo.inference.model_limits import check_keras_archive

    model.optimizer.build(model.trainable_variables)
    check_keras_archive(checkpoint_dir(run_dir) / state.model_file)  # sizes, and no weights from elsewhere
    load_all_weights(model, checkpoint_dir(run_dir) / state.model_file)
    variables = _seed_variables(model)
    if len(variables) != len(state.seed_states):
        raise RunDirError(
            f"{run_dir}: the checkpoint has {len(state.seed_states)} random-number states but the model "
            f"has {len(variables)}; was config.yaml edited after the run started?"
        )
    for variable, values in zip(variables, state.seed_states):
        variable.assign(keras.ops.convert_to_tensor(values, dtype=variable.dtype))


def load_all_weights(model, path: Path) -> None:
    """Loads a `.keras` file's model and optimizer variables into `model`, or fails.

    Keras only warns when the saved optimizer has a different number of variables (another
    optimizer, or a loss-scaled mixed_float16 run resumed in another precision) and then skips
    them: the step count, the schedule and Adam's moments would silently start again from zero.

    Raises:
        RunDirError: the optimizer variables in `path` do not fit `model`'s optimizer.
    """
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.load_weights(path)
    for warning in caught:
        message = str(warning.message)
        if "Skipping variable loading for optimizer" in message:
            raise RunDirError(
                f"{path}: the saved optimizer state does not fit this run's optimizer ({message.strip()}); "
                "was the run's config.yaml or environment.json edited after it started?"
            )
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


def restore_stopping_weights(model, run_dir: Path, state: TrainingState) -> None:
    """Loads early stopping's best weights into `model`, if the run kept any."""
    from mnist_zoo.inference.model_limits import check_weights_file

    if not state.stopping_weights_file:
        return
    check_weights_file(checkpoint_dir(run_dir) / state.stopping_weights_file)
    model.load_weights(checkpoint_dir(run_dir) / state.stopping_weights_file)


def remove(run_dir: Path) -> None:
    """Deletes the checkpoint of a finished run (last.keras and best.keras hold its results)."""
    shutil.rmtree(checkpoint_dir(run_dir), ignore_errors=True)
