"""Shared fixtures: an isolated environment per test and small real recordings."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from crunchctl.formats.synth import Line, RecordingSpec, make_recording

# Tests run the ``crunchctl`` of the Python that runs them (a virtual environment's
# ``bin`` is not on PATH when pytest is started as ``.venv/bin/python -m pytest``).
_BIN = os.path.dirname(sys.executable)
if _BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _BIN + os.pathsep + os.environ.get("PATH", "")


@pytest.fixture(autouse=True)
def isolation(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Keep every test away from the user's config, state, logs and terminal settings."""
    home = tmp_path_factory.mktemp("home")
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        monkeypatch.setenv(var, str(home / var.lower()))
    monkeypatch.setenv("CRUNCHCTL_STATE_DIR", str(home / "state"))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("_TYPER_FORCE_DISABLE_TERMINAL", "1")
    monkeypatch.setenv("TERMINAL_WIDTH", "3000")
    monkeypatch.setenv("COLUMNS", "200")
    for var in list(os.environ):
        if var.startswith("CRUNCHCTL_") and var not in ("CRUNCHCTL_STATE_DIR",):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    yield home


SMALL = dict(nframes=6, lframes=1024, fs=1.0e6, center=100.0e6)


@pytest.fixture
def make_tiq(tmp_path: Path):
    """Factory: ``make_tiq("a.tiq", nframes=..., ...)`` writes a small real recording."""

    def make(name: str = "rec.tiq", folder: Path | None = None, **kw) -> Path:
        params = {**SMALL, **kw}
        if "lines" not in params:
            params["lines"] = (Line(50e3, 1e-3, 0.0), Line(-120e3, 3e-4, 100.0))
        folder = folder or tmp_path
        folder.mkdir(parents=True, exist_ok=True)
        return make_recording(folder / name, RecordingSpec(**params), chunk_samples=4096)

    return make


def small_args(tmp_path: Path) -> list[str]:
    """CLI options that fit the small recordings and keep everything inside tmp_path."""
    return ["--lframes", "1024", "--zoom-span", "200000", "--output", str(tmp_path / "out"),
            "--ledger", str(tmp_path / "ledger"), "--log-file", str(tmp_path / "crunchctl.log")]


def crunchctl_cmd() -> list[str]:
    """The installed entry point, or ``python -m crunchctl`` where it is not on PATH."""
    exe = shutil.which("crunchctl")
    return [exe] if exe else [sys.executable, "-m", "crunchctl"]


def child_env(**extra: str) -> dict[str, str]:
    """Environment of a crunchctl child process: plain output, no user config."""
    env = dict(os.environ)
    env.update(NO_COLOR="1", COLUMNS="200", PYTHONUNBUFFERED="1", **extra)
    env.pop("CRUNCHCTL_CONFIG", None)
    return env


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    """Poll ``predicate`` until it is true (returned) or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
