"""scripts/min_versions.py: the constraints that install every floor of pyproject.toml at once."""

from __future__ import annotations

import tomllib

from tests.helpers import REPO_ROOT, load_script

min_versions = load_script("min_versions")

PYPROJECT = tomllib.loads('''
[project]
name = "mnist-zoo"
dependencies = ["tensorflow>=2.19", "keras>=3.14,<4", "tqdm", "numpy>=1.26; python_version >= '3.11'"]

[project.optional-dependencies]
cuda = ["tensorflow[and-cuda]>=2.20"]
export = ["onnx>=1.21"]
serve = ["uvicorn[standard]>=0.30", "Keras>=3.15"]
sweep = ["optuna>=4.9"]
postgres = ["mnist-zoo[sweep]", "psycopg[binary]>=3.1.4"]
test = ["pytest>=9.0.3", "mnist-zoo[export,serve,postgres]"]
''')


def test_each_floor_becomes_a_pin_without_its_extras():
    pins = min_versions.constraints(PYPROJECT)
    assert "uvicorn==0.30" in pins and "psycopg==3.1.4" in pins  # pip refuses extras in constraints
    assert "tensorflow==2.19" in pins and "tensorflow==2.20" not in pins  # cuda is no extra the tests pull
    assert "numpy==1.26; python_version >= \"3.11\"" in pins  # markers are kept
    assert not any(pin.startswith("tqdm") for pin in pins)  # no floor, no pin


def test_the_extras_the_test_extra_pulls_come_along_through_the_projects_own_name():
    pins = min_versions.constraints(PYPROJECT)
    assert {"onnx==1.21", "optuna==4.9", "pytest==9.0.3"} <= set(pins)  # sweep only through postgres
    assert not any(pin.startswith("mnist-zoo") for pin in pins)


def test_a_package_named_twice_keeps_its_higher_floor():
    assert [pin for pin in min_versions.constraints(PYPROJECT) if pin.lower().startswith("keras")] == ["Keras==3.15"]


def test_the_real_pyproject_has_a_floor_for_every_package_the_tests_install():
    pyproject = min_versions.load_pyproject(REPO_ROOT / "pyproject.toml")
    names = {requirement.name for requirement in min_versions.needed_requirements(pyproject)}
    pinned = {pin.split("==")[0] for pin in min_versions.constraints(pyproject)}
    assert names == pinned, f"no >= floor: {sorted(names - pinned)}"
