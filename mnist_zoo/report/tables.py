"""Plain-text tables for the terminal."""

from __future__ import annotations


def table(headers: list[str], rows: list[list], align: str | None = None) -> str:
    """A fixed-width text table; `align` is one 'l' or 'r' per column (default: first left, rest right)."""
    align = align or "l" + "r" * (len(headers) - 1)
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(headers[i]), *(len(row[i]) for row in cells)) if cells else len(headers[i])
              for i in range(len(headers))]

    def line(values):
        return "  ".join(v.ljust(w) if a == "l" else v.rjust(w) for v, w, a in zip(values, widths, align)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(row) for row in cells])


def format_evaluation(report: dict, class_names) -> str:
    """The evaluation report as readable text: summary, per-class table, confusion matrix, top confusions."""
    summary = (
        f"test images: {report['num_examples']}    accuracy: {report['accuracy']:.2%}    "
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


def markdown_table(headers: list[str], rows: list[list], align: str | None = None) -> str:
    """A Markdown (GitHub) table; `align` as for `table`."""
    align = align or "l" + "r" * (len(headers) - 1)
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = [headers, rule, *[[str(cell) for cell in row] for row in rows]]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)
