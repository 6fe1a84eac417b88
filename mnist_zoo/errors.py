"""Errors a user can fix; the CLI prints them as one line and exits with status 2."""


class MnistZooError(Exception):
    """Base class for problems the user can fix (bad config, missing file, bad data)."""


class ConfigError(MnistZooError):
    """A config file or override is invalid."""


class DataError(MnistZooError):
    """A data set file is missing, corrupt, or cannot be downloaded."""


class ModelFileError(MnistZooError):
    """A saved model cannot be loaded or does not fit MNIST."""


class RunDirError(MnistZooError):
    """A run directory is missing, incomplete, or would be overwritten."""


class DeviceError(MnistZooError):
    """The requested compute device is not available."""


class ExportError(MnistZooError):
    """A model could not be exported, or the exported file does not compute what the model does."""


class MissingDependencyError(MnistZooError):
    """An optional package a command needs is not installed; the message names the pip command."""


def describe(error: BaseException) -> str:
    """'Type: first line of the message' (or just 'Type'): a library's exception as part of one line."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


class TrainingInterrupted(Exception):
    """Training stopped on a signal (Ctrl-C, SIGTERM); the last complete epoch is saved.

    Not a `MnistZooError`: the CLI exits with 128 + the signal number (130, 143), not 2.
    """

    def __init__(self, signal_number: int, run_dir=None, epochs_completed: int | None = None):
        super().__init__(signal_number, run_dir, epochs_completed)
        self.signal_number = signal_number
        self.run_dir = run_dir
        self.epochs_completed = epochs_completed

    @property
    def signal_name(self) -> str:
        import signal

        return signal.Signals(self.signal_number).name

    def __str__(self) -> str:
        return f"interrupted by {self.signal_name}"
