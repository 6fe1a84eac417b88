"""Chooses the numeric precision (Keras dtype policy) for the device in use."""

from __future__ import annotations

from mnist_zoo.device import cpuinfo_field

# CPU flags of native bf16 arithmetic (AVX-512 BF16 on Zen 4 / Cooper Lake, AMX on Sapphire Rapids).
_BF16_CPU_FLAGS = {"avx512_bf16", "amx_bf16"}


def cpu_flags() -> set[str]:
    """The CPU feature flags from /proc/cpuinfo (empty where there is none)."""
    return set((cpuinfo_field("flags") or "").split())


def auto_precision(on_gpu: bool, gpu_compute_capability: tuple[int, int] | None = None, flags=None) -> str:
    """The fastest precision that keeps accuracy on this hardware.

    Args:
        on_gpu: whether training runs on a CUDA GPU.
        gpu_compute_capability: (major, minor) of that GPU; tensor cores need >= (7, 0).
        flags: CPU feature flags (default: read from /proc/cpuinfo).

    Returns:
        'mixed_float16' on tensor-core GPUs, 'mixed_bfloat16' on CPUs with native bf16,
        'float32' elsewhere (emulated bf16 is several times slower than float32).
    """
    if on_gpu:
        return "mixed_float16" if (gpu_compute_capability or (0, 0)) >= (7, 0) else "float32"
    flags = cpu_flags() if flags is None else flags
    return "mixed_bfloat16" if flags & _BF16_CPU_FLAGS else "float32"


def apply_precision(requested: str, device) -> str:
    """Sets Keras's global dtype policy for `requested` ('auto' resolved for `device`).

    Args:
        requested: 'auto', 'float32', 'mixed_bfloat16' or 'mixed_float16'.
        device: the `DeviceInfo` training runs on.

    Returns:
        The policy name in force.
    """
    import keras

    policy = auto_precision(device.is_gpu, device.compute_capability) if requested == "auto" else requested
    keras.mixed_precision.set_global_policy(policy)
    return policy
