"""`mnist-zoo lesson list`: one line per bundled lesson, its question and how long each mode takes."""

from __future__ import annotations


def _minutes(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:.0f} min" if value >= 1.5 else f"{60 * value:.0f} s"


def lesson_rows() -> list[dict]:
    """Each bundled lesson: its name, question, and measured minutes per mode (None: not measured)."""
    from mnist_zoo.lessons.spec import bundled_lesson_names, load_lesson

    rows = []
    for name in bundled_lesson_names():
        spec = load_lesson(name).spec
        rows.append({"name": name, "question": spec.question, "quick_minutes": spec.minutes.get("quick"),
                     "full_minutes": spec.minutes.get("full"), "measured_on": spec.measured_on})
    return rows


def lesson_lines() -> list[str]:
    """The lines `lesson list` prints."""
    rows = lesson_rows()
    width = max(len(row["name"]) for row in rows)
    lines = [f"{row['name']:<{width}}  {row['question']}  (quick {_minutes(row['quick_minutes'])}, "
             f"full {_minutes(row['full_minutes'])})" for row in rows]
    measured = sorted({row["measured_on"] for row in rows if row["measured_on"]})
    if measured:
        lines.append(f"times measured on {'; '.join(measured)}")
    return lines
