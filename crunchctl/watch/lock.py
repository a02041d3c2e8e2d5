"""One ``watch`` per folder and ledger: an ``fcntl.flock`` on a file in the ledger folder.

Two watches of one folder on one ledger: the second refuses to start rather than sharing
the work, which would need per-recording claims that every watcher sees at once, for a case
(two watchers on one recorder) that is a mistake. Who holds the lock is read from the
watch's record (``watch/record.py``). On a shared ledger folder the lock is seen by every
host where ``flock`` reaches the server (NFSv4; see docs/ledger.md for the others).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import time
from pathlib import Path

from crunchctl.errors import LedgerBusyError, LedgerError
from crunchctl.watch.record import read_record, record_path, watch_key

log = logging.getLogger("crunchctl.watch")
#: flock errors that mean "no locks here", not "someone holds it".
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)


def lock_path(ledger_dir: str | os.PathLike, folder: str) -> Path:
    """The lock file of watches of ``folder`` on the ledger in ``ledger_dir``."""
    return record_path(ledger_dir, folder).with_suffix(".lock")


class WatchLock:
    """The single-watcher lock of (folder, ledger).

    It holds while the process lives (the kernel drops it when the process dies, so a
    crash leaves no stale lock).
    """

    def __init__(self, ledger_dir: str | os.PathLike, folder: str) -> None:
        self.path = lock_path(ledger_dir, folder)
        self.folder = folder
        self.ledger_dir = str(ledger_dir)
        self.key = watch_key(folder)
        self._fd: int | None = None

    def acquire(self, wait: float = 0.3) -> None:
        """Take the lock, trying for ``wait`` seconds.

        Raises:
            LedgerBusyError: another watch holds it (the message names it).
            LedgerError: the lock file cannot be created.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise LedgerError(
                f"cannot create the watch lock {self.path}: {e.strerror or e}"
            ) from None
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno in _NO_LOCKS:
                    # A share mounted without locks (NFS ``nolock``, some FUSE file
                    # systems): watch anyway, as the ledger's readers do (docs/ledger.md).
                    log.warning(
                        "%s: the file system gives no locks (%s); a second watch "
                        "of %s would not be refused",
                        self.path,
                        e.strerror or e,
                        self.folder,
                    )
                    break
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise LedgerError(f"cannot lock {self.path}: {e.strerror or e}") from None
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise LedgerBusyError(self._busy_message()) from None
                time.sleep(0.1)
        self._fd = fd

    def _busy_message(self) -> str:
        holder: dict = {}
        for _ in range(20):  # the holder writes its record right after locking
            holder = read_record(record_path(self.ledger_dir, self.folder))
            if holder.get("pid") and holder.get("running"):
                break
            time.sleep(0.05)
        who = (
            (
                f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
                f"since {holder.get('started', '?')}"
            )
            if holder
            else "details unknown"
        )
        return (
            f"another crunchctl watch is already watching {self.folder} with the ledger "
            f"{self.ledger_dir} ({who}); stop it first (two watchers would process "
            f"the same recordings)"
        )

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None

    def __enter__(self) -> WatchLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
