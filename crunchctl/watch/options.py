"""What to watch and how: the options of one ``watch``, checked before anything starts."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from crunchctl import formats
from crunchctl.errors import UsageError


@dataclass(frozen=True)
class WatchOptions:
    """What to watch and how.

    Args:
        folder: the recorder's folder (made absolute).
        patterns: file-name patterns, fnmatch, case-insensitive [default: those of every
            registered format, ``formats.patterns()``].
        recursive: include sub-folders.
        settle: seconds a file whose format cannot prove it complete must keep its size
            and mtime.
        poll: None for file-system events; seconds between polls for network shares.
        once: drain the backlog and return; incomplete recordings are reported as pending.
        retry_after: seconds before a recording whose products or web copies could not be
            written is tried again (its failure was the output side's, not its own).
    """

    folder: str
    patterns: tuple[str, ...] = field(default_factory=formats.patterns)
    recursive: bool = False
    settle: float = 2.0
    poll: float | None = None
    once: bool = False
    retry_after: float = 60.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "folder", os.path.abspath(os.path.expanduser(self.folder)))
        if isinstance(self.patterns, str):
            object.__setattr__(self, "patterns", (self.patterns,))
        object.__setattr__(self, "patterns", tuple(self.patterns))

    @property
    def source(self) -> str:
        """The ledger's source column for this watch."""
        return f"watch:{self.folder}"


def check_options(options: WatchOptions) -> None:
    """Raise UsageError for a folder that is not there or values that make no sense."""
    if not os.path.exists(options.folder):
        raise UsageError(f"{options.folder}: folder to watch does not exist")
    if not os.path.isdir(options.folder):
        raise UsageError(f"{options.folder}: is not a folder")
    if not options.patterns or not all(options.patterns):
        raise UsageError("--pattern must not be empty")
    if not options.settle >= 0 or not math.isfinite(options.settle):
        raise UsageError(f"--settle {options.settle}: expected seconds, 0 or more")
    if options.poll is not None and (not options.poll > 0 or not math.isfinite(options.poll)):
        raise UsageError(f"--poll {options.poll}: expected a positive number of seconds")
