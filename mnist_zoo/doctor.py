"""The doctor stage: what a user needs to know before training, each fact checked on this machine."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mnist_zoo.rundir import DEFAULT_RUNS_ROOT

# The CPU flags that decide kernels and precision: AVX2 and AVX-512 for the float32 kernels,
# AVX512-BF16 and AMX for native bf16 (what `precision: auto` looks for), VNNI for int8.
RELEVANT_CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")

SAFE_KERAS = "3.14"
"""The oldest Keras whose safe mode no published advisory bypasses; pyproject.toml's keras floor.

Before it, a crafted .keras file runs code of its author's choosing when loaded, safe mode on:
CVE-2025-1550 (module and function names in config.json, fixed in 3.9), CVE-2025-8747 and
CVE-2025-9906 (config.json turning unsafe deserialization back on, 3.11), CVE-2026-1462 (a
TFSMLayer loading an attacker's SavedModel, 3.14). 3.14 also fixes CVE-2026-0897 (HDF5 weights
declaring huge shapes) and GHSA-hqp4-2352-xf5r (path traversal while extracting archives).
docs/security.md has the table of every floor; tests/test_doctor.py keeps the pin and this equal.
"""


@dataclass(frozen=True)
class Check:
    """One line of the diagnosis."""

    name: str
    value: str
    ok: bool = True
    """False: training cannot run as things stand."""
    note: str = ""
    """Why, or what to do."""
    warning: bool = False
    """True: training can run, but something needs the user's attention (the note says what)."""


@dataclass(frozen=True)
class Diagnosis:
    """Every check, in order; `ready` when none of them stops training."""

    checks: list[Check]

    @property
    def ready(self) -> bool:
        return all(check.ok for check in self.checks)

    def as_dict(self) -> dict:
        return {"ready": self.ready, "checks": [asdict(check) for check in self.checks]}

    def __str__(self) -> str:
        from mnist_zoo.report.tables import format_diagnosis

        return format_diagnosis(self)


@dataclass(frozen=True)
class GpuProbes:
    """What decides whether TensorFlow can see an NVIDIA GPU, each probed on this machine."""

    visible_devices: str | None = None
    """$CUDA_VISIBLE_DEVICES (None: unset)."""
    built_with_cuda: bool = False
    """TensorFlow's own answer (`tf.test.is_built_with_cuda()`)."""
    cuda_libraries: bool = False
    """The CUDA user-space libraries that `tensorflow[and-cuda]` brings (nvidia-* wheels)."""
    driver: bool = False
    """An NVIDIA kernel driver (/proc/driver/nvidia) or its libcuda library."""
    gpus: list[str] = field(default_factory=list)
    """The GPUs TensorFlow lists."""


def probe_gpu() -> GpuProbes:
    """Probes this machine (imports TensorFlow)."""
    import ctypes.util
    import importlib.metadata

    import tensorflow as tf

    distributions = {dist.metadata["Name"].lower() for dist in importlib.metadata.distributions() if dist.metadata["Name"]}
    return GpuProbes(
        visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
        built_with_cuda=bool(tf.test.is_built_with_cuda()),
        cuda_libraries=any(name.startswith("nvidia-cudnn") or name.startswith("nvidia-cuda-runtime")
                           for name in distributions),
        driver=Path("/proc/driver/nvidia/version").exists() or ctypes.util.find_library("cuda") is not None,
        gpus=[device.name for device in tf.config.list_physical_devices("GPU")],
    )


def gpu_absence_reason(probes: GpuProbes) -> str:
    """The most likely reason TensorFlow sees no GPU, from the probes (checked, not guessed)."""
    if probes.visible_devices is not None and probes.visible_devices.strip() in ("", "-1"):
        return f"CUDA_VISIBLE_DEVICES is {probes.visible_devices!r}, which hides every GPU; unset it to use one"
    if not probes.driver:
        return "no NVIDIA driver found (/proc/driver/nvidia, libcuda): no NVIDIA GPU, or its driver is not installed"
    if not probes.built_with_cuda:
        return "this TensorFlow build has no CUDA support; pip install 'mnist-zoo[cuda]'"
    if not probes.cuda_libraries:
        return "TensorFlow's CUDA libraries are not installed: pip install 'mnist-zoo[cuda]' (tensorflow[and-cuda])"
    return "driver, CUDA build and libraries are all present, yet TensorFlow lists no GPU; run with --debug for its log"


def default_run_config(name: str):
    """A `RunConfig` of the registered model `name` with every default: what doctor measures.

    From the registry alone, so that a model type needs no bundled config of the same name.
    """
    from mnist_zoo.config.loading import validate_config

    return validate_config({"name": name, "model": {"type": name}}, f"the registry's {name}")


def _precision_check(flags: set[str]) -> Check:
    from mnist_zoo.models.registry import MODELS
    from mnist_zoo.runtime.precision import BF16_CPU_FLAGS, BF16_MIN_MACS_PER_IMAGE, auto_precision
    from mnist_zoo.training.stage import macs_per_image

    if not flags & BF16_CPU_FLAGS:
        return Check("precision: auto (CPU)", "float32",
                     note=f"no native bf16 ({' or '.join(sorted(BF16_CPU_FLAGS))}): emulated bf16 would be slower")
    choices = []
    for name in MODELS:
        macs = macs_per_image(default_run_config(name))
        choices.append(f"{name} {auto_precision(False, flags=flags, macs_per_image=macs)}")
    return Check("precision: auto (CPU)", ", ".join(choices),
                 note=f"native bf16: mixed_bfloat16 for models of {BF16_MIN_MACS_PER_IMAGE / 1e6:.0f} M+ MACs per image")


def _data_check(dataset: str, data_dir: str | None) -> Check:
    from mnist_zoo.data import download
    from mnist_zoo.data.catalog import DOWNLOAD_FILES
    from mnist_zoo.data.datasets import DATA_DIR_ENV, load_dataset
    from mnist_zoo.errors import DataError

    data_dir = data_dir or os.environ.get(DATA_DIR_ENV)
    if data_dir:
        try:
            data = load_dataset(dataset, data_dir)
        except DataError as error:
            return Check(f"data: {dataset}", str(data_dir), ok=False, note=str(error))
        return Check(f"data: {dataset}", data.source,
                     note=f"{len(data.train_images):,} training and {len(data.test_images):,} test images read")
    folder = download.cache_dir(dataset)
    verified = [name for name in DOWNLOAD_FILES if download.is_verified(folder / name, dataset)]
    if len(verified) == len(DOWNLOAD_FILES):
        return Check(f"data: {dataset}", str(folder), note="download cache: all 4 files match the published checksums")
    return Check(f"data: {dataset}", str(folder),
                 note=f"download cache has {len(verified)} of 4 verified files: the rest is downloaded on first use "
                      "(needs internet; offline, pass --data-dir)")


def keras_safe_mode_check(version: str) -> Check:
    """Whether Keras `version` is at least SAFE_KERAS; below it, a warning that says what to do."""
    from packaging.version import InvalidVersion, Version

    floor = Version(SAFE_KERAS).release
    try:
        safe = Version(version).release >= floor
    except InvalidVersion:
        safe = False
    if safe:
        return Check("Keras safe mode", f"Keras {version} >= {SAFE_KERAS}",
                     note="no published advisory bypasses safe mode in this version")
    return Check("Keras safe mode", f"WARNING: Keras {version} < {SAFE_KERAS}", warning=True,
                 note=f"safe mode in Keras {version} can be bypassed by a crafted .keras file, which then runs "
                      "its own code when mnist-zoo loads it to evaluate, predict, serve or export (CVE-2025-1550, "
                      f"CVE-2025-9906, CVE-2026-1462); upgrade: pip install -U 'keras>={SAFE_KERAS}'")


def _runs_check(runs_dir: Path) -> Check:
    runs_dir = Path(runs_dir)
    existing = next((folder for folder in (runs_dir, *runs_dir.resolve().parents) if folder.exists()), None)
    writable = existing is not None and existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)
    if writable:
        return Check("runs folder", str(runs_dir), note="writable" if runs_dir.exists() else "can be created")
    return Check("runs folder", str(runs_dir), ok=False,
                 note=f"{existing} is not a writable folder; pass --output-dir to train")


def smoke_step_ms(model_name: str, images, labels) -> float:
    """Builds the registry's default `model_name`, trains one batch, and times a second training step (ms)."""
    from mnist_zoo.models.registry import build_model
    from mnist_zoo.training.stage import compile_model

    config = default_run_config(model_name)
    model = build_model(config.model)
    compile_model(model, config, steps_per_epoch=1, fast_paths=False)
    x = (images.astype("float32") / 255)[..., None]
    y = np.eye(10, dtype="float32")[labels] if config.train.loss.one_hot_labels else labels
    model.train_on_batch(x, y)  # the first step traces the graph
    start = time.perf_counter()
    model.train_on_batch(x, y)
    return 1000 * (time.perf_counter() - start)


def diagnose(dataset: str = "mnist", data_dir: str | None = None, runs_dir: Path = DEFAULT_RUNS_ROOT,
             smoke: bool = False, probes: GpuProbes | None = None) -> Diagnosis:
    """Checks what training needs on this machine.

    Args:
        dataset: the data set whose source is checked.
        data_dir: a data folder to check instead of $MNIST_ZOO_DATA_DIR or the download cache.
        runs_dir: the folder new runs go into.
        smoke: also train one batch of each registry model and time a step.
        probes: GPU probes to use instead of probing (tests).
    """
    import platform

    import keras
    import tensorflow as tf

    from mnist_zoo import __version__
    from mnist_zoo.runtime.device import cpu_name
    from mnist_zoo.runtime.environment import onednn_enabled
    from mnist_zoo.runtime.precision import cpu_flags

    flags = cpu_flags()
    checks = [
        Check("mnist-zoo", __version__),
        Check("Python", platform.python_version()),
        Check("TensorFlow, Keras, numpy", f"{tf.__version__}, {keras.__version__}, {np.__version__}"),
        keras_safe_mode_check(keras.__version__),
        Check("CPU", f"{cpu_name()}, {os.cpu_count()} cores"),
        Check("CPU flags", " ".join(flag for flag in RELEVANT_CPU_FLAGS if flag in flags) or "none of "
              + ", ".join(RELEVANT_CPU_FLAGS)),
        _precision_check(flags),
        Check("oneDNN kernels", {True: "on", False: "off", None: "unknown"}[onednn_enabled()],
              note=f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS', '(unset)')}"),
    ]
    probes = probes or probe_gpu()
    if probes.gpus:
        checks.append(Check("GPU", ", ".join(probes.gpus), note="train.device auto uses it, in mixed_float16 on tensor cores"))
    else:
        checks.append(Check("GPU", "none seen by TensorFlow", note=gpu_absence_reason(probes) + "; training runs on the CPU"))
    data = _data_check(dataset, data_dir)
    checks += [data, _runs_check(runs_dir)]
    if smoke:
        from mnist_zoo.models.registry import MODELS

        rng = np.random.default_rng(0)
        images, labels = rng.integers(0, 256, (128, 28, 28), dtype=np.uint8), rng.integers(0, 10, 128)
        for name in MODELS:
            try:
                checks.append(Check(f"smoke: {name}", f"{smoke_step_ms(name, images, labels):.1f} ms per training step",
                                    note="one batch of 128 images, float32, after a first traced step"))
            except Exception as error:  # a failing build or step is exactly what the smoke run looks for
                checks.append(Check(f"smoke: {name}", "failed", ok=False, note=f"{type(error).__name__}: {error}"))
    return Diagnosis(checks)
