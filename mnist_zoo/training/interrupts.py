"""Ctrl-C and SIGTERM during training: stop at the next step, keep the last complete epoch."""

from __future__ import annotations

import signal
import threading

from mnist_zoo.errors import TrainingInterrupted

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class GracefulInterrupts:
    """A context manager that turns SIGINT/SIGTERM into a clean stop of `model.fit`.

    While a model is attached (`watch`), the first signal asks Keras to stop after the current
    step, so the training loop ends normally and the last committed epoch stays on disk. Without
    a model, or at a second signal, it raises `TrainingInterrupted` at once: every file is
    written atomically, so stopping mid-way never leaves a truncated file.

    Signal handlers can only be installed from the main thread; elsewhere this does nothing.
    """

    def __init__(self):
        self.signal_number: int | None = None
        self._model = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "GracefulInterrupts":
        if threading.current_thread() is threading.main_thread():
            for number in HANDLED_SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def watch(self, model) -> None:
        """Routes the next signal to `model.stop_training` (None: raise at once again)."""
        self._model = model

    def _handle(self, number, frame) -> None:
        if self._model is None or self.signal_number is not None:
            raise TrainingInterrupted(number)
        self.signal_number = number
        self._model.stop_training = True

    def raise_if_interrupted(self) -> None:
        """Raises `TrainingInterrupted` if a signal arrived while a model was watched."""
        if self.signal_number is not None:
            raise TrainingInterrupted(self.signal_number)
