"""Giving freed memory back to the system in long-running processes (``watch``).

A watch lives for days. Its main process keeps a little state per recording and, every
few seconds, builds and drops short-lived buffers (the page's document, ledger reads). The
C library's allocator keeps the pages of freed blocks for reuse; interleaved with the
long-lived state they add up, and the process's resident memory creeps upwards although
nothing is leaking. :func:`give_back` asks glibc to return those free pages
(``malloc_trim``); on other C libraries it does nothing. See docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger("crunchctl.run")

#: A watch gives freed memory back at most this often, s (a trim takes milliseconds).
GIVE_BACK_INTERVAL = 60.0

_trim = None
_looked = False


def _malloc_trim():
    global _trim, _looked
    if not _looked:
        _looked = True
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                trim = libc.malloc_trim  # glibc only: musl has none
                trim.argtypes = [ctypes.c_size_t]
                trim.restype = ctypes.c_int
                _trim = trim
            except (OSError, AttributeError):
                _trim = None
    return _trim


def give_back() -> bool:
    """Return the allocator's free pages to the system; whether the C library could."""
    trim = _malloc_trim()
    if trim is None:
        return False
    try:
        trim(0)
    except OSError as e:  # pragma: no cover - defensive: never stop a watch for this
        log.debug("malloc_trim failed: %s", e)
        return False
    return True
