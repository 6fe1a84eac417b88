"""A lesson's trials as records: each finished trial's variant, values, history and run measures."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from mnist_zoo.errors import RunDirError

MEASURES = {
    "test_accuracy": ("test accuracy", "%"),
    "best_val_accuracy": ("validation accuracy (best epoch)", "%"),
    "final_val_accuracy": ("validation accuracy at the last epoch", "%"),
    "final_accuracy": ("training accuracy at the last epoch", "%"),
    "final_val_loss": ("validation loss at the last epoch", ""),
    "generalization_gap": ("training minus validation accuracy at the last epoch", "points"),
    "parameters": ("parameters", ""),
    "forward_macs": ("multiply-accumulates per image", ""),
    "train_seconds": ("training time", "s"),
    "seconds_per_epoch": ("seconds per epoch", "s"),
    "epochs": ("epochs trained", ""),
    "train_images": ("training images", ""),
    "hidden_layers": ("hidden layers", ""),
}
"""Each run measure's label and unit, as tables, axes and answers show them."""
CURVE_LABELS = {"val_accuracy": "validation accuracy (%)", "accuracy": "training accuracy (%)",
                "val_loss": "validation loss", "loss": "training loss"}


@dataclass
class TrialRecord:
    """One finished trial of a lesson."""

    number: int
    variant: str
    """The variant's name, with the space's values when the lesson has a space ('cnn, data.train_limit=6000')."""
    params: dict
    """The trial's values (the variant under `variant`)."""
    run_dir: Path
    history: list[dict]
    measures: dict
    config: dict = field(repr=False, default_factory=dict)

    def value(self, name: str):
        """A run measure, a config key's value (dotted), or the variant's name."""
        if name == "variant":
            return self.variant
        if name in self.measures:
            return self.measures[name]
        node = self.config
        for part in name.split("."):
            if not isinstance(node, dict) or part not in node:
                raise KeyError(name)
            node = node[part]
        return node

    def as_dict(self) -> dict:
        return {"number": self.number, "variant": self.variant, "params": self.params, "run_dir": str(self.run_dir),
                "measures": self.measures}


def trial_label(params: dict, per: str | None = None) -> str:
    """The name a trial goes by: its variant, then its space values (all but `per`, which groups them)."""
    from mnist_zoo.sweeps.spec import VARIANT

    parts = [str(params[VARIANT])] if VARIANT in params else []
    parts += [f"{key}={_short(value)}" for key, value in params.items() if key not in (VARIANT, per)]
    return ", ".join(parts)


def _short(value) -> str:
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def run_measures(run_dir: Path, history: list[dict], config: dict) -> dict:
    """The run measures (`MEASURES`) of a finished run directory."""
    from mnist_zoo import rundir
    from mnist_zoo.config.loading import load_config
    from mnist_zoo.models.registry import build_model
    from mnist_zoo.models.summary import forward_macs

    metrics = rundir.read_json_object(Path(run_dir) / rundir.METRICS_FILE)
    if number(metrics.get("test_accuracy")) is None:
        raise RunDirError(f"{run_dir}: no readable {rundir.METRICS_FILE}")
    last = history[-1] if history and isinstance(history[-1], dict) else {}
    validated = load_config(Path(run_dir) / rundir.CONFIG_FILE)  # bounded and validated, as any config
    final_accuracy, final_val = number(last.get("accuracy")), number(last.get("val_accuracy"))
    data = validated.data
    # Runs from before metrics.json recorded its split: the split the config asks for.
    validation = data.validation_size
    limit = data.train_limit or 60_000
    fallback = limit - (round(validation * limit) if isinstance(validation, float) else validation)
    return {
        "test_accuracy": number(metrics["test_accuracy"]),
        "best_val_accuracy": number(metrics.get("best_val_accuracy")),
        "final_val_accuracy": final_val,
        "final_accuracy": final_accuracy,
        "final_val_loss": number(last.get("val_loss")),
        "generalization_gap": None if final_accuracy is None or final_val is None
        else 100 * (final_accuracy - final_val),
        "parameters": number(metrics.get("parameters")),
        "forward_macs": forward_macs(build_model(validated.model)),
        "train_seconds": number(metrics.get("train_seconds")),
        "seconds_per_epoch": number(metrics.get("seconds_per_epoch")),
        "epochs": number(metrics.get("epochs_run", metrics.get("epochs_completed"))),
        "train_images": number(metrics.get("train_examples", fallback)),
        "hidden_layers": len(validated.model.hidden_units) if validated.model.type == "mlp" else None,
    }


def number(value) -> float | int | None:
    """A finite number from a run's files, else None (a string, NaN, a missing key)."""
    import math

    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return value


def read_trials(study, spec, sweep_dir: Path, per: str | None = None) -> tuple[list[TrialRecord], list[str], list[str]]:
    """The lesson's finished trials, in grid order (variants as listed, then the space's choices).

    Returns:
        (the records, notes on trials that are not readable or still running, the names of the
        variants not finished).
    """
    import itertools

    from optuna.trial import TrialState

    from mnist_zoo import rundir
    from mnist_zoo.config.loading import read_yaml
    from mnist_zoo.errors import MnistZooError
    from mnist_zoo.sweeps.results import local_run_dir

    grid = spec.grid
    order = {point: index for index, point in enumerate(itertools.product(*grid.values()))}
    records, notes = {}, []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        point = tuple(trial.params.get(key) for key in grid)
        if point not in order or point in records:
            continue  # a point trained twice (two machines): the first is kept
        try:
            run_dir = local_run_dir(trial, sweep_dir)
            history = [record for record in rundir.read_history(run_dir)
                       if isinstance(record, dict) and number(record.get("epoch")) is not None]
            config = read_yaml(run_dir / rundir.CONFIG_FILE)
            measures = run_measures(run_dir, history, config)
        except (MnistZooError, OSError, ValueError, TypeError, AttributeError, KeyError) as error:
            # One unreadable or odd trial folder is a note, not the end of the report.
            notes.append(f"trial {trial.number}: {error}")
            continue
        params = {key: spec.space[key].decode(value) if key in spec.space else value
                  for key, value in trial.params.items()}
        records[point] = TrialRecord(trial.number, trial_label(params, per), params, run_dir, history, measures, config)
    missing = [trial_label({key: spec.space[key].decode(value) if key in spec.space else value
                            for key, value in zip(grid, point)}, None) for point in order if point not in records]
    if study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        notes.append("a trial is marked running: another worker's, or a killed one's, which is queued again once its "
                     "heartbeat is 3 heartbeats old (30 s by default): run the lesson again after that")
    return [records[point] for point in sorted(records, key=order.get)], notes, missing
