"""Ensembles: several model files answering as one, by averaging their class probabilities."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_zoo import rundir
from mnist_zoo.errors import ModelFileError
from mnist_zoo.inference.runtimes import Classifier

MAX_MEMBERS = 32
"""More members than any committee in the literature (Ciresan et al. 2012 used 35 columns of 7 kinds)."""


class EnsembleClassifier(Classifier):
    """Averages its members' class probabilities: the committee of Ciresan et al. 2012.

    Averaging probabilities (not logits, not votes) lets members of any runtime and output kind
    join (a `.keras` softmax, an ONNX file's logits, a quantized LiteRT file), and a member that
    is unsure weighs less than one that is sure.

    Args:
        members: the opened model files (`runtimes.Classifier`), at least one.
    """

    kind = "ensemble"
    output_kind = "probabilities"

    def __init__(self, members: list[Classifier]):
        if not members:
            raise ValueError("an ensemble needs at least one member")
        super().__init__(Path(f"ensemble of {len(members)}"))
        self.members = list(members)

    def member_probabilities(self, images: np.ndarray) -> list[np.ndarray]:
        """Each member's probabilities (n, 10) for uint8 images (n, 28, 28), in member order."""
        return [member.probabilities(images) for member in self.members]

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        return average_probabilities(self.member_probabilities(images))

    def scores(self, images: np.ndarray) -> np.ndarray:
        return self.probabilities(images)


def average_probabilities(member_probabilities: list[np.ndarray]) -> np.ndarray:
    """The members' mean probabilities, float32 (n, 10): each row still sums to 1."""
    return np.mean(np.stack(member_probabilities), axis=0, dtype=np.float64).astype(np.float32)


@dataclass(frozen=True)
class Member:
    """One model of an ensemble: the file, the run that holds it (or None), its data set."""

    model_path: Path
    run_dir: Path | None
    dataset: str | None
    """The data set its run was trained on; None for a file outside a run."""


def resolve_members(paths: list[Path]) -> list[Member]:
    """The model file of every path (run directories give their best.keras), checked to go together.

    Raises:
        ModelFileError: no paths, too many, a path twice, nothing usable at a path, or runs
            trained on different data sets.
    """
    from mnist_zoo.inference.evaluation import run_data_settings

    if not paths:
        raise ModelFileError("an ensemble needs at least one model (a run directory or a model file)")
    if len(paths) > MAX_MEMBERS:
        raise ModelFileError(f"{len(paths)} models given; an ensemble takes at most {MAX_MEMBERS}")
    members = []
    for path in paths:
        model_path, run_dir = rundir.resolve_model_path(Path(path))
        members.append(Member(model_path, run_dir, run_data_settings(run_dir)[0] if run_dir else None))
    seen = {}
    for member in members:
        key = member.model_path.resolve()
        if key in seen:
            raise ModelFileError(f"{member.model_path}: given twice (also as {seen[key]}); each member counts once")
        seen[key] = member.model_path
    datasets = sorted({member.dataset for member in members if member.dataset})
    if len(datasets) > 1:
        named = ", ".join(f"{member.model_path} ({member.dataset})" for member in members if member.dataset)
        raise ModelFileError(f"the members were trained on different data sets: {named}; "
                             "an ensemble averages models of one data set")
    return members


def open_ensemble(members: list[Member], unsafe: bool = False) -> EnsembleClassifier:
    """Opens every member in its runtime (`runtimes.open_classifier`)."""
    from mnist_zoo.inference.runtimes import open_classifier

    return EnsembleClassifier([open_classifier(member.model_path, unsafe=unsafe) for member in members])


def ensemble_dataset(members: list[Member]) -> str:
    """The data set the members' runs share ('mnist' when no member is a run's)."""
    return next((member.dataset for member in members if member.dataset), "mnist")
