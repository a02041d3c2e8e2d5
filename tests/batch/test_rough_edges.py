"""``crunchctl batch`` where users' loaders misbehave and analysts try things out: printing
and exiting loaders, one zoom column per event, labels, log colour bars, --only, --limit,
--names, every recording format and Ctrl-C while a loader is slow.

Loaders live in tests/batch/loader_plugins.py.
"""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from batch_helpers import common, items_file
from conftest import child_env, crunchctl_cmd, invoke as run
from crunchctl.batch import run as core
from crunchctl.batch.figure import FigureOptions, log_ticks, render_figure
from crunchctl.batch.rows import DEFAULT_Y_LABEL, DEFAULT_Z_LABEL, check_rows
from crunchctl.ledger.store import Ledger

PLUGIN = Path(__file__).resolve().parent / "loader_plugins.py"
PNG = b"\x89PNG\r\n\x1a\n"
T0 = 1_700_000_000.0


def png_size(path_or_bytes) -> tuple[int, int]:
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    assert data.startswith(PNG)
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


# ------------------------------------------------------------------- misbehaving loaders


def test_loader_output_goes_to_stderr_and_json_stays_one_document(tmp_path):
    items = items_file(tmp_path, ["a", "b", "c"])
    p = subprocess.run(
        [
            *crunchctl_cmd(),
            "batch",
            str(items),
            "--loader",
            f"{PLUGIN}:chatty",
            "-j",
            "2",
            "--json",
            *map(str, common(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=child_env(),
    )
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)  # the whole of stdout is one document
    assert doc["ok"] == 3
    for item in "abc":
        assert f"loading {item} ..." in p.stderr  # print() in a worker
        assert f"raw output for {item}" in p.stderr  # os.write(1, ...) in a worker
    assert "plugin module imported" in p.stderr  # printed at import, in this process


def test_loader_calling_sys_exit_is_one_line_and_that_items_error(tmp_path):
    items = items_file(tmp_path, ["a", "bad1", "c"])
    r = run("batch", items, "--loader", f"{PLUGIN}:exits", "-j", "2", *common(tmp_path))
    assert r.exit_code == 1
    lines = [line for line in r.stderr.splitlines() if "bad1" in line]
    assert len(lines) == 1, r.stderr
    assert lines[0].endswith("bad1: loader loader_plugins.py:exits called sys.exit(3)")
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    rows = Ledger(tmp_path / "ledger", create=False).scan().collect()
    latest = {row["item"]: row for row in rows.iter_rows(named=True)}
    assert latest["bad1"]["status"] == "error"
    assert latest["bad1"]["error"] == "bad1: loader loader_plugins.py:exits called sys.exit(3)"
    assert latest["a"]["status"] == latest["c"]["status"] == "ok"


# ---------------------------------------------------------------------------- figures


def _timed_rows():
    return check_rows(
        {
            "x": np.array([np.datetime64(int(T0 + s), "s") for s in range(0, 7200, 20)]),
            "y": np.linspace(100.0, 500.0, 30),
            "data": np.random.default_rng(3).poisson(3.0, (30, 360)).astype(float),
            "label": "counts",
        },
        "orbit_001",
    )


def _figure(rows, options):
    """Draw, and hand back the matplotlib figure too (to read its labels and ticks)."""
    import io

    from matplotlib.figure import Figure

    drawn = []
    original = Figure.savefig

    def keep(self, *a, **k):
        drawn.append(self)
        return original(self, *a, **k)

    buf = io.BytesIO()
    Figure.savefig = keep
    try:
        warnings = render_figure(buf, rows, title="t", options=options)
    finally:
        Figure.savefig = original
    return drawn[0], warnings, buf.getvalue()


def test_one_zoom_column_per_event_up_to_four_then_said(tmp_path):
    rows = _timed_rows()
    minutes = [27, 77, 37, 47, 92, 102]  # after T0 (22:13:20 UTC)
    events = tuple(T0 + m * 60 for m in minutes)
    fig, warnings, png = _figure(rows, FigureOptions(events=events, zoom_minutes=4, dpi=40))
    titles = [ax.get_title(loc="left") for ax in fig.axes if ax.get_title(loc="left")]
    # the row title, then one zoom column per event in time order, each its time ± 2 min
    assert titles[1:] == [
        "22:40:20 UTC \u00b1 2 min",
        "22:50:20 UTC \u00b1 2 min",
        "23:00:20 UTC \u00b1 2 min",
        "23:30:20 UTC \u00b1 2 min",
    ]
    assert png_size(png)[0] == int((12.0 + 4 * (2.9 + 0.2)) * 40)
    assert warnings == [
        "2 of 6 events not zoomed (at most 4 zoom columns): "
        "2023-11-14 23:45:20 UTC, 2023-11-14 23:55:20 UTC"
    ]
    header = fig.texts[0].get_text()
    assert "zoom on the first 4; not zoomed: 23:45:20 UTC, 23:55:20 UTC" in header
    # each zoom column spans its own event ± 2 minutes (days on a date axis)
    zooms = [ax for ax in fig.axes if ax.get_title(loc="left").endswith("min")]
    for ax, m in zip(zooms, sorted(minutes)):
        lo, hi = ax.get_xlim()
        assert (lo + hi) / 2 * 86400 == pytest.approx(T0 + m * 60, abs=0.01)
        assert (hi - lo) * 86400 == pytest.approx(240.0, abs=0.01)

    fig, warnings, png = _figure(rows, FigureOptions(events=events[:2], zoom_minutes=4, dpi=40))
    assert warnings == []
    assert png_size(png)[0] == int((12.0 + 2 * (3.6 + 0.2)) * 40)
    assert "zoom on each" in fig.texts[0].get_text()


def test_rows_without_labels_get_neutral_ones_and_options_override():
    rows = check_rows(
        {"x": np.arange(10.0), "y": np.arange(5.0), "data": np.ones((5, 10)), "label": "legacy"},
        "item",
    )
    fig, _, _ = _figure(rows, FigureOptions(dpi=40))
    main, cbar = fig.axes[0], fig.axes[1]
    assert (DEFAULT_Y_LABEL, DEFAULT_Z_LABEL) == ("y", "value")
    assert main.get_ylabel() == "y" and cbar.get_ylabel() == "value"
    labelled = check_rows(
        {
            "x": np.arange(10.0),
            "y": np.arange(5.0),
            "data": np.ones((5, 10)),
            "y_label": "channel",
            "z_label": "counts",
        },
        "item",
    )
    fig, _, _ = _figure(labelled, FigureOptions(dpi=40))
    assert fig.axes[0].get_ylabel() == "channel" and fig.axes[1].get_ylabel() == "counts"
    fig, _, _ = _figure(
        labelled, FigureOptions(dpi=40, y_label="Energy (keV)", z_label="Counts / 30 s")
    )
    assert fig.axes[0].get_ylabel() == "Energy (keV)"
    assert fig.axes[1].get_ylabel() == "Counts / 30 s"


def test_label_options_on_the_command_line(tmp_path):
    items = items_file(tmp_path, ["a"])
    r = run(
        "batch",
        items,
        "--loader",
        f"{PLUGIN}:unlabelled",
        "--y-label",
        "channel",
        "--z-label",
        "counts",
        "--json",
        *common(tmp_path),
    )
    assert r.exit_code == 0 and json.loads(r.stdout)["ok"] == 1
    # other labels make other figures: not "already done"
    r = run("batch", items, "--loader", f"{PLUGIN}:unlabelled", "--json", *common(tmp_path))
    assert json.loads(r.stdout)["ok"] == 1


@pytest.mark.parametrize(
    "lo, hi, ticks",
    [
        (1.0, 28.0, [1.0, 2.0, 5.0, 10.0, 20.0]),
        (3.04, 6.96, [4.0, 5.0, 6.0]),
        (0.02, 0.9, [0.02, 0.05, 0.1, 0.2, 0.5]),
        (1.0, 99.0, [1.0, 2.0, 5.0, 10.0, 20.0, 50.0]),
    ],
)
def test_log_colour_bar_ticks_are_few_round_values(lo, hi, ticks):
    assert log_ticks(lo, hi) == pytest.approx(ticks)


def test_log_colour_bar_of_a_small_range_labels_major_ticks_only():
    rows = check_rows(
        {
            "x": np.arange(10.0),
            "y": np.arange(28.0),
            "data": np.arange(1.0, 29.0).repeat(10).reshape(28, 10),
        },
        "item",
    )
    fig, _, _ = _figure(rows, FigureOptions(z_scale="log", z_min=1, z_max=28, dpi=40))
    cbar = fig.axes[1]
    labels = [t.get_text() for t in cbar.get_yticklabels()]
    assert labels == ["1", "2", "5", "10", "20"]
    assert not [t.get_text() for t in cbar.get_yticklabels(minor=True) if t.get_text()]
    assert {t.get_fontsize() for t in cbar.get_yticklabels()} == {8.0}
    narrow = log_ticks(1.5, 1.9)
    assert narrow == [1.5, 1.6, 1.7, 1.8, 1.9]


# ------------------------------------------------------------------- choosing items


def test_only_and_limit_try_a_loader_on_a_few_items(tmp_path):
    names = [f"orbit_{i:03d}" for i in range(1, 8)]
    items = items_file(tmp_path, names)
    args = ["batch", items, "--loader", f"{PLUGIN}:unlabelled", "--json", *common(tmp_path)]
    doc = json.loads(run(*args, "--limit", "2").stdout)
    assert sorted(o["item"] for o in doc["outcomes"]) == ["orbit_001", "orbit_002"]
    assert doc["limited"] == names[2:]
    doc = json.loads(run(*args, "--limit", "2").stdout)  # the next two
    assert sorted(o["item"] for o in doc["outcomes"]) == ["orbit_003", "orbit_004"]
    assert doc["skipped"] == 2
    doc = json.loads(run(*args, "--only", "orbit_00[67]", "--only", "*_005").stdout)
    assert sorted(o["item"] for o in doc["outcomes"]) == ["orbit_005", "orbit_006", "orbit_007"]
    assert doc["items"] == 3 and doc["left_out"] == 4
    r = run(
        "batch", items, "--loader", f"{PLUGIN}:unlabelled", "--only", "nothing*", *common(tmp_path)
    )
    assert r.exit_code == 0 and "no item of" in r.stdout and "matches --only" in r.stdout
    r = run(
        "batch",
        items,
        "--loader",
        f"{PLUGIN}:unlabelled",
        "--limit",
        "1",
        *common(tmp_path),
        "--fresh",
    )
    assert re.search(r"left for the next run \(--limit\)\s+6$", r.stdout, flags=re.M)


def test_names_stem_gives_short_names_and_collisions_keep_the_unique_form(tmp_path):
    paths = [
        "data/a/run1.dat",
        "data/b/run1.dat",
        "data/c/run2.dat",
        "/abs/run3.bin",
        "orbit_001",
        "weird name.dat",
    ]
    names = core.figure_names(paths, "stem")
    assert names["data/c/run2.dat"] == "run2" and names["/abs/run3.bin"] == "run3"
    assert names["orbit_001"] == "orbit_001"
    assert names["data/a/run1.dat"] != names["data/b/run1.dat"]
    assert names["data/a/run1.dat"] == core.figure_names(paths)["data/a/run1.dat"]
    assert names["weird name.dat"] == core.figure_names(paths)["weird name.dat"]
    items = items_file(tmp_path, paths[:3])
    r = run(
        "batch", items, "--loader", f"{PLUGIN}:unlabelled", "--names", "stem", *common(tmp_path)
    )
    assert r.exit_code == 0, r.stderr
    made = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert "run2.png" in made and len(made) == 3
    assert all(n.startswith("data_") for n in made if n != "run2.png")


def test_wrong_choice_is_a_plain_usage_error(tmp_path):
    items = items_file(tmp_path, ["a"])
    r = run("batch", items, "--y-scale", "logarithmic", catch_exceptions=True)
    assert r.exit_code == 2
    assert "'logarithmic' is not a choice; choose linear or log" in r.stderr
    assert "Value error" not in r.stderr and "is not one of" not in r.stderr


# ------------------------------------------------------------------ recording formats


@pytest.mark.parametrize(
    "name, extra",
    [
        ("rec.wav", []),
        ("rec.sigmf-data", []),
        ("rec.cs16", ["--sample-rate", "1e6", "--center", "100e6"]),
        ("rec.dat", ["--format", "wav"]),  # no known extension: --format says what it is
    ],
)
def test_the_iq_loader_reads_every_format(tmp_path, name, extra):
    from crunchctl.formats.synth import Line, RecordingSpec, make_recording_as

    spec = RecordingSpec(
        nframes=6, lframes=1024, fs=1.0e6, center=100.0e6, lines=(Line(50e3, 1e-3, 0.0),)
    )
    target = tmp_path / (name if name != "rec.dat" else "rec.wav")
    make_recording_as(
        target,
        "raw"
        if target.suffix == ".cs16"
        else {".wav": "wav", ".sigmf-data": "sigmf"}[target.suffix],
        spec,
    )
    if name == "rec.dat":
        target = target.rename(tmp_path / name)
    items = items_file(tmp_path, [target])
    r = run(
        "batch",
        items,
        "--lframes",
        "1024",
        "--zoom-span",
        "2e5",
        "--json",
        *extra,
        *common(tmp_path),
    )
    doc = json.loads(r.stdout)
    assert doc["ok"] == 1, doc
    png = Path(doc["outcomes"][0]["products"][0])
    assert png_size(png)[1] > 0


# --------------------------------------------------------------------------- Ctrl-C


class _Lines:
    """Lines of a child's stream as they come (a reader thread), with their arrival time."""

    def __init__(self, stream) -> None:
        self.q: queue.Queue = queue.Queue()
        self.all: list[str] = []
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            self.q.put((time.monotonic(), line))

    def wait_for(self, text: str, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                when, line = self.q.get(timeout=0.05)
            except queue.Empty:
                continue
            self.all.append(line)
            if text in line:
                return when
        raise AssertionError(f"no line with {text!r} within {timeout} s: {self.all}")


def _slow_batch(tmp_path: Path, sleep: str):
    markers = tmp_path / "started"
    markers.mkdir(exist_ok=True)
    for m in markers.iterdir():
        m.unlink()
    items = items_file(tmp_path, ["a", "b", "c", "d"])
    env = child_env(CRUNCHCTL_TEST_MARKERS=str(markers), CRUNCHCTL_TEST_SLEEP=sleep)
    child = subprocess.Popen(
        [
            *crunchctl_cmd(),
            "batch",
            str(items),
            "--loader",
            f"{PLUGIN}:slow",
            "-j",
            "2",
            *map(str, common(tmp_path)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 60
    while len(list(markers.iterdir())) < 2:
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "the loaders never started"
        time.sleep(0.05)
    return child


def test_ctrl_c_with_a_slow_loader_says_at_once_then_the_summary(tmp_path):
    child = _slow_batch(tmp_path, "8")
    err = _Lines(child.stderr)
    child.send_signal(signal.SIGINT)
    err.wait_for("stopping: 2 in progress, Ctrl-C again to cancel", 8.0)
    # At once, not when the loaders finish: their figures are not written yet (an order,
    # not a wall-clock limit, so a busy machine cannot fail it).
    assert not list((tmp_path / "out").glob("*.png"))
    out = child.stdout.read()
    child.wait(timeout=60)
    assert child.returncode == 130
    assert "not started (interrupted)  2" in out
    assert "run the same command again" in out
    assert Path(tmp_path / "out" / "a.png").exists() and Path(tmp_path / "out" / "b.png").exists()


@pytest.mark.slow
def test_second_ctrl_c_cancels_the_slow_items_and_still_summarises(tmp_path):
    child = _slow_batch(tmp_path, "60")
    err = _Lines(child.stderr)
    child.send_signal(signal.SIGINT)
    err.wait_for("stopping: 2 in progress", 5.0)
    sent = time.monotonic()
    child.send_signal(signal.SIGINT)
    err.wait_for("cancelling: 2 in progress", 5.0)
    out = child.stdout.read()
    child.wait(timeout=30)
    assert time.monotonic() - sent < 15  # the 60 s loaders were killed
    assert child.returncode == 130
    assert "not started (interrupted)  4" in out and "Interrupted." not in "".join(err.all)
    assert not list((tmp_path / "out").glob("*.png"))
