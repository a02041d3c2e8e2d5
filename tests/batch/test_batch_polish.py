"""``crunchctl batch``: naming the x axis, large x values, zoom ticks that fit their column,
messages that say what went wrong and where, and items and labels in any script.

Loaders live in tests/batch/polish_plugins.py. A lone ``.npz`` item is drawn in the test's
own process (one built-in item runs inline), so its figure can be read back: labels, ticks
and where matplotlib put them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from batch_helpers import common, items_file
from conftest import child_env, crunchctl_cmd, invoke as run, require

PLUGIN = Path(__file__).resolve().parent / "polish_plugins.py"
T0 = 1_700_000_000.0  # UNIX seconds: 2023-11-14T22:13:20Z


def batch(tmp_path: Path, items, *args) -> subprocess.CompletedProcess:
    """A real ``crunchctl batch`` process over ``items``."""
    path = items_file(tmp_path, items)
    return subprocess.run(
        [*crunchctl_cmd(), "batch", str(path), *map(str, args), *map(str, common(tmp_path))],
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
        env=child_env(),
    )


@pytest.fixture
def drawn(monkeypatch):
    """The matplotlib figures saved in this process, in order."""
    from matplotlib.figure import Figure

    figures = []
    original = Figure.savefig

    def keep(self, *a, **k):
        figures.append(self)
        return original(self, *a, **k)

    monkeypatch.setattr(Figure, "savefig", keep)
    return figures


def npz_item(tmp_path: Path, name: str, x, **keys) -> Path:
    path = tmp_path / name
    data = np.random.default_rng(7).random((12, len(x)))
    np.savez(path, x=np.asarray(x, dtype=float), y=np.arange(12.0), data=data, **keys)
    return path


def draw(tmp_path: Path, drawn: list, item: Path, *args):
    """Run ``batch`` on one .npz item through the CLI; its figure and the main axes."""
    out = tmp_path / f"out{len(drawn)}"
    r = run(
        "batch",
        items_file(tmp_path, [item]),
        "--json",
        "--output",
        out,
        "--ledger",
        tmp_path / "ledger",
        "--log-file",
        tmp_path / "batch.log",
        "--dpi",
        "40",
        *args,
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["ok"] == 1
    fig = drawn[-1]
    return fig, fig.axes[0]


def events_file(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "events.txt"
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def utc(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).isoformat()


# ------------------------------------------------------------------------- the x axis


def test_x_label_option_row_key_and_what_plain_numbers_are_called(tmp_path, drawn):
    x = np.arange(50.0)
    plain = npz_item(tmp_path, "plain.npz", x)
    # nothing says plain numbers are time: a neutral label, as for y
    assert draw(tmp_path, drawn, plain)[1].get_xlabel() == "x"
    keyed = npz_item(tmp_path, "keyed.npz", x, x_label="energy (keV)")
    assert draw(tmp_path, drawn, keyed)[1].get_xlabel() == "energy (keV)"
    # the option wins over the row key
    assert draw(tmp_path, drawn, keyed, "--x-label", "channel")[1].get_xlabel() == "channel"
    # seconds counted from a time (x_origin) are time
    counted = npz_item(tmp_path, "counted.npz", x, x_origin=T0)
    assert draw(tmp_path, drawn, counted)[1].get_xlabel() == "time (s)"


def test_x_label_option_keeps_numbers_that_look_like_unix_seconds_numbers(tmp_path, drawn):
    item = npz_item(tmp_path, "counter.npz", T0 + np.arange(0.0, 3600.0, 60.0))
    _, ax = draw(tmp_path, drawn, item)
    assert ax.get_xlabel() == "time (UTC)"  # taken for UNIX seconds, drawn as dates
    _, ax = draw(tmp_path, drawn, item, "--x-label", "counter")
    assert ax.get_xlabel() == "counter"
    assert type(ax.xaxis.get_major_formatter()).__name__ == "ScalarFormatter"


def test_large_x_values_get_a_power_of_ten_not_fourteen_digits(tmp_path, drawn):
    item = npz_item(tmp_path, "big.npz", 1e13 + np.arange(100.0) * 1e9)
    _, ax = draw(tmp_path, drawn, item)
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert len(labels) >= 3
    assert not [t for t in labels if "0000000" in t], labels
    assert "13" in ax.xaxis.get_offset_text().get_text()  # ×10^13 at the axis end


# ----------------------------------------------------------------------- zoom columns


@pytest.mark.parametrize("minutes, n_events", [(45, 4), (10, 4), (30, 2), (1, 3)])
def test_zoom_column_tick_labels_fit_inside_their_column(tmp_path, drawn, minutes, n_events):
    item = npz_item(tmp_path, "orbit.npz", T0 + np.arange(0.0, 7200.0, 20.0))
    events = events_file(tmp_path, *(utc(T0 + m * 60) for m in (27, 37, 47, 77)[:n_events]))
    fig, _ = draw(tmp_path, drawn, item, "--events", events, "--zoom-minutes", minutes)
    renderer = fig.canvas.get_renderer()
    zooms = [ax for ax in fig.axes if ax.get_title(loc="left").endswith(("min", " s"))]
    assert len(zooms) == n_events
    boxes = []
    for zax in zooms:
        frame = zax.get_window_extent(renderer)
        labels = [t for t in zax.get_xticklabels() if t.get_text()]
        assert len(labels) >= 2, [t.get_text() for t in labels]
        for label in labels:
            box = label.get_window_extent(renderer)
            # inside its own column: never across the gap into the next one's
            assert frame.x0 <= box.x0 and box.x1 <= frame.x1, (label.get_text(), minutes)
            boxes.append((box.x0, box.x1, label.get_text()))
    for (_, right, a), (left, _, b) in pairwise(sorted(boxes)):
        assert right < left, f"{a!r} touches {b!r}"


# ---------------------------------------------------------------------------- messages


def test_a_dict_of_rows_is_named_as_what_the_loader_returned(tmp_path):
    p = batch(tmp_path, ["a"], "--loader", f"{PLUGIN}:dict_of_rows")
    assert p.returncode == 1, p.stderr
    assert (
        "a: the loader returned a dict with keys 'north', 'south' instead of a list of rows"
    ) in p.stderr
    assert "list(d.values())" in p.stderr
    assert "missing key" not in p.stderr


def test_colour_bounds_are_reported_in_the_names_the_loader_used(tmp_path):
    p = batch(tmp_path, ["a"], "--loader", f"{PLUGIN}:inverted_vmin")
    assert p.returncode == 1, p.stderr
    assert "a: row 1 (a): vmin = 5 is not below vmax = 1" in p.stderr
    assert "z_min" not in p.stderr
    from crunchctl.batch.rows import check_rows

    (row,) = check_rows(
        {
            "x": np.arange(3.0),
            "y": np.arange(2.0),
            "data": np.ones((2, 3)),
            "vmin": 0.5,
            "z_min": 0.1,
        },
        "b",
    )
    assert row.z_min == 0.5
    assert row.warnings == ["b: row 1: both 'vmin' and 'z_min' given; 'vmin' = 0.5 is used"]


def test_a_bad_events_line_is_named_by_its_number(tmp_path):
    events = events_file(tmp_path, "# events of the night", utc(T0 + 600), "", "soon")
    p = batch(tmp_path, ["a"], "--loader", f"{PLUGIN}:relative", "--events", events)
    assert p.returncode == 2
    assert (
        f"--events {events} line 4: 'soon' is neither UNIX seconds nor an ISO 8601 time" in p.stderr
    )
    assert not (tmp_path / "out").exists()


def test_events_outside_the_x_range_are_named(tmp_path):
    events = events_file(tmp_path, utc(T0 + 600), "2030-01-01T00:00:00Z", str(T0 - 3600))
    p = batch(tmp_path, ["a"], "--loader", f"{PLUGIN}:relative", "--events", events)
    assert p.returncode == 0, p.stderr
    (line,) = [x for x in p.stderr.splitlines() if "outside the x range" in x]
    assert line.endswith(
        "a: 2 of 3 event(s) outside the x range (-5 to 7195 s), not "
        "drawn: 2023-11-14 21:13:20 UTC, 2030-01-01 00:00:00 UTC"
    )


def test_zoom_minutes_without_events_says_so_once(tmp_path):
    p = batch(
        tmp_path,
        ["a", "b", "c"],
        "--loader",
        f"{PLUGIN}:relative",
        "-j",
        "2",
        "--zoom-minutes",
        "5",
    )
    assert p.returncode == 0, p.stderr
    said = [x for x in p.stderr.splitlines() if "--zoom-minutes 5 without --events" in x]
    assert len(said) == 1, p.stderr
    assert "zoom columns only around the events a loader's rows bring" in said[0]


# --------------------------------------------------------------------- other scripts


def test_unicode_items_keep_readable_names_and_ascii_names_stay(tmp_path):
    items = ["ünï 日本", "日本", "Messung_ä", "run_001", "a b/c"]
    p = batch(tmp_path, items, "--loader", f"{PLUGIN}:relative")
    assert p.returncode == 0, p.stderr
    old_hash = hashlib.sha1(b"a b/c").hexdigest()[:8]
    assert sorted(f.name for f in (tmp_path / "out").iterdir()) == sorted(
        [
            "ünï_日本-50285829.png",
            "日本.png",
            "Messung_ä.png",
            "run_001.png",
            f"a_b_c-{old_hash}.png",
        ]
    )


def test_names_stem_keeps_a_unicode_stem(tmp_path):
    p = batch(
        tmp_path,
        ["data/Messung_ä.npz", "data/日本 1.npz"],
        "--loader",
        f"{PLUGIN}:relative",
        "--names",
        "stem",
    )
    assert p.returncode == 0, p.stderr
    names = sorted(f.name for f in (tmp_path / "out").iterdir())
    assert names[0] == "Messung_ä.png"
    assert names[1].startswith("data_日本_1.npz-")  # a space: the full, unique form


def test_missing_glyphs_leak_no_matplotlib_warning_and_are_said_once(tmp_path):
    p = batch(tmp_path, ["a", "b", "c"], "--loader", f"{PLUGIN}:scripts", "-j", "2")
    assert p.returncode == 0, p.stderr
    for leak in ("UserWarning", "Glyph", "savefig", "findfont", "missing from font"):
        assert leak not in p.stderr, p.stderr
    from crunchctl.batch.figure import FONT_NOTE, font_families

    _, lacking = font_families(["Zeile ünï 日本 データ", "\U00013000\U00013001 sign"])
    notes = [x for x in p.stderr.splitlines() if FONT_NOTE in x]
    if lacking:  # no installed font has hieroglyphs (most machines): said once, not thrice
        assert len(notes) == 1, p.stderr
        assert "\U00013000" in notes[0]
    else:
        assert notes == []
    assert len(list((tmp_path / "out").glob("*.png"))) == 3


def test_cjk_titles_use_an_installed_font_that_has_them(tmp_path, drawn):
    from matplotlib.font_manager import FontProperties, findfont
    from matplotlib.ft2font import FT2Font

    require("cjk-font")
    item = npz_item(tmp_path, "日本 データ.npz", np.arange(30.0), label="日本")
    fig, ax = draw(tmp_path, drawn, item)
    assert ax.get_title(loc="left") == "日本"
    header = fig.texts[0]  # the item, in bold
    assert "日本 データ.npz" in header.get_text()
    chain = [findfont(FontProperties(family=f, weight="bold")) for f in header.get_fontfamily()]
    assert any(ord("日") in FT2Font(path).get_charmap() for path in chain), chain
