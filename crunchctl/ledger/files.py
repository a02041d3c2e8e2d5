"""File-system helpers of the ledger folder: the compaction lock, durable renames, quiet
removal, and saying what is wrong with a damaged Parquet file (docs/ledger.md)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pathlib
import time
from collections.abc import Iterator

#: How long a reader waits for a compaction before it reads without the lock.
READ_LOCK_WAIT_S = 30.0


def _open_lock(path: pathlib.Path, flags: tuple[int, ...]) -> int | None:
    for f in flags:
        try:
            return os.open(path, f, 0o666)
        except OSError:
            continue
    return None


@contextlib.contextmanager
def shared_lock(path: pathlib.Path) -> Iterator[bool]:
    """Hold ``flock(LOCK_SH)`` on ``path`` while reading; yields whether it is held.

    Yields False (the caller reads without the lock, and retries) when the file cannot be
    opened (a read-only folder), the file system refuses locks, or a compaction holds the
    lock longer than ``READ_LOCK_WAIT_S``.
    """
    fd = _open_lock(path, (os.O_RDWR | os.O_CREAT, os.O_RDONLY))
    if fd is None:
        yield False
        return
    try:
        deadline = time.monotonic() + READ_LOCK_WAIT_S
        locked = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                locked = True
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.01)
            except OSError:
                break
        yield locked
    finally:
        os.close(fd)


@contextlib.contextmanager
def exclusive_lock(path: pathlib.Path, *, wait: bool) -> Iterator[bool]:
    """Hold ``flock(LOCK_EX)`` on ``path``; without ``wait`` yields False when it is busy.

    Raises:
        OSError: the lock file cannot be created.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the flock


def damage_reason(path: pathlib.Path, exc: BaseException) -> str:
    """Why a Parquet file could not be read, in a few words (truncated, not Parquet, ...)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(4)
            fh.seek(max(0, size - 4))
            tail = fh.read(4)
    except OSError as err:
        return f"cannot read: {err.strerror or err}"
    if size == 0:
        return "empty file"
    if head != b"PAR1":
        return "not a Parquet file"
    if tail != b"PAR1":
        return "truncated"
    text = " ".join(str(exc).split())
    return text[:160] or type(exc).__name__


def pid_gone(pid: int) -> bool:
    """Whether no process ``pid`` runs on this host (a zombie counts as gone, ours never)."""
    from crunchctl.writers import writer_gone

    return writer_gone(pid)


def unlink_quietly(path: os.PathLike | str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def fsync_dir(path: pathlib.Path) -> None:
    """Make renames in ``path`` durable; some file systems refuse, which is fine."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
