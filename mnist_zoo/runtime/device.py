"""Chooses the compute device (CPU or a CUDA GPU) before TensorFlow starts using one."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

from mnist_zoo.errors import DeviceError

DEVICES = ("auto", "cpu", "gpu")
"""What `train.device` and `--device` accept: auto is a GPU if TensorFlow sees one, else the CPU."""


@dataclass(frozen=True)
class DeviceInfo:
    """The device training runs on."""

    description: str
    is_gpu: bool = False
    compute_capability: tuple[int, int] | None = None


def cpuinfo_field(name: str) -> str | None:
    """The value of the first `name` line of /proc/cpuinfo (None where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, colon, value = line.partition(":")
            # The whole key: "model" must not answer with a "model name" line that comes first.
            if colon and key.strip() == name:
                return value.strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    """The CPU model name from /proc/cpuinfo, or what `platform` knows."""
    return cpuinfo_field("model name") or platform.processor() or platform.machine()


def _hide_gpus(tf) -> None:
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:
        # Only possible once TensorFlow has started in this process (library use, not the CLI).
        if tf.config.get_visible_devices("GPU"):
            raise DeviceError(
                "cannot switch to the CPU: TensorFlow already started on the GPU in this process; "
                "select the device before any other TensorFlow work (the CLI always does)"
            ) from None


def select_device(requested: str) -> DeviceInfo:
    """Makes TensorFlow use the requested device and describes the one it will use.

    Args:
        requested: 'auto' (a GPU if TensorFlow sees one, else the CPU), 'cpu' or 'gpu'.

    Returns:
        A `DeviceInfo` whose description reads like 'GPU:0 (NVIDIA A100)' or 'CPU (AMD EPYC ...)'.

    Raises:
        DeviceError: 'gpu' was requested and TensorFlow sees none.
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if requested == "cpu" or (requested == "auto" and not gpus):
        if gpus:
            _hide_gpus(tf)
        return DeviceInfo(f"CPU ({cpu_name()})")
    if not gpus:
        seen = ", ".join(device.name for device in tf.config.list_physical_devices()) or "nothing"
        raise DeviceError(
            f"--device gpu was requested but TensorFlow sees no GPU (it sees: {seen}); "
            "install the CUDA build (pip install 'mnist-zoo[cuda]') or use --device cpu"
        )
    for gpu in gpus:
        # Without memory growth TensorFlow reserves the whole GPU memory up front.
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            pass  # TensorFlow already started in this process; its memory setting stays.
    details = tf.config.experimental.get_device_details(gpus[0])
    return DeviceInfo(
        f"GPU:0 ({details.get('device_name', gpus[0].name)})",
        is_gpu=True,
        compute_capability=details.get("compute_capability"),
    )
