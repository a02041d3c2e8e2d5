"""``crunchctl status`` through the CLI on real ledgers made by real runs."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess

import pytest

from conftest import child_env, invoke as run, small_args


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
    for key in (
        "ledger",
        "attempts_by_status",
        "first_activity",
        "last_activity",
        "throughput_per_hour",
        "warnings",
        "pending",
    ):
        assert key in doc


def test_status_filters(tmp_path, make_tiq):
    a, bad = _two_runs(tmp_path, make_tiq)
    only_errors = json.loads(
        run("status", "--ledger", tmp_path / "ledger", "--json", "--errors").stdout
    )
    assert only_errors["items"] == 1 and only_errors["by_status"].get("ok", 0) == 0
    by_glob = json.loads(
        run("status", "--ledger", tmp_path / "ledger", "--json", "--item", "*a.tiq").stdout
    )
    assert by_glob["items"] == 1 and by_glob["by_status"]["ok"] == 1
    future = json.loads(
        run("status", "--ledger", tmp_path / "ledger", "--json", "--since", "2999-01-01").stdout
    )
    assert future["rows"] == 0
    recent = json.loads(
        run("status", "--ledger", tmp_path / "ledger", "--json", "--since", "1h").stdout
    )
    assert recent["rows"] == 2
    other = json.loads(
        run("status", "--ledger", tmp_path / "ledger", "--json", "--source", "batch:*").stdout
    )
    assert other["rows"] == 0
    r = run("status", "--ledger", tmp_path / "ledger", "--since", "yesterday-ish")
    assert r.exit_code == 2 and "--since 'yesterday-ish'" in r.stderr


def test_status_report_for_people(tmp_path, make_tiq):
    _two_runs(tmp_path, make_tiq)
    r = run("status", "--ledger", tmp_path / "ledger")
    assert r.exit_code == 0
    assert "2 items, 2 attempts" in r.stdout
    assert "Latest errors" in r.stdout and "not a TIQ recording" in r.stdout


def test_status_on_a_missing_ledger(tmp_path, monkeypatch):
    # The default ledger may not exist yet: nothing recorded.
    monkeypatch.setenv("CRUNCHCTL_STATE_DIR", str(tmp_path / "state"))
    r = run("status")
    assert r.exit_code == 0 and "Nothing recorded yet" in r.stdout
    # A ledger that was named must exist: a typo is not an empty ledger.
    r = run("--ledger", tmp_path / "typo" / "dir", "status")
    assert r.exit_code == 2
    assert (
        r.stderr == f"Error: ledger folder {tmp_path / 'typo' / 'dir'} does not exist "
        f"(check --ledger or ledger_path)\n"
    )
    assert run("status", "--ledger", tmp_path / "nothing-here", "--json").exit_code == 2
    assert not (tmp_path / "nothing-here").exists() and not (tmp_path / "state").exists()


def test_status_names_a_damaged_ledger_file_and_goes_on(tmp_path, make_tiq):
    _two_runs(tmp_path, make_tiq)
    broken = tmp_path / "ledger" / "part-20000101T000000.000000-x-1-deadbeef.parquet"
    broken.write_bytes(b"PAR1 this is not really parquet")
    r = run("status", "--ledger", tmp_path / "ledger", "--json")
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc["items"] == 2
    assert any(str(broken) in w for w in doc["warnings"])
    assert r.stderr.count(str(broken)) == 1  # said once, not also by the logger
    r = run("status", "--ledger", tmp_path / "ledger")
    assert r.exit_code == 0 and r.stderr.count(str(broken)) == 1


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
    bad = folder / "bad.tiq"
    bad.write_bytes(b"not a recording at all")
    r = run("watch", folder, "--once", *small_args(tmp_path))
    assert r.exit_code in (0, 1), r.stderr
    # Status runs with other settings than the watcher: pending means "not done at all".
    doc = json.loads(run("status", "--ledger", tmp_path / "ledger", "--json").stdout)
    assert [p["item"] for p in doc["pending"]] == [str(cut)]
    assert doc["pending"][0]["reason"].startswith("incomplete")
    assert doc["pending"][0]["folder"] == str(folder)
    # The failed recording is shown once, as an error, its message without its path.
    [err] = doc["latest_errors"]
    assert err["item"] == str(bad) and not err["error"].startswith(str(bad))
    text = run("status", "--ledger", tmp_path / "ledger").stdout
    assert text.count("bad.tiq") == 1 and text.count("cut.tiq") == 1
    assert f"{bad}: " not in text


def test_status_item_list(tmp_path, make_tiq):
    a, bad = _two_runs(tmp_path, make_tiq)
    led = ["--ledger", tmp_path / "ledger"]
    doc = json.loads(run("status", *led, "--item", "*.tiq", "--list", "--json").stdout)
    by_item = {e["item"]: e for e in doc["list"]}
    assert list(by_item) == sorted([str(a), str(bad)])
    ok = by_item[str(a)]
    assert ok["status"] == "ok" and ok["duration_s"] > 0 and ok["finished"].endswith("Z")
    assert sorted(os.path.basename(p) for p in ok["products"]) == ["a.npz", "a.png", "a_zoom.png"]
    assert by_item[str(bad)]["status"] == "error"
    assert "not a TIQ recording" in by_item[str(bad)]["error"]
    r = run("status", *led, "--item", "a.tiq", "--list")
    assert r.exit_code == 0
    [line] = [ln for ln in r.stdout.splitlines() if str(a) in ln and "a_zoom.png" in ln]
    assert " ok " in line and " s " in line
    assert "bad.tiq" not in r.stdout
    assert "list" not in json.loads(run("status", *led, "--json").stdout)


# ---------------------------------------------------------------------- long names


def long_name_ledger(tmp_path, n=4):
    """Errors and items with paths far wider than any terminal."""
    from crunchctl.ledger.store import Ledger
    from crunchctl.outcome import Outcome

    deep = tmp_path.joinpath(*[f"experiment-folder-{i:02d}" for i in range(12)])
    items = [str(deep / f"recording_{i}_20240417T130522_with_a_long_name.tiq") for i in range(n)]
    with Ledger(tmp_path / "ledger") as led:
        for i, item in enumerate(items):
            led.record(
                Outcome(
                    item,
                    "iq",
                    f"watch:{deep}",
                    "error",
                    1e9 + i,
                    1e9 + i + 1,
                    error=f"{item}: header says 4096 bytes of data, file has 12",
                )
            )
    return items


def test_status_off_a_terminal_never_cuts_or_wraps_names(tmp_path):
    items = long_name_ledger(tmp_path)
    assert all(len(i) > 300 for i in items)
    r = run("status", "--ledger", tmp_path / "ledger")  # CliRunner: not a terminal
    proc = subprocess.run(
        ["crunchctl", "status", "--ledger", str(tmp_path / "ledger")],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
    )
    for out in (r.stdout, proc.stdout):
        for item in items:  # `crunchctl status | grep <name>` finds every recording, whole
            [line] = [ln for ln in out.splitlines() if os.path.basename(item) in ln]
            assert item in line
        assert "…" not in out
    r = run("status", "--ledger", tmp_path / "ledger", "--list")
    for item in items:
        assert any(item in ln for ln in r.stdout.splitlines())


@pytest.mark.parametrize("width", [60, 100, 160])
def test_status_on_a_terminal_keeps_file_names_whole(tmp_path, width):
    from rich.console import Console

    from crunchctl.cli.status import render
    from crunchctl.ledger.store import Ledger
    from crunchctl.watch.status import document

    items = long_name_ledger(tmp_path)
    doc = document(Ledger(tmp_path / "ledger"), None, list_items=True)
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=width, no_color=True, highlight=False)
    render(doc, console)
    text = re.sub(r"\x1b\[[0-9;]*m", "", buf.getvalue())  # styles, not characters
    lines = text.splitlines()
    for item in items:
        name = os.path.basename(item)
        hits = [ln for ln in lines if name in ln]
        assert len(hits) == 2, (name, hits)  # whole, once among errors, once in the list
        assert all("…" + os.sep in ln for ln in hits)  # the folder part was shortened
    assert max(len(ln) for ln in lines) <= width
    assert "…" + os.sep + "experiment-folder-" in text  # the source, shortened too


def test_shorten_path():
    from crunchctl.cli.status import shorten_path

    assert shorten_path("/a/b/c.tiq", 40) == "/a/b/c.tiq"

    short = shorten_path("/data/rsa510/2024/c.tiq", 16)
    assert short.startswith("…") and short.endswith("/2024/c.tiq") and len(short) <= 16
    assert (
        shorten_path("/data/a_very_long_recording_name.tiq", 10)
        == "…/a_very_long_recording_name.tiq"
    )
