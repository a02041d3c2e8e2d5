"""Temp files of product writers: kept while their writer runs, removed once it is gone,
even when its process id now belongs to another process (docs/products.md)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import wait_for
from crunchctl.quicklook.products import atomic_write, clean_stale_temps
from crunchctl.writers import own_tag, start_ticks

linux_proc = pytest.mark.skipif(
    not os.path.exists(f"/proc/{os.getpid()}/stat"), reason="needs /proc (Linux)"
)


@pytest.fixture
def sleeper():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child
    child.kill()
    child.wait()


def test_a_write_in_progress_names_this_process(tmp_path):
    with atomic_write(tmp_path / "a.png") as fh:
        fh.write(b"x")
        (temp,) = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        assert f".a.png.{own_tag()}." in temp.name
        assert clean_stale_temps(tmp_path) == 0  # ours: kept
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


@linux_proc
def test_temp_of_a_running_writer_is_kept(tmp_path, sleeper):
    tag = f"{sleeper.pid}-{start_ticks(sleeper.pid)}"
    temp = tmp_path / f".a.png.{tag}.0123abcd.tmp"
    temp.write_bytes(b"x")
    assert clean_stale_temps(tmp_path) == 0
    assert temp.exists()


@linux_proc
def test_temp_whose_pid_was_reused_is_removed(tmp_path, sleeper):
    # The pid runs, but it is a process that started later than the writer did.
    start = start_ticks(sleeper.pid)
    assert start is not None
    temp = tmp_path / f".a.png.{sleeper.pid}-{start - 1}.0123abcd.tmp"
    temp.write_bytes(b"x")
    assert clean_stale_temps(tmp_path) == 1
    assert not temp.exists()


def test_temp_of_a_gone_writer_is_removed_in_both_name_forms(tmp_path):
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    gone = int(child.stdout)
    old = tmp_path / f".a.png.{gone}.0123abcd.tmp"
    new = tmp_path / f".b.png.{gone}-12345.0123abcd.tmp"
    keep = tmp_path / "b.png"
    for p in (old, new, keep):
        p.write_bytes(b"x")
    assert clean_stale_temps(tmp_path) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["b.png"]


@linux_proc
def test_temp_of_a_zombie_writer_is_removed(tmp_path):
    # A killed worker whose parent died too may wait a while for somebody to reap it: it
    # still has a pid and a start time, but it will never finish the file.
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        start = start_ticks(child.pid)
        assert start is not None

        def state() -> str:
            with open(f"/proc/{child.pid}/stat") as fh:
                return fh.read().rsplit(")", 1)[1].split()[0]

        wait_for(lambda: state() == "Z", 30, "the child to exit (not reaped)")
        temp = tmp_path / f".a.png.{child.pid}-{start}.0123abcd.tmp"
        old_form = tmp_path / f".b.png.{child.pid}.0123abcd.tmp"
        temp.write_bytes(b"x")
        old_form.write_bytes(b"x")
        assert clean_stale_temps(tmp_path) == 2
    finally:
        child.wait()
