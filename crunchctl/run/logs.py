"""Logging: a buffered log file for every run, and console lines on stderr.

The file handler sits behind a ``MemoryHandler``: records are written every ``flush_every``
records, at once for errors, every ``flush_interval`` seconds, and at the end, so a crash
loses at most a few records and a long run does not write a line per item. Only the CLI calls :func:`setup`; library code just uses named loggers.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import threading
import time
from pathlib import Path
from typing import Any

ROOT = "crunchctl"
FILE_FORMAT = "%(asctime)s.%(msecs)03dZ %(levelname)-7s %(process)d %(name)s: %(message)s"


def _utc(fmt: str) -> logging.Formatter:
    """A formatter whose times are UTC and say so (ISO 8601, ``Z``), as every printed time."""
    formatter = logging.Formatter(fmt, "%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    return formatter


def default_log_file() -> Path:
    from platformdirs import PlatformDirs

    from crunchctl.config import APP_NAME

    return PlatformDirs(APP_NAME, appauthor=False).user_log_path / f"{APP_NAME}.log"


#: The handlers of the run in this process (set by :func:`setup`, cleared by ``close``).
_CURRENT: LogSetup | None = None


class LogSetup:
    """The handlers of one run; ``flush`` writes buffered records, ``close`` detaches."""

    def __init__(
        self,
        path: Path | None,
        memory: logging.handlers.MemoryHandler | None,
        console: logging.Handler | None,
        flush_interval: float,
        verbosity: int = 0,
    ) -> None:
        self.path = path
        self.memory = memory
        self.console = console
        self.verbosity = verbosity
        self.adopted: list[logging.Logger] = []
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        if memory is not None and flush_interval > 0:
            self._timer = threading.Thread(
                target=self._tick, args=(flush_interval,), name="crunchctl-log-flush", daemon=True
            )
            self._timer.start()

    def _tick(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.flush()

    def flush(self) -> None:
        if self.memory is not None:
            self.memory.flush()

    def close(self) -> None:
        global _CURRENT
        if _CURRENT is self:
            _CURRENT = None
        self._stop.set()
        for other in self.adopted:
            if self.memory is not None:
                other.removeHandler(self.memory)
        logger = logging.getLogger(ROOT)
        # MemoryHandler.close() forgets its target, so keep it to close the file after.
        target = self.memory.target if self.memory is not None else None
        for h in (self.memory, self.console):
            if h is not None:
                h.flush()
                logger.removeHandler(h)
                h.close()
        if target is not None:
            target.close()


def setup(
    *,
    log_file: str | os.PathLike | None,
    verbosity: int,
    console: Any = None,
    plain: bool = True,
    flush_every: int = 10,
    flush_interval: float = 5.0,
    to_file: bool = True,
) -> LogSetup:
    """Attach a buffered file handler and a stderr handler to the ``crunchctl`` logger.

    Args:
        log_file: the log file (its folder is created); None for the default location,
            where a file that cannot be opened is a warning and the run goes on.
        verbosity: -1 quiet (errors only), 0 warnings, 1 info, 2 debug on the console.
        console: a rich Console on stderr, shared with progress bars (None: plain stream).
        plain: plain timestamped lines instead of rich formatting.
        flush_every: buffered records between writes to the file.
        flush_interval: seconds between timed flushes (long-running watch).
        to_file: False for the console only (a ``--dry-run`` writes no log file).

    Raises:
        UsageError: ``log_file`` cannot be opened (exit 2, before any work).
    """
    logger = logging.getLogger(ROOT)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    path: Path | None = Path(log_file) if log_file else default_log_file()
    memory = None
    if not to_file:
        path = None
    else:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            target = logging.FileHandler(path, encoding="utf-8", delay=False)
            target.setFormatter(_utc(FILE_FORMAT))
            target.setLevel(logging.DEBUG if verbosity >= 2 else logging.INFO)
            memory = logging.handlers.MemoryHandler(
                max(1, flush_every), flushLevel=logging.ERROR, target=target, flushOnClose=True
            )
            logger.addHandler(memory)
        except OSError as e:
            if log_file:
                # A log file someone named is part of the run, like its output folder
                # (docs/ARCHITECTURE.md, "Rules every command follows").
                from crunchctl.errors import UsageError

                raise UsageError(f"{path}: cannot open the log file: {e.strerror or e}") from None
            path = None  # type: ignore[assignment]
            logging.getLogger(ROOT).warning(
                "cannot open the log file %s: %s", default_log_file(), e.strerror or e
            )

    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(
        max(-1, min(verbosity, 2)), logging.DEBUG
    )
    handler: logging.Handler
    if console is not None and not plain:
        from rich.logging import RichHandler

        handler = RichHandler(
            console=console, show_path=False, show_time=False, rich_tracebacks=False, markup=False
        )
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        stream = console.file if console is not None else None
        handler = logging.StreamHandler(stream)
        handler.setFormatter(_utc("%(asctime)sZ %(levelname)s %(message)s"))
    # A few INFO lines are said at the default verbosity too: those logged with
    # extra={"console": True} (a legacy import, recordings reset meanwhile).
    handler.setLevel(logging.INFO if level == logging.WARNING else level)
    # Records logged with extra={"file_only": True} (tracebacks) stay out of the console.
    handler.addFilter(
        lambda record: (
            not getattr(record, "file_only", False)
            and (record.levelno >= level or getattr(record, "console", False))
        )
    )
    logger.addHandler(handler)
    global _CURRENT
    _CURRENT = LogSetup(path, memory, handler, flush_interval, verbosity)
    return _CURRENT


def adopt(name: str) -> None:
    """A library's logger (``distributed``) writes its warnings to this run's log file, and
    to the console only with ``-v``: its tracebacks would bury crunchctl's one line (a lost
    Dask scheduler is said once, by the executor)."""
    setup = _CURRENT
    if setup is None or setup.verbosity >= 1:
        return
    logger = logging.getLogger(name)
    # The library gives some of its child loggers a console handler of their own.
    family = [logger] + [
        logging.getLogger(n)
        for n in list(logging.Logger.manager.loggerDict)
        if n.startswith(name + ".")
    ]
    for member in family:
        for h in list(member.handlers):
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
                member.removeHandler(h)
        member.propagate = member is not logger  # up to ``name``, not to the root
    logger.setLevel(logging.WARNING)
    if setup.memory is not None and setup.memory not in logger.handlers:
        logger.addHandler(setup.memory)
        setup.adopted.append(logger)
