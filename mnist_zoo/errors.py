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


class RunStoppedError(RunDirError):
    """A write failed mid-run (disk full, read-only, no permission); the last complete epoch is kept.

    Attributes:
        run_dir: the run, resumable once the cause is fixed.
        filename: the file that could not be written.
        reason: the operating system's words ("No space left on device").
    """

    def __init__(self, run_dir, error: OSError):
        self.run_dir = run_dir
        self.filename = error.filename2 or error.filename  # a failed rename: the destination is the file known
        self.reason = error.strerror or str(error)
        super().__init__(f"{self.filename}: {self.reason}; the run's last complete epoch is kept in {run_dir}: "
                         "fix that, then resume it")


class DeviceError(MnistZooError):
    """The requested compute device is not available."""


class ExportError(MnistZooError):
    """A model could not be exported, or the exported file does not compute what the model does."""


class SweepWorkerError(MnistZooError):
    """A sweep's worker process failed; `exit_status` is its exit status."""

    def __init__(self, message: str, exit_status: int = 1):
        super().__init__(message)
        self.exit_status = exit_status


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
