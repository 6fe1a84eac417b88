"""The minimum-versions job: install every dependency at its declared floor and run the fast tier.

pyproject.toml's `name>=X` floors are promises: `pip install mnist-zoo` may pick X. This script
turns each floor of [project.dependencies] and of the extras the tests need (the `test` extra and
the extras it pulls through `mnist-zoo[...]`) into a pip constraint `name==X`, so that a floor
that no longer installs, or no longer works, fails here instead of on a user's machine.

    python scripts/min_versions.py                    # print the constraints
    python scripts/min_versions.py -o constraints.txt # write them
    python scripts/min_versions.py --run              # the whole job (CI runs it after the suite)

`--run` creates a virtual environment in a temporary folder, installs the checkout into it
(non-editable) with `pip install -c constraints.txt ".[test]"`, then runs the fast tier
(`python -m pytest -q -m "not slow" -p no:cacheprovider`) from the checkout with the venv's Python
and CI=true, so that a test that cannot import a package fails instead of skipping. The tests
import mnist_zoo from the checkout (the repository root is on sys.path), and every dependency
from the venv. Packages that no floor names (protobuf, h11, ...) resolve to their newest
versions that fit.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import Version
except ImportError:  # a bare interpreter: pip always carries its own copy
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name
    from pip._vendor.packaging.version import Version

REPO_ROOT = Path(__file__).resolve().parent.parent
EXTRA = "test"
"""The extra the tests install; the extras it names through the project itself come along."""
FAST_TIER = ["-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider"]


def _requirements(project: dict, extra: str | None) -> list[Requirement]:
    lines = project.get("dependencies", []) if extra is None else project.get("optional-dependencies", {})[extra]
    return [Requirement(line) for line in lines]


def needed_requirements(pyproject: dict, extra: str = EXTRA) -> list[Requirement]:
    """[project.dependencies] and `extra`, with the extras it pulls through self-references, in order."""
    project = pyproject["project"]
    own_name = canonicalize_name(project["name"])
    found: list[Requirement] = []
    pending, seen = [None, extra], set()
    while pending:
        group = pending.pop(0)
        if group in seen:
            continue
        seen.add(group)
        for requirement in _requirements(project, group):
            if canonicalize_name(requirement.name) == own_name:  # mnist-zoo[export,serve,...]
                pending += sorted(requirement.extras)
            else:
                found.append(requirement)
    return found


def floor(requirement: Requirement) -> str | None:
    """X of a `>=X` clause, or None when the requirement declares no floor."""
    floors = [spec.version for spec in requirement.specifier if spec.operator == ">="]
    if len(floors) > 1:
        raise ValueError(f"{requirement}: more than one >= clause")
    return floors[0] if floors else None


def constraints(pyproject: dict, extra: str = EXTRA) -> list[str]:
    """One `name==X` line per floor (extras dropped: pip refuses them in constraints; markers kept).

    A package named twice keeps its higher floor.
    """
    pins: dict[str, tuple[str, str, str]] = {}
    for requirement in needed_requirements(pyproject, extra):
        version = floor(requirement)
        if version is None:
            continue
        key = canonicalize_name(requirement.name)
        marker = f"; {requirement.marker}" if requirement.marker else ""
        previous = pins.get(key)
        if previous is None or Version(version) > Version(previous[1]):
            pins[key] = (requirement.name, version, marker)
    return [f"{name}=={version}{marker}" for name, version, marker in pins.values()]


def load_pyproject(path: Path) -> dict:
    with open(path, "rb") as handle:
        return tomllib.load(handle)


def _run(command: list, **kwargs) -> None:
    print("+", " ".join(map(str, command)), flush=True)
    subprocess.run(command, check=True, **kwargs)


def run_job(checkout: Path, keep: bool = False, venv: Path | None = None) -> int:
    """Creates a venv, installs the checkout at the floors, runs the fast tier; its exit status."""
    start = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="mnist-zoo-min-versions-"))
    venv = venv or workdir / "venv"
    try:
        pins = constraints(load_pyproject(checkout / "pyproject.toml"))
        constraints_file = workdir / "constraints.txt"
        constraints_file.write_text("\n".join(pins) + "\n")
        print(f"minimum versions ({len(pins)} floors): " + ", ".join(pins), flush=True)
        if not (venv / "bin" / "python").exists():
            _run([sys.executable, "-m", "venv", venv])
        python = venv / "bin" / "python"
        _run([python, "-m", "pip", "install", "-qq", "--disable-pip-version-check",
              "-c", constraints_file, f"{checkout}[{EXTRA}]"], cwd=workdir)
        _run([python, "-m", "pip", "check"])
        installed = time.monotonic()
        print(f"installed at the floors in {installed - start:.0f} s", flush=True)
        env = {**os.environ, "CI": "true", "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
        env.pop("PYTHONPATH", None)
        env.pop("VIRTUAL_ENV", None)
        # Which copies the tests use: mnist_zoo from the checkout, every dependency from the venv.
        _run([python, "-c", "import keras, numpy, tensorflow, mnist_zoo; "
              "print('mnist_zoo', mnist_zoo.__file__); "
              "print('keras', keras.__version__, keras.__file__); print('tensorflow', tensorflow.__version__); "
              "print('numpy', numpy.__version__)"], cwd=checkout, env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"})
        result = subprocess.run([python, *FAST_TIER], cwd=checkout, env=env)
        print(f"minimum-versions job: fast tier exited {result.returncode}; install {installed - start:.0f} s, "
              f"tests {time.monotonic() - installed:.0f} s, total {time.monotonic() - start:.0f} s", flush=True)
        return result.returncode
    finally:
        if keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pyproject", type=Path, default=REPO_ROOT / "pyproject.toml")
    parser.add_argument("-o", "--output", type=Path, help="write the constraints here (default: print them)")
    parser.add_argument("--run", action="store_true", help="the whole job: venv, install at the floors, fast tier")
    parser.add_argument("--venv", type=Path, help="with --run: reuse (or create) this venv instead of a temporary one")
    parser.add_argument("--keep", action="store_true", help="with --run: keep the temporary folder")
    args = parser.parse_args(argv)
    if args.run:
        return run_job(args.pyproject.resolve().parent, keep=args.keep, venv=args.venv)
    text = "\n".join(constraints(load_pyproject(args.pyproject))) + "\n"
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
