"""Errors a user can cause. The CLI turns each into one line on stderr and exit code 2."""


class GanbenchError(Exception):
    """Base of every user-facing error: the message says what was wrong and what to do."""


class DataError(GanbenchError):
    """Missing, corrupt or unreadable dataset files."""


class CheckpointError(GanbenchError):
    """A checkpoint that cannot be read, or does not describe a model ganbench can rebuild."""


class ConfigError(GanbenchError):
    """Bad option values, unknown config keys, conflicting settings."""


class ModelError(GanbenchError):
    """Unknown model name, a plugin that cannot be loaded, or arguments the model rejects."""


class TrainingDiverged(GanbenchError):
    """A loss became NaN or infinite."""


class RunDirError(GanbenchError):
    """The run directory exists (and neither --resume nor --overwrite was given) or lacks what --resume needs."""


class DistributedError(GanbenchError):
    """Under torchrun: another process of the job stopped or cannot be reached."""


def one_line(text: object, limit: int = 300) -> str:
    """Collapse whitespace (newlines included) so a message stays on one line; cut texts longer than limit."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
