"""Settings that ask for more than a recording has are clamped, said once, labelled true."""

from __future__ import annotations

import numpy as np
from typer.testing import CliRunner

from conftest import small_args
from crunchctl.cli import app
from crunchctl.ledger.store import Ledger
from crunchctl.quicklook.zoom import zoom_window


def test_zoom_window_clamps_span_and_averaging():
    freqs = 100e6 + (np.arange(1024) - 512) * (1e6 / 1024)
    w = zoom_window("a.tiq", freqs, 100e6, zoom_center=0.0, zoom_span=1e12, n_avg=1000, nframes=20)
    assert (w.start, w.stop) == (0, 1024)
    assert w.span == 1e6  # what the picture shows, not what was asked
    assert w.n_avg == 20 and w.rows == 1
    assert any("zoom span 1000000 MHz" in n and "shows 1 MHz" in n for n in w.notes)
    assert any("n_avg 1000 is more than the recording's 20 frames" in n for n in w.notes)
    fine = zoom_window("a.tiq", freqs, 100e6, zoom_center=0.0, zoom_span=2e5, n_avg=4, nframes=20)
    assert fine.notes == () and fine.n_avg == 4 and fine.span == 2e5


def test_process_warns_and_records_the_clamping(make_tiq, tmp_path):
    rec = make_tiq("short.tiq", nframes=6)
    args = small_args(tmp_path)
    args[args.index("--zoom-span") + 1] = "1e12"
    r = CliRunner().invoke(app, ["process", str(rec), "--n-avg", "1000", *args])
    assert r.exit_code == 0, r.output
    assert "n_avg 1000 is more than the recording's 6 frames" in r.stderr
    rows = Ledger(tmp_path / "ledger", create=False).scan().collect()
    (warning,) = rows["warning"].to_list()
    assert "zoom span" in warning and "n_avg 1000" in warning
