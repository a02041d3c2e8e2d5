"""The tests that need a part of the machine pip cannot install (a browser, a distribution
Python, mount namespaces) skip with one line saying what is missing and how to get it, and
fail instead under CI, where every test must run (``conftest.require``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import conftest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_browser_on_path(tmp_path, monkeypatch):
    """PATH without chromium and chromedriver; the helper's answers looked up afresh."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    conftest.missing.cache_clear()
    yield
    conftest.missing.cache_clear()


def test_a_missing_browser_skips_saying_what_and_how(no_browser_on_path, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    assert conftest.browser_paths() == (None, None)
    with pytest.raises(pytest.skip.Exception) as e:
        conftest.require("browser")
    line = str(e.value)
    assert "\n" not in line
    assert "chromium and chromedriver not found on PATH" in line
    assert "apt-get install chromium chromium-driver" in line


@pytest.mark.parametrize("ci", ["true", "1"])
def test_a_missing_browser_fails_in_ci(no_browser_on_path, monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception) as e:
        conftest.require("browser")
    assert "chromium and chromedriver not found on PATH" in str(e.value)
    assert "apt-get install chromium chromium-driver" in str(e.value)


def test_a_present_part_neither_skips_nor_fails(tmp_path, monkeypatch):
    for name in ("chromium", "chromedriver"):
        exe = tmp_path / name
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CI", "true")
    conftest.missing.cache_clear()
    try:
        assert conftest.browser_paths() == (
            str(tmp_path / "chromium"),
            str(tmp_path / "chromedriver"),
        )
        conftest.require("browser")  # returns
    finally:
        conftest.missing.cache_clear()


def _pytest_without_a_browser(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """The browser tests in a child pytest whose PATH has only this Python's bin/."""
    child = {k: v for k, v in os.environ.items() if k != "CI"}
    child.update(PATH=os.path.dirname(sys.executable), **env)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/www/test_browser.py",
            "-m",
            "not slow",
        ],
        cwd=ROOT,
        env=child,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_pytest_summary_names_the_skipped_browser_tests_and_ci_fails_them(tmp_path):
    p = _pytest_without_a_browser(tmp_path)
    assert p.returncode == 0, p.stdout[-3000:]
    skipped = [ln for ln in p.stdout.splitlines() if ln.startswith("SKIPPED")]
    assert skipped and all("apt-get install chromium chromium-driver" in ln for ln in skipped)
    assert "test_browser.py" in skipped[0] and " skipped" in p.stdout.splitlines()[-1]

    p = _pytest_without_a_browser(tmp_path, CI="true")
    assert p.returncode == 1, p.stdout[-3000:]
    assert "missing part (CI runs every test)" in p.stdout
    assert "chromium and chromedriver not found on PATH" in p.stdout
