"""pathsynth's own error types.

Each is raised where a user's input or environment is at fault and carries a one-line message that
names the thing and the reason. The CLI catches :class:`PathsynthError` once and prints that line;
anything else is a bug and shows its traceback.
"""


class PathsynthError(Exception):
    """Base of every error that is the user's input or environment, not a bug."""


class ConfigError(PathsynthError):
    """A configuration key, value or preset that cannot be used."""


class WorkspaceError(PathsynthError):
    """A workspace that is missing, malformed or already exists."""


class CatalogUnavailable(PathsynthError):
    """The catalog database cannot be reached or is not migrated."""


class IngestError(PathsynthError):
    """A source folder or labels file that cannot be ingested at all."""


class ImageRefused(PathsynthError):
    """One image that cannot be used (corrupt, too large, not an image, ...)."""


class SplitError(PathsynthError):
    """A split that cannot be made or found as asked."""


class DataError(PathsynthError):
    """A training data folder or tensor set that cannot be used."""


class ImageTooSmall(DataError):
    """An image smaller than one of the network's input patches once shrunk to their scale.

    Args:
        fact: what is too small (sizes, scale, patch).
        advice: what to change where the scale can be changed.
    """

    def __init__(self, fact: str, advice: str) -> None:
        super().__init__(f"{fact}; {advice}")
        self.fact = fact


class CheckpointError(PathsynthError):
    """A checkpoint that is missing, corrupt or does not match the data."""


class StoreUnwritable(PathsynthError):
    """The image store cannot be written: disk full, read-only, no permission."""


class TuringError(PathsynthError):
    """A visual Turing test, rater or answer that cannot be made or used as asked."""


class AnswerNotStored(TuringError):
    """A rater's valid answer that the catalog cannot store now (read-only, full disk, server
    gone): the rater's page keeps it for them to send again."""


class ServeError(PathsynthError):
    """The web app cannot be started as asked (an address it must not bind, no token)."""


class TaskFailed(PathsynthError):
    """A unit of an experiment (a fold, a classifier fit) that failed on both of its attempts."""
