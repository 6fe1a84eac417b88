"""Why a test may skip: each reason once, with how to run what it skips, and whether CI may skip it.

Every skip in the suite goes through `skip_for(need)`, so its reason starts with `[need]`. With
`CI=true` a skip whose need is not allowed in CI, and any skip that names no need at all (a bare
`pytest.skip`, an `importorskip`), is turned into a failure by conftest.py: CI runs every test.
Without CI, the end of the run says in one line per need how many tests skipped and how to run them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Need:
    """What a skipped test needs.

    Args:
        what: what is missing, as in "N tests need {what}".
        how: how a developer gets it.
        allowed_in_ci: why CI may skip such a test; None when CI must never skip it.
    """

    what: str
    how: str
    allowed_in_ci: str | None = None


NEEDS = {
    "mnist": Need(
        "the MNIST files",
        "run `mnist-zoo train --model linear --epochs 1` once (it downloads them into the cache the suite "
        "looks in), or set MNIST_ZOO_TEST_DATA to a folder holding mnist/"),
    "fashion_mnist": Need(
        "the Fashion-MNIST files",
        "run `mnist-zoo train --model linear --epochs 1 --dataset fashion_mnist` once, or set "
        "MNIST_ZOO_TEST_DATA to a folder holding fashion_mnist/"),
    "extra": Need("a package of the test install", "pip install -e '.[test]'"),
    "chromium": Need("Debian's chromium", "apt-get install chromium"),
    "postgresql": Need("PostgreSQL's server programs", "apt-get install postgresql"),
    "tmpfs": Need(
        "the right to mount a tmpfs", "run the suite as root with CAP_SYS_ADMIN (the injected-error tests of "
        "test_disk.py cover the same writes without it)"),
    "console-script": Need("the `mnist-zoo` console script on PATH", "pip install -e ."),
    "gpu-hidden": Need(
        "the GPU hidden", "unset MNIST_ZOO_TEST_GPU",
        allowed_in_ci="only with MNIST_ZOO_TEST_GPU=1 on a GPU machine, where the GPU checks run instead"),
    "x86": Need(
        "an x86-64 CPU", "run on an x86-64 machine",
        allowed_in_ci="oneDNN's x86 kernels are a build option of x86 TensorFlow only"),
}

_TAG = re.compile(r"^\[([a-z0-9_-]+)\] ")


def skip_for(need: str, detail: str, *, module: bool = False) -> None:
    """Skips the running test (or module) because `need` is missing; `detail` says what was looked for."""
    if need not in NEEDS:
        raise ValueError(f"unknown need {need!r}; expected one of {sorted(NEEDS)} (tests/skips.py)")
    pytest.skip(f"[{need}] {detail}", allow_module_level=module)


def import_or_skip(module_name: str):
    """`pytest.importorskip` for a package of the test install: the skip names the `extra` need."""
    import importlib

    try:
        return importlib.import_module(module_name)
    except ImportError as error:
        skip_for("extra", f"cannot import {module_name} ({error})", module=True)


def need_of(reason: str) -> str | None:
    """The need a skip reason names (`[need] ...`), or None for a skip that names none."""
    match = _TAG.match(reason)
    return match.group(1) if match and match.group(1) in NEEDS else None


def allowed_in_ci(reason: str) -> bool:
    need = need_of(reason)
    return need is not None and NEEDS[need].allowed_in_ci is not None
