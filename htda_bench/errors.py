"""Errors a user can fix: the CLI prints their one-line message and exits with code 2."""


class HtdaBenchError(Exception):
    """Base class: the message says what is wrong and what to do, on one line."""

    exit_code = 2


class DataError(HtdaBenchError):
    """A dataset is missing, incomplete or in an unexpected layout."""


class ConfigError(HtdaBenchError):
    """A command-line option, recipe or suite holds a value that cannot be used."""


class CheckpointError(HtdaBenchError):
    """A checkpoint is missing, tampered with or does not fit the model."""
