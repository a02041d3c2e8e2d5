"""``watch --on-alert CMD``: the events a watch alerts on (a recording failed, the recorder
went quiet or came back, the watch stopped), each run through CMD in a background thread.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time
from typing import Any

from crunchctl.errors import UsageError

log = logging.getLogger("crunchctl.watch")

#: Events waiting for the command; more are dropped (and counted) so that a hook that
#: hangs or keeps failing never holds up a watch or fills its memory.
QUEUE_SIZE = 50
#: Seconds ``close`` waits beyond the time limit for the events still queued.
CLOSE_GRACE = 2.0
#: At most this many seconds (plus the grace) for the alerts still queued at the stop: a
#: service manager's stop timeout must not run out on a backlog of slow alerts.
CLOSE_MAX = 30.0
#: Characters of the command's stderr kept in the log line of a failure.
STDERR_KEPT = 300


def parse_command(command: str) -> list[str]:
    """The argument list of an alert command (split like a shell would, never run by one).

    Raises:
        UsageError: the command is empty, cannot be split, or its program is not found.
    """
    try:
        argv = shlex.split(command)
    except ValueError as e:
        raise UsageError(f"--on-alert {command!r}: cannot split it into arguments: {e}") from None
    if not argv:
        raise UsageError("--on-alert: the command is empty")
    if shutil.which(argv[0]) is None:
        raise UsageError(f"--on-alert {command!r}: {argv[0]}: program not found or not executable")
    return argv


class Alerts:
    """Runs the alert command once per event, one at a time, off the watch's loop.

    Each run gets the event as one JSON object on its stdin, in a session of its own (a
    Ctrl-C at the terminal does not kill the hook that reports the stop), and is killed
    after ``timeout`` seconds. Failures are logged; nothing here ever raises into the
    watch.

    Args:
        command: the command line (``shlex``-split); None or empty: no alerts.
        folder: the watched folder, named in every event.
        timeout: seconds one run may take before it is killed.
    """

    def __init__(self, command: str | None, folder: str, timeout: float = 10.0) -> None:
        self.argv = parse_command(command) if command else None
        self.folder = folder
        self.timeout = timeout
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(QUEUE_SIZE)
        self._thread: threading.Thread | None = None
        self._host = socket.gethostname()

    @property
    def enabled(self) -> bool:
        return self.argv is not None

    def send(self, event: str, **fields: Any) -> None:
        """Queue one event (``failed``, ``quiet``, ``back``, ``stopped``); never blocks."""
        if self.argv is None:
            return
        doc = {
            "event": event,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "host": self._host,
            "folder": self.folder,
            **fields,
        }
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="crunchctl-alerts", daemon=True)
            self._thread.start()
        try:
            self._queue.put_nowait(doc)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 100 == 0:
                log.warning(
                    "alert %s dropped (%d so far): the alert command is slow or "
                    "hangs, %d alerts wait for it",
                    event,
                    self.dropped,
                    QUEUE_SIZE,
                )

    def close(self) -> None:
        """Let the queued events (the ``stopped`` one last) go out, within a bound."""
        if self._thread is None:
            return
        waiting = self._queue.qsize()
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass  # the thread is stuck on a hook; it is a daemon and goes with the process
        self._thread.join(
            min(self.timeout * (waiting + 1), max(CLOSE_MAX, self.timeout)) + CLOSE_GRACE
        )
        left = self._queue.qsize()
        if self._thread.is_alive() and left:
            log.warning("%d alert(s) not sent: the alert command did not keep up", left)
        if self.dropped:
            log.warning("%d alert(s) were dropped: the alert command did not keep up", self.dropped)

    # ------------------------------------------------------------------ the thread

    def _work(self) -> None:
        while True:
            doc = self._queue.get()
            if doc is None:
                return
            try:
                self._run(doc)
            except Exception:  # a hook must never stop a watch
                self.failed += 1
                log.exception("alert %s: the alert command could not be run", doc["event"])

    def _run(self, doc: dict[str, Any]) -> None:
        assert self.argv is not None
        what = f"alert {doc['event']}"
        data = (json.dumps(doc) + "\n").encode()
        try:
            proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as e:
            self.failed += 1
            log.warning("%s: cannot run %s: %s", what, self.argv[0], e.strerror or e)
            return
        try:
            _, err = proc.communicate(data, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # its children too
            except OSError:
                proc.kill()
            proc.communicate()
            self.failed += 1
            log.warning(
                "%s: the alert command took more than %g s and was killed", what, self.timeout
            )
            return
        if proc.returncode != 0:
            self.failed += 1
            tail = err.decode(errors="replace").strip()[-STDERR_KEPT:]
            log.warning(
                "%s: the alert command failed (exit %d)%s",
                what,
                proc.returncode,
                f": {tail}" if tail else "",
            )
            return
        self.sent += 1
        log.debug("%s: sent", what)
