"""Shared fixtures and helpers: an isolated environment per test, small real recordings, the
command line in this process (``cli``), ``crunchctl watch`` child processes, and the optional
parts of a machine (a browser, a distribution Python, mount namespaces) some tests need."""

from __future__ import annotations

import functools
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from crunchctl.formats.synth import Line, RecordingSpec, make_recording

# Tests run the ``crunchctl`` of the Python that runs them (a virtual environment's
# ``bin`` is not on PATH when pytest is started as ``.venv/bin/python -m pytest``).
_BIN = os.path.dirname(sys.executable)
if _BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _BIN + os.pathsep + os.environ.get("PATH", "")

# Data and helpers several test folders share are plain modules in tests/helpers/ (not test
# modules): importable by their names from any test, whatever folder pytest started in.
HELPERS = Path(__file__).resolve().parent / "helpers"
if str(HELPERS) not in sys.path:
    sys.path.insert(0, str(HELPERS))

# The browser fixtures (``chrome``, ``browser``, ``serve``) for every test that asks for them.
pytest_plugins = ["page_helpers"]


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
    # A command run in this process sets up the ``crunchctl`` logger (its own handlers, no
    # propagation): put it back, so that ``caplog`` sees the records of the next test.
    logger = logging.getLogger("crunchctl")
    saved = logger.propagate, logger.level, list(logger.handlers)
    yield home
    logger.propagate, logger.level = saved[0], saved[1]
    logger.handlers[:] = saved[2]


# ------------------------------------------------------------ optional parts of a machine


@dataclass(frozen=True)
class Part:
    """Something a few tests drive for real that ``pip install -e ".[test]"`` cannot bring."""

    what: str  # what the tests need, as its user would name it
    how: str  # how to get it: the command to run, or what to do


PARTS = {
    "browser": Part(
        "Chromium and ChromeDriver (chromium, chromedriver)",
        "install with 'apt-get install chromium chromium-driver'",
    ),
    "system-python": Part(
        "a distribution's own Python with venv (/usr/bin/python3, marked externally managed)",
        "install with 'apt-get install python3 python3-venv'",
    ),
    "mount-namespaces": Part(
        "mount namespaces (unshare -m, as root)",
        "install with 'apt-get install util-linux' and run the tests as root",
    ),
    "tmux": Part(
        "a terminal multiplexer to drive the live panel (tmux)",
        "install with 'apt-get install tmux'",
    ),
    "cjk-font": Part(
        "a font with CJK glyphs for figure titles (Noto CJK)",
        "install with 'apt-get install fonts-noto-cjk'",
    ),
    "setpriv": Part(
        "setpriv, to drop root's file-permission override (util-linux)",
        "install with 'apt-get install util-linux'",
    ),
}

SYSTEM_PYTHON = Path("/usr/bin/python3")


def strict() -> bool:
    """True in CI (``CI`` set, as ``.ci/run`` does): a missing part fails instead of skipping."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def browser_paths() -> tuple[str | None, str | None]:
    """Chromium and ChromeDriver found on PATH (Debian installs both into /usr/bin)."""
    return shutil.which("chromium"), shutil.which("chromedriver")


def _browser_missing() -> str | None:
    names = [n for n, p in zip(("chromium", "chromedriver"), browser_paths()) if p is None]
    return f"{' and '.join(names)} not found on PATH" if names else None


def _system_python_missing() -> str | None:
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} not found"
    code = (
        "import ensurepip, os, sysconfig; "
        "print(os.path.exists(os.path.join(sysconfig.get_path('stdlib'), "
        "'EXTERNALLY-MANAGED')))"
    )
    p = subprocess.run([str(SYSTEM_PYTHON), "-c", code], capture_output=True, text=True)
    if p.returncode != 0:
        return f"{SYSTEM_PYTHON} has no venv/ensurepip"
    if p.stdout.strip() != "True":
        return f"{SYSTEM_PYTHON} is not marked externally managed (PEP 668)"
    return None


def _mount_namespaces_missing() -> str | None:
    if shutil.which("unshare") is None:
        return "unshare not found on PATH"
    with tempfile.TemporaryDirectory() as d:
        p = subprocess.run(
            ["unshare", "-m", "sh", "-c", f"mount -t tmpfs none {d}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    if p.returncode != 0:
        return f"unshare -m cannot mount here: {(p.stderr or p.stdout).strip()[:120]}"
    return None


def _tmux_missing() -> str | None:
    return None if shutil.which("tmux") else "tmux not found on PATH"


def _cjk_font_missing() -> str | None:
    from crunchctl.batch.figure import font_families

    return "no installed font has CJK glyphs" if font_families(["日本"])[1] else None


def _setpriv_missing() -> str | None:
    if os.geteuid() != 0:
        return None  # not root: plain file modes already deny
    return None if shutil.which("setpriv") else "setpriv not found on PATH"


_CHECKS = {
    "tmux": _tmux_missing,
    "cjk-font": _cjk_font_missing,
    "setpriv": _setpriv_missing,
    "browser": _browser_missing,
    "system-python": _system_python_missing,
    "mount-namespaces": _mount_namespaces_missing,
}


@functools.cache
def missing(name: str) -> str | None:
    """Why part ``name`` is not usable on this machine, or None when it is."""
    return _CHECKS[name]()


def require(name: str) -> None:
    """Skip the calling test when part ``name`` is missing, with one line saying what and how
    to get it; under CI (``strict()``) the same line fails the test instead."""
    why = missing(name)
    if why is None:
        return
    part = PARTS[name]
    line = f"needs {part.what}: {why}; {part.how}"
    if strict():
        pytest.fail(f"missing part (CI runs every test): {line}", pytrace=False)
    pytest.skip(line)


# ------------------------------------------------------------------- the command line


def invoke(*args, input: str | None = None, catch_exceptions: bool = False):
    """Run ``crunchctl ARGS...`` in this process (Typer's CliRunner); exceptions propagate
    unless ``catch_exceptions``."""
    from typer.testing import CliRunner

    from crunchctl.cli import app

    return CliRunner().invoke(
        app, [str(a) for a in args], input=input, catch_exceptions=catch_exceptions
    )


@pytest.fixture
def cli():
    """``cli("process", file, ...)``: the command line in this process, see ``invoke``."""
    return invoke


def small_args(tmp_path: Path) -> list[str]:
    """CLI options that fit the small recordings and keep everything inside tmp_path."""
    return [
        "--lframes",
        "1024",
        "--zoom-span",
        "200000",
        "--output",
        str(tmp_path / "out"),
        "--ledger",
        str(tmp_path / "ledger"),
        "--log-file",
        str(tmp_path / "crunchctl.log"),
    ]


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


# ------------------------------------------------------------------------- recordings


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


def tiny_tiq(path: Path, seed: int = 1, nframes: int = 4) -> Path:
    """A tiny real recording at ``path``: ``nframes`` frames of 1024 samples."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return make_recording(path, RecordingSpec(nframes=nframes, lframes=1024, seed=seed))


def drop(staging: Path, folder: Path, name: str, seed: int = 1) -> Path:
    """Make a recording outside the watched folder and rename it in (atomic, like a mover)."""
    src = tiny_tiq(staging / name, seed)
    dest = folder / name
    os.replace(src, dest)
    return dest


def make_incomplete(path: Path, seed: int = 7) -> Path:
    """A .tiq whose data section stops half way (a recorder still writing)."""
    full = tiny_tiq(path.with_suffix(".full"), seed)
    data = full.read_bytes()
    full.unlink()
    path.write_bytes(data[: len(data) - 8 * 1024])
    return path


def iq_rows(ledger: Path, item: Path | None = None):
    """Ledger rows of recordings (``iq``), optionally of one item; empty without a ledger."""
    import polars as pl

    from crunchctl.ledger.store import Ledger

    if not ledger.exists():
        return pl.DataFrame(schema={"item": pl.String, "status": pl.String})
    frame = Ledger(ledger, create=False).scan().collect().filter(pl.col("kind") == "iq")
    if item is not None:
        frame = frame.filter(pl.col("item") == str(item))
    return frame


# --------------------------------------------------------------- watch child processes


class WatchProc:
    """A ``crunchctl watch`` child process with its ledger, output and logs in ``base``.

    ``workers``, ``www``, ``zoom_span`` and ``lframes`` set ``-j``, ``--www`` (False: no web
    folder), ``--zoom-span`` and ``--lframes``; ``env`` adds to
    the child's environment; ``new_session`` puts it in a process group of its own (``kill``
    then kills its workers too). Output goes to numbered files in ``base``.
    """

    def __init__(
        self,
        base: Path,
        *extra: str,
        folder: Path | None = None,
        workers: int = 2,
        www: bool = True,
        zoom_span: str | None = None,
        lframes: int = 1024,
        env: dict | None = None,
        new_session: bool = False,
    ) -> None:
        self.base = base
        self.folder = folder or base / "rec"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ledger = base / "ledger"
        self.out = base / "out"
        self.www = base / "www"
        self.extra = extra
        self.workers, self.use_www, self.zoom_span = workers, www, zoom_span
        self.lframes = lframes
        self.env = child_env(**(env or {}))
        self.new_session = new_session
        self.proc: subprocess.Popen | None = None
        self.n = 0

    def args(self) -> list[str]:
        return [
            *crunchctl_cmd(),
            "watch",
            str(self.folder),
            "--ledger",
            str(self.ledger),
            "--output",
            str(self.out),
            *(["--www", str(self.www)] if self.use_www else []),
            "--lframes",
            str(self.lframes),
            *(["--zoom-span", self.zoom_span] if self.zoom_span else []),
            "--log-file",
            str(self.log_path),
            "-j",
            str(self.workers),
            *self.extra,
        ]

    @property
    def log_path(self) -> Path:
        return self.base / "watch.log"

    def start(self, *more: str, timeout: float = 30) -> WatchProc:
        self.n += 1
        tag = f"{self.folder.name}-{id(self)}-{self.n}"
        self.stdout_path = self.base / f"watch-{tag}.out"
        self.stderr_path = self.base / f"watch-{tag}.err"
        self.proc = subprocess.Popen(
            self.args() + list(more),
            stdout=open(self.stdout_path, "w"),
            stderr=open(self.stderr_path, "w"),
            env=self.env,
            cwd=self.base,
            start_new_session=self.new_session,
        )
        wait_for(
            lambda: "watching " in self.stderr or self.proc.poll() is not None,
            timeout,
            "the watcher to start",
        )
        assert self.proc.poll() is None, self.stderr
        return self

    def run_once(self, *more: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """``watch --once``: the backlog, then exit; its output captured."""
        return subprocess.run(
            self.args() + ["--once", *more],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.base,
            timeout=timeout,
        )

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text()

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def rows(self, item: Path | None = None):
        return iq_rows(self.ledger, item)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            if self.new_session:
                os.killpg(self.proc.pid, signal.SIGKILL)
            else:
                self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def watchers():
    """``watchers(base, *extra, **options)`` -> a ``WatchProc``; killed at the end if left
    running by the test."""
    made: list[WatchProc] = []

    def make(base: Path, *extra: str, **options) -> WatchProc:
        w = WatchProc(base, *extra, **options)
        made.append(w)
        return w

    yield make
    for w in made:
        w.kill()


def run_once(
    base: Path, *extra: str, folder: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """``crunchctl watch --once`` on ``base/rec`` (or ``folder``), as ``WatchProc`` runs it."""
    return WatchProc(base, folder=folder).run_once(*extra, timeout=timeout)


class Lines:
    """The lines of a child's stream as they come, with the time each arrived."""

    def __init__(self, stream) -> None:
        self.q: queue.Queue = queue.Queue()
        self.all: list[str] = []
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            self.q.put(line)

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        if any(text in line for line in self.all):
            return
        while time.monotonic() < deadline:
            try:
                line = self.q.get(timeout=0.05)
            except queue.Empty:
                continue
            self.all.append(line)
            if text in line:
                return
        raise AssertionError(f"no line with {text!r} within {timeout} s: {self.all}")

    def rest(self) -> str:
        while True:
            try:
                self.all.append(self.q.get(timeout=0.5))
            except queue.Empty:
                return "".join(self.all)
