"""Ensembles: several model files answering as one, by averaging their class probabilities."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_zoo import rundir
from mnist_zoo.errors import ModelFileError
from mnist_zoo.inference.runtimes import Classifier

MAX_MEMBERS = 32
"""More members than most committees in the literature (Ciresan et al. 2012 used 35 columns of 7 kinds)."""



class EnsembleClassifier(Classifier):
    """Averages its members' class probabilities: the committee of Ciresan et al. 2012.

    Averaging probabilities (not logits, not votes) lets members of any runtime and output kind
    join (a `.keras` softmax, an ONNX file's logits, a quantized LiteRT file), and a member that
    is unsure weighs less than one that is sure.

    Args:
        members: the opened model files (`runtimes.Classifier`), at least one.
        path: the ensemble file they came from, if any.
    """

    kind = "ensemble"
    output_kind = "probabilities"

    def __init__(self, members: list[Classifier], path: Path | None = None):
        if not members:
            raise ValueError("an ensemble needs at least one member")
        super().__init__(Path(path) if path is not None else Path(f"ensemble of {len(members)}"))
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
        if is_ensemble_file(model_path):
            # No nesting: an ensemble file never leads to another, so reading one cannot loop.
            raise ModelFileError(f"{path}: an ensemble cannot be a member of another; name its members instead")
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


def open_ensemble(members: list[Member], unsafe: bool = False, path: Path | None = None) -> EnsembleClassifier:
    """Opens every member in its runtime (`runtimes.open_classifier`); `path`: the ensemble file, if any."""
    from mnist_zoo.inference.runtimes import open_classifier

    return EnsembleClassifier([open_classifier(member.model_path, unsafe=unsafe) for member in members], path)


def first_run(members: list[Member]) -> Path | None:
    """The run directory of the first member that has one: where the ensemble's data settings come from."""
    return next((member.run_dir for member in members if member.run_dir is not None), None)


def ensemble_dataset(members: list[Member]) -> str:
    """The data set the members' runs share ('mnist' when no member is a run's)."""
    return next((member.dataset for member in members if member.dataset), "mnist")


def is_ensemble_file(path: Path) -> bool:
    """True for an ensemble file: `ensemble.json` (in an ensemble's folder) or `NAME.ensemble.json`."""
    return Path(path).is_file() and rundir.is_ensemble_name(path)


def write_ensemble_file(folder: Path, members: list[Member], dataset: str) -> Path:
    """Writes `folder`/ensemble.json (`rundir.write_ensemble_file`) naming the members' model files."""
    return rundir.write_ensemble_file(folder, [member.model_path for member in members], dataset)


def read_ensemble_file(path: Path) -> tuple[list[Member], str]:
    """The members and data set of an ensemble file, checked as `resolve_members` checks named models.

    A hostile file can only name model files, which open in the same safe runtimes as models
    named on the command line.

    Raises:
        ModelFileError: as `rundir.read_ensemble_file`; an unknown data set; or its members do
            not resolve or go together.
    """
    from mnist_zoo.data.catalog import DATASETS

    paths, dataset = rundir.read_ensemble_file(path)
    if dataset not in DATASETS:
        raise ModelFileError(f"{path}: unknown data set {dataset!r}; expected one of {', '.join(DATASETS)}")
    members = resolve_members(paths)
    if ensemble_dataset(members) != dataset and any(member.dataset for member in members):
        raise ModelFileError(f"{path}: says {dataset}, but its members were trained on {ensemble_dataset(members)}")
    return members, dataset
