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
    if not isinstance(metrics.get("test_accuracy"), (int, float)):
        raise RunDirError(f"{run_dir}: no readable {rundir.METRICS_FILE}")
    last = history[-1] if history else {}
    model = config.get("model", {})
    final_accuracy, final_val = last.get("accuracy"), last.get("val_accuracy")
    return {
        "test_accuracy": metrics["test_accuracy"],
        "best_val_accuracy": metrics.get("best_val_accuracy"),
        "final_val_accuracy": final_val,
        "final_accuracy": final_accuracy,
        "final_val_loss": last.get("val_loss"),
        "generalization_gap": None if final_accuracy is None or final_val is None
        else 100 * (final_accuracy - final_val),
        "parameters": metrics.get("parameters"),
        "forward_macs": forward_macs(build_model(load_config(Path(run_dir) / rundir.CONFIG_FILE).model)),
        "train_seconds": metrics.get("train_seconds"),
        "seconds_per_epoch": metrics.get("seconds_per_epoch"),
        "epochs": metrics.get("epochs_completed"),
        "train_images": metrics.get("train_examples"),
        "hidden_layers": len(model.get("hidden_units") or ()) if model.get("type") == "mlp" else None,
    }


def read_trials(study, spec, sweep_dir: Path, per: str | None = None) -> tuple[list[TrialRecord], list[str]]:
    """The lesson's finished trials, in grid order (variants as listed, then the space's choices).

    Returns:
        (the records, notes on trials that are not finished or not readable).
    """
    import itertools

    import yaml
    from optuna.trial import TrialState

    from mnist_zoo import rundir
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
            history = rundir.read_history(run_dir)
            config = yaml.safe_load((run_dir / rundir.CONFIG_FILE).read_text(encoding="utf-8"))
            measures = run_measures(run_dir, history, config)
        except (RunDirError, OSError, ValueError, yaml.YAMLError) as error:
            notes.append(f"trial {trial.number}: {error}")
            continue
        params = {key: spec.space[key].decode(value) if key in spec.space else value
                  for key, value in trial.params.items()}
        records[point] = TrialRecord(trial.number, trial_label(params, per), params, run_dir, history, measures, config)
    missing = [point for point in order if point not in records]
    if missing:
        names = [trial_label({key: spec.space[key].decode(value) if key in spec.space else value
                              for key, value in zip(grid, point)}, None) for point in missing]
        notes.append(f"{len(missing)} of {len(order)} variants not finished yet ({'; '.join(names)}): run the lesson "
                     "again to train them")
    return [records[point] for point in sorted(records, key=order.get)], notes
