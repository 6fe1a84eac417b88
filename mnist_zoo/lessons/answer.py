"""A lesson's answer, measured: the variants ranked by the lesson's measure, in sentences and a Markdown table."""

from __future__ import annotations

from mnist_zoo.lessons.measures import MEASURES, TrialRecord

FRACTIONS = {"test_accuracy", "best_val_accuracy", "final_val_accuracy", "final_accuracy"}
"""Measures kept as fractions (0-1) and shown as percentages."""
CHANCE = 0.10
"""Ten classes: guessing scores 10 %."""
NOT_LEARNING = 0.15
"""An accuracy this close to chance means the network did not learn (zeros and ones initializers)."""


def format_value(name: str, value) -> str:
    """A measure's value as the table and the answer show it."""
    if value is None:
        return "-"
    if name in FRACTIONS:
        return f"{100 * value:.2f} %"
    if name == "generalization_gap":
        return f"{value:+.2f} points"
    if name in ("train_seconds", "seconds_per_epoch"):
        return f"{value:.1f} s" if value >= 10 else f"{value:.2f} s"
    if name == "final_val_loss" or (isinstance(value, float) and not value.is_integer()):
        return f"{value:.3g}"
    return f"{int(value):,}"


def _context(records: list[TrialRecord], named_by: str | None = None) -> str:
    """What the trials had in common, said first: the training budget and the data (unless `named_by` says it)."""
    limits = {record.config.get("train", {}).get("time_limit_seconds") for record in records}
    images = {record.measures.get("train_images") for record in records}
    epochs = {record.measures.get("epochs") for record in records}
    parts = []
    if len(limits) == 1 and None not in limits:
        parts.append(f"after {format_value('train_seconds', limits.pop())} of training")
    elif len(epochs) == 1 and None not in epochs:
        count = epochs.pop()
        parts.append(f"after {format_value('epochs', count)} epoch{'s' if count != 1 else ''}")
    if len(images) == 1 and None not in images and named_by != "train_images":
        parts.append(f"on {images.pop():,} training images")
    return " ".join(parts)


def rank(records: list[TrialRecord], measure: str, higher_is_better: bool) -> list[TrialRecord]:
    """The records best first; those without the measure last."""
    known = [record for record in records if record.measures.get(measure) is not None]
    unknown = [record for record in records if record.measures.get(measure) is None]
    return sorted(known, key=lambda record: record.measures[measure], reverse=higher_is_better) + unknown


def ranking_sentence(records: list[TrialRecord], measure: str, higher_is_better: bool, prefix: str = "",
                     named_by: str | None = None) -> str:
    """'relu reached the highest validation accuracy ..., 97.90 %; then tanh 97.51 %, ..., sigmoid 95.12 %.'

    Variants equal to the best as shown (same figure at the table's precision) share the first
    place: 'relu and elu tied for the highest ...'. Without a figure for any variant, it says so.
    """
    label = MEASURES[measure][0]
    ordered = rank(records, measure, higher_is_better)
    shown = [format_value(measure, record.measures.get(measure)) for record in ordered]
    if ordered[0].measures.get(measure) is None:
        return f"{prefix}No variant has a measured {label}."
    leaders = [record.variant for record, text in zip(ordered, shown) if text == shown[0]]
    word = "highest" if higher_is_better else "lowest"
    context = _context(records, named_by)
    if len(leaders) == 1:
        sentence = f"{prefix}{leaders[0]} reached the {word} {label}"
    else:
        sentence = f"{prefix}{', '.join(leaders[:-1])} and {leaders[-1]} tied for the {word} {label}"
    sentence += f"{' ' + context if context else ''}: {shown[0]}"
    rest = [(record.variant, text) for record, text in zip(ordered, shown) if record.variant not in leaders]
    if rest:
        sentence += "; then " + ", ".join(f"{variant} {text}" for variant, text in rest)
    return sentence + "."


def answer_sentences(records: list[TrialRecord], spec) -> list[str]:
    """The answer, computed from the results: one ranking (or one per value of `answer.per`), then failures.

    Args:
        records: the finished trials.
        spec: the `LessonSpec`.
    """
    answer = spec.answer
    if not records:
        return ["No variant has finished yet."]
    sentences = []
    if answer.per is None:
        sentences.append(ranking_sentence(records, answer.by, answer.higher_is_better))
    else:
        groups: dict = {}
        for record in records:
            groups.setdefault(_hashable(record.params.get(answer.per)), []).append(record)
        for value, group in groups.items():
            shown = shown_values(group, answer)
            name = (f"{format_value(answer.per_shown_as, shown.pop())} {MEASURES[answer.per_shown_as][0]}"
                    if len(shown) == 1 else f"{answer.per}={value}")
            sentences.append(ranking_sentence(group, answer.by, answer.higher_is_better, f"With {name}: ",
                                              answer.per_shown_as if len(shown_values(group, answer)) == 1 else None))
    stuck = [record for record in records
             if record.measures.get("test_accuracy") is not None and record.measures["test_accuracy"] <= NOT_LEARNING]
    if stuck:
        names = ", ".join(f"{record.variant} ({format_value('test_accuracy', record.measures['test_accuracy'])})"
                          for record in stuck)
        sentences.append(f"Did not learn, at or near chance ({100 * CHANCE:.0f} %) on the test set: {names}.")
    return sentences


def shown_values(group: list[TrialRecord], answer) -> set:
    """The values of `answer.per_shown_as` in a `per` group (one, when it names the group)."""
    if not answer.per_shown_as:
        return set()
    return {record.measures.get(answer.per_shown_as) for record in group} - {None}


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


def table_columns(spec) -> list[str]:
    """The table's measures: what names a `per` group, the ranking one, the lesson's `also`, the cost of each run."""
    columns = [*([spec.answer.per_shown_as] if spec.answer.per_shown_as else []), spec.answer.by, *spec.answer.also,
               "epochs", "train_seconds"]
    return list(dict.fromkeys(columns))


def markdown_text(text: str) -> str:
    """Text from a lesson file made inert in Markdown: no table cells, links, images or HTML of its own."""
    for character in "\\|[]<>`*_":
        text = text.replace(character, "\\" + character)
    return text


def markdown_table(records: list[TrialRecord], spec) -> str:
    """The results as a Markdown table, one row per trial in grid order."""
    columns = table_columns(spec)
    header = ["variant", *(MEASURES[name][0] for name in columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for record in records:
        lines.append("| " + " | ".join([markdown_text(record.variant), *(format_value(name, record.measures.get(name))
                                                                          for name in columns)]) + " |")
    return "\n".join(lines)
