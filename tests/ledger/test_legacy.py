"""crunchctl.ledger.legacy: parsing the legacy tracking TOML and progress JSON (DESIGN section 5)."""

from __future__ import annotations

import json

import pytest

from crunchctl.errors import ConfigError
from crunchctl.ledger.legacy import LegacyEntry, decode_repr_item, read_legacy

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
        ('"with \'quote\'"', "with 'quote'"),
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
        ("progress.json", progress(schema_version=2),
         "unsupported schema_version 2 (supported: 1)"),
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
