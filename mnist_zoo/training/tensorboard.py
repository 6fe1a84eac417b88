"""TensorBoard logs of a run, written from its committed epochs: one consistent curve per figure, across resumes too."""

from __future__ import annotations

import shutil
from pathlib import Path

from mnist_zoo.rundir import TENSORBOARD_DIR

# Keras's own TensorBoard callback uses these folders and tags, so the curves look as users know them.
_TRAIN, _VALIDATION = "train", "validation"


class TensorBoardLog:
    """Writes each committed epoch's figures as TensorBoard scalars under `<run>/tensorboard/`.

    Written from the history records (`history.json`), never from a cut-short epoch, with the
    1-based epoch as the step: `train/epoch_loss`, `train/epoch_accuracy`,
    `train/epoch_learning_rate`, `validation/epoch_loss`, `validation/epoch_accuracy`. A
    (re)started run first rewrites the log from its committed history, so an epoch is never
    logged twice or lost, even when a kill came between an epoch's commit and its log line.
    """

    def __init__(self, run_dir: Path):
        self.folder = Path(run_dir) / TENSORBOARD_DIR
        self._writers = None

    def _open(self):
        import tensorflow as tf

        if self._writers is None:
            self._writers = {split: tf.summary.create_file_writer(str(self.folder / split))
                             for split in (_TRAIN, _VALIDATION)}
        return self._writers

    def rewrite(self, history: list[dict]) -> None:
        """Starts the log afresh from the committed `history` (what a resumed run continues)."""
        self.close()
        shutil.rmtree(self.folder, ignore_errors=True)
        for record in history:
            self.append(record)

    def append(self, record: dict) -> None:
        """Logs one committed epoch's record (a `history.json` entry)."""
        import tensorflow as tf

        writers = self._open()
        step = int(record["epoch"])
        for key, value in record.items():
            if key in ("epoch", "epoch_seconds"):
                continue
            split, name = (_VALIDATION, key.removeprefix("val_")) if key.startswith("val_") else (_TRAIN, key)
            with writers[split].as_default():
                tf.summary.scalar(f"epoch_{name}", value, step=step)
        for writer in writers.values():
            writer.flush()

    def close(self) -> None:
        if self._writers is not None:
            for writer in self._writers.values():
                writer.close()
            self._writers = None
