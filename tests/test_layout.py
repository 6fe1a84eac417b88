"""The package layout: every stage in its folder, and no import from a lower layer back up."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mnist_zoo"

# Lowest first: a module may import its own layer and the layers before it, never a later one.
LAYERS = [
    {"errors", "fields", "files", "rundir"},
    {"runtime", "data"},
    {"models"},
    {"config"},
    {"report"},
    {"inference"},
    {"explanations"},
    {"exports"},
    {"web"},
    {"training"},
    {"sweeps"},
    {"lessons"},
    {"doctor"},
    {"api"},
    {"cli", "__main__"},
]


def _unit(module: str) -> str:
    """The layout unit of 'mnist_zoo.x.y' (its top-level package or module)."""
    return module.split(".")[1] if module.count(".") else "__init__"


def _layer(unit: str) -> int:
    return next(index for index, units in enumerate(LAYERS) if unit in units)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mnist_zoo"):
            found |= {f"{node.module}.{alias.name}" if node.module == "mnist_zoo" else node.module
                      for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("mnist_zoo.")}
    return found


MODULES = sorted(path for path in PACKAGE.rglob("*.py") if path.name != "__init__.py" or path.parent != PACKAGE)


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_no_import_goes_up_a_layer(path):
    unit = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    upward = [name for name in _imports(path)
              if _unit(name) not in ("__init__", "__version__") and _layer(_unit(name)) > _layer(unit)]
    assert not upward, f"{path.relative_to(PACKAGE)} (layer {unit}) imports from a later layer: {upward}"


def test_every_subpackage_says_what_it_holds_in_one_line():
    for init in PACKAGE.glob("*/__init__.py"):
        docstring = ast.get_docstring(ast.parse(init.read_text()))
        assert docstring and "\n" not in docstring.strip(), init


def test_every_module_belongs_to_a_layer():
    units = {path.relative_to(PACKAGE).parts[0].removesuffix(".py") for path in PACKAGE.iterdir()
             if path.suffix == ".py" or (path / "__init__.py").is_file()}
    assert units - {"__init__", "configs"} <= set().union(*LAYERS)


def test_every_package_folder_is_installed():
    """pyproject lists the packages by name: a new folder left out works in a checkout and breaks an install."""
    import tomllib

    listed = set(tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {".".join(path.parent.relative_to(PACKAGE.parent).parts) for path in PACKAGE.rglob("__init__.py")}
    assert folders <= listed, f"not in pyproject.toml's packages: {sorted(folders - listed)}"
