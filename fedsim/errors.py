"""Errors with a defined exit code: bad input exits 2 with one line naming the culprit."""


class FedsimInputError(Exception):
    """Bad user input (config key/value, path, data). The CLI prints the message and exits 2."""

    exit_code = 2


class ConfigError(FedsimInputError):
    """A config key is unknown, has the wrong type, or is out of range."""


class DataPathError(FedsimInputError):
    """A local dataset or checkpoint path is missing or malformed."""
