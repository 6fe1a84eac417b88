"""Figures: learning curves, confusion-matrix heatmap, misclassified digits, run comparison; saved as PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mnist_zoo.rundir import atomic_path


def new_figure(**options):
    """A matplotlib `Figure` that is no pyplot's: nothing global is switched (a notebook keeps its
    backend), nothing stays open after it is dropped, and it needs no display."""
    from matplotlib.figure import Figure

    _show_figures_in_notebooks()
    return Figure(**options)


def _show_figures_in_notebooks() -> None:
    """Lets IPython show a returned `Figure` as a PNG, as it does once pyplot is imported.

    Without pyplot no backend registers IPython's PNG formatter for figures, and a notebook
    cell ending in one would show `<Figure size 1200x450 with 2 Axes>` instead of the picture.
    """
    import sys

    if "IPython" not in sys.modules:
        return
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None or not hasattr(shell, "display_formatter"):
        return
    from IPython.core.pylabtools import print_figure
    from matplotlib.figure import Figure

    formatter = shell.display_formatter.formatters["image/png"]
    if not _registered(formatter, Figure):  # the inline backend's own, once pyplot is in use, stays
        formatter.for_type(Figure, lambda figure: print_figure(figure, "png", bbox_inches="tight"))


def _registered(formatter, kind) -> bool:
    try:
        formatter.lookup_by_type(kind)
    except KeyError:
        return False
    return True


def save_figure(figure, path: Path):
    """Writes `figure` as a PNG at `path` (atomically); returns the figure."""
    with atomic_path(Path(path)) as temporary:
        figure.savefig(temporary, dpi=120, bbox_inches="tight", format="png")
    return figure


def history_figure(runs: list[tuple[str, list[dict]]]):
    """Loss and accuracy per epoch, train (solid) and validation (dashed), one colour per run.

    Args:
        runs: (label, per-epoch records from history.json) per run.

    Returns:
        The `Figure`.
    """
    import matplotlib

    figure = new_figure(figsize=(12, 4.5))
    axes = figure.subplots(1, 2)
    colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, (label, records) in enumerate(runs):
        colour = colours[index % len(colours)]
        epochs = [record["epoch"] for record in records]
        for axis, metric in zip(axes, ("loss", "accuracy")):
            axis.plot(epochs, [r[metric] for r in records], "-o", color=colour, markersize=3, label=f"{label} train")
            if f"val_{metric}" in records[0]:
                axis.plot(epochs, [r[f"val_{metric}"] for r in records], "--s", color=colour,
                          markersize=3, label=f"{label} validation")
    for axis, metric in zip(axes, ("Loss", "Accuracy")):
        axis.set_title(f"{metric} per epoch")
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric.lower())
        axis.grid(alpha=0.3)
        axis.xaxis.get_major_locator().set_params(integer=True)
        axis.legend(fontsize=8)
    return figure


def confusion_matrix_figure(matrix: np.ndarray, class_names, title: str = "Confusion matrix"):
    """Heatmap of counts[true, predicted] with the counts written in the cells (a `Figure`)."""
    matrix = np.asarray(matrix)
    figure = new_figure(figsize=(8, 7))
    axis = figure.subplots()
    # Log-like colour scale via a power norm, so that off-diagonal errors remain visible.
    from matplotlib.colors import PowerNorm

    image = axis.imshow(matrix, cmap="Blues", norm=PowerNorm(gamma=0.3, vmin=0, vmax=max(1, matrix.max())))
    figure.colorbar(image, ax=axis, label="test images")
    ticks = range(len(class_names))
    axis.set_xticks(ticks, class_names, rotation=45 if len(class_names[0]) > 2 else 0, ha="right" if len(class_names[0]) > 2 else "center")
    axis.set_yticks(ticks, class_names)
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    axis.set_title(title)
    threshold = matrix.max() * 0.5
    for true in ticks:
        for predicted in ticks:
            count = matrix[true, predicted]
            if count:
                axis.text(predicted, true, str(count), ha="center", va="center", fontsize=8,
                          color="white" if count > threshold else "black")
    return figure


def misclassified_figure(images, labels, probabilities, class_names, max_images: int = 36):
    """A grid of misclassified test images, most confident mistakes first, titled true/predicted (a `Figure`)."""
    predictions = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predictions != labels)
    wrong = wrong[np.argsort(-probabilities[wrong, predictions[wrong]])][:max_images]
    columns = 6
    rows = max(1, int(np.ceil(len(wrong) / columns)))
    figure = new_figure(figsize=(columns * 1.8, rows * 2.1), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, index in zip(axes.flat, wrong):
        axis.imshow(images[index], cmap="gray_r")
        confidence = probabilities[index, predictions[index]]
        axis.set_title(
            f"true {class_names[labels[index]]}\npred {class_names[predictions[index]]} ({confidence:.0%})",
            fontsize=8, color="firebrick",
        )
    shown = f"{len(wrong)} most confident of {int((predictions != labels).sum())}"
    figure.suptitle(f"Misclassified test images ({shown})", fontsize=11)
    return figure


def augmentation_figure(originals, changed, labels, class_names, description: str):
    """The original digits in the first column, then their augmented versions (a `Figure`).

    Args:
        originals: uint8 or float array (n, 28, 28).
        changed: float array (n, variants, 28, 28) in [0, 1].
        labels: the n class indices.
        class_names: names of the classes.
        description: the augmentation, for the title.
    """
    rows, variants = changed.shape[:2]
    figure = new_figure(figsize=(1.25 * (variants + 1) + 0.3, 1.3 * rows + 0.8), layout="constrained")
    axes = figure.subplots(rows, variants + 1, squeeze=False)
    for row in range(rows):
        axes[row, 0].imshow(originals[row], cmap="gray_r", vmin=0, vmax=255 if originals.dtype == np.uint8 else 1)
        axes[row, 0].set_ylabel(class_names[labels[row]], rotation=0, labelpad=14, fontsize=10, va="center")
        for column in range(variants):
            axes[row, column + 1].imshow(changed[row, column], cmap="gray_r", vmin=0, vmax=1)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    axes[0, 0].set_title("original", fontsize=9)
    for column in range(variants):
        axes[0, column + 1].set_title(f"step {column}", fontsize=9)
    figure.suptitle(f"Training images as augmented: {description}", fontsize=11)
    return figure


def comparison_figure(rows):
    """Test accuracy against parameters (log scale) and against training time, a labelled point per run.

    Args:
        rows: `compare.RunRow`s.

    Returns:
        The `Figure`.
    """
    import matplotlib
    from matplotlib.lines import Line2D

    figure = new_figure(figsize=(12, 4.8))
    by_size, by_time = figure.subplots(1, 2, sharey=True)
    tab10 = matplotlib.colormaps["tab10"]
    colours = {name: tab10(index % 10) for index, name in enumerate(sorted({row.model for row in rows}))}
    for axis, attribute, label in ((by_size, "parameters", "parameters (log scale)"),
                                   (by_time, "train_seconds", "training time, seconds")):
        for row in (row for row in rows if row.test_accuracy is not None):  # a committee not yet tested has no point
            x, y = getattr(row, attribute), 100 * row.test_accuracy
            axis.scatter(x, y, color=colours[row.model], s=40, zorder=3)
            axis.annotate(row.config_name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
        axis.set_xlabel(label)
        axis.margins(0.15)  # room for the labels of the outermost points
        axis.grid(True, alpha=0.3)
    by_size.set_xscale("log")
    by_size.set_ylabel("test accuracy, %")
    handles = [Line2D([], [], marker="o", linestyle="", color=colour, label=name) for name, colour in colours.items()]
    by_time.legend(handles=handles, title="model", loc="lower right")
    figure.suptitle(f"mnist-zoo: {len(rows)} runs compared")
    return figure
