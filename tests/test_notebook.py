"""examples/quickstart.ipynb runs from top to bottom in a real Jupyter kernel, on a small subset."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.skips import import_or_skip

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "quickstart.ipynb"
# The notebook's "parameters" cell, made small: one epoch of 1,000 images per model.
QUICK = 'epochs = 1\nsubset = {"data.train_limit": 1000, "data.validation_size": 200, "data.test_limit": 300}'


@pytest.mark.slow
def test_the_quickstart_notebook_runs_and_shows_every_result(tmp_path, mnist_data, monkeypatch):
    nbformat = import_or_skip("nbformat")
    nbclient = import_or_skip("nbclient")
    import_or_skip("ipykernel")

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    parameters = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(parameters) == 1, "the notebook needs one cell tagged 'parameters'"
    parameters[0].source = QUICK
    monkeypatch.setenv("MNIST_ZOO_DATA_DIR", str(mnist_data))  # the kernel inherits it: no download
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()

    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    texts = "\n".join(output.get("text", "") + output.get("data", {}).get("text/plain", "") for output in outputs)
    assert "Run('runs/" in texts and "status complete" in texts and "test accuracy" in texts
    assert "predicted:" in texts and "labelled:" in texts and "'prediction':" in texts
    assert "model.onnx" in texts
    figures = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(figures) >= 5  # comparison, history, confusion matrix, mistakes, the drawn digit
    runs = sorted(path.name.split("-", 2)[-1] for path in (tmp_path / "runs").iterdir())
    assert runs == ["cnn", "linear", "mlp"]
    assert (tmp_path / "seven.png").is_file()
