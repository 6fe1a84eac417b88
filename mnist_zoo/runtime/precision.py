"""Chooses the numeric precision (Keras dtype policy) of a run and applies it only inside a scope."""

from __future__ import annotations

import contextlib

from mnist_zoo.runtime.device import cpuinfo_field

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
"""The Keras dtype policies a run may train in."""

# CPU flags of native bf16 arithmetic (AVX-512 BF16 on Zen 4 / Cooper Lake, AMX on Sapphire Rapids).
BF16_CPU_FLAGS = {"avx512_bf16", "amx_bf16"}

BF16_MIN_MACS_PER_IMAGE = 1_000_000
"""Below this many multiply-accumulates per image, `auto` keeps a CPU run in float32.

bf16 pays where the convolutions' arithmetic dominates a step: the default CNN (4.8 M MACs) trains
about a third faster in bf16 at the same accuracy. Smaller models spend their step on casts, small
kernels and the optimizer: the MLPs and the linear model (0.41 M MACs or less) mostly gain no time,
and the lab CNN (0.69 M) lost 0.16 points of test accuracy on a Zen 4 and 0.2 on an AMX Xeon. The
figures, per bundled config and CPU, are in docs/benchmarks.md (Precision), from scripts/precision_study.py."""


def cpu_flags() -> set[str]:
    """The CPU feature flags from /proc/cpuinfo (empty where there is none)."""
    return set((cpuinfo_field("flags") or "").split())


def auto_precision(on_gpu: bool, gpu_compute_capability: tuple[int, int] | None = None, flags=None,
                   macs_per_image: int | None = None) -> str:
    """The fastest precision that keeps accuracy for this model on this hardware.

    Args:
        on_gpu: whether training runs on a CUDA GPU.
        gpu_compute_capability: (major, minor) of that GPU; tensor cores need >= (7, 0).
        flags: CPU feature flags (default: read from /proc/cpuinfo).
        macs_per_image: the model's forward multiply-accumulates per image (None: unknown,
            taken as large).

    Returns:
        'mixed_float16' on tensor-core GPUs; 'mixed_bfloat16' on CPUs with native bf16 for
        models of at least `BF16_MIN_MACS_PER_IMAGE`; 'float32' elsewhere (emulated bf16 is
        several times slower than float32).
    """
    if on_gpu:
        return "mixed_float16" if (gpu_compute_capability or (0, 0)) >= (7, 0) else "float32"
    flags = cpu_flags() if flags is None else flags
    if not flags & BF16_CPU_FLAGS:
        return "float32"
    if macs_per_image is not None and macs_per_image < BF16_MIN_MACS_PER_IMAGE:
        return "float32"
    return "mixed_bfloat16"


def resolve_precision(requested: str, device, macs_per_image: int | None = None,
                      recorded: str | None = None) -> str:
    """The precision a run trains in.

    Args:
        requested: the config's `train.precision` ('auto' or a policy name).
        device: the `DeviceInfo` training runs on.
        macs_per_image: the model's forward multiply-accumulates per image, for 'auto'.
        recorded: the precision a resumed run started with (its environment.json). A run keeps
            it wherever it resumes: its optimizer state (loss scale, step count) and its numbers
            belong to that precision.

    Returns:
        A policy name from `PRECISIONS`.
    """
    if recorded is not None:
        if recorded not in PRECISIONS:
            raise ValueError(f"recorded precision {recorded!r} is not one of {', '.join(PRECISIONS)}")
        return recorded
    if requested == "auto":
        return auto_precision(device.is_gpu, device.compute_capability, macs_per_image=macs_per_image)
    return requested


def is_native(precision: str, device, flags=None) -> bool:
    """Whether `device` computes `precision` in hardware (False: emulated, several times slower)."""
    if precision == "float32":
        return True
    if device.is_gpu:
        return precision == "mixed_float16" and (device.compute_capability or (0, 0)) >= (7, 0) or (
            precision == "mixed_bfloat16" and (device.compute_capability or (0, 0)) >= (8, 0))
    flags = cpu_flags() if flags is None else flags
    return precision == "mixed_bfloat16" and bool(flags & BF16_CPU_FLAGS)


@contextlib.contextmanager
def precision_scope(precision: str):
    """Makes `precision` Keras's dtype policy inside the `with`, and restores the previous one after.

    Layers take the policy when they are built, so a model built inside keeps it; models built
    after the `with` get the caller's policy again (a notebook's next model is not silently bf16).

    Args:
        precision: a policy name from `PRECISIONS`.
    """
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield precision
    finally:
        keras.config.set_dtype_policy(previous)
