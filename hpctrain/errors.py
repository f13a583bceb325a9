"""The exception types users can see; the CLI maps each to one line on stderr and exit 2."""

__all__ = [
    "HpctrainError",
    "ConfigError",
    "DataError",
    "CheckpointError",
    "TopologyError",
    "CommError",
    "OutputError",
    "SilentExit",
    "TrainingDiverged",
    "Preempted",
    "Interrupted",
    "EXIT_USAGE",
    "EXIT_DIVERGED",
    "EXIT_STALLED",
    "EXIT_PREEMPTED",
    "EXIT_INTERRUPTED",
]

EXIT_USAGE = 2
#: NaN/Inf in loss or gradients.
EXIT_DIVERGED = 3
#: The stall inspector's --stall-timeout ended a job whose ranks waited too long in a collective.
EXIT_STALLED = 4
#: Stopped by SIGTERM/SIGUSR1 after writing a checkpoint (EX_TEMPFAIL: "try again").
EXIT_PREEMPTED = 75
#: Stopped by SIGINT (Ctrl-C), after writing a checkpoint when checkpointing is on (128 + 2).
EXIT_INTERRUPTED = 130


class HpctrainError(Exception):
    """Base class: a problem with the user's input, reported as one line, exit status 2."""

    exit_code = EXIT_USAGE
    label = "error"


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


class OutputError(HpctrainError):
    """An output file (checkpoint, metrics, summary) cannot be written: disk full, read-only,
    quota. Older checkpoints are left intact."""


class SilentExit(HpctrainError):
    """Exit without a message: another rank already reported the error."""

    def __init__(self, exit_code=EXIT_USAGE):
        super().__init__("")
        self.exit_code = exit_code


class TrainingDiverged(HpctrainError):
    """NaN or Inf in the loss or the gradients; the last good checkpoint is kept."""

    exit_code = EXIT_DIVERGED


class Preempted(HpctrainError):
    """SIGTERM/SIGUSR1 arrived: a checkpoint was written and the run stopped early."""

    exit_code = EXIT_PREEMPTED
    label = "stopped"


class Interrupted(Preempted):
    """SIGINT (Ctrl-C) arrived: stopped at a step boundary (with a checkpoint when on)."""

    exit_code = EXIT_INTERRUPTED
    label = "interrupted"
