"""doctor: every check on this machine, the GPU reasons from faked probes, and the exit status."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner
from packaging.requirements import Requirement

from mnist_zoo.cli import cli
from mnist_zoo.doctor import SAFE_KERAS, GpuProbes, diagnose, gpu_absence_reason, keras_safe_mode_check

NO_GPU = GpuProbes(visible_devices=None, built_with_cuda=True, cuda_libraries=True, driver=False)


@pytest.mark.parametrize("probes, reason", [
    (GpuProbes(visible_devices="", built_with_cuda=True, cuda_libraries=True, driver=True), "CUDA_VISIBLE_DEVICES is ''"),
    (GpuProbes(visible_devices="-1", driver=True), "hides every GPU"),
    (GpuProbes(driver=False, built_with_cuda=True, cuda_libraries=True), "no NVIDIA driver found"),
    (GpuProbes(driver=True, built_with_cuda=False), "no CUDA support; pip install 'mnist-zoo[cuda]'"),
    (GpuProbes(driver=True, built_with_cuda=True, cuda_libraries=False), "CUDA libraries are not installed"),
    (GpuProbes(visible_devices="0", driver=True, built_with_cuda=True, cuda_libraries=True), "yet TensorFlow lists no GPU"),
])
def test_the_reason_for_no_gpu_follows_from_the_probes(probes, reason):
    assert reason in gpu_absence_reason(probes)


def test_a_machine_that_can_train(mnist_data, tmp_path):
    diagnosis = diagnose(data_dir=str(mnist_data), runs_dir=tmp_path / "runs", probes=NO_GPU)
    checks = {check.name: check for check in diagnosis.checks}
    assert diagnosis.ready
    assert {"Python", "TensorFlow, Keras, numpy", "CPU", "CPU flags", "precision: auto (CPU)", "oneDNN kernels",
            "GPU", "data: mnist", "runs folder"} <= set(checks)
    assert "no NVIDIA driver found" in checks["GPU"].note and checks["runs folder"].note == "can be created"
    assert "60,000 training" in checks["data: mnist"].note


@pytest.mark.parametrize("flags, expected", [
    ({"avx2", "avx512f", "avx512_bf16"}, "cnn mixed_bfloat16"),
    ({"avx2", "amx_bf16"}, "mlp float32"),
    ({"avx2"}, "float32"),
])
def test_the_precision_auto_picks_is_explained(monkeypatch, tmp_path, flags, expected):
    from mnist_zoo.runtime import precision

    monkeypatch.setattr(precision, "cpu_flags", lambda: set(flags))
    check = next(c for c in diagnose(runs_dir=tmp_path, probes=NO_GPU).checks if c.name == "precision: auto (CPU)")
    assert expected in check.value


def test_problems_exit_1_with_the_reasons(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(cli, ["doctor", "--data-dir", str(tmp_path / "nowhere"), "--runs-dir", str(blocker / "runs")])
    assert result.exit_code == 1
    verdict = result.output.strip().splitlines()[-1]
    assert verdict.startswith("cannot train: data: mnist:") and "does not exist" in verdict and "runs folder" in verdict


def test_json_and_smoke_as_a_real_command(mnist_data, tmp_path):
    result = subprocess.run([sys.executable, "-m", "mnist_zoo", "doctor", "--json", "--smoke", "--data-dir", str(mnist_data),
                             "--runs-dir", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["ready"] is True
    smoke = [check for check in report["checks"] if check["name"].startswith("smoke: ")]
    assert [check["name"] for check in smoke] == ["smoke: linear", "smoke: mlp", "smoke: cnn"]
    assert all(check["value"].endswith("ms per training step") for check in smoke)


@pytest.mark.parametrize("version", ["3.13.2", "3.11.3", "3.3.3"])
def test_a_keras_whose_safe_mode_can_be_bypassed_is_a_warning_that_says_how_to_upgrade(monkeypatch, tmp_path, version):
    import keras

    monkeypatch.setattr(keras, "__version__", version)
    result = CliRunner().invoke(cli, ["doctor", "--runs-dir", str(tmp_path / "runs")])
    line = next(line for line in result.output.splitlines() if line.startswith("Keras safe mode"))
    assert f"safe mode in Keras {version} can be bypassed by a crafted .keras file" in line
    assert "pip install -U 'keras>=3.14'" in line and "CVE-2026-1462" in line
    assert " WARNING " in line  # the status column says so, not only the value
    assert result.exit_code == 0 and result.output.strip().endswith("ready to train")  # a warning, not a blocker
    checks = {check.name: check for check in diagnose(runs_dir=tmp_path, probes=NO_GPU).checks}
    assert checks["Keras safe mode"].warning and checks["Keras safe mode"].ok


@pytest.mark.parametrize("version, warned", [
    ("3.14.0", False), ("3.14", False), ("3.15.1", False), ("3.14.0.dev2026010100", False), ("4.0.0", False),
    ("3.13.2", True), ("3.9.0", True), ("not a version", True),
])
def test_the_safe_mode_floor_is_a_release_comparison(version, warned):
    check = keras_safe_mode_check(version)
    assert check.warning is warned and check.ok
    assert ("pip install -U 'keras>=3.14'" in check.note) is warned


def test_this_keras_is_not_warned_about(tmp_path):
    checks = {check.name: check for check in diagnose(runs_dir=tmp_path, probes=NO_GPU).checks}
    assert not checks["Keras safe mode"].warning, checks["Keras safe mode"]


def test_pyproject_pins_keras_at_the_safe_mode_floor():
    pyproject = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    keras = next(Requirement(line) for line in pyproject["project"]["dependencies"] if line.startswith("keras"))
    assert str(keras.specifier) == f">={SAFE_KERAS}", "pyproject.toml's keras floor and doctor.SAFE_KERAS differ"
