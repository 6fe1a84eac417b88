"""Every text table and report the commands print, rendered with tabulate (plain text or Markdown)."""

from __future__ import annotations

from typing import Iterable

_ALIGN = {"l": "left", "r": "right"}


def table(headers: list[str], rows: Iterable[list], align: str | None = None, markdown: bool = False) -> str:
    """A fixed-width text table, or a Markdown (GitHub) table.

    Args:
        headers: the column titles.
        rows: the cells, one list per row; cells are shown as `str(cell)`, never re-parsed as numbers.
        align: one 'l' or 'r' per column (default: the first left, the rest right).
        markdown: a pipe table with alignment markers instead of plain text.
    """
    import tabulate

    align = align or "l" + "r" * (len(headers) - 1)
    cells = [[str(cell) for cell in row] for row in rows]
    # tabulate widens every column by MIN_PADDING beyond its header; columns as wide as their
    # widest cell read better in a terminal. Restored after, for other users of tabulate.
    padding, tabulate.MIN_PADDING = tabulate.MIN_PADDING, 0
    try:
        return tabulate.tabulate(cells, headers=headers, tablefmt="pipe" if markdown else "simple",
                                 colalign=[_ALIGN[a] for a in align], disable_numparse=True)
    finally:
        tabulate.MIN_PADDING = padding


def _count(value) -> str:
    return "?" if value is None else f"{value:,}"


def _percent(value) -> str:
    return "-" if value is None else f"{value:.2%}"


def format_evaluation(report: dict, class_names) -> str:
    """The evaluation report as readable text: summary, per-class table, confusion matrix, top confusions."""
    summary = (
        f"{report.get('split', 'test')} images: {report['num_examples']}    accuracy: {report['accuracy']:.2%}    "
        f"error rate: {1 - report['accuracy']:.2%}    loss (cross-entropy): {report['loss']:.4f}"
    )
    per_class = table(
        ["class", "precision", "recall", "f1", "support"],
        [[row["name"], f"{row['precision']:.4f}", f"{row['recall']:.4f}", f"{row['f1']:.4f}", row["support"]]
         for row in report["per_class"]]
        + [["macro avg", f"{report['macro_avg']['precision']:.4f}", f"{report['macro_avg']['recall']:.4f}",
            f"{report['macro_avg']['f1']:.4f}", report["num_examples"]]],
    )
    short = [str(index) for index in range(len(class_names))]
    matrix = table(["true\\pred", *short], [[short[i], *row] for i, row in enumerate(report["confusion_matrix"])])
    confused = "\n".join(
        f"  {class_names[pair['true']]} -> {class_names[pair['predicted']]}: {pair['count']}"
        for pair in report["most_confused"]
    ) or "  (none)"
    return "\n\n".join([summary, per_class, "confusion matrix (rows: true class, columns: predicted)\n" + matrix,
                        "most confused (true -> predicted: count)\n" + confused])


def format_members(members: list[dict]) -> str:
    """One line per ensemble member: its file, runtime, and accuracy and loss alone."""
    body = [[str(index), member["model"], member["runtime"], f"{member['accuracy']:.2%}", f"{member['loss']:.4f}"]
            for index, member in enumerate(members, start=1)]
    return "members, each alone:\n" + table(["#", "model", "runtime", "accuracy", "loss"], body, align="lllrr")


def format_leaderboard(rows, markdown: bool = False) -> str:
    """The compare leaderboard: one line per run (`report.compare.RunRow`), in the given order."""
    headers = ["run", "model", "config", "parameters", "forward MACs", "epochs", "train s", "s/epoch",
               "best val acc", "test acc"]
    # An ensemble's row has no epochs of its own; its time is its members' added up.
    body = [[row.run, row.model, row.config_name, f"{row.parameters:,}", _count(row.forward_macs),
             "" if row.epochs is None else row.epochs, f"{row.train_seconds:.1f}",
             "" if row.seconds_per_epoch is None else f"{row.seconds_per_epoch:.2f}", _percent(row.best_val_accuracy),
             _percent(row.test_accuracy)] for row in rows]
    return table(headers, body, align="lllrrrrrrr", markdown=markdown)


def format_summary(source: str, rows, total: dict) -> str:
    """The layer table of `summary`: one line per layer (`models.summary.LayerSummary`), then the totals."""
    body = [[row.name, row.kind, str(row.output_shape), f"{row.parameters:,}", _count(row.macs),
             _count(row.macs_bias_as_input)] for row in rows]
    body.append(["total", "", "", f"{total['parameters']:,}", _count(total["macs"]), _count(total["macs_bias_as_input"])])
    text = f"{source}\n\n" + table(["layer", "type", "output shape", "parameters", "MACs", "MACs (bias as input)"],
                                   body, align="lllrrr")
    if total["macs"] is None:
        text += "\n?: MACs of this layer type are not counted; the totals leave them out."
    return text


def format_predictions(records: list[dict]) -> str:
    """One line per predicted input: the best class, then the top-k with probabilities."""
    lines = []
    for record in records:
        if "error" in record:
            continue
        ranking = ", ".join(f"{entry['class']} {entry['probability']:.1%}" for entry in record["top_k"])
        lines.append(f"{record['input']}: {record['prediction']}  ({ranking})")
    return "\n".join(lines)


def format_models(rows: list[tuple[str, int, str]]) -> str:
    """The `models` table from (name, parameters, description) rows."""
    return table(["model", "parameters", "description"],
                 [[name, f"{parameters:,}", description] for name, parameters, description in rows], align="lrl")


def _size(size_bytes: int) -> str:
    return f"{size_bytes / 1e6:.2f} MB" if size_bytes >= 100_000 else f"{size_bytes / 1e3:.1f} kB"


def format_exports(checks, test_images: int) -> str:
    """The export table: per file, its size and what its runtime computed on the test set."""
    headers = ["format", "file", "size", "test acc", "vs Keras", "same class", "max prob diff", "images/s", "1 image"]
    body = [[check.format if check.quantize == "none" else f"{check.format} {check.quantize}", check.path,
             _size(check.size_bytes), f"{check.test_accuracy:.2%}",
             f"{100 * (check.test_accuracy - check.keras_accuracy):+.2f} pts", f"{check.agreement:.2%}",
             f"{check.max_probability_difference:.1e}", f"{check.images_per_second:,.0f}",
             f"{check.single_image_ms:.2f} ms"] for check in checks]
    return (table(headers, body, align="llrrrrrrr")
            + f"\n\nverified on {test_images:,} test images, each file in its own runtime; "
            "'same class': images where it predicts the Keras model's class")


def format_diagnosis(diagnosis) -> str:
    """The doctor's table (`doctor.Diagnosis`), then whether training can run and, if not, why."""
    body = [[check.name, check.value, "PROBLEM" if not check.ok else "WARNING" if check.warning else "ok", check.note]
            for check in diagnosis.checks]
    verdict = "ready to train" if diagnosis.ready else "cannot train: " + "; ".join(
        f"{check.name}: {check.note}" for check in diagnosis.checks if not check.ok)
    return table(["check", "value", "", "note"], body, align="llll") + "\n\n" + verdict


def format_served(models: list[dict]) -> str:
    """The models a server runs, from their GET /api/models descriptions."""
    body = [[model["id"], model["runtime"], model["architecture"] or "?",
             "" if model["parameters"] is None else f"{model['parameters']:,}",
             "not evaluated" if model["test_accuracy"] is None else f"{model['test_accuracy']:.2%}"]
            for model in models]
    return table(["model id", "runtime", "architecture", "parameters", "test acc"], body, align="lllrr")


def format_trials(trials: list[dict], objective: str) -> str:
    """A sweep's trials (`sweep.results.SweepResults.trials`): number, state, objective value, parameters."""
    keys = sorted({key for trial in trials for key in trial["params"]})
    body = [[trial["number"], trial["state"], "" if trial["value"] is None else f"{trial['value']:.4f}",
             trial["epochs"], *[_param(trial["params"].get(key)) for key in keys]] for trial in trials]
    return table(["trial", "state", objective, "epochs", *keys], body, align="rlrr" + "r" * len(keys))


def _param(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
