"""The summary stage: the layer table of a model file, a run, or a config built untrained."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mnist_zoo.models.summary import LayerSummary, summarize, totals


@dataclass(frozen=True)
class ModelSummary:
    """What `run_summary` found: where the model came from, its layers and their totals."""

    source: str
    layers: list[LayerSummary]
    total: dict

    def as_dict(self) -> dict:
        """JSON-ready: the source, one dict per layer and the totals."""
        layers = [{**row.__dict__, "output_shape": list(row.output_shape)} for row in self.layers]
        return {"source": self.source, "layers": layers, "total": self.total}


def load_target(target: str, unsafe: bool = False):
    """(Keras model, description) for a .keras file, a run directory, a YAML file or a bundled config name."""
    path = Path(target)
    if path.is_dir() or path.suffix == ".keras":
        from mnist_zoo.inference.modelfile import load_classifier
        from mnist_zoo.rundir import resolve_model_path

        model_path, _ = resolve_model_path(path)
        return load_classifier(model_path, unsafe=unsafe), f"model file {model_path}"
    from mnist_zoo.config.loading import bundled_config_path, load_config
    from mnist_zoo.models.registry import build_model

    config_path = path if path.suffix in (".yaml", ".yml") else bundled_config_path(target)
    config = load_config(config_path)
    return build_model(config.model), f"config {config.name} ({config_path}), untrained"


def run_summary(target: str, unsafe: bool = False, device: str = "auto") -> ModelSummary:
    """Layer table (output shapes, parameters, MACs) of `target` (see `load_target`).

    Args:
        target: a .keras file, a run directory, a YAML config or a bundled config name.
        unsafe: allow Lambda layers when loading a model file.
        device: 'auto', 'cpu' or 'gpu'; chosen before TensorFlow starts.
    """
    from mnist_zoo.runtime.device import select_device

    select_device(device)  # building or loading a model starts TensorFlow on a device
    model, source = load_target(target, unsafe)
    layers = summarize(model)
    return ModelSummary(source, layers, totals(layers))
