"""docs/extending.md's model checklist, carried out on a copy of the package with the page's own code blocks."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT

pytestmark = pytest.mark.slow  # copies the package and runs it in processes

GUIDE = REPO_ROOT / "docs" / "extending.md"
NEW_MODEL = "gap_cnn"


def _code_blocks(text: str) -> dict[str, str]:
    """The guide's code blocks that start with a `# <path>` line, by that path (indentation removed)."""
    blocks = {}
    for block in re.findall(r"^( *)```(?:python|yaml)\n(.*?)^\1```", text, flags=re.S | re.M):
        indent, body = block
        lines = [line[len(indent):] for line in body.splitlines()]
        if lines and lines[0].startswith("# ") and "/" in lines[0]:
            blocks[lines[0][2:].strip()] = "\n".join(lines[1:]) + "\n"  # without the path line
    return blocks


def _add_model_as_documented(checkout: Path) -> None:
    blocks = _code_blocks(GUIDE.read_text())
    assert set(blocks) == {f"mnist_zoo/models/{NEW_MODEL}.py", "mnist_zoo/models/registry.py", f"configs/{NEW_MODEL}.yaml"}
    # 1. the builder module
    (checkout / f"mnist_zoo/models/{NEW_MODEL}.py").write_text(blocks[f"mnist_zoo/models/{NEW_MODEL}.py"])
    # 2. the registry entry: the import beside the others, the entry at the top of MODELS
    import_line, entry = blocks["mnist_zoo/models/registry.py"].split("\n", 1)
    registry = checkout / "mnist_zoo/models/registry.py"
    text = registry.read_text()
    anchor = "MODELS: dict[str, ModelEntry] = {\n"
    assert anchor in text and "from mnist_zoo.models import" in text
    text = text.replace("from mnist_zoo.models import", f"{import_line}\nfrom mnist_zoo.models import", 1)
    registry.write_text(text.replace(anchor, anchor + entry.strip("\n") + "\n", 1))
    # 3. the bundled config
    (checkout / f"configs/{NEW_MODEL}.yaml").write_text(blocks[f"configs/{NEW_MODEL}.yaml"])


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """A copy of the package, configs, tests and scripts, with the guide's new model added."""
    root = tmp_path_factory.mktemp("extending") / "checkout"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("mnist_zoo", "configs", "tests", "scripts", "docs"):
        shutil.copytree(REPO_ROOT / folder, root / folder, ignore=ignore)
    shutil.copy(REPO_ROOT / "pyproject.toml", root / "pyproject.toml")
    _add_model_as_documented(root)
    # 4. the reference page, as the guide says (its test in the copy below fails without this)
    _run(root, "scripts/update_config_reference.py")
    assert f"`model` with `type: {NEW_MODEL}`" in (root / "docs/config-reference.md").read_text()
    return root


def _run(checkout: Path, *args: str, cwd: Path | None = None, **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(checkout), "TF_CPP_MIN_LOG_LEVEL": "3", **env}
    result = subprocess.run([sys.executable, *args], cwd=cwd or checkout, env=environment,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_the_copy_imports_its_own_package(checkout):
    where = _run(checkout, "-c", "import mnist_zoo; print(mnist_zoo.__file__)").stdout.strip()
    assert Path(where).resolve().is_relative_to(checkout.resolve())


def test_the_new_model_is_listed_summarized_and_documented(checkout):
    assert NEW_MODEL in _run(checkout, "-m", "mnist_zoo", "models").stdout
    summary = json.loads(_run(checkout, "-m", "mnist_zoo", "summary", NEW_MODEL, "--json", "--device", "cpu").stdout)
    assert summary["total"]["macs"] > 0 and summary["layers"][-1]["name"] == "output"
    reference = _run(checkout, "-m", "mnist_zoo", "config", "reference").stdout
    assert f"`model` with `type: {NEW_MODEL}`" in reference and "| `model.filters` |" in reference
    typo = subprocess.run([sys.executable, "-m", "mnist_zoo", "config", "show", "--model", "cnn",
                           "--set", "model.type=gap_cnm"], cwd=checkout, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(checkout)})
    assert typo.returncode == 2 and "did you mean 'gap_cnn'?" in typo.stderr


def test_the_new_model_trains_from_the_command_line(checkout, small_mnist_dir, tmp_path):
    run_dir = tmp_path / "run"
    _run(checkout, "-m", "mnist_zoo", "train", "--model", NEW_MODEL, "--data-dir", str(small_mnist_dir),
         "--run-dir", str(run_dir), "--epochs", "3", "--batch-size", "64",
         "--set", "data.validation_size=200", "--set", "train.verbose=0", cwd=tmp_path)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["model"] == NEW_MODEL and metrics["test_accuracy"] > 0.3


def test_the_registry_parametrized_tests_cover_the_new_model(checkout, mnist_data):
    # Resume (bit-exact after an interrupt), the in-step gather, parameters and MACs, the config
    # defaults and the benchmark's reference: none of these tests was edited for the new model.
    tests = ["tests/test_resume.py", "tests/test_pipeline.py", "tests/test_summary.py", "tests/test_config.py",
             "tests/test_models.py", "tests/test_bench.py::test_reference_models_match_the_zoo_architectures",
             "tests/test_cli.py::test_docs_config_reference_is_current"]
    result = _run(checkout, "-m", "pytest", "-q", "-rA", "-n", "0", "-p", "no:cacheprovider", "-k",
                  f"{NEW_MODEL} or config_reference_is_current", *tests, MNIST_ZOO_TEST_DATA=str(mnist_data))
    closing = result.stdout.strip().splitlines()[-1]
    passed = int(re.search(r"(\d+) passed", closing).group(1))
    assert passed >= 6 and not re.search(r"\d+ (failed|error)", closing), result.stdout[-2000:]
    assert "PASSED tests/test_resume.py::test_resume_after_an_interrupt_equals_an_unbroken_run[gap_cnn]" in result.stdout
    assert "PASSED tests/test_cli.py::test_docs_config_reference_is_current" in result.stdout  # regenerated
