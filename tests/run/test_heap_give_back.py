"""Giving freed memory back: a long watch's resident memory must not keep freed pages."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

_CHILD = textwrap.dedent("""
    import sys
    from crunchctl.run import memory

    def rss_kb():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

    # 160 MB of 2 kB blocks from the C heap (above the small-object allocator), with one
    # block kept at the heap's top: glibc cannot shrink the heap by itself then.
    blocks = [bytearray(2000) for _ in range(80_000)]
    for b in blocks:
        b[0] = 1  # touch the pages
    keep = bytearray(2000)
    del blocks
    before = rss_kb()
    ok = memory.give_back()
    after = rss_kb()
    print(ok, before, after)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_give_back_returns_the_freed_heap_pages_to_the_system():
    # A fresh interpreter: the test process's own heap would blur the figures.
    out = subprocess.run(
        [sys.executable, "-c", _CHILD], capture_output=True, text=True, check=True
    ).stdout.split()
    ok, before, after = out[0] == "True", int(out[1]), int(out[2])
    assert ok
    assert before - after > 100_000, (before, after)  # kB: most of the 160 MB went back
