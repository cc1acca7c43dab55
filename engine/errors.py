"""Exception classes, one per kind of failure, each mapped to a CLI exit code."""

from __future__ import annotations

EXIT_OK = 0
EXIT_STEP_FAILED = 1
EXIT_USAGE = 2
EXIT_UPSTREAM = 3
EXIT_RUNNING = 4


class TickflowError(Exception):
    """Base class; ``exit_code`` tells the CLI how to end."""

    exit_code = EXIT_USAGE


class ConfigError(TickflowError):
    """The INI config or an environment override is wrong."""


class SpecError(TickflowError):
    """A pipeline spec is invalid; carries every problem found, not just the first."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class SpecFileMissing(SpecError):
    """The spec file is not there: a wrong path, not an invalid spec."""


class RegistryError(TickflowError):
    """A transform could not be registered or discovered."""


class StorageError(TickflowError):
    """The storage root cannot be reached or used (bad credentials, missing container...)."""


class TrackerError(TickflowError):
    """The job tracker database cannot be reached or used."""


class StepFailed(TickflowError):
    """A step raised while running; the message is the essential line, the trace goes to the log."""

    exit_code = EXIT_STEP_FAILED

    def __init__(self, step: str, transform: str, message: str):
        self.step = step
        self.transform = transform
        super().__init__(f"step '{step}' ({transform}) failed: {message}")


class UpstreamNotReady(TickflowError):
    exit_code = EXIT_UPSTREAM


class AlreadyRunning(TickflowError):
    exit_code = EXIT_RUNNING


class TransformError(Exception):
    """Raised by transforms for a domain-level failure (e.g. too many bad records).

    Lives here so plugins can raise it without importing anything else from the engine.
    """
