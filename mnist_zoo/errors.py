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
