"""The environment record of a run: versions, device, seed and data checksum."""

from __future__ import annotations

import platform
import sys
from datetime import datetime, timezone

from mnist_zoo import __version__


def onednn_enabled() -> bool | None:
    """Whether TensorFlow runs its oneDNN CPU kernels in this process (see mnist_zoo/__init__.py).

    Returns:
        True or False, or None where this TensorFlow build does not say.
    """
    try:  # TensorFlow's own query; it has no public name.
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return None


def environment_record(
    device: str, precision: str, seed: int, dataset_name: str, dataset_checksum: str, source: str
) -> dict:
    """What produced a run, so that it can be repeated and compared."""
    import keras
    import numpy
    import tensorflow as tf

    return {
        "mnist_zoo": __version__,
        "python": sys.version.split()[0],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "device": device,
        "onednn": onednn_enabled(),
        "precision": precision,
        "seed": seed,
        "dataset": dataset_name,
        "dataset_source": source,
        "dataset_sha256": dataset_checksum,
        "command": sys.argv,
        "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
