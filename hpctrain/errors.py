"""The exception types users can see; the CLI maps each to one line on stderr and exit 2."""

__all__ = [
    "HpctrainError",
    "ConfigError",
    "DataError",
    "CheckpointError",
    "TopologyError",
    "CommError",
    "SilentExit",
    "EXIT_USAGE",
]

EXIT_USAGE = 2


class HpctrainError(Exception):
    """Base class: a problem with the user's input, reported as one line, exit status 2."""

    exit_code = EXIT_USAGE


class ConfigError(HpctrainError):
    """Invalid configuration value, option or TOML file."""


class DataError(HpctrainError):
    """Missing, truncated or malformed data file."""


class CheckpointError(HpctrainError):
    """Missing, corrupt or incompatible checkpoint."""


class TopologyError(HpctrainError):
    """Invalid topology or mixing matrix."""


class CommError(HpctrainError):
    """A collective was used in a way the communicator cannot serve."""


class SilentExit(HpctrainError):
    """Exit with status 2 without a message: another rank already reported the error."""
