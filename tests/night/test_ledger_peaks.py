"""The ``peaks`` ledger column next to parts written before it existed, and the settings
digest of the new settings."""

from __future__ import annotations

import hashlib
import json
import time

import polars as pl

from crunchctl.config import Settings, resolve
from crunchctl.ledger.peaks import latest_peaks
from crunchctl.ledger.store import SCHEMA, Ledger
from crunchctl.outcome import KIND_IQ, OK, Outcome


def _outcome(item: str, peaks: str | None = None) -> Outcome:
    now = time.time()
    extra = {"peaks": peaks} if peaks else {}
    return Outcome(item, KIND_IQ, "process", OK, now, now, 10, 1_000_000_000, "d", [], None, extra)


def test_old_parts_without_the_column_read_as_null_and_new_rows_keep_their_peaks(tmp_path):
    led = Ledger(tmp_path / "ledger")
    led.append([_outcome("/r/old.tiq")])
    # Rewrite that part as an older crunchctl wrote it: no peaks column at all.
    [part] = (tmp_path / "ledger").glob("part-*.parquet")
    old = pl.read_parquet(part).drop("peaks")
    assert "peaks" not in old.columns
    old.write_parquet(part)
    value = json.dumps(
        {
            "acquired": 1.7e9,
            "bin_hz": 10.0,
            "center_hz": 1e8,
            "unit": "V²",
            "scaling": "spectrum",
            "lines": [
                {"frequency_hz": 1.0001e8, "power_db": -60.0, "fwhm_hz": 12.0, "snr_db": 40.0}
            ],
        }
    )
    led.append([_outcome("/r/new.tiq", value)])
    rows = Ledger(tmp_path / "ledger").read(["item", "peaks"]).sort("item")
    assert rows["peaks"].to_list() == [value, None]
    assert rows.schema["peaks"] == SCHEMA["peaks"]
    [rec] = latest_peaks(Ledger(tmp_path / "ledger"))
    assert rec["item"] == "/r/new.tiq" and rec["time"] == 1.7e9 and rec["unit"] == "V²"
    assert rec["lines"][0]["power_db"] == -60.0
    # Narrowed to a folder: nothing under another one.
    assert latest_peaks(Ledger(tmp_path / "ledger"), ["/elsewhere"]) == []
    assert latest_peaks(Ledger(tmp_path / "ledger"), since=1.8e9) == []


def _digest_before_the_new_settings(s: Settings) -> str:
    shaping = {
        k: getattr(s, k)
        for k in ("lframes", "nframes", "n_avg", "zoom_center", "zoom_span", "window", "cmap")
    }
    shaping["output"] = str(s.output_dir())
    shaping["format"] = 1
    return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]


def test_every_new_setting_shapes_the_digest_and_the_defaults_keep_the_old_one(tmp_path):
    from crunchctl.identity import settings_digest

    base = resolve(None, {"output_path": str(tmp_path)}, environ={})
    item = "/r/x.tiq"
    classic = ["png", "zoom", "npz"]
    night = ["png", "zoom", "npz", "spectrum", "peaks", "campaign"]
    # A ledger written before these settings existed stays done under the defaults.
    assert settings_digest(base, item, classic) == _digest_before_the_new_settings(base)
    changed = {"peaks": 3, "peak_snr": 6.0, "scaling": "density"}
    for key, value in changed.items():
        other = resolve(None, {"output_path": str(tmp_path), key: value}, environ={})
        assert settings_digest(other, item, night) != settings_digest(base, item, night), key
    # Lines shape the lines' products, not the spectrogram pictures.
    fewer = resolve(None, {"output_path": str(tmp_path), "peaks": 3}, environ={})
    assert settings_digest(fewer, item, classic) == settings_digest(base, item, classic)
    ranged = resolve(
        None, {"output_path": str(tmp_path), "db_min": -140, "db_max": -60}, environ={}
    )
    assert settings_digest(ranged, item, classic) != settings_digest(base, item, classic)


def test_db_range_settings_come_together_bottom_below_top(tmp_path):
    import pytest

    from crunchctl.errors import ConfigError

    config = tmp_path / "c.toml"
    config.write_text("[settings]\ndb_min = -120\n")
    with pytest.raises(ConfigError, match="db_min and db_max go together"):
        resolve(config, environ={})
    with pytest.raises(ConfigError, match="must be below"):
        resolve(None, {"db_min": -60, "db_max": -120}, environ={})
    with pytest.raises(ConfigError, match="one of spectrum, density"):
        resolve(None, {"scaling": "psd"}, environ={})
