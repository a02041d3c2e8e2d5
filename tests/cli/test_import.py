"""``crunchctl import`` of the legacy tracking file and progress JSON, and auto-import."""

from __future__ import annotations

import json

from conftest import invoke as run, small_args

PROGRESS = {
    "completed_items": ["'orbit_001'", "'orbit_002'", "'orbit_004'"],
    "errors": ["'orbit_003'"],
    "no_data": ["'orbit_005'"],
    "last_index": 4,
    "schema_version": 1,
}


def test_import_both_formats_once(tmp_path):
    prog = tmp_path / "generic_progress.json"
    prog.write_text(json.dumps(PROGRESS))
    track = tmp_path / "processed.toml"
    track.write_text('processed = ["/data/rsa510/a.tiq", "/data/rsa510/b.tiq"]\n')
    led = ["--ledger", tmp_path / "ledger"]
    r = run("import", track, prog, *led)
    assert r.exit_code == 0, r.stderr
    assert f"{track}: imported 2 entries" in r.stdout
    assert f"{prog}: imported 5 entries" in r.stdout
    r = run("import", track, prog, *led)
    assert "imported 0 entries (2 already in the ledger)" in r.stdout
    doc = json.loads(run("status", *led, "--json").stdout)
    assert doc["items"] == 7
    counts = {k: v for k, v in doc["by_source"][f"import:{prog}"].items() if v}
    assert counts == {"ok": 3, "error": 1, "no_data": 1}
    items = json.loads(run("status", *led, "--json", "--errors").stdout)["latest_errors"]
    assert [e["item"] for e in items] == ["orbit_003"]  # repr() quotes are gone


def test_bad_legacy_files_exit_2_and_write_nothing(tmp_path):
    cases = {
        "v2.json": json.dumps({**PROGRESS, "schema_version": 2}),
        "broken.json": "{not json",
        "broken.toml": "processed = [",
        "nolist.toml": "something = 1\n",
    }
    for name, content in cases.items():
        p = tmp_path / name
        p.write_text(content)
        r = run("import", p, "--ledger", tmp_path / "ledger")
        assert r.exit_code == 2, name
        assert r.stderr.startswith(f"Error: {p}"), (name, r.stderr)
    assert not list(tmp_path.glob("ledger/*.parquet"))


def test_tracking_file_in_config_is_imported_on_first_use(tmp_path, make_tiq):
    rec = make_tiq("20240417_130522.tiq", folder=tmp_path / "rsa510", nframes=1)
    other = make_tiq("20240417_130742.tiq", folder=tmp_path / "rsa510", nframes=1)
    track = tmp_path / "processed.toml"
    track.write_text(f'processed = ["{rec}"]\n')
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[paths]\ntracking_file_path = "{track}"\n')
    r = run("process", rec, other, "--config", cfg, *small_args(tmp_path))
    assert r.exit_code == 0
    assert "processed 1, failed 0, skipped 1 already done" in r.stdout
    log = tmp_path / "crunchctl.log"  # INFO, in the log file and said on the console
    assert "imported 1 entry from the legacy tracking file" in log.read_text()
    assert r.stderr.count("imported 1 entry from the legacy tracking file") == 1
    r = run("process", rec, other, "--config", cfg, *small_args(tmp_path))
    assert log.read_text().count("imported 1 entry") == 1  # once only
    assert "skipped 2 already done" in r.stdout


def test_missing_tracking_file_in_config_is_said_once(tmp_path, make_tiq):
    rec = make_tiq("20240417_130522.tiq", folder=tmp_path / "rsa510", nframes=1)
    missing = tmp_path / "old" / "processed.toml"
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[paths]\ntracking_file_path = "{missing}"\n')
    r = run("process", rec, "--config", cfg, *small_args(tmp_path))
    assert r.exit_code == 0, r.stderr
    assert r.stderr.count(str(missing)) == 1
    [line] = [ln for ln in r.stderr.splitlines() if str(missing) in ln]
    assert "does not exist" in line and "nothing imported" in line
    doc = json.loads(run("status", "--ledger", tmp_path / "ledger", "--json").stdout)
    assert not any(src.startswith("import:") for src in doc["by_source"])


def test_throughput_leaves_out_an_import(tmp_path, make_tiq):
    prog = tmp_path / "generic_progress.json"
    prog.write_text(json.dumps(PROGRESS))
    led = ["--ledger", tmp_path / "ledger"]
    assert run("import", prog, *led).exit_code == 0
    doc = json.loads(run("status", *led, "--json").stdout)
    assert doc["rows"] == 5 and doc["throughput_per_hour"] is None
    run("process", make_tiq("a.tiq", nframes=1), *small_args(tmp_path))
    doc = json.loads(run("status", *led, "--json").stdout)
    assert doc["rows"] == 6 and doc["throughput_per_hour"] is None  # one real attempt only
