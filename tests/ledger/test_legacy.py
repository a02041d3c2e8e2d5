"""crunchctl.ledger.legacy: parsing the legacy state files and importing them into a ledger."""

from __future__ import annotations

import json
import logging

import polars as pl
import pytest

from crunchctl.errors import ConfigError
from crunchctl.ledger.legacy import (
    LegacyEntry,
    decode_repr_item,
    import_legacy,
    import_on_first_use,
    read_legacy,
)
from crunchctl.ledger.store import Ledger
from crunchctl.watch.status import summary
from legacy_samples import PROCESSED_TOML, PROGRESS_JSON


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def progress(**changes) -> str:
    data = json.loads(PROGRESS_JSON)
    for key, value in changes.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    return json.dumps(data)


def test_tracking_toml(tmp_path):
    fmt, entries = read_legacy(write(tmp_path, "processed.toml", PROCESSED_TOML))
    assert fmt == "tracking-toml"
    assert entries == [
        LegacyEntry("/data/rsa510/20240417_130522.tiq", "ok"),
        LegacyEntry("/data/rsa510/20240417_130742.tiq", "ok"),
        LegacyEntry("/data/rsa510/20240417_131002.tiq", "ok"),
    ]


def test_progress_json(tmp_path):
    fmt, entries = read_legacy(write(tmp_path, "generic_progress.json", PROGRESS_JSON))
    assert fmt == "progress-json"
    assert entries == [
        LegacyEntry("orbit_001", "ok"),
        LegacyEntry("orbit_002", "ok"),
        LegacyEntry("orbit_004", "ok"),
        LegacyEntry("orbit_003", "error"),
        LegacyEntry("orbit_005", "no_data"),
    ]


def test_format_detected_by_content_not_extension(tmp_path):
    fmt, _ = read_legacy(write(tmp_path, "state.toml", PROGRESS_JSON))
    assert fmt == "progress-json"
    fmt, entries = read_legacy(write(tmp_path, "state.json", PROCESSED_TOML))
    assert fmt == "tracking-toml"
    assert len(entries) == 3


@pytest.mark.parametrize(
    ("raw", "item"),
    [
        ("'orbit_001'", "orbit_001"),
        ("\"with 'quote'\"", "with 'quote'"),
        ("5", "5"),
        ("('a', 1)", "('a', 1)"),
        ("not a literal", "not a literal"),
        ("'unterminated", "'unterminated"),
    ],
)
def test_repr_items_decoded(raw, item):
    assert decode_repr_item(raw) == item


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("processed.toml", "processed = [\n  '/a.tiq',\n", "malformed TOML"),
        ("processed.toml", "other = ['/a.tiq']\n", "expected a list of paths under 'processed'"),
        ("processed.toml", "processed = [1, 2]\n", "expected a list of paths under 'processed'"),
        ("progress.json", '{"completed_items": [', "malformed JSON"),
        (
            "progress.json",
            progress(schema_version=2),
            "unsupported schema_version 2 (supported: 1)",
        ),
        ("progress.json", progress(schema_version=None), "missing key 'schema_version'"),
        ("progress.json", progress(errors=None), "missing key 'errors'"),
        ("progress.json", progress(last_index=None), "missing key 'last_index'"),
        ("progress.json", progress(no_data="x"), "'no_data' must be a list of strings"),
        ("progress.json", progress(last_index="4"), "'last_index' must be an integer"),
    ],
)
def test_bad_inputs_raise_config_error_naming_the_file(tmp_path, name, text, expected):
    path = write(tmp_path, name, text)
    with pytest.raises(ConfigError) as info:
        read_legacy(path)
    message = str(info.value)
    assert str(path) in message
    assert expected in message
    assert "\n" not in message
    assert info.value.exit_code == 2


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ConfigError, match="no such legacy state file") as info:
        read_legacy(tmp_path / "nope.toml")
    assert str(tmp_path / "nope.toml") in str(info.value)
    with pytest.raises(ConfigError, match="is a folder") as info:
        read_legacy(tmp_path)
    assert str(tmp_path) in str(info.value)


# ---------------------------------------------------------------------- import


def test_import_tracking_toml(tmp_path):
    rec = tmp_path / "rec.tiq"
    rec.write_bytes(b"x" * 123)
    legacy = tmp_path / "processed.toml"
    legacy.write_text(PROCESSED_TOML.replace("]", f'    "{rec}",\n]'))
    led = Ledger(tmp_path / "l")
    assert not led.has_source(f"import:{legacy}")
    assert import_legacy(led, legacy) == (4, 0)
    assert import_legacy(led, legacy) == (0, 4)
    assert led.has_source(f"import:{legacy}")
    df = led.scan().collect().sort("item")
    assert df.height == 4
    assert set(df["kind"]) == {"iq"} and set(df["status"]) == {"ok"}
    assert set(df["settings_digest"]) == {"legacy"}
    assert set(df["source"]) == {f"import:{legacy}"}
    row = df.filter(pl.col("item") == str(rec)).row(0, named=True)
    assert (row["size"], row["mtime_ns"]) == (123, rec.stat().st_mtime_ns)
    gone = df.filter(pl.col("item") == "/data/rsa510/20240417_130522.tiq").row(0, named=True)
    assert (gone["size"], gone["mtime_ns"], gone["products"]) == (None, None, [])
    st = rec.stat()
    cands = [
        (str(rec), st.st_size, st.st_mtime_ns),
        ("/data/rsa510/20240417_130522.tiq", None, None),
    ]
    assert led.done_items("iq", cands, "any-digest") == {
        str(rec),
        "/data/rsa510/20240417_130522.tiq",
    }
    rec.write_bytes(b"y" * 124)  # changed since the import: due again
    assert led.done_items("iq", [(str(rec), 124, rec.stat().st_mtime_ns)], "x") == set()


def test_import_progress_json(tmp_path):
    legacy = tmp_path / "generic_progress.json"
    legacy.write_text(PROGRESS_JSON)
    led = Ledger(tmp_path / "l")
    assert import_legacy(led, legacy) == (5, 0)
    assert import_legacy(led, legacy) == (0, 5)
    latest = led.latest("batch").sort("item")
    assert latest["item"].to_list() == [f"orbit_00{i}" for i in range(1, 6)]
    assert latest["status"].to_list() == ["ok", "ok", "error", "ok", "no_data"]
    assert latest["error"].to_list()[2] == "imported from legacy progress file"
    assert led.done_items("batch", [(f"orbit_00{i}", None, None) for i in range(1, 6)], "d") == {
        "orbit_001",
        "orbit_002",
        "orbit_004",
    }
    assert led.scan().collect().height == 5
    s = summary(led)
    assert s["by_source"] == {f"import:{legacy}": {"ok": 3, "error": 1, "no_data": 1, "reset": 0}}
    assert s["throughput_per_hour"] is None  # imports are not throughput


def test_import_bad_legacy_file(tmp_path):
    bad = tmp_path / "progress.json"
    bad.write_text(PROGRESS_JSON.replace('"schema_version": 1', '"schema_version": 2'))
    led = Ledger(tmp_path / "l")
    with pytest.raises(ConfigError, match="supported: 1") as info:
        import_legacy(led, bad)
    assert str(bad) in str(info.value)
    assert led.scan().collect().height == 0


def test_first_use_imports_once(tmp_path, caplog):
    legacy = tmp_path / "processed.toml"
    legacy.write_text(PROCESSED_TOML)
    led = Ledger(tmp_path / "l")
    with caplog.at_level(logging.INFO, logger="crunchctl"):
        assert import_on_first_use(led, str(legacy)) == 3
        assert import_on_first_use(led, str(legacy)) is None  # its source is in the ledger
    assert [r.getMessage() for r in caplog.records] == [
        f"imported 3 entries from the legacy tracking file {legacy} into the ledger"
    ]
    assert import_on_first_use(led, None) is None


def test_first_use_of_a_missing_tracking_file_says_so_once(tmp_path, caplog):
    missing = tmp_path / "gone" / "processed.toml"
    led = Ledger(tmp_path / "l")
    with caplog.at_level(logging.INFO, logger="crunchctl"):
        assert import_on_first_use(led, str(missing)) is None
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert str(missing) in record.getMessage() and "nothing imported" in record.getMessage()
    assert led.scan().collect().height == 0
