"""A lesson's figures, sized for a slide (1280x720): the question as title, units on the axes, one colour per variant."""

from __future__ import annotations

from pathlib import Path

from mnist_zoo.lessons.answer import FRACTIONS
from mnist_zoo.lessons.measures import CURVE_LABELS, MEASURES, TrialRecord

SLIDE_INCHES = (12.8, 7.2)
SLIDE_DPI = 100


def variant_colours(records: list[TrialRecord]) -> dict[str, tuple]:
    """One colour per variant (the `variant` value, else the label), in the lesson's order: the same in every plot."""
    import matplotlib

    names = list(dict.fromkeys(_group(record) for record in records))
    palette = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"].colors
    return {name: palette[index % len(palette)] for index, name in enumerate(names)}


def _group(record: TrialRecord) -> str:
    return str(record.params.get("variant", record.variant))


def plain(text: str) -> str:
    """Text from a lesson file drawn as it is: a `$` would start matplotlib's math mode (and may not parse)."""
    return str(text).replace("$", r"\$")


CONFIG_LABELS = {"train.batch_size": "batch size (images per step)", "train.epochs": "epochs",
                 "data.train_limit": "training and validation images (data.train_limit)",
                 "train.optimizer.learning_rate": "learning rate"}


def _axis_label(name: str) -> str:
    if name in CONFIG_LABELS:
        return CONFIG_LABELS[name]
    if name in MEASURES:
        label, unit = MEASURES[name]
        return f"{label} ({unit})" if unit else label
    return name


def _scaled(name: str, value):
    return None if value is None else (100 * value if name in FRACTIONS or name in ("val_accuracy", "accuracy")
                                       else value)


def draw_plot(plot, records: list[TrialRecord], question: str, path: Path, colours: dict) -> None:
    """Draws one `PlotSpec` of the records into `path` (a PNG, written atomically)."""
    from matplotlib.figure import Figure

    from mnist_zoo import rundir

    figure = Figure(figsize=SLIDE_INCHES, dpi=SLIDE_DPI)
    axis = figure.add_subplot()
    if plot.kind == "curves":
        _curves(axis, plot, records, colours)
    else:
        _points(axis, plot, records, colours)
    axis.set_title(plain(plot.title or question), fontsize=18, pad=12)
    axis.grid(True, alpha=0.3)
    axis.tick_params(labelsize=12)
    for scaled, which in ((plot.log_x, axis.xaxis), (plot.log_y, axis.yaxis)):
        if scaled:
            _plain_log_axis(axis, which)
    figure.tight_layout()
    with rundir.atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")


def _plain_number(value, position=None) -> str:
    """0.3, 2, 1,000, 10,000, 1e-5: a slide's numbers, not 3x10^-1 or 1e+04."""
    if value >= 1 and float(value).is_integer():
        return f"{value:,.0f}"
    if value < 1e-3:
        return f"{value:.0e}".replace("e-0", "e-")
    return f"{value:.2g}"


def _plain_log_axis(axis, which) -> None:
    """A log scale labelled in plain numbers, more often over a narrow range, the other ticks unlabelled."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    import math

    if which is axis.xaxis:
        axis.set_xscale("log")
        low, high = axis.get_xlim()
    else:
        axis.set_yscale("log")
        low, high = axis.get_ylim()
    decades = math.log10(high / low) if low > 0 and high > low else 1.0
    # Enough labels to read a value off a narrow range; one per decade over a wide one.
    subs = (1.0, 2.0, 3.0, 5.0) if decades <= 2 else (1.0, 3.0) if decades <= 4 else (1.0,)
    which.set_major_locator(LogLocator(base=10, subs=subs))
    which.set_major_formatter(FuncFormatter(_plain_number))
    which.set_minor_formatter(NullFormatter())


def _curves(axis, plot, records, colours) -> None:
    from matplotlib.lines import Line2D

    longest = max((len(record.history) for record in records), default=0)
    marker = "o" if longest <= 30 else None  # over many epochs, markers would hide the lines
    for record in records:
        colour = colours[_group(record)]
        epochs = [entry["epoch"] for entry in record.history]
        values = [_scaled(plot.y, entry.get(plot.y)) for entry in record.history]
        axis.plot(epochs, values, marker=marker, markersize=4, linewidth=2.2, color=colour, label=plain(record.variant))
        if plot.training_too:
            training = plot.y.removeprefix("val_")
            axis.plot(epochs, [_scaled(training, entry.get(training)) for entry in record.history],
                      linestyle="--", linewidth=1.8, color=colour)
    axis.set_xlabel("epoch", fontsize=14)
    label = CURVE_LABELS[plot.y]
    if plot.training_too:  # both are drawn: the metric, not its validation half
        label = label.replace("validation ", "")
    axis.set_ylabel(label, fontsize=14)
    handles, labels = axis.get_legend_handles_labels()
    if plot.training_too:
        handles += [Line2D([], [], color="black", linewidth=2.2), Line2D([], [], color="black", linestyle="--")]
        labels += ["validation", "training"]
    axis.legend(handles, labels, fontsize=12, loc="best")
    if max((entry["epoch"] for record in records for entry in record.history), default=1) <= 20:
        axis.xaxis.get_major_locator().set_params(integer=True)


def _points(axis, plot, records, colours) -> None:
    categorical = plot.x == "variant"
    groups: dict[str, list] = {}
    for index, record in enumerate(records):
        x = index if categorical else record.value(plot.x)
        y = _scaled(plot.y, record.measures.get(plot.y))
        if x is None or y is None:
            continue
        groups.setdefault(_group(record), []).append((x, y, record))
    several = any(len(points) > 1 for points in groups.values())
    for name, points in groups.items():
        points.sort(key=lambda point: point[0])
        xs, ys = [point[0] for point in points], [point[1] for point in points]
        axis.plot(xs, ys, marker="o", markersize=9, linewidth=2.2 if several else 0, color=colours[name],
                  label=plain(name))
        if not several:
            for x, y, _ in points:
                axis.annotate(plain(name), (x, y), textcoords="offset points", xytext=(8, 6), fontsize=12)
    # A variant's own config reference sits at its point's size: the legend names it, no label needed.
    references = [(point.label, point.x, point.y) for point in plot.references]
    if plot.config_references and plot.x in ("parameters",) and plot.y == "test_accuracy":
        for record in records:
            reference = record.config.get("reference") or {}
            if reference.get("parameters") and reference.get("test_accuracy"):
                references.append((None, reference["parameters"], 100 * reference["test_accuracy"]))
    widest = max([x for points in groups.values() for x, _, _ in points] + [x for _, x, _ in references],
                 default=0)
    for index, (label, x, y) in enumerate(references):
        axis.plot([x], [y], marker="D", markersize=10, markerfacecolor="none", markeredgecolor="black",
                  markeredgewidth=1.6, linestyle="none", label="course material" if index == 0 else None)
        if label is not None:
            # Left of a point at the right edge, so that the label stays inside the axes.
            rightmost = not categorical and x >= widest
            axis.annotate(plain(label), (x, y), textcoords="offset points", xytext=(-10 if rightmost else 8, -18),
                          ha="right" if rightmost else "left", fontsize=11, color="dimgray")
    xs = [x for points in groups.values() for x, _, _ in points]
    if not categorical and not plot.log_x and xs and all(float(x).is_integer() for x in xs):
        from matplotlib.ticker import MaxNLocator

        axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # 1, 2, 3 hidden layers: no 2.5
    if categorical:
        axis.set_xticks(range(len(records)), [plain(record.variant) for record in records], fontsize=12)
        axis.set_xlabel("variant", fontsize=14)
    else:
        axis.set_xlabel(_axis_label(plot.x), fontsize=14)
    axis.set_ylabel(_axis_label(plot.y), fontsize=14)
    axis.legend(fontsize=12, loc="best")
