"""``crunchctl status`` through the CLI on real ledgers made by real runs."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from crunchctl.cli import app
from conftest import small_args

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def _two_runs(tmp_path, make_tiq):
    a = make_tiq("a.tiq", nframes=2)
    bad = tmp_path / "bad.tiq"
    bad.write_bytes(b"not a recording")
    run("process", a, bad, *small_args(tmp_path))
    return a, bad


def test_status_json_counts_latest_status_and_errors(tmp_path, make_tiq):
    a, bad = _two_runs(tmp_path, make_tiq)
    r = run("status", "--ledger", tmp_path / "ledger", "--json")
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc["items"] == 2 and doc["rows"] == 2
    assert doc["by_status"]["ok"] == 1 and doc["by_status"]["error"] == 1
    assert doc["by_source"]["process"]["ok"] == 1
    [err] = doc["latest_errors"]
    assert err["item"] == str(bad) and "not a TIQ recording" in err["error"]
    assert "\x1b[" not in r.stdout
    for key in ("ledger", "attempts_by_status", "first_activity", "last_activity",
                "throughput_per_hour", "warnings", "pending"):
        assert key in doc


def test_status_filters(tmp_path, make_tiq):
    a, bad = _two_runs(tmp_path, make_tiq)
    only_errors = json.loads(run("status", "--ledger", tmp_path / "ledger", "--json",
                                 "--errors").stdout)
    assert only_errors["items"] == 1 and only_errors["by_status"].get("ok", 0) == 0
    by_glob = json.loads(run("status", "--ledger", tmp_path / "ledger", "--json",
                             "--item", "*a.tiq").stdout)
    assert by_glob["items"] == 1 and by_glob["by_status"]["ok"] == 1
    future = json.loads(run("status", "--ledger", tmp_path / "ledger", "--json",
                            "--since", "2999-01-01").stdout)
    assert future["rows"] == 0
    recent = json.loads(run("status", "--ledger", tmp_path / "ledger", "--json",
                            "--since", "1h").stdout)
    assert recent["rows"] == 2
    other = json.loads(run("status", "--ledger", tmp_path / "ledger", "--json",
                           "--source", "batch:*").stdout)
    assert other["rows"] == 0
    r = run("status", "--ledger", tmp_path / "ledger", "--since", "yesterday-ish")
    assert r.exit_code == 2 and "--since 'yesterday-ish'" in r.stderr


def test_status_report_for_people(tmp_path, make_tiq):
    _two_runs(tmp_path, make_tiq)
    r = run("status", "--ledger", tmp_path / "ledger")
    assert r.exit_code == 0
    assert "2 items, 2 attempts" in r.stdout
    assert "Latest errors" in r.stdout and "not a TIQ recording" in r.stdout


def test_status_on_an_empty_or_missing_ledger(tmp_path):
    r = run("status", "--ledger", tmp_path / "nothing-here")
    assert r.exit_code == 0 and "Nothing recorded yet" in r.stdout
    assert not (tmp_path / "nothing-here").exists()


def test_status_names_a_damaged_ledger_file_and_goes_on(tmp_path, make_tiq):
    _two_runs(tmp_path, make_tiq)
    broken = tmp_path / "ledger" / "part-20000101T000000.000000-x-1-deadbeef.parquet"
    broken.write_bytes(b"PAR1 this is not really parquet")
    r = run("status", "--ledger", tmp_path / "ledger", "--json")
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc["items"] == 2
    assert any(str(broken) in w for w in doc["warnings"])
    assert str(broken) in r.stderr


def test_ledger_path_that_is_a_file_is_a_usage_error(tmp_path, make_tiq):
    f = tmp_path / "ledger-file"
    f.write_text("x")
    r = run("process", make_tiq("a.tiq", nframes=1), "--ledger", f, "--output", tmp_path / "o")
    assert r.exit_code == 2
    assert str(f) in r.stderr and "Traceback" not in r.stderr


def test_status_lists_pending_recordings_of_watched_folders(tmp_path, make_tiq):
    folder = tmp_path / "rsa510"
    good = make_tiq("good.tiq", folder=folder, nframes=2)
    cut = folder / "cut.tiq"
    cut.write_bytes(good.read_bytes()[:-500])
    r = run("watch", folder, "--once", *small_args(tmp_path))
    assert r.exit_code == 0, r.stderr
    # Status runs with other settings than the watcher: pending means "not done at all".
    doc = json.loads(run("status", "--ledger", tmp_path / "ledger", "--json").stdout)
    assert [p["item"] for p in doc["pending"]] == [str(cut)]
    assert doc["pending"][0]["reason"].startswith("incomplete")
    assert doc["pending"][0]["folder"] == str(folder)
