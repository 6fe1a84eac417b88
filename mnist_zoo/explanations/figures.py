"""The explain pictures: weights, feature maps, attributions, mistakes and the prepared inputs."""

from __future__ import annotations

import numpy as np

from mnist_zoo.report.plots import new_figure

MAX_CHANNELS = 32
"""Channels pictured per layer: the first 32 (a grid of 128 tiny maps reads as noise)."""

_SIGNED = "RdBu_r"  # red: positive (evidence for), blue: negative, white: zero
_MAGNITUDE = "magma"


def _symmetric(values: np.ndarray) -> float:
    return float(np.abs(values).max()) or 1.0


def _robust(values: np.ndarray) -> float:
    """The colour scale's end for weights: the 99.5th percentile of |w|, so that a few extreme weights
    (a corner pixel that is ink in three training images) do not wash the templates out."""
    return float(np.percentile(np.abs(values), 99.5)) or _symmetric(values)


def _outline(axis, image: np.ndarray) -> None:
    """The digit's outline over a map: what the map is about, without hiding it."""
    if image.max() > 0:
        axis.contour(image, levels=[image.max() / 2], colors="black", linewidths=0.7)


def _bare(axis) -> None:
    axis.set_xticks([])
    axis.set_yticks([])


def _tiles(parent, count: int, columns: int):
    """A grid of `count` picture tiles, `columns` across, on a figure or subfigure.

    Returns:
        (the whole grid of axes, for a colour bar beside it; the `count` axes to draw in, in
        order). Every tile is bare, and the spare ones of the last row are hidden.
    """
    rows = max(1, -(-count // columns))
    axes = parent.subplots(rows, columns, squeeze=False)
    for index, axis in enumerate(axes.flat):
        _bare(axis)
        if index >= count:
            axis.axis("off")
    return axes, list(axes.flat)[:count]


def weights_figure(weights, title: str):
    """A grid of a layer's weight images on one symmetric scale, zero white, with a colour bar.

    Args:
        weights: a `features.WeightImages`.
        title: the figure's heading.
    """
    count = len(weights.images)
    columns = min(count, 5 if weights.kind == "templates" else 8)
    rows = -(-count // columns)
    tile = 1.5 if weights.images.shape[1] >= 28 else 0.9
    figure = new_figure(figsize=(columns * tile + 1.2, rows * tile + 0.9), layout="constrained")
    axes, tiles = _tiles(figure, count, columns)
    limit = _robust(weights.images)
    for index, axis in enumerate(tiles):
        shown = axis.imshow(weights.images[index], cmap=_SIGNED, vmin=-limit, vmax=limit)
        axis.set_title(weights.labels[index], fontsize=11 if weights.kind == "templates" else 8)
    figure.colorbar(shown, ax=axes, shrink=0.8, extend="both", label="weight")
    figure.suptitle(title)
    return figure


def feature_maps_figure(image: np.ndarray, layers, index: int, title: str):
    """The prepared input, then each pictured layer's maps of one input: a grid per layer with its name and shape.

    Args:
        image: the 28x28 uint8 input.
        layers: `features.LayerMaps` of the batch; `index` picks the input.
    """
    columns = min(16, max(min(layer.maps.shape[-1], MAX_CHANNELS) for layer in layers))
    heights = [1.6] + [0.75 * -(-min(layer.maps.shape[-1], MAX_CHANNELS) // columns) + 0.45 for layer in layers]
    figure = new_figure(figsize=(max(4.0, 0.75 * columns + 1.5), sum(heights) + 0.6), layout="constrained")
    parts = figure.subfigures(len(heights), 1, height_ratios=heights)
    top = parts[0].subplots(1, 1)
    top.imshow(image, cmap="gray", vmin=0, vmax=255)
    _bare(top)
    top.set_title("input, 28x28 as the model saw it", fontsize=9)
    for part, layer in zip(parts[1:], layers):
        maps = layer.maps[index]
        channels = min(maps.shape[-1], MAX_CHANNELS)
        axes, tiles = _tiles(part, channels, columns)
        signed = maps.min() < 0
        limit = _symmetric(maps[..., :channels])
        for channel, axis in enumerate(tiles):
            shown = axis.imshow(maps[..., channel], cmap=_SIGNED if signed else _MAGNITUDE,
                                vmin=-limit if signed else 0, vmax=limit)
        part.colorbar(shown, ax=axes, shrink=0.9, aspect=10)
        height, width, total = maps.shape
        more = f", first {channels} of {total} channels" if total > channels else ""
        stage = " before its activation" if layer.activation == "linear" else ""
        part.suptitle(f"{layer.name} ({layer.kind}{stage}): {height}x{width}x{total}{more}", fontsize=10)
    figure.suptitle(title)
    return figure


def attributions_figure(image: np.ndarray, rows: list[dict], grad_cam_heading: str | None, title: str, baseline: str):
    """Per explained class (a row): gradient, SmoothGrad, integrated gradients and Grad-CAM, the digit outlined.

    Args:
        image: the 28x28 uint8 input.
        rows: one dict per class: 'label' (the row's heading) and a (28, 28) map per method
            present among 'gradient', 'smoothgrad', 'integrated_gradients', 'grad_cam'.
        grad_cam_heading: the Grad-CAM column's heading (its layer), or None without one.
        baseline: how integrated gradients' baseline is described.
    """
    methods = [("gradient", "|gradient|", _MAGNITUDE), ("smoothgrad", "SmoothGrad", _MAGNITUDE),
               ("integrated_gradients", f"integrated gradients\n(baseline: {baseline})", _SIGNED),
               ("grad_cam", grad_cam_heading or "Grad-CAM", _MAGNITUDE)]
    methods = [method for method in methods if any(method[0] in row for row in rows)]
    figure = new_figure(figsize=(2.6 * (len(methods) + 1), 2.7 * len(rows) + 0.5), layout="constrained")
    axes = figure.subplots(len(rows), len(methods) + 1, squeeze=False)
    for row, row_axes in zip(rows, axes):
        row_axes[0].imshow(image, cmap="gray", vmin=0, vmax=255)
        row_axes[0].set_ylabel(row["label"], fontsize=10)
        for axis, (key, heading, colours) in zip(row_axes[1:], methods):
            values = row.get(key)
            if values is None:
                axis.axis("off")
                continue
            limit = _symmetric(values)
            shown = axis.imshow(values, cmap=colours, vmin=-limit if colours == _SIGNED else 0, vmax=limit)
            _outline(axis, image)
            figure.colorbar(shown, ax=axis, shrink=0.75)
            axis.set_title(heading, fontsize=9)
        for axis in row_axes:
            _bare(axis)
    axes[0][0].set_title("input", fontsize=9)
    figure.suptitle(title)
    return figure


def mistakes_figure(images, labels, predicted, confidence, maps, class_names, title: str):
    """The most confidently wrong digits: true -> predicted (probability), each with its map if given.

    Args:
        maps: (n, 28, 28) integrated gradients of the predicted class (red: what made it say so),
            or None to show the digits alone (an exported file: no gradients).
    """
    count = len(images)
    columns = min(count, 4) or 1
    rows = max(1, -(-count // columns))
    figure = new_figure(figsize=(columns * 2.6, rows * 2.6 + 0.6), layout="constrained")
    for index, axis in enumerate(_tiles(figure, count, columns)[1]):
        if maps is None:
            axis.imshow(images[index], cmap="gray", vmin=0, vmax=255)
        else:
            limit = _symmetric(maps[index])
            axis.imshow(maps[index], cmap=_SIGNED, vmin=-limit, vmax=limit)
            _outline(axis, images[index])
        axis.set_title(f"true {class_names[labels[index]]} -> {class_names[predicted[index]]}\n"
                       f"({confidence[index]:.1%} sure)", fontsize=9)
    figure.suptitle(title)
    return figure


def inputs_figure(images, names: list[str], answers: list[str], title: str):
    """The prepared 28x28 inputs, each with its name and the model's answer."""
    count = len(images)
    columns = min(count, 8)
    rows = -(-count // columns)
    figure = new_figure(figsize=(columns * 1.7, rows * 2.0 + 0.5), layout="constrained")
    for index, axis in enumerate(_tiles(figure, count, columns)[1]):
        axis.imshow(images[index], cmap="gray", vmin=0, vmax=255)
        axis.set_title(f"{names[index][-18:]}\n{answers[index]}", fontsize=8)
    figure.suptitle(title)
    return figure
