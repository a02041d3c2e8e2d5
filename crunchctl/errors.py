"""The one error taxonomy of crunchctl.

Every error carries the exit code the CLI maps it to (docs/ARCHITECTURE.md, "Errors and
exit codes"). Per-item errors (``ItemError`` and subclasses) are recorded in the ledger and
never stop a run; the others stop the command with a one-line message.
"""

from __future__ import annotations


class CrunchError(Exception):
    """Base of all crunchctl errors; ``exit_code`` is what the CLI exits with."""

    exit_code = 2


class UsageError(CrunchError):
    """A bad option value or argument given by the user."""


class ConfigError(CrunchError):
    """A configuration file or environment variable that cannot be used."""


class LedgerError(CrunchError):
    """A ledger folder that cannot be read or written."""


class LedgerBusyError(LedgerError):
    """Another crunchctl process holds a lock this command needs."""


class RunAborted(CrunchError):
    """The run cannot go on (e.g. the Dask scheduler is gone); what finished is recorded.

    ``in_progress`` counts the items that were running and are lost; the engine adds the
    run's counts to the message (``with_counts``) before the command stops with it.
    """

    exit_code = 1

    def __init__(self, message: str, in_progress: int = 0, advice: str = "") -> None:
        super().__init__(f"{message}; {advice}" if advice else message)
        self.message = message
        self.in_progress = in_progress
        self.advice = advice

    def with_counts(self, done: int, failed: int, not_started: int) -> RunAborted:
        """The same error, saying what the run did before it stopped."""
        return type(self)(
            f"{self.message} (this run: {done} done, {failed} failed, {not_started} not started)",
            self.in_progress,
            self.advice,
        )


class ItemError(CrunchError):
    """One item (recording, batch item) failed; recorded, and the run goes on."""

    exit_code = 1


class OutputError(ItemError):
    """Products or web copies could not be written (folder gone, not writable, disk full).

    The recording itself may be fine: a long-running watch tries it again later.
    """


class FormatError(ItemError):
    """A recording that cannot be read in its format; the message names the file and the problem."""


class TiqError(FormatError):
    """A ``.tiq`` file that cannot be read; the message names the file and the problem."""


class IncompleteRecording(FormatError):
    """A recording shorter than its header promises (still being written, or cut)."""

    def __init__(self, message: str, expected: int, actual: int) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual
