"""`Run`: a run directory as a Python object, read from disk when asked."""

from __future__ import annotations

import html
import os
from pathlib import Path

from mnist_zoo import rundir
from mnist_zoo.errors import RunDirError


class Run(os.PathLike):
    """One run directory: its config, history, metrics and models.

    Nothing is cached: each property reads the directory again, so a `Run` of a run that is
    still training shows its progress. A `Run` is path-like: it can be given wherever a run
    directory is expected (`mz.evaluate(run)`, `os.fspath(run)`); `run.path / "metrics.json"` names its files.

    Args:
        path: the run directory (it must hold config.yaml).

    Raises:
        RunDirError: `path` is not a run directory.
    """

    def __init__(self, path: str | os.PathLike):
        path = Path(path).expanduser()
        if not (path / rundir.CONFIG_FILE).is_file():
            raise RunDirError(f"{path}: not a run directory (no {rundir.CONFIG_FILE}); give a folder that "
                              "`mz.train` or `mnist-zoo train` made")
        self.path = path.absolute()  # still the same run after a notebook's %cd
        self.given_path = path
        """The run directory as it was named (perhaps relative), for messages; `path` is absolute."""

    def __fspath__(self) -> str:
        return str(self.path)

    def __eq__(self, other) -> bool:
        return isinstance(other, Run) and self.path.resolve() == other.path.resolve()

    def __hash__(self) -> int:
        return hash(self.path.resolve())

    # ----------------------------------------------------------------- what is on disk

    @property
    def name(self) -> str:
        """The directory's name, e.g. 20261204-101500-cnn."""
        return self.path.resolve().name

    @property
    def config(self):
        """The `RunConfig` the run was trained with (its config.yaml)."""
        from mnist_zoo.config.loading import load_config

        return load_config(self.path / rundir.CONFIG_FILE)

    @property
    def status(self) -> str:
        """'running', 'interrupted', 'failed', 'complete' or 'pruned' (status.json); 'unknown' without a readable one."""
        return str(rundir.read_status(self.path).get("status", "unknown"))

    @property
    def complete(self) -> bool:
        """True once training finished and the test metrics are written."""
        return (self.path / rundir.METRICS_FILE).is_file()

    @property
    def metrics(self) -> dict | None:
        """The test metrics of the best epoch's model (metrics.json), or None before the run finished."""
        import json

        try:
            return json.loads((self.path / rundir.METRICS_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            raise RunDirError(f"{self.path / rundir.METRICS_FILE}: unreadable ({error})") from None

    @property
    def history(self) -> list[dict]:
        """One record per completed epoch: epoch, loss, accuracy, val_loss, val_accuracy, learning_rate, epoch_seconds."""
        if not (self.path / rundir.HISTORY_JSON).is_file():
            return []
        return rundir.read_history(self.path)

    @property
    def best_model_path(self) -> Path:
        """best.keras: the weights of the epoch with the best validation accuracy."""
        return self.path / rundir.BEST_MODEL

    @property
    def last_model_path(self) -> Path:
        """last.keras: the weights after the last epoch (or early stopping's best, if it restores them)."""
        return self.path / rundir.LAST_MODEL

    def load_model(self, which: str = "best", unsafe: bool = False):
        """The trained Keras model, ready for `model.predict` or more training.

        Args:
            which: 'best' (best.keras) or 'last' (last.keras).
            unsafe: allow Lambda layers (runs their code: trusted files only).

        Raises:
            ValueError: `which` is neither 'best' nor 'last'.
            ModelFileError: the file is missing or cannot be loaded safely.
        """
        from mnist_zoo.inference.modelfile import load_classifier

        paths = {"best": self.best_model_path, "last": self.last_model_path}
        if which not in paths:
            raise ValueError(f"which={which!r}: expected 'best' or 'last'")
        return load_classifier(paths[which], unsafe=unsafe)

    # ----------------------------------------------------------------- what can be done with it

    def plot_history(self, path: str | os.PathLike | None = None):
        """Loss and accuracy per epoch; see `mz.plot_history`.

        Returns:
            A matplotlib `Figure` (shown inline in Jupyter); also saved as PNG when `path` is given.
        """
        from mnist_zoo.api.reports import plot_history

        return plot_history([self], path=path)

    def evaluate(self, **options):
        """Scores best.keras on the test set; the options and result of `mz.evaluate`."""
        from mnist_zoo.api.models import evaluate

        return evaluate(self, **options)

    def predict(self, inputs, **options):
        """Predicts digits in pictures, `.npy` files or arrays; the options and result of `mz.predict`."""
        from mnist_zoo.api.models import predict

        return predict(self, inputs, **options)

    def export(self, formats, **options):
        """Exports best.keras and verifies each file; the options and result of `mz.export`."""
        from mnist_zoo.api.models import export

        return export(self, formats, **options)

    def summary(self, **options):
        """Layer table with parameters and MACs; see `mz.summary`."""
        from mnist_zoo.api.models import summary

        return summary(self, **options)

    def resume(self, **options) -> "Run":
        """Continues this interrupted run; the options of `mz.train` with `resume` (data_dir, device, verbose, report)."""
        from mnist_zoo.api.train import train

        return train(resume=self, **options)

    # ----------------------------------------------------------------- how it shows

    def _figures(self) -> list[tuple[str, str]]:
        """(label, value) pairs of the key figures, for repr and HTML; never raises (a run may be half-written)."""
        try:
            metrics, config = self.metrics, self.config
            figures = [("model", config.model.type), ("status", self.status)]
            if metrics:
                figures += [("test accuracy", f"{metrics['test_accuracy']:.2%}"),
                            ("test loss", f"{metrics['test_loss']:.4f}"),
                            ("best epoch", f"{metrics['best_epoch']} of {metrics['epochs_completed']}"),
                            ("parameters", f"{metrics['parameters']:,}"),
                            ("training", f"{metrics['train_seconds']:.1f} s")]
            else:
                figures.append(("epochs", f"{len(self.history)} of {config.train.epochs}"))
            return figures
        except Exception as error:  # noqa: BLE001 - a repr must not raise: say what is wrong instead
            return [("error", str(error) or type(error).__name__)]

    def __repr__(self) -> str:
        return f"Run({str(self.given_path)!r}: " + ", ".join(f"{label} {value}" for label, value in self._figures()) + ")"

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><th style='text-align:left'>{html.escape(label)}</th><td style='text-align:left'>"
                       f"{html.escape(value)}</td></tr>" for label, value in self._figures())
        return f"<b>Run</b> <code>{html.escape(str(self.given_path))}</code><table>{rows}</table>"


def load_run(path: str | os.PathLike) -> Run:
    """The run directory at `path` as a `Run`.

    Raises:
        RunDirError: `path` is not a run directory.
    """
    return path if isinstance(path, Run) else Run(path)
