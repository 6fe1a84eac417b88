"""The explain stage: a model and some digits in, pictures of its weights, feature maps, attributions and mistakes out."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mnist_zoo import rundir
from mnist_zoo.errors import DataError, ModelFileError
from mnist_zoo.explanations import PARTS

MAX_MISTAKES = 64
"""Mistakes pictured at most: a 4-wide grid of 64 is already a tall page."""

MAX_IMAGES = 32
"""Inputs explained per call: each gets two pictures, and 32 pairs are already a long folder."""

BASELINE = "black image"
"""Integrated gradients' baseline, as the pictures and the JSON name it: no ink anywhere."""


@dataclass(frozen=True)
class ExplainResult:
    """What `run_explain` pictured and wrote."""

    model_path: Path
    runtime: str
    output_dir: Path
    written: list[Path]
    images: list[dict]
    """One dict per input: its name, answer, runner-up and the files and figures about it."""
    mistakes: list[dict]
    """The most confidently wrong test digits: test index, true and predicted class, probability."""
    notes: list[str] = field(default_factory=list)
    """What was left out and why (a layer that cannot be pictured, an export without gradients)."""

    def record(self) -> dict:
        """JSON-ready: what `mnist-zoo explain --json` prints."""
        return {"model": str(self.model_path), "runtime": self.runtime, "output_dir": str(self.output_dir),
                "files": [str(path) for path in self.written], "images": self.images, "mistakes": self.mistakes,
                "notes": self.notes}


def _file_stem(index: int, name: str) -> str:
    """'03-my_digit' from an input's name: safe in any file system, short, in input order.

    A picture's suffix goes (the PNG written has its own); an array's stays, with the image's
    index: 'digits.npy[3]' gives 'digits.npy_3'.
    """
    from mnist_zoo.inference.pictures import IMAGE_SUFFIXES

    name = Path(name).name
    if Path(name).suffix.lower() in IMAGE_SUFFIXES:
        name = Path(name).stem
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")[:40] or "input"
    return f"{index:02d}-{stem}"


def _inputs(paths, test_images, test_labels, class_names):
    """(28x28 uint8 images, names, errors): the prepared pictures, or the first test digit of each class."""
    from mnist_zoo.inference import pictures
    from mnist_zoo.inference.prediction import expand_paths, prepare

    if isinstance(paths, np.ndarray):  # a notebook's images, already MNIST-format
        images = pictures.as_pixels(paths)
        if len(images) > MAX_IMAGES:
            raise DataError(f"{len(images)} images given; explain takes at most {MAX_IMAGES} at a time")
        return images, [f"array[{index}]" for index in range(len(images))], []
    if paths is None or len(paths) == 0:
        firsts = [int(np.flatnonzero(test_labels == label)[0]) for label in range(len(class_names))
                  if (test_labels == label).any()]
        return test_images[firsts], [f"test[{index}]" for index in firsts], []
    prepared = prepare(expand_paths(list(paths)))
    errors = [item.error for item in prepared if item.error]
    readable = [item for item in prepared if item.image is not None]
    if not readable:
        raise DataError("nothing to explain: " + ("; ".join(errors) if errors else "no images or .npy files found"))
    if len(readable) > MAX_IMAGES:
        raise DataError(f"{len(readable)} images given; explain takes at most {MAX_IMAGES} at a time "
                        "(each gets its own pictures): name fewer files or split the .npy array")
    return np.stack([item.image for item in readable]), [item.name for item in readable], errors


def run_explain(
    model_path: Path,
    paths: list[Path] | None = None,
    output_dir: Path | None = None,
    dataset: str | None = None,
    data_dir: str | None = None,
    device: str = "auto",
    unsafe: bool = False,
    mistakes: int = 16,
    parts: list[str] | None = None,
    progressbar: bool = False,
) -> ExplainResult:
    """Pictures what a model learned and why it answered, as PNG files.

    Args:
        model_path: a run directory, `.keras` file (any Keras model), export or ensemble folder.
            Exports and ensembles run outside Keras's gradients: they get the inputs and the
            mistakes pictures only.
        paths: pictures or `.npy` files (prepared as `predict` prepares them), or an array of
            MNIST-format images (`pictures.as_pixels`); None or empty: the first test digit of
            each class.
        output_dir: where the PNG files go; default `explain/` beside the model.
        dataset, data_dir: the test set (for the mistakes); default the run's.
        device, unsafe: as for `predict`.
        mistakes: how many of the most confidently wrong test digits to picture (0: none).
        parts: some of `PARTS`; default every part the model has (a part it lacks is noted).
            A part asked for that the model lacks is an error.

    Returns:
        The `ExplainResult`.

    Raises:
        DataError: no readable input among `paths`, or more than `MAX_IMAGES`.
        ModelFileError: as `predict`; or a part asked for that the model lacks (feature maps of
            a model without convolutions, weights of an exported file).
        ValueError: a part not in `PARTS`, or `mistakes` outside 0-`MAX_MISTAKES`.
    """
    from mnist_zoo.data.datasets import load_dataset
    from mnist_zoo.explanations import figures
    from mnist_zoo.explanations.features import confident_mistakes
    from mnist_zoo.inference.evaluation import model_data_settings
    from mnist_zoo.inference.runtimes import open_classifier
    from mnist_zoo.report.plots import save_figure
    from mnist_zoo.runtime.device import select_device

    if not 0 <= mistakes <= MAX_MISTAKES:
        raise ValueError(f"mistakes={mistakes}: expected 0 to {MAX_MISTAKES}")
    unknown = sorted(set(parts or ()) - set(PARTS))
    if unknown:
        raise ValueError(f"unknown part(s) {', '.join(unknown)}; expected some of {', '.join(PARTS)}")
    wanted = set(parts or PARTS)
    model_file, run_dir = rundir.resolve_model_path(Path(model_path))
    run_dataset, run_data_dir = model_data_settings(model_file, run_dir)
    select_device(device)  # before TensorFlow starts
    classifier = open_classifier(model_file, unsafe=unsafe)
    data = load_dataset(dataset or run_dataset, data_dir or run_data_dir, progressbar=progressbar)
    class_names = data.class_names
    images, names, errors = _inputs(paths, data.test_images, data.test_labels, class_names)
    folder = Path(output_dir) if output_dir is not None else (run_dir or model_file.parent) / "explain"
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{folder}: exists and is not a folder; name another --output-dir")
    folder.mkdir(parents=True, exist_ok=True)
    notes = [f"left out: {error}" for error in errors]
    written: list[Path] = []

    def save(figure, name: str) -> str:
        path = folder / name
        save_figure(figure, path)
        written.append(path)
        return str(path)

    label = model_file.parent.name if model_file.name in (rundir.BEST_MODEL, rundir.ENSEMBLE_FILE) else model_file.name
    probabilities = classifier.probabilities(images)
    order = np.argsort(-probabilities, axis=1)
    records = [{"input": name, "prediction": class_names[order[index, 0]], "class_index": int(order[index, 0]),
                "probability": float(probabilities[index, order[index, 0]]),
                "runner_up": class_names[order[index, 1]], "runner_up_index": int(order[index, 1]),
                "runner_up_probability": float(probabilities[index, order[index, 1]]), "files": []}
               for index, name in enumerate(names)]
    answers = [f"{record['prediction']} ({record['probability']:.0%})" for record in records]
    save(figures.inputs_figure(images, names, answers, f"{label}: the inputs as the model saw them"), "inputs.png")

    keras_model = getattr(classifier, "model", None)
    explained = None  # the float32 logits copy that every gradient is taken of
    if keras_model is None:
        asked = sorted(wanted - {"mistakes"}) if parts else []
        if asked:
            raise ModelFileError(f"{model_file}: {classifier.kind} files run outside Keras, so they have no "
                                 f"{', '.join(asked)} to picture; explain the run's .keras model, or ask for mistakes")
        notes.append(f"{classifier.kind} files run outside Keras: no weights, feature maps or attributions; "
                     "the inputs and the mistakes only")
    else:
        from mnist_zoo.explanations.network import explainable_model

        # One copy serves the inputs' pictures and the mistakes' maps.
        explained, note = explainable_model(keras_model)
        if note:
            notes.append(note)
        try:
            _explain_keras(explained, images, records, class_names, label, save, notes, wanted,
                           explicit=bool(parts), model_file=model_file)
        except ValueError as error:  # a foreign model without gradients from its input
            raise ModelFileError(f"{model_file}: {error}") from None

    mistake_records = []
    if mistakes > 0 and "mistakes" in wanted:
        test_probabilities = classifier.probabilities(data.test_images)
        chosen = confident_mistakes(test_probabilities, data.test_labels, mistakes)
        predicted = test_probabilities[chosen].argmax(axis=1)
        confidence = test_probabilities[chosen, predicted]
        maps = None
        if explained is not None and len(chosen):
            try:
                maps = _integrated_gradient_maps(explained, data.test_images[chosen], predicted, notes)
            except ValueError as error:
                raise ModelFileError(f"{model_file}: {error}") from None
        mistake_records = [{"test_index": int(index), "true": class_names[data.test_labels[index]],
                            "predicted": class_names[guess], "probability": float(sure)}
                           for index, guess, sure in zip(chosen, predicted, confidence)]
        heading = (f"{label}: the {len(chosen)} test digits it is most sure about and wrong"
                   + ("\nred: the pixels that made it say so (integrated gradients)" if maps is not None else ""))
        save(figures.mistakes_figure(data.test_images[chosen], data.test_labels[chosen], predicted, confidence, maps,
                                     class_names, heading), "mistakes.png")
    return ExplainResult(model_file, classifier.kind, folder, written, records, mistake_records, notes)


def _integrated_gradient_maps(model, images, classes, notes) -> np.ndarray:
    """The integrated gradients of `classes` for `images`, as (n, 28, 28); `model`: the explainable copy."""
    from mnist_zoo.explanations.attribution import integrated_gradients
    from mnist_zoo.explanations.network import as_images, model_inputs

    results = integrated_gradients(model, model_inputs(model, images), np.asarray(classes))
    incomplete = sum(not result.complete for result in results)
    if incomplete:
        notes.append(f"{incomplete} of the mistakes' integrated-gradients maps do not add up to their score "
                     "difference within 1 % even at 1024 steps: read them as rough")
    return as_images(np.stack([result.attributions for result in results]))


def _explain_keras(model, images, records, class_names, label, save, notes, wanted, explicit, model_file) -> None:
    """The Keras-only pictures: weights, feature maps and attributions of every input.

    `model` is the explainable copy (`network.explainable_model`). A part the model lacks is
    noted, or refused when `explicit` (the user asked for it by name).
    """
    from mnist_zoo.explanations import attribution, figures
    from mnist_zoo.explanations.features import feature_maps, map_layers, weight_images
    from mnist_zoo.explanations.network import as_images, model_inputs

    def lacking(part: str, why: str) -> None:
        if explicit:
            raise ModelFileError(f"{model_file}: {why}, so it has no {part} to picture")
        notes.append(f"{why}: no {part}")

    pictured = weight_images(model, class_names) if "weights" in wanted else []
    if "weights" in wanted and not pictured:
        lacking("weights", "no Dense layer reads the pixels and no convolution reads the image")
    headings = {"templates": "the weight template of each class ({layer})\nred: ink here raises the class's score; "
                             "blue: lowers it",
                "units": "the 16 strongest hidden units' weights on the 784 pixels ({layer})",
                "kernels": "the kernels of the first convolution ({layer})",
                "kernels_summed": "the second convolution's kernels, summed over its input channels ({layer})"}
    for weights in pictured:
        save(figures.weights_figure(weights, f"{label}: " + headings[weights.kind].format(layer=weights.layer)),
             f"weights-{weights.layer}.png")
    inputs = model_inputs(model, images)
    layers = None
    if "feature-maps" in wanted:
        if map_layers(model):
            layers = feature_maps(model, inputs)
        else:
            lacking("feature-maps", "the model has no convolution or pooling layer")
    convolution = attribution.last_convolution(model)
    for index, record in enumerate(records):
        stem = _file_stem(index, record["input"])
        if layers is not None:
            record["files"].append(save(figures.feature_maps_figure(
                images[index], layers, index, f"{label}: feature maps of {record['input']} "
                f"(answer {record['prediction']}, {record['probability']:.1%})"), f"feature-maps-{stem}.png"))
        if "attributions" not in wanted:
            continue
        rows, completeness = [], []
        for key in ("class_index", "runner_up_index"):
            classes = np.array([record[key]])
            single = inputs[index:index + 1]
            integrated = attribution.integrated_gradients(model, single, classes)[0]
            completeness.append({"class": class_names[record[key]], "steps": integrated.steps,
                                 "score": integrated.score, "baseline_score": integrated.baseline_score,
                                 "completeness_error": integrated.completeness_error,
                                 "complete": integrated.complete})
            if not integrated.complete:
                notes.append(f"{record['input']}: the integrated gradients of {class_names[record[key]]} do not add "
                             f"up within 1 % even at {integrated.steps} steps (error "
                             f"{integrated.completeness_error:.1%}): read that map as rough")
            probability = record["probability" if key == "class_index" else "runner_up_probability"]
            role = "answer" if key == "class_index" else "runner-up"
            row = {"label": f"{role}: {class_names[record[key]]}\n(probability {probability:.1%})",
                   "gradient": as_images(attribution.gradient_saliency(model, single, classes))[0],
                   "smoothgrad": as_images(attribution.smoothgrad(model, single, classes))[0],
                   "integrated_gradients": as_images(integrated.attributions)[0]}
            if convolution is not None:
                row["grad_cam"] = attribution.grad_cam(model, single, classes, convolution)[0]
            rows.append(row)
        record["integrated_gradients"] = completeness
        grad_cam_heading = None if convolution is None else \
            f"Grad-CAM ({convolution.name}, {convolution.output.shape[1]}x{convolution.output.shape[2]})"
        record["files"].append(save(figures.attributions_figure(
            images[index], rows, grad_cam_heading, f"{label}: why {record['input']} is a {record['prediction']} "
            f"and not a {record['runner_up']}", BASELINE), f"attributions-{stem}.png"))
    if convolution is None and "attributions" in wanted:
        notes.append("no convolution with maps of 4x4 or more: no Grad-CAM (the other attributions are there)")
