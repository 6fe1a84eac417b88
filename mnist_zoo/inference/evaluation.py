"""Classification metrics: accuracy, loss, per-class precision/recall/F1, confusion matrix."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mnist_zoo import rundir
from mnist_zoo.data.catalog import EVALUATION_SPLITS
from mnist_zoo.inference.predictor import predict_probabilities

NUM_MOST_CONFUSED = 10


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """counts[true, predicted] as a (num_classes, num_classes) int array."""
    flat = labels.astype(np.int64) * num_classes + predictions.astype(np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.zeros(len(numerator)), where=denominator > 0)


def classification_report(labels: np.ndarray, probabilities: np.ndarray, class_names) -> dict:
    """All evaluation figures as plain data (what evaluation.json holds).

    Args:
        labels: true class indices (n,).
        probabilities: predicted class probabilities (n, 10).
        class_names: a name per class, for the per-class rows.

    Returns:
        A dict with accuracy, loss (cross-entropy), per-class rows, macro averages, the
        confusion matrix and the most confused (true, predicted) pairs.
    """
    predictions = probabilities.argmax(axis=1)
    matrix = confusion_matrix(labels, predictions, len(class_names))
    true_positives = np.diag(matrix).astype(np.float64)
    precision = _safe_divide(true_positives, matrix.sum(axis=0))
    recall = _safe_divide(true_positives, matrix.sum(axis=1))
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    picked = probabilities[np.arange(len(labels)), labels.astype(np.int64)]
    off_diagonal = [(int(matrix[t, p]), t, p) for t in range(len(matrix)) for p in range(len(matrix)) if t != p]
    confused = sorted((pair for pair in off_diagonal if pair[0] > 0), key=lambda pair: (-pair[0], pair[1], pair[2]))
    return {
        "num_examples": int(len(labels)),
        "accuracy": float((predictions == labels).mean()),
        "loss": float(-np.log(np.clip(picked, 1e-7, 1.0)).mean()),
        "per_class": [
            {
                "class": index,
                "name": name,
                "precision": float(precision[index]),
                "recall": float(recall[index]),
                "f1": float(f1[index]),
                "support": int(matrix[index].sum()),
            }
            for index, name in enumerate(class_names)
        ],
        "macro_avg": {
            "precision": float(precision.mean()),
            "recall": float(recall.mean()),
            "f1": float(f1.mean()),
        },
        "confusion_matrix": matrix.tolist(),
        "most_confused": [
            {"true": t, "predicted": p, "count": count} for count, t, p in confused[:NUM_MOST_CONFUSED]
        ],
    }


def evaluate_model(model, images: np.ndarray, labels: np.ndarray, class_names) -> tuple[dict, np.ndarray]:
    """Predicts and scores a model on uint8 images.

    Args:
        model: a Keras model, or a `runtimes.Classifier` (any file opened in its runtime).

    Returns:
        (the classification report, the predicted probabilities (n, 10)).
    """
    probabilities = predict_probabilities(model, images)
    return classification_report(labels, probabilities, class_names), probabilities


@dataclass(frozen=True, eq=False)  # its arrays have no single truth value: compare `.report`s
class EvaluationResult:
    """What `run_evaluation` measured and wrote."""

    report: dict
    model_path: Path
    dataset_source: str
    class_names: tuple[str, ...]
    written: list[Path]
    images: np.ndarray
    labels: np.ndarray
    probabilities: np.ndarray
    """The images scored (n, 28, 28: the test set, or a run's validation images), their labels (n,) and the
    predicted probabilities (n, 10)."""


def run_data_settings(run_dir: Path | None) -> tuple[str, str | None]:
    """(dataset, data_dir) recorded in a run's config.yaml; ('mnist', None) without a run."""
    if run_dir is None:
        return "mnist", None
    from mnist_zoo.config.loading import load_config

    data = load_config(run_dir / rundir.CONFIG_FILE).data
    return data.dataset, data.data_dir


def model_data_settings(model_path: Path, run_dir: Path | None) -> tuple[str, str | None]:
    """(dataset, data_dir) of a model file: its run's, or an ensemble file's (and its first run's folder)."""
    from mnist_zoo.inference.ensemble import first_run, is_ensemble_file, read_ensemble_file

    if is_ensemble_file(model_path):
        members, dataset = read_ensemble_file(model_path)
        return dataset, run_data_settings(first_run(members))[1]
    return run_data_settings(run_dir)



def report_place(model_path: Path, run_dir: Path | None, kind: str) -> tuple[Path, str]:
    """(folder, file-name prefix) of a model's evaluation report, when no output folder is given.

    A run's best.keras reports into the run directory as evaluation.json; any other file beside
    itself, under its own name (last.keras as last.evaluation.json, a foreign model.keras as
    model.evaluation.json, an export model.onnx as model.onnx.evaluation.json), so that no two
    overwrite each other.
    """
    if rundir.is_runs_best_model(model_path, run_dir):
        return run_dir, ""
    return model_path.parent, f"{model_path.stem if kind == 'keras' else model_path.name}."


def _report_path(folder: Path, prefix: str) -> Path:
    """Where `evaluate` writes a report: <prefix>evaluation.json in `folder` (`report_place` gives both)."""
    return Path(folder) / f"{prefix}{rundir.EVALUATION_FILE}"


def read_report(model_path: Path, run_dir: Path | None, kind: str) -> dict | None:
    """The evaluation report `evaluate` wrote for this model file, or None (none, unreadable, another file's)."""
    folder, prefix = report_place(model_path, run_dir, kind)
    path = _report_path(folder, prefix)
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    # The report names the file as evaluate was given it (perhaps relative to another folder).
    if not isinstance(report, dict) or Path(str(report.get("model", ""))).name != Path(model_path).name:
        return None
    return report


def validation_configs(run_dirs: list, dataset: str | None = None) -> list:
    """The configs of runs whose held-out images are to be scored, after the checks that need no data.

    Raises:
        ModelFileError: a model outside a run, or a data set other than the runs'.
    """
    from mnist_zoo.config.loading import load_config
    from mnist_zoo.errors import ModelFileError

    if any(run_dir is None for run_dir in run_dirs):
        raise ModelFileError("the validation images are the ones a run held out, chosen by its config.yaml: "
                             "give run directories (or model files inside them), or evaluate on the test set")
    configs = [load_config(run_dir / rundir.CONFIG_FILE) for run_dir in run_dirs]
    if dataset is not None and dataset != configs[0].data.dataset:
        raise ModelFileError(f"--dataset {dataset}: the runs held out {configs[0].data.dataset} images; "
                             "validate on their own data set, or evaluate on the test set")
    return configs


def split_images(split: str, data, run_dirs: list, configs: list | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The images (n, 28, 28) and labels (n,) to score: `data`'s test set, or the runs' validation images.

    The validation images are rebuilt from each run's config (`data.validation_size`,
    `data.validation_seed` or `train.seed`, `data.train_limit`) and `data`, then checked against
    the fingerprint the run recorded when it trained (`validation_sha256` in environment.json;
    older runs: the data set's checksum), so that an edited config or other data files cannot
    turn training images into "validation" ones. A committee is scored only when every member
    held out the same images: members that held out different ones have trained on each other's.

    Args:
        split: 'test' or 'validation'.
        data: the loaded `Dataset`.
        run_dirs: the run directory of each model (None for a file outside a run).
        configs: the runs' configs, as `validation_configs` returned them (default: read them).

    Raises:
        ModelFileError: as `validation_configs`; runs whose held-out images cannot be rebuilt,
            or runs that held out different images.
        DataError: a run held nothing out.
        ValueError: an unknown split.
    """
    from mnist_zoo.data.datasets import images_fingerprint, validation_seed, validation_split
    from mnist_zoo.errors import ModelFileError

    if split not in EVALUATION_SPLITS:
        raise ValueError(f"split {split!r}: expected one of {', '.join(EVALUATION_SPLITS)}")
    if split == "test":
        return data.test_images, data.test_labels
    configs = configs if configs is not None else validation_configs(run_dirs)
    held_out, fingerprints, data_checksum = {}, {}, None
    for run_dir, config in zip(run_dirs, configs):
        held_out[run_dir] = validation_split(config, data)
        fingerprints[run_dir] = images_fingerprint(*held_out[run_dir])
        environment = rundir.read_environment(run_dir)
        recorded = environment.get("validation_sha256")
        if recorded is None and environment.get("dataset_sha256") is not None:
            data_checksum = data_checksum or data.checksum()
            unchanged = environment["dataset_sha256"] == data_checksum
        else:
            unchanged = recorded is None or recorded == fingerprints[run_dir]
        if not unchanged:
            raise ModelFileError(f"{run_dir}: its config.yaml and the data at {data.source} no longer give the "
                                 "images it held out when it trained (the config or the data files changed); "
                                 "evaluate it with the data it trained on (--data-dir), or on the test set")
    if len(set(fingerprints.values())) > 1:
        named = "; ".join(f"{run_dir}: {len(held_out[run_dir][1])} images chosen by seed {validation_seed(config)}"
                          for run_dir, config in zip(run_dirs, configs))
        raise ModelFileError(f"the runs held out different validation images ({named}), so each has trained on "
                             "others' validation images; train the members with one data.validation_seed "
                             "(e.g. --set data.validation_seed=0) to validate them together")
    return held_out[run_dirs[0]]


def run_evaluation(
    path: Path,
    dataset: str | None = None,
    data_dir: str | None = None,
    output_dir: Path | None = None,
    device: str = "auto",
    unsafe: bool = False,
    plots: bool = False,
    progressbar: bool = False,
    tta: int = 1,
    split: str = "test",
) -> EvaluationResult:
    """Evaluates a `.keras` file or a run directory on the test set and writes evaluation.json.

    Args:
        path: a `.keras`, `.tflite` or `.onnx` file, a SavedModel folder, or a run directory (its
            best.keras); each file runs in its own runtime (Keras, TensorFlow, LiteRT, onnxruntime).
        dataset: the test set; default the run's, else 'mnist'.
        data_dir: where the data is; default the run's, else `$MNIST_ZOO_DATA_DIR` or download.
        output_dir: where outputs go; default the run directory for its best.keras, else beside the
            model under its name (`report_place`).
        device: 'auto', 'cpu' or 'gpu'.
        unsafe: allow Lambda layers when loading.
        plots: also write the confusion-matrix heatmap and the misclassified-digits grid.
        progressbar: show download progress bars on stderr.
        tta: test-time augmentation: average over this many views of each test image (the image
            and `tta - 1` changed copies, `tta.tta_probabilities`); reported in
            tta-evaluation.json, never in evaluation.json.
        split: 'test', or 'validation': the images the model's run held out (`split_images`);
            reported in validation-evaluation.json.

    Returns:
        The `EvaluationResult`.
    """
    from mnist_zoo.data.datasets import load_dataset
    from mnist_zoo.inference.ensemble import is_ensemble_file
    from mnist_zoo.runtime.device import select_device
    from mnist_zoo.inference.runtimes import open_classifier

    model_path, run_dir = rundir.resolve_model_path(Path(path))
    if is_ensemble_file(model_path):  # an ensemble's folder: evaluated as `evaluate --ensemble` did
        return run_ensemble_evaluation([model_path], dataset, data_dir, output_dir, device, unsafe, plots, progressbar,
                                       tta, split)
    run_dataset, run_data_dir = run_data_settings(run_dir)
    # What needs no data is refused before anything loads.
    configs = validation_configs([run_dir], dataset) if split == "validation" else None
    select_device(device)  # before TensorFlow starts: hides GPUs for 'cpu', enables memory growth
    model = open_classifier(model_path, unsafe=unsafe)
    data = load_dataset(dataset or run_dataset, data_dir or run_data_dir, progressbar=progressbar)
    images, labels = split_images(split, data, [run_dir], configs)
    probabilities, augmented = _probabilities(model, images, tta, run_dir)
    report = {"model": str(model_path), "runtime": model.kind, "dataset": data.name, "split": split, **augmented,
              **classification_report(labels, probabilities, data.class_names)}

    if output_dir is not None:
        folder, prefix = Path(output_dir), ""
    else:
        folder, prefix = report_place(model_path, run_dir, model.kind)
    tta_prefix = _split_prefix(split) + ("tta-" if tta > 1 else "")
    written = _write_outputs(folder, prefix + tta_prefix, report, data, images, labels, probabilities, plots,
                             title=f"{model_path.name} ({model.kind})")
    return EvaluationResult(report, model_path, data.source, data.class_names, written, images, labels,
                            probabilities)


def _split_prefix(split: str) -> str:
    """The report files' prefix for a split: none for the test set, 'validation-' for the held-out images."""
    return "" if split == "test" else f"{split}-"


def _probabilities(model, images, tta: int, run_dir, plain=None) -> tuple[np.ndarray, dict]:
    """The model's test probabilities, with `tta` > 1 averaged over augmented views; and the report's 'tta' entry.

    `plain`: the model's probabilities of the images themselves, where the caller has them already.
    """
    if tta <= 1:
        return (predict_probabilities(model, images) if plain is None else plain), {}
    from mnist_zoo.inference.tta import tta_augmentation, tta_probabilities

    augmentation = tta_augmentation(run_dir)
    return tta_probabilities(model, images, augmentation, tta, plain=plain), \
        {"tta": {"views": tta, "augmentation": augmentation.describe()}}


def _write_outputs(folder: Path, prefix: str, report: dict, data, images, labels, probabilities, plots: bool,
                   title: str) -> list[Path]:
    """Writes <prefix>evaluation.json and, with `plots`, <prefix>confusion_matrix.png and <prefix>misclassified.png."""
    json_path = _report_path(folder, prefix)
    rundir.write_json(json_path, report)
    written = [json_path]
    if plots:
        from mnist_zoo.report.plots import confusion_matrix_figure, misclassified_figure, save_figure

        # Two lines: a long file name and the runtime do not fit beside the data set in one.
        heading = f"Confusion matrix: {title}\n{data.name} {report['split']} set, {report['accuracy']:.2%} accuracy"
        matrix_path, grid_path = folder / f"{prefix}confusion_matrix.png", folder / f"{prefix}misclassified.png"
        save_figure(confusion_matrix_figure(np.array(report["confusion_matrix"]), data.class_names, heading),
                    matrix_path)
        save_figure(misclassified_figure(images, labels, probabilities, data.class_names),
                    grid_path)
        written += [matrix_path, grid_path]
    return written


@dataclass(frozen=True, eq=False)
class EnsembleEvaluation(EvaluationResult):
    """What `run_ensemble_evaluation` measured: the ensemble's report, and one line per member."""

    members: list = field(default_factory=list)
    """One dict per member, in order: {'model', 'runtime', 'accuracy', 'loss'}."""


def run_ensemble_evaluation(
    paths: list[Path],
    dataset: str | None = None,
    data_dir: str | None = None,
    output_dir: Path | None = None,
    device: str = "auto",
    unsafe: bool = False,
    plots: bool = False,
    progressbar: bool = False,
    tta: int = 1,
    split: str = "test",
) -> EnsembleEvaluation:
    """Evaluates models together: their averaged probabilities, and each member alone.

    Args:
        paths: run directories and model files of any runtime (see `run_evaluation`), trained on
            one data set; or one ensemble (its folder or ensemble.json), evaluated again.
        dataset: the test set; default the runs', else 'mnist'.
        data_dir: where the data is; default the first run's, else `$MNIST_ZOO_DATA_DIR` or download.
        output_dir: where ensemble.json, ensemble-evaluation.json (and the plots) go; default the
            current folder, or an ensemble's own folder. The folder then stands for the ensemble
            in `predict`, `serve`, `compare` and `evaluate`.
        device, unsafe, plots, progressbar, tta: as `run_evaluation` (with `tta`, each member's
            own line stays without it; the report goes to ensemble-tta-evaluation.json).
        split: 'test', or 'validation': the images every member's run held out, which must be
            the same images (`split_images`); the report goes to ensemble-validation-evaluation.json.

    Returns:
        The `EnsembleEvaluation`; its `probabilities` are the ensemble's.
    """
    from mnist_zoo.data.datasets import load_dataset
    from mnist_zoo.inference.ensemble import (average_probabilities, ensemble_dataset, first_run, is_ensemble_file,
                                              open_ensemble, read_ensemble_file, resolve_members,
                                              write_ensemble_file)
    from mnist_zoo.runtime.device import select_device

    ensemble_file = rundir.resolve_model_path(Path(paths[0]))[0] if len(paths) == 1 else None
    if ensemble_file is not None and is_ensemble_file(ensemble_file):
        members = read_ensemble_file(ensemble_file)[0]
        folder = Path(output_dir) if output_dir is not None else ensemble_file.parent
    else:
        members, ensemble_file = resolve_members([Path(path) for path in paths]), None
        folder = Path(output_dir) if output_dir is not None else Path(".")
    if ensemble_file is None or folder != ensemble_file.parent:
        rundir.check_ensemble_folder(folder)  # before the evaluation, not after it
    run_dirs = [member.run_dir for member in members]
    # What needs no data is refused before anything loads.
    configs = validation_configs(run_dirs, dataset) if split == "validation" else None
    select_device(device)
    ensemble = open_ensemble(members, unsafe=unsafe, path=ensemble_file or folder / rundir.ENSEMBLE_FILE)
    members_run = first_run(members)
    data = load_dataset(dataset or ensemble_dataset(members), data_dir or run_data_settings(members_run)[1],
                        progressbar=progressbar)
    images, labels = split_images(split, data, run_dirs, configs)
    member_probabilities = ensemble.member_probabilities(images)
    member_rows = []
    for member, classifier, probabilities in zip(members, ensemble.members, member_probabilities):
        alone = classification_report(labels, probabilities, data.class_names)
        member_rows.append({"model": str(member.model_path), "runtime": classifier.kind,
                            "accuracy": alone["accuracy"], "loss": alone["loss"]})
    probabilities, augmented = _probabilities(ensemble, images, tta, members_run,
                                              plain=average_probabilities(member_probabilities))
    report = {"model": f"ensemble of {len(members)}", "runtime": "ensemble", "dataset": data.name, "split": split,
              **augmented, "members": member_rows, **classification_report(labels, probabilities, data.class_names)}
    # The ensemble file first: a folder with an ensemble-evaluation.json and no ensemble.json would
    # be a report of nothing anyone can open again.
    written = [] if ensemble_file is not None and folder == ensemble_file.parent else \
        [write_ensemble_file(folder, members, ensemble_dataset(members))]
    # The members as the ensemble file beside the report names them: compare and serve take the
    # report as that file's only while they match (`rundir.read_ensemble_report`).
    report["ensemble_members"] = rundir.read_json_object(written[0] if written else ensemble_file).get("members")
    prefix = "ensemble-" + _split_prefix(split) + ("tta-" if tta > 1 else "")
    written += _write_outputs(folder, prefix, report, data, images, labels, probabilities, plots,
                              title=f"ensemble of {len(members)}")
    return EnsembleEvaluation(report, ensemble.path, data.source, data.class_names, written, images, labels,
                              probabilities, members=member_rows)
