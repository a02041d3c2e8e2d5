"""``crunchctl batch``: items files, loaders, figures, the ledger, resume and Ctrl-C.

Plugins live in tests/plugins/batch_plugin.py. Figures are drawn at a low dpi to keep the
file fast; what they show is checked by eye when the drawing changes, here only that
they exist, are whole PNGs and that nothing raised.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from batch_helpers import common, items_file
from conftest import invoke as run
from crunchctl.batch import run as core
from crunchctl.batch.figure import (
    FigureOptions,
    color_bounds,
    parse_percentiles,
    pool_cells,
    render_figure,
)
from crunchctl.batch.loaders import load_npz
from crunchctl.batch.rows import RowError, check_rows
from crunchctl.config import resolve
from crunchctl.errors import UsageError
from crunchctl.ledger.store import Ledger

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"
PLUGIN = PLUGINS / "batch_plugin.py"
PNG = b"\x89PNG\r\n\x1a\n"


def ledger_rows(tmp_path: Path):
    return Ledger(tmp_path / "ledger", create=False).scan().collect()


def counts(tmp_path: Path, status: str = "ok") -> dict[str, int]:
    rows = ledger_rows(tmp_path).filter(kind="batch", status=status)
    return dict(rows.group_by("item").len().iter_rows())


def options(tmp_path: Path, **kw) -> core.BatchOptions:
    base = dict(output=str(tmp_path / "out"), figure=FigureOptions(dpi=40), workers=1)
    base.update(kw)
    return core.BatchOptions(**base)


# ---------------------------------------------------------------------------- items


def test_items_file_comments_bom_crlf_and_stdin(tmp_path):
    path = tmp_path / "items.txt"
    path.write_bytes(
        "\ufeffrun_001\r\n\r\n  # a comment\r\nrun_002  \r\n#run_003\r\ndata/a b.npz\r\n".encode()
    )
    assert core.read_items(str(path)) == ["run_001", "run_002", "data/a b.npz"]
    assert core.items_source(str(path)) == "batch:" + str(path.resolve())
    import io

    assert core.read_items("-", io.StringIO("\ufeffx\n# c\ny\n")) == ["x", "y"]
    with pytest.raises(UsageError, match="items file not found"):
        core.read_items(str(tmp_path / "nope.txt"))
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00a")
    with pytest.raises(UsageError, match="not UTF-8"):
        core.read_items(str(tmp_path / "bin.txt"))


def test_safe_unique_figure_names():
    items = [
        "run_001",
        "data/run_001",
        "data\\run_001",
        "a b?*",
        "a_b",
        "../../etc/passwd",
        "RUN_001",
        "x" * 300,
        "run_001.tiq",
    ]
    names = core.figure_names(items)
    assert names["run_001"] == "run_001"  # a plain id keeps its name
    assert names["run_001.tiq"] == "run_001.tiq"
    values = list(names.values())
    assert len(set(v.lower() for v in values)) == len(items)
    for v in values:
        assert "/" not in v and "\\" not in v and not v.startswith(".")
        assert len(v) < 200
        assert all(c.isalnum() or c in "._-" for c in v)
    assert core.figure_names(items) == names  # stable across runs


def test_empty_items_file_is_nothing_to_do(tmp_path):
    empty = items_file(tmp_path, ["# only a comment", ""])
    r = run("batch", empty, "--loader", f"{PLUGIN}:two_rows", *common(tmp_path))
    assert r.exit_code == 0
    assert "nothing to do" in r.output
    assert not (tmp_path / "out").exists()
    r = run("batch", "-", "--loader", f"{PLUGIN}:two_rows", *common(tmp_path), input="")
    assert r.exit_code == 0 and "nothing to do" in r.output


# ---------------------------------------------------------------------------- loaders


@pytest.mark.parametrize(
    "loader, message",
    [
        ("no_such_module_xyz:load", "cannot import no_such_module_xyz"),
        (f"{PLUGIN}:missing", "has no function 'missing'"),
        (f"{PLUGIN}:not_callable", "is not callable"),
        ("tests/plugins/nope.py:load", "no such file"),
        ("just-a-word", "expected iq, npz, package.module:function"),
    ],
)
def test_loader_errors_exit_2_before_any_item_runs(tmp_path, loader, message):
    items = items_file(tmp_path, ["run_001", "run_002"])
    r = run("batch", items, "--loader", loader, *common(tmp_path))
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "out").exists()
    assert ledger_rows(tmp_path).height == 0


def test_plugin_that_fails_to_import_is_a_usage_error(tmp_path):
    bad = tmp_path / "broken_plugin.py"
    bad.write_text("import numpy\nraise RuntimeError('needs a licence server')\n")
    items = items_file(tmp_path, ["run_001"])
    r = run("batch", items, "--loader", f"{bad}:load", *common(tmp_path))
    assert r.exit_code == 2
    assert "importing" in r.output and "RuntimeError: needs a licence server" in r.output


def test_module_spec_is_importable_from_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(PLUGINS)
    monkeypatch.setattr(sys, "path", list(sys.path))
    items = items_file(tmp_path, ["orbit_001"])
    r = run("batch", items, "--loader", "batch_plugin:two_rows", *common(tmp_path))
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "orbit_001.png").read_bytes()[:8] == PNG


def test_auto_loader_needs_known_suffixes(tmp_path):
    items = items_file(tmp_path, ["run_001", "a.npz"])
    r = run("batch", items, *common(tmp_path))
    assert r.exit_code == 2
    assert "'run_001'" in r.output and "give --loader" in r.output


def test_rows_are_checked_with_messages_naming_item_and_key():
    x, y = np.arange(10.0), np.arange(5.0)
    with pytest.raises(RowError, match=r"orb: row 1 \(broken\): 'data' has shape \(7, 3\)"):
        check_rows([{"x": x, "y": y, "data": np.zeros((7, 3)), "label": "broken"}], "orb")
    with pytest.raises(RowError, match="orb: row 2: missing key 'y'"):
        check_rows([{"x": x, "y": y, "data": np.zeros((5, 10))}, {"x": x, "data": 1}], "orb")
    with pytest.raises(RowError, match="give 'collapse_axis'"):
        check_rows({"x": x, "y": y, "data": np.zeros((5, 10, 3))}, "orb")
    with pytest.raises(RowError, match="'y_min' = 'low': expected a number"):
        check_rows([{"x": x, "y": y, "data": np.zeros((5, 10)), "y_min": "low"}], "orb")
    with pytest.raises(RowError, match="returned int"):
        check_rows(42, "orb")
    # (len(x), len(y)) is taken as transposed; 3-D collapses; decreasing axes are flipped.
    (row,) = check_rows([{"x": x, "y": y, "data": np.ones((10, 5))}], "orb")
    assert row.data.shape == (5, 10)
    (row,) = check_rows(
        [{"x": x, "y": y[::-1], "data": np.ones((5, 10, 3)), "collapse_axis": 2}], "orb"
    )
    assert row.data.shape == (5, 10) and (row.data == 3).all() and row.y[0] == 0
    assert check_rows(None, "orb") == [] and check_rows([], "orb") == []


def test_plugin_rows_errors_and_no_data(tmp_path):
    items = items_file(tmp_path, ["orbit_001", "orbit_raise_002", "orbit_empty_003", "orbit_004"])
    r = run("batch", items, "--loader", f"{PLUGIN}:by_name", "-j", "2", *common(tmp_path))
    assert r.exit_code == 1, r.output
    assert (
        "orbit_raise_002: loader batch_plugin.py:by_name raised ValueError: no such "
        "orbit: orbit_raise_002" in r.output
    )
    latest = {
        row["item"]: row
        for row in Ledger(tmp_path / "ledger").latest("batch").iter_rows(named=True)
    }
    assert {k: v["status"] for k, v in latest.items()} == {
        "orbit_001": "ok",
        "orbit_raise_002": "error",
        "orbit_empty_003": "no_data",
        "orbit_004": "ok",
    }
    assert latest["orbit_001"]["products"] == [str(tmp_path / "out" / "orbit_001.png")]
    assert latest["orbit_001"]["source"] == "batch:" + str(items)
    assert "no such orbit" in latest["orbit_raise_002"]["error"]
    for name in ("orbit_001", "orbit_004"):
        assert (tmp_path / "out" / f"{name}.png").read_bytes()[:8] == PNG
    assert not (tmp_path / "out" / "orbit_raise_002.png").exists()
    log = (tmp_path / "batch.log").read_text()
    assert "Traceback (most recent call last)" in log and "raise ValueError" in log
    assert "Traceback" not in r.output  # tracebacks only with -v


def test_duplicates_processed_once_with_a_warning(tmp_path):
    items = items_file(tmp_path, ["orbit_001", "orbit_002", "orbit_001", "orbit_001"])
    r = run("batch", items, "--loader", f"{PLUGIN}:two_rows", "-j", "1", *common(tmp_path))
    assert r.exit_code == 0, r.output
    assert "orbit_001: listed more than once; processed once" in r.output
    assert counts(tmp_path) == {"orbit_001": 1, "orbit_002": 1}


def test_items_from_stdin(tmp_path):
    r = run(
        "batch",
        "-",
        "--loader",
        f"{PLUGIN}:two_rows",
        *common(tmp_path),
        input="\ufefforbit_001\r\n# c\r\norbit_002\r\n",
    )
    assert r.exit_code == 0, r.output
    rows = ledger_rows(tmp_path)
    assert sorted(rows["item"]) == ["orbit_001", "orbit_002"]
    assert set(rows["source"]) == {"batch:-"}


def test_odd_items_get_unique_safe_files(tmp_path):
    odd = ["a/b c", "a_b c", "a/b/../c?", 'weird:*<>|"name', "run_001"]
    items = items_file(tmp_path, odd)
    r = run("batch", items, "--loader", f"{PLUGIN}:two_rows", "-j", "2", *common(tmp_path))
    assert r.exit_code == 0, r.output
    pngs = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert len(pngs) == len(odd) and "run_001.png" in pngs
    products = [
        row["products"][0]
        for row in Ledger(tmp_path / "ledger").latest("batch").iter_rows(named=True)
    ]
    assert len(set(products)) == len(odd)
    assert all(Path(p).parent == tmp_path / "out" for p in products)


# -------------------------------------------------------------------- npz, iq, log


def test_npz_item_in_the_legacy_layout(tmp_path):
    freqs = 245e6 + (np.arange(512) - 256) * 50.0
    times = np.arange(20) * 0.02
    power = np.full((20, 512), 1e-6, dtype=np.float32)
    power[:, 300] = 1e-2
    npz = tmp_path / "legacy run.npz"
    np.savez(npz, freqs[np.newaxis, :], times[:, np.newaxis], power)  # arr_0, arr_1, arr_2
    (row,) = check_rows(load_npz(str(npz)), str(npz))
    assert row.data.shape == (512, 20)  # frequency up y, time along x
    assert row.y[256] == 0.0 and row.y_label == "frequency offset (kHz)"
    assert "245 MHz" in row.label
    items = items_file(tmp_path, [npz])
    r = run("batch", items, *common(tmp_path))  # auto: .npz -> npz
    assert r.exit_code == 0, r.output
    (o,) = ledger_rows(tmp_path).iter_rows(named=True)
    assert o["status"] == "ok" and o["size"] == npz.stat().st_size
    assert Path(o["products"][0]).read_bytes()[:8] == PNG


def test_npz_xy_data_rows_and_3d(tmp_path):
    x, y = np.arange(30.0), np.arange(8.0)
    np.savez(
        tmp_path / "multi.npz",
        x=x,
        y=y,
        data_0=np.ones((8, 30)),
        data_1=np.ones((8, 30)) * 2,
        label_1="second",
        y_label="E",
    )
    np.savez(tmp_path / "cube.npz", x=x, y=y, data=np.ones((3, 8, 30)))
    np.savez(tmp_path / "other.npz", a=x)
    multi = check_rows(load_npz(str(tmp_path / "multi.npz")), "multi")
    assert [r.label for r in multi] == ["", "second"] and multi[1].y_label == "E"
    assert len(load_npz(str(tmp_path / "cube.npz"))) == 3
    result = core.run_batch(
        [str(tmp_path / n) for n in ("multi.npz", "cube.npz", "other.npz")],
        options(tmp_path, workers=2),
    )
    by_item = {Path(o.item).name: o for o in result.outcomes}
    assert by_item["multi.npz"].extra["rows"] == 2 and by_item["cube.npz"].extra["rows"] == 3
    assert by_item["other.npz"].status == "error"
    assert "no arrays in a known layout" in by_item["other.npz"].error


def test_iq_item_gives_full_and_zoom_rows(tmp_path, make_tiq):
    rec = make_tiq("rec.tiq", nframes=6)
    settings = resolve(None, {"lframes": 1024, "zoom_span": 200e3})
    result = core.run_batch([str(rec)], options(tmp_path, settings=settings))
    (o,) = result.outcomes
    assert o.status == "ok", o.error
    assert o.extra["rows"] == 2 and o.size == rec.stat().st_size
    assert Path(o.products[0]).name == core.figure_names([str(rec)])[str(rec)] + ".png"


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(zoom_minutes=0.0), "--zoom-minutes 0: expected a positive number of minutes"),
        (dict(y_min=5.0, y_max=1.0), "--y-min/--y-max: 5 is not below 1"),
        (dict(z_min=2.0, z_max=2.0), "--z-min/--z-max: 2 is not below 2"),
        (dict(percentiles=(50.0, 10.0)), "--percentiles 50,10: expected 0 <= LO < HI <= 100"),
        (dict(z_scale="cubic"), "--z-scale 'cubic': expected linear or log"),
    ],
)
def test_figure_options_refuse_what_no_figure_can_show(kw, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        FigureOptions(**kw)


def test_bad_figure_options_exit_2_before_any_item(tmp_path):
    items = items_file(tmp_path, ["orbit_001"])
    for bad in (
        ["--zoom-minutes", "-1"],
        ["--percentiles", "1,x"],
        ["--y-min", "3", "--y-max", "3"],
    ):
        r = run("batch", items, "--loader", f"{PLUGIN}:two_rows", *bad, *common(tmp_path))
        assert r.exit_code == 2 and r.stderr.startswith("Error: --"), (bad, r.output)
    assert not (tmp_path / "out").exists() and not (tmp_path / "ledger").exists()
    assert parse_percentiles(" 2, 98 ") == (2.0, 98.0)


def test_pooling_ignores_nan_unless_a_whole_cell_is_nan():
    a = np.array([[np.nan, 1.0, np.nan, np.nan, 5.0, np.nan, 7.0]])
    pooled, edges = pool_cells(a, np.arange(8.0), 1, 3)  # cells of 3, 3, 1 values
    assert pooled.tolist()[0][:2] == [1.0, 5.0] and pooled[0, 2] == 7.0
    b = np.array([[np.nan, np.nan, np.nan, 2.0]])
    pooled, edges = pool_cells(b, np.arange(5.0), 1, 2)
    assert np.isnan(pooled[0, 0]) and pooled[0, 1] == 2.0 and edges.tolist() == [0, 2, 4]


def test_log_scales_with_zeros_and_negatives(tmp_path):
    # Colour bounds on a log scale ignore non-positive values.
    v = np.array([0.0, -1.0, 0.5, 2.0, 8.0])
    lo, hi = color_bounds(v, (0, 100), log=True, lo=None, hi=None)
    assert (lo, hi) == (0.5, 8.0)
    assert color_bounds(v, (0, 100), log=True, lo=-5.0, hi=None)[0] == 0.5
    assert color_bounds(np.zeros(4), (1, 99), log=True, lo=None, hi=None) is None
    items = items_file(tmp_path, ["with_zeros"])
    r = run(
        "batch",
        items,
        "--loader",
        f"{PLUGIN}:log_rows",
        "--z-scale",
        "log",
        "--y-scale",
        "log",
        "--y-min",
        "0",
        *common(tmp_path),
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "with_zeros.png").read_bytes()[:8] == PNG
    assert "no positive values for a log colour scale" in r.output  # the all-zero row


def test_overrides_events_and_zoom_render(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGINS))
    import batch_plugin

    rows = check_rows(batch_plugin.two_rows("orbit_9"), "orbit_9")
    assert rows[0].y_min == 150.0 and rows[1].z_min == 1.0 and rows[0].x_is_time
    import io

    buf = io.BytesIO()
    warnings = render_figure(
        buf,
        rows,
        title="orbit_9",
        options=FigureOptions(
            y_min=0.0,
            z_max=5.0,
            events=(batch_plugin.T0 + 600, batch_plugin.T0 + 10**7),
            zoom_minutes=5.0,
            dpi=40,
        ),
    )
    assert buf.getvalue()[:8] == PNG
    assert warnings == [
        "1 of 3 event(s) outside the x range (2023-11-14 22:13:05 to "
        "2023-11-14 23:13:05 UTC), not drawn: 2024-03-09 16:00:00 UTC"
    ]


def test_nan_only_data_is_no_data(tmp_path):
    result = core.run_batch(["x"], options(tmp_path, loader=f"{PLUGIN}:all_nan"))
    (o,) = result.outcomes
    assert o.status == "no_data" and "NaN" in o.error
    assert not result.summary.failed


def test_events_file(tmp_path):
    ev = tmp_path / "events.txt"
    ev.write_text("# injections\n1700000000\n2023-11-14T22:43:20Z\n2023-11-14T23:00:00\n")
    assert core.read_events(ev) == (1700000000.0, 1700001800.0, 1700002800.0)
    ev.write_text("1700000000\nyesterday\n")
    items = items_file(tmp_path, ["orbit_001"])
    r = run("batch", items, "--loader", f"{PLUGIN}:two_rows", "--events", ev, *common(tmp_path))
    assert r.exit_code == 2 and "'yesterday' is neither UNIX seconds nor an ISO 8601" in r.output


# ----------------------------------------------------------------- resume and fresh


def test_resume_skips_done_and_fresh_redoes(tmp_path):
    items = items_file(tmp_path, [f"orbit_{i:03d}" for i in range(4)])
    args = ["batch", items, "--loader", f"{PLUGIN}:two_rows", "-j", "2", *common(tmp_path)]
    assert run(*args).exit_code == 0
    r = run(*args, "--json")
    doc = json.loads(r.stdout)
    assert doc["skipped"] == 4 and doc["ok"] == 0 and r.exit_code == 0
    assert set(counts(tmp_path).values()) == {1}
    # A different figure option is a different digest: everything is due again.
    (tmp_path / "out" / "orbit_002.png").unlink()  # a missing product makes it due too
    r = run(*args, "--json", "--cmap", "magma")
    assert json.loads(r.stdout)["ok"] == 4
    r = run(*args, "--json", "--cmap", "magma", "--fresh")
    assert json.loads(r.stdout)["ok"] == 4
    assert set(counts(tmp_path).values()) == {3}


def test_legacy_progress_json_counts_as_done(tmp_path):
    from crunchctl.ledger.legacy import import_legacy

    legacy = tmp_path / "generic_progress.json"
    legacy.write_text(
        json.dumps(
            {
                "completed_items": ["'orbit_001'", "'orbit_002'"],
                "errors": ["'orbit_003'"],
                "no_data": [],
                "last_index": 2,
                "schema_version": 1,
            }
        )
    )
    with Ledger(tmp_path / "ledger") as led:
        import_legacy(led, legacy)
    items = items_file(tmp_path, ["orbit_001", "orbit_002", "orbit_003"])
    r = run("batch", items, "--loader", f"{PLUGIN}:two_rows", "--json", *common(tmp_path))
    doc = json.loads(r.stdout)
    assert doc["skipped_items"] == ["orbit_001", "orbit_002"]
    assert [o["item"] for o in doc["outcomes"]] == ["orbit_003"]


def test_sigint_mid_run_then_resume_finishes_each_item_exactly_once(tmp_path):
    exe = shutil.which("crunchctl")
    assert exe, "crunchctl entry point not installed"
    names = [f"orbit_{i:03d}" for i in range(50)]
    items = items_file(tmp_path, names)
    log = tmp_path / "batch.log"
    args = [
        exe,
        "batch",
        str(items),
        "--loader",
        f"{PLUGIN}:slow",
        "-j",
        "2",
        "--flush-every",
        "2",
        "--log-flush-every",
        "1",
        *[str(a) for a in common(tmp_path)],
    ]
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 40
    while time.time() < deadline:
        done = log.read_text().count(": ok in ") if log.exists() else 0
        if done >= 6:
            break
        assert child.poll() is None, child.communicate()
        time.sleep(0.05)
    else:
        child.kill()
        pytest.fail("the batch never got going")
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=30)
    assert child.returncode == 130, err
    first = counts(tmp_path)
    assert 6 <= len(first) < 50 and set(first.values()) == {1}
    assert "not started" in out and "interrupted" in err
    # Nothing half-written: every recorded figure is whole, no temp files remain.
    out_dir = tmp_path / "out"
    assert not [p for p in out_dir.iterdir() if p.name.endswith(".tmp")]
    assert sorted(p.stem for p in out_dir.glob("*.png")) == sorted(first)

    again = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    final = counts(tmp_path)
    assert final == dict.fromkeys(names, 1)
    assert ledger_rows(tmp_path).height == 50
    assert len(list(out_dir.glob("*.png"))) == 50
