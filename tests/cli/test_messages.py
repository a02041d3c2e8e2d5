"""What the commands say: usage errors that name the choices, times with their zone, tables
that keep the folder a file is in, help a person reads, counts in the right number."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest

from conftest import child_env, crunchctl_cmd, invoke as run, small_args, wait_for
from crunchctl.cli import app
from crunchctl.formats.synth import RecordingSpec, make_recording

PLUGIN = """
import numpy as np

def load(item):
    if item == "quiet":
        return []
    return [{"x": np.arange(8.0), "y": np.arange(4.0), "data": np.ones((4, 8)), "label": item}]
"""


def env_with(**extra: str) -> dict[str, str]:
    return {**child_env(), **extra}


def crunchctl(*args, env=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run(
        crunchctl_cmd() + [str(a) for a in args],
        capture_output=True,
        text=True,
        env=env or child_env(),
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def mixed_ledger(tmp_path, make_tiq) -> Path:
    """A ledger with one item of each status a run records: ok, error, no_data."""
    good = make_tiq("good.tiq", nframes=2)
    bad = tmp_path / "bad.tiq"
    bad.write_bytes(b"not a recording")
    assert run("process", good, bad, *small_args(tmp_path)).exit_code == 1
    plugin = tmp_path / "plug.py"
    plugin.write_text(PLUGIN)
    items = tmp_path / "items.txt"
    items.write_text("quiet\n")
    r = run(
        "batch",
        items,
        "--loader",
        f"{plugin}:load",
        "--output",
        tmp_path / "figs",
        "--ledger",
        tmp_path / "ledger",
        "--log-file",
        tmp_path / "crunchctl.log",
    )
    assert r.exit_code == 0, r.output
    return tmp_path / "ledger"


# ------------------------------------------------------------------ --status choices


def test_reset_of_an_unknown_status_is_a_usage_error_naming_the_choices(mixed_ledger):
    r = run("reset", "--status", "bogus", "--yes", "--ledger", mixed_ledger)
    assert r.exit_code == 2
    assert "'bogus' is not a status; choose ok, error or no_data" in r.stderr
    assert "nothing to reset" not in r.output
    # Nothing was reset: every item keeps its status.
    doc = json.loads(run("status", "--ledger", mixed_ledger, "--json").stdout)
    assert doc["by_status"] == {"ok": 1, "error": 1, "no_data": 1, "reset": 0}
    r = run("reset", "--status", "no_data", "--yes", "--ledger", mixed_ledger)
    assert r.exit_code == 0 and "reset 1 item;" in r.stdout


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        (["--status", "no_data"], {"no_data"}),
        (["--status", "ok"], {"ok"}),
        (["--status", "error"], {"error"}),
        (["--errors"], {"error"}),
        (["--status", "ok,no_data"], {"ok", "no_data"}),
        (["--status", "ok", "--status", "error"], {"ok", "error"}),
    ],
)
def test_status_shows_the_items_of_each_status_asked_for(mixed_ledger, given, shown):
    r = run("status", "--ledger", mixed_ledger, "--json", "--list", *given)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert {e["status"] for e in doc["list"]} == shown
    assert doc["items"] == len(shown)
    assert {k for k, n in doc["by_status"].items() if n} == shown


def test_status_of_an_unknown_status_is_a_usage_error(mixed_ledger):
    r = run("status", "--ledger", mixed_ledger, "--status", "failed")
    assert r.exit_code == 2
    assert "'failed' is not a status; choose ok, error, no_data or reset" in r.stderr


# ------------------------------------------------------------------------- --help

PYTHON_TYPE = re.compile(
    r" <(int|float|str|bool|path|dir|file|text|list\[[^>]*\]|[a-z]+ range)>"
    r"|list\[|\{[A-Z]"
)


@pytest.mark.parametrize("command", [[]] + [[c.name] for c in app.registered_commands])
def test_help_shows_metavars_a_person_reads(command):
    r = crunchctl(*command, "--help", env=env_with(COLUMNS="100"))
    assert r.returncode == 0, r.stderr
    assert not PYTHON_TYPE.search(r.stdout), PYTHON_TYPE.search(r.stdout).group(0)
    # Every option that takes a value names it.
    for line in r.stdout.splitlines():
        m = re.match(r"\s+(?:-\w, )?(--[\w-]+)(?: (\S+))?", line)
        if m and m.group(2) is None and not line.strip().startswith(m.group(1) + " /"):
            assert m.group(1) in FLAGS, f"{m.group(1)} shows no metavar: {line!r}"


FLAGS = {
    "--csv",
    "--version",
    "--verbose",
    "--quiet",
    "--install-completion",
    "--show-completion",
    "--help",
    "--force",
    "--json",
    "--recursive",
    "--once",
    "--errors",
    "--list",
    "--all",
    "--dry-run",
    "--incomplete",
    "--yes",
    "--noise-only",
    "--verify-checksum",
    "--resume",
}


def test_help_names_arguments_and_list_options_plainly():
    process = crunchctl("process", "--help", env=env_with(COLUMNS="100")).stdout
    assert "Usage: crunchctl process [OPTIONS] FILE...\n" in process
    assert re.search(r"^  FILE\.\.\.\s+Recordings to process", process, re.MULTILINE)
    watch = crunchctl("watch", "--help", env=env_with(COLUMNS="100")).stdout
    assert re.search(r"^  --pattern GLOB\s", watch, re.MULTILINE)
    assert re.search(r"^  FOLDER\s+Folder the recorder writes into", watch, re.MULTILINE)
    batch = crunchctl("batch", "--help", env=env_with(COLUMNS="100")).stdout
    assert "Usage: crunchctl batch [OPTIONS] ITEMS\n" in batch
    assert re.search(r"^  --only GLOB\s", batch, re.MULTILINE)


# ------------------------------------------------------------- narrow terminals


def on_a_terminal(args: list, columns: int = 80, timeout: float = 60.0) -> tuple[int, str]:
    """Run crunchctl with stdout and stderr on a pseudo-terminal ``columns`` wide."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {
        k: v for k, v in child_env().items() if k not in ("NO_COLOR", "COLUMNS", "TERMINAL_WIDTH")
    }
    env["TERM"] = "xterm"
    proc = subprocess.Popen(
        crunchctl_cmd() + [str(a) for a in args],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    out, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        text = out.decode(errors="replace").replace("\r\n", "\n")
        return proc.wait(timeout=10), re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()


def test_status_list_at_80_columns_keeps_the_folder_a_recording_is_in(tmp_path, make_tiq):
    night = tmp_path / "recordings-of-the-night-shift-from-both-analysers"
    a = make_tiq("20240417_130522.tiq", folder=night / "rsa2", nframes=2)
    b = make_tiq("20240417_130522.tiq", folder=night / "rsa510", nframes=2)
    assert len(str(b)) > 80
    assert run("process", a, b, *small_args(tmp_path)).exit_code == 0
    code, out = on_a_terminal(["status", "--list", "--ledger", tmp_path / "ledger"])
    assert code == 0, out
    lines = out.splitlines()
    assert max(len(ln) for ln in lines) <= 80, out
    for folder in ("rsa2", "rsa510"):
        shown = [ln for ln in lines if f"{os.sep}{folder}{os.sep}20240417_130522.tiq" in ln]
        assert len(shown) == 1, out
        assert shown[0].lstrip().startswith("…"), out  # the folder part was shortened


# ---------------------------------------------------------------------- a folder


@pytest.mark.parametrize("forced", [[], ["--format", "tiq"]])
def test_process_of_a_folder_says_it_is_a_folder_and_how_to_process_it(tmp_path, make_tiq, forced):
    folder = tmp_path / "night"
    make_tiq("a.tiq", folder=folder, nframes=2)
    r = subprocess.run(
        crunchctl_cmd() + ["process", ".", *forced, *small_args(tmp_path)],
        cwd=folder,
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=120,
        check=False,
    )
    assert r.returncode == 1
    assert f"{folder}: is a directory, not a recording" in r.stderr
    assert f"({folder / '*.tiq'})" in r.stderr and f"crunchctl watch --once {folder}" in r.stderr
    assert "unknown recording format" not in r.stderr


# ------------------------------------------------------------------ counts and notes


def test_import_and_status_count_one_as_one(tmp_path, make_tiq):
    legacy = tmp_path / "processed.toml"
    legacy.write_text(f'processed = ["{tmp_path / "old.tiq"}"]\n')
    r = crunchctl("import", legacy, "--ledger", tmp_path / "ledger")
    assert r.returncode == 0, r.stderr
    assert f"{legacy}: imported 1 entry\n" in r.stdout
    r = crunchctl("status", "--ledger", tmp_path / "ledger")
    assert ": 1 item, 1 attempt\n" in r.stdout
    a = make_tiq("a.tiq", nframes=2)
    assert run("process", a, *small_args(tmp_path)).exit_code == 0
    r = crunchctl("status", "--ledger", tmp_path / "ledger")
    assert ": 2 items, 2 attempts\n" in r.stdout


def start_watch(tmp_path: Path, folder: Path, *extra: str) -> tuple[subprocess.Popen, Path]:
    err = tmp_path / "watch.err"
    with open(err, "w") as stderr:  # the child has its own copy of the descriptor
        proc = subprocess.Popen(
            crunchctl_cmd() + ["watch", str(folder), *small_args(tmp_path), *extra],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=child_env(),
            cwd=tmp_path,
        )
    wait_for(
        lambda: "watching " in err.read_text() or proc.poll() is not None, 60, "the watch to start"
    )
    assert proc.poll() is None, err.read_text()
    return proc, err


def test_a_watched_folder_coming_back_is_said_once(tmp_path):
    folder = tmp_path / "rec"
    folder.mkdir()
    proc, err = start_watch(tmp_path, folder)
    try:
        shutil.rmtree(folder)
        wait_for(lambda: "watched folder is gone" in err.read_text(), 30, "the folder gone")
        folder.mkdir()
        wait_for(lambda: "rescanning" in err.read_text(), 30, "the folder back")
        time.sleep(2.5)  # more turns of the loop that checks the folder
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    text = err.read_text()
    assert text.count("the watched folder is back; rescanning it") == 1, text
    log = (tmp_path / "crunchctl.log").read_text()
    assert log.count("the watched folder is back; rescanning it") == 1  # still in the log


def descendants(pid: int) -> list[int]:
    """The processes ``pid`` started, and theirs (Linux ``/proc``)."""
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            kids = Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
        except OSError:
            continue
        for kid in map(int, kids):
            out += [kid, *descendants(kid)]
    return out


def test_a_stopping_watch_says_what_is_in_progress_without_1_recordings(tmp_path):
    folder = tmp_path / "rec"
    folder.mkdir()
    for name in ("a.tiq", "b.tiq"):
        make_recording(
            folder / name, RecordingSpec(nframes=64, lframes=65536, fs=1e6, center=100e6)
        )
    proc, err = start_watch(tmp_path, folder, "-j", "1", "--lframes", "65536")
    frozen: list[int] = []
    try:
        # The first recording is done: the one worker takes the second. Freeze the workers,
        # so that one is still in progress when the watch is told to stop.
        wait_for(lambda: " ok " in err.read_text(), 60, "the first recording")
        frozen = descendants(proc.pid)
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "stopping" in err.read_text(), 30, "the stop line")
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        frozen = []
        assert proc.wait(60) == 0
    finally:
        for pid in frozen:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGCONT)
        if proc.poll() is None:
            proc.kill()
    text = err.read_text()
    assert "stopping: 1 in progress" in text, text
    assert "1 recordings" not in text


# ------------------------------------------------------------ a .tiq's DateTime


def garble_datetime(path: Path, garbage: str) -> None:
    """Replace the header's DateTime values by ``garbage`` (padded: offsets stay)."""
    data = path.read_bytes()
    stamps = set(re.findall(rb"<DateTime>([^<]*)</DateTime>", data[:20000]))
    for stamp in stamps:
        data = data.replace(
            b"<DateTime>" + stamp + b"</DateTime>",
            b"<DateTime>" + garbage.encode().ljust(len(stamp)) + b"</DateTime>",
        )
    path.write_bytes(data)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_garbage_tiq_datetime_is_one_warning_naming_it(tmp_path, make_tiq, workers):
    bad = make_tiq("bad_time.tiq", nframes=2)
    garble_datetime(bad, "yesterday at noon")
    good = make_tiq("good.tiq", nframes=2)
    r = crunchctl("process", bad, good, *small_args(tmp_path), "-j", workers)
    assert r.returncode == 0, r.stderr
    warned = [ln for ln in r.stderr.splitlines() if "yesterday at noon" in ln]
    assert len(warned) == 1, r.stderr
    assert str(bad) in warned[0] and "acquisition time unknown" in warned[0]
    assert "good.tiq: header DateTime" not in r.stderr


# ------------------------------------------------------------------- the window


def test_the_quicklook_subtitles_name_the_window(tmp_path, make_tiq):
    import numpy as np
    from PIL import Image

    from crunchctl.config import Settings
    from crunchctl.quicklook import render, task, zoom

    path = make_tiq("w.tiq", nframes=6)
    r = crunchctl("process", path, *small_args(tmp_path), "--window", "hann")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out"
    with np.load(out / "w.npz") as z:
        freqs, times, power = z["arr_0"][0], z["arr_1"][:, 0], z["arr_2"]
        assert str(z["window"]) == "hann"
    from crunchctl.quicklook import levels

    settings = Settings(lframes=1024, zoom_span=2e5, window="hann")
    title = task.title_for(str(path), task.open_for(str(path), settings).header)
    style = render.Style(cmap="viridis", scaling="spectrum")
    # The pictures show power in the spectrum scaling (the NPZ keeps |FFT|²).
    power = power * np.float32(levels.power_factor("spectrum", "hann", 1024, 1e6))
    # The pictures crunchctl wrote are these pictures, subtitles and all.
    expected_full = "centre 100 MHz, bin 977 Hz, frame 1.02 ms, L=1024, window hann"
    expected_zoom = "span 200 kHz, bin 977 Hz, frame 1.02 ms, L=1024, window hann"
    with open(tmp_path / "full.png", "wb") as f:
        render.render_spectrogram(
            f, power, freqs, times, title=title, style=style, subtitle=expected_full
        )
    zz = zoom.zoom_of(str(path), power, freqs, 100e6, 1e6, settings)
    with open(tmp_path / "zoom.png", "wb") as f:
        render.render_spectrogram(
            f,
            zz.power,
            zz.freqs,
            zz.times,
            title=title + "   (zoom)",
            style=style,
            subtitle=expected_zoom,
            relative_to=zz.window.centre,
        )
    for got, ref in (
        (out / "w.png", tmp_path / "full.png"),
        (out / "w_zoom.png", tmp_path / "zoom.png"),
    ):
        assert np.array_equal(np.asarray(Image.open(got)), np.asarray(Image.open(ref))), got


# ------------------------------------------------------------------------ times

BERLIN = "Europe/Berlin"  # UTC+1 in winter, +2 in summer: never UTC


def test_printed_times_say_their_zone_and_typed_times_without_one_are_utc(tmp_path, make_tiq):
    import datetime as dt

    env = env_with(TZ=BERLIN)
    a = make_tiq("a.tiq", nframes=2)
    before = time.time()
    r = crunchctl("process", a, *small_args(tmp_path), env=env)
    assert r.returncode == 0, r.stderr
    # Plain progress lines and the log file: ISO 8601 in UTC, with its Z.
    [line] = [ln for ln in r.stderr.splitlines() if "process [1/1] ok" in ln]
    stamp = dt.datetime.strptime(line.split()[0], "%Y-%m-%dT%H:%M:%SZ")
    assert abs(stamp.replace(tzinfo=dt.timezone.utc).timestamp() - before) < 120
    log_line = (tmp_path / "crunchctl.log").read_text().splitlines()[-1]
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ", log_line), log_line

    ledger = tmp_path / "ledger"
    doc = json.loads(crunchctl("status", "--ledger", ledger, "--json", "--list", env=env).stdout)
    finished = dt.datetime.fromisoformat(doc["list"][0]["finished"].replace("Z", "+00:00"))
    table = crunchctl("status", "--ledger", ledger, "--list", env=env).stdout
    assert finished.strftime("%Y-%m-%d %H:%M:%S UTC") in table, table
    assert f"First activity {finished.strftime('%Y-%m-%d %H:%M:%S UTC')}" in table

    # A time typed without a zone is UTC, whatever TZ says (the help says so).
    def rows_since(when: dt.datetime) -> int:
        out = crunchctl(
            "status",
            "--ledger",
            ledger,
            "--json",
            "--since",
            when.strftime("%Y-%m-%dT%H:%M:%S"),
            env=env,
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)["rows"]

    now_utc = finished.replace(tzinfo=None)
    assert rows_since(now_utc - dt.timedelta(minutes=30)) == 1
    assert rows_since(now_utc + dt.timedelta(minutes=30)) == 0  # local time would say 1
    with_zone = (finished + dt.timedelta(minutes=30)).astimezone(dt.timezone(dt.timedelta(hours=1)))
    out = crunchctl(
        "status", "--ledger", ledger, "--json", "--since", with_zone.isoformat(), env=env
    )
    assert json.loads(out.stdout)["rows"] == 0
    for command in ("status", "batch"):
        text = " ".join(crunchctl(command, "--help", env=env_with(COLUMNS="200")).stdout.split())
        assert "UTC unless" in text, command
