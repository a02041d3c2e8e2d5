"""Who wrote a temporary file, in a form that outlives PID reuse.

A temp file's name carries its writer's tag: the process id and, on Linux, the process's
start time in clock ticks since boot. A process id alone is not enough: after a crash the
id can be given to a new process (a busy machine wraps the ids within minutes), and a temp
file that only named the id would then look as if its writer still ran, forever.
"""

from __future__ import annotations

import os


def _stat(pid: int) -> tuple[str, int] | None:
    """State letter and start time (clock ticks since boot) of process ``pid``; None when
    unknown (no such process, or no ``/proc``)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or ")": the fields
    # after the last ")" are plain; the state is field 3, the start time field 22.
    rest = raw[raw.rfind(b")") + 2 :].split()
    try:
        return rest[0].decode("ascii", "replace"), int(rest[19])
    except (IndexError, ValueError):
        return None


def start_ticks(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot; None when unknown."""
    stat = _stat(pid)
    return None if stat is None else stat[1]


_OWN_TAG: str | None = None
_OWN_PID: int | None = None


def own_tag() -> str:
    """This process's writer tag: ``<pid>-<start ticks>``, or ``<pid>`` without /proc."""
    global _OWN_TAG, _OWN_PID
    pid = os.getpid()
    if _OWN_TAG is None or _OWN_PID != pid:  # a forked child gets its own tag
        start = start_ticks(pid)
        _OWN_TAG = f"{pid}" if start is None else f"{pid}-{start}"
        _OWN_PID = pid
    return _OWN_TAG


def writer_gone(pid: int, start: int | None = None) -> bool:
    """Whether the writer named by ``pid`` (and its start time, when the tag has one) no
    longer runs on this host. A zombie (exited, not yet reaped by its parent) is gone:
    it will never finish a file. This process never counts as gone."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # EPERM: alive, someone else's; /proc still tells
        pass
    stat = _stat(pid)
    if stat is None:
        return False  # no /proc: the pid runs, which is all one can know
    state, now = stat
    return state in ("Z", "X") or (start is not None and now != start)
