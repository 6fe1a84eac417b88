"""Argument checks and message routing that every `mz.*` function shares."""

from __future__ import annotations

import sys
from typing import Callable

Reporter = Callable[[str], None]


def check_choice(name: str, value, allow_none: bool = False) -> None:
    """Refuses a `device`, `dataset` or `split` the CLI's choices would refuse, naming the accepted ones.

    Raises:
        ValueError: not one of the choices.
    """
    from mnist_zoo.data.catalog import DATASETS, EVALUATION_SPLITS
    from mnist_zoo.runtime.device import DEVICES

    choices = {"device": DEVICES, "dataset": DATASETS, "split": EVALUATION_SPLITS}[name]
    if (value is None and allow_none) or value in choices:
        return
    raise ValueError(f"{name}={value!r}: expected one of {', '.join(map(repr, choices))}")


def reporter(verbose, report: Reporter | None) -> Reporter:
    """Where one-line messages go: `report`, else stderr unless `verbose` is 0."""
    if report is not None:
        return report
    if verbose == 0:
        return lambda message: None
    return lambda message: print(message, file=sys.stderr, flush=True)
