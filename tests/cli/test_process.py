"""``crunchctl process`` through the CLI and through the library API."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import invoke as run, small_args
from crunchctl.config import resolve
from crunchctl.recordings.run import process_files


def settings(tmp_path: Path, **kw):
    base = {"lframes": 1024, "zoom_span": 200e3, "output_path": str(tmp_path / "out"), "workers": 2}
    base.update(kw)
    return resolve(None, base)


def test_api_writes_three_products_with_legacy_npz_keys(tmp_path, make_tiq):
    a = make_tiq("a.tiq", nframes=6)
    result = process_files([a], settings(tmp_path, n_avg=2))
    assert [o.status for o in result.outcomes] == ["ok"]
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["a.npz", "a.png", "a_zoom.png"]
    for png in ("a.png", "a_zoom.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with np.load(out / "a.npz") as z:
        assert z["arr_0"].shape == (1, 1024) and z["arr_0"].dtype == np.float64
        assert z["arr_1"].shape == (6, 1) and z["arr_2"].shape == (6, 1024)
        assert z["arr_2"].dtype == np.float32
        assert z["arr_0"][0, 512] == 100e6
        assert z["arr_1"][1, 0] == pytest.approx(1024 / 1e6)
        assert str(z["source"]) == str(a)


def test_equal_stems_from_different_folders_do_not_collide(tmp_path, make_tiq):
    a = make_tiq("same.tiq", folder=tmp_path / "day1", nframes=2)
    b = make_tiq("same.tiq", folder=tmp_path / "day2", nframes=3)
    result = process_files([a, b], settings(tmp_path))
    assert {o.status for o in result.outcomes} == {"ok"}
    npzs = sorted((tmp_path / "out").glob("*.npz"))
    assert len(npzs) == 2
    shapes = {}
    for p in npzs:
        with np.load(p) as z:
            shapes[str(z["source"])] = z["arr_2"].shape[0]
    assert shapes == {str(a): 2, str(b): 3}
    # A later run of the second one alone keeps using its own, distinct name.
    again = process_files(
        [b],
        settings(tmp_path),
    )
    assert again.outcomes[0].products[2] in {str(p) for p in npzs}
    assert again.outcomes[0].products[2] != str(tmp_path / "out" / "same.npz")


def test_cli_bad_items_fail_alone_and_exit_1(tmp_path, make_tiq):
    good = make_tiq("good.tiq", nframes=2)
    empty = tmp_path / "empty.tiq"
    empty.write_bytes(b"")
    cut = tmp_path / "cut.tiq"
    cut.write_bytes(good.read_bytes()[:-100])
    folder = tmp_path / "folder.tiq"
    folder.mkdir()
    r = run("process", good, empty, cut, folder, tmp_path / "missing.tiq", *small_args(tmp_path))
    assert r.exit_code == 1, r.output
    assert "processed 1, failed 4" in r.stdout
    err = r.stderr
    assert f"{empty}: empty file (0 bytes)" in err
    assert f"{cut}: header says 2048 samples (16384 bytes) but only 16284 bytes" in err
    assert f"{folder}: is a directory" in err
    assert f"{tmp_path / 'missing.tiq'}: no such file" in err
    assert "Traceback" not in err
    assert (tmp_path / "out" / "good.png").exists()
    leftovers = [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


@pytest.mark.parametrize(
    "args,message",
    [
        (["--lframes", "0"], "--lframes 0: expected a whole number of at least 1"),
        (["--n-avg", "-3"], "--n-avg -3: expected a whole number of at least 1"),
        (["--zoom-span", "0"], "--zoom-span 0.0: expected a positive number of Hz"),
        (["--window", "kaiser"], "--window 'kaiser': expected one of rectangular"),
        (["--cmap", "nope"], "cmap 'nope': not a matplotlib colour map"),
    ],
)
def test_bad_settings_are_usage_errors(tmp_path, make_tiq, args, message):
    a = make_tiq("a.tiq", nframes=1)
    r = run("process", a, *small_args(tmp_path), *args)
    assert r.exit_code == 2
    assert message in r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


def test_non_numeric_setting_is_a_usage_error(tmp_path, make_tiq):
    r = run("process", make_tiq("a.tiq", nframes=1), "--lframes", "lots")
    assert r.exit_code == 2
    assert (
        "--lframes" in r.stderr
        and "expected a whole number" in r.stderr
        and "Traceback" not in r.stderr
    )


def test_too_many_frames_names_both_numbers(tmp_path, make_tiq):
    a = make_tiq("a.tiq", nframes=3)
    r = run("process", a, *small_args(tmp_path), "--nframes", "5")
    assert r.exit_code == 1
    assert f"{a}: asked for 5 frames of 1024 samples but the file holds only 3" in r.stderr


def test_unwritable_output_stops_before_any_recording_runs(tmp_path, make_tiq):
    """One rule for every command: an output folder that cannot be created or written is
    one line naming it and exit 2, checked before any item runs (nothing is recorded)."""
    a = make_tiq("a.tiq", nframes=1)
    blocker = tmp_path / "out"
    blocker.write_text("a file where the output folder should be")
    r = run("process", a, *small_args(tmp_path))
    assert r.exit_code == 2  # an existing file given as --output is a usage error
    assert "is a file" in r.stderr
    below = blocker / "sub"
    r = run("process", a, *small_args(tmp_path), "--output", below)
    assert r.exit_code == 2
    assert r.stderr.strip() == (f"Error: {below}: cannot create the output folder: Not a directory")
    assert not (tmp_path / "ledger").exists() or not list((tmp_path / "ledger").rglob("*.parquet"))


def test_legacy_config_runs_unchanged_and_cli_wins(tmp_path, make_tiq, monkeypatch):
    rec_dir = tmp_path / "rsa510"
    a = make_tiq("20240417_130522.tiq", folder=rec_dir, nframes=4)
    text = (
        LEGACY_CONFIG.replace("/data/rsa510/", str(rec_dir) + "/")
        .replace("/data/crunch/processed.toml", str(tmp_path / "processed.toml"))
        .replace("/data/crunch/out/", str(tmp_path / "legacy-out") + "/")
        .replace("/var/www/html/schottky/", str(tmp_path / "www") + "/")
        .replace("lframes = 65536", "lframes = 512")
        .replace("nframes = 94", "nframes = 3")
    )
    cfg = tmp_path / "config.toml"
    cfg.write_text(text)
    r = run(
        "process",
        a,
        "--config",
        cfg,
        "--ledger",
        tmp_path / "ledger",
        "--zoom-span",
        "100000",
        "--log-file",
        tmp_path / "log",
    )
    assert r.exit_code == 0, r.stderr
    with np.load(tmp_path / "legacy-out" / "20240417_130522.npz") as z:
        assert z["arr_2"].shape == (3, 512)  # lframes and nframes from the legacy file
    assert (tmp_path / "www" / "rsa510.png").exists()
    assert (tmp_path / "www" / "zoom_rsa510.png").exists()
    # environment beats the file, the command line beats both
    monkeypatch.setenv("CRUNCHCTL_NFRAMES", "2")
    r = run(
        "process",
        a,
        "--config",
        cfg,
        "--ledger",
        tmp_path / "ledger2",
        "--zoom-span",
        "100000",
        "--log-file",
        tmp_path / "log",
    )
    with np.load(tmp_path / "legacy-out" / "20240417_130522.npz") as z:
        assert z["arr_2"].shape == (2, 512)
    r = run(
        "process",
        a,
        "--config",
        cfg,
        "--ledger",
        tmp_path / "ledger3",
        "--nframes",
        "1",
        "--zoom-span",
        "100000",
        "--log-file",
        tmp_path / "log",
    )
    assert r.exit_code == 0
    with np.load(tmp_path / "legacy-out" / "20240417_130522.npz") as z:
        assert z["arr_2"].shape == (1, 512)


# The legacy datacrunch.py configuration as operators have it, comments and all.
LEGACY_CONFIG = """# A datacrunch.py configuration as operators have it today (all keys required by the legacy tool).
[paths]
folder_path = "/data/rsa510/"            # folder the recorder writes .tiq files into
tracking_file_path = "/data/crunch/processed.toml"
output_path = "/data/crunch/out/"        # the legacy tool concatenated this with the file name
www_path = "/var/www/html/schottky/"     # web folder: <recorder folder name>.png, zoom_<...>.png

[settings]
lframes = 65536     # FFT length (samples per frame)
nframes = 94        # frames read from the start of each recording
n_avg = 1           # average every n_avg frames for the zoom image
num_threads = 10    # worker threads
zoom_center = 0     # Hz, offset from the recording's centre frequency
"""


@pytest.mark.parametrize(
    "content,message",
    [
        ("[settings]\nlframes = 'big'\n", "lframes = 'big': expected a whole number"),
        ("[settings]\nlframes = \n", "not valid TOML"),
        ("[settings]\nframes = 3\n", "[settings] frames: unknown key"),
        ("[paths]\noutput_path = 3\n", "output_path = 3: expected a path"),
    ],
)
def test_config_errors_name_file_key_and_expectation(tmp_path, make_tiq, content, message):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(content)
    r = run("process", make_tiq("a.tiq", nframes=1), "--config", cfg)
    assert r.exit_code == 2
    assert r.stderr.startswith(f"Error: {cfg}: ")
    assert message in r.stderr


def test_done_recordings_are_skipped_and_force_redoes_them(tmp_path, make_tiq):
    a = make_tiq("a.tiq", nframes=2)
    b = make_tiq("b.tiq", nframes=2)
    assert run("process", a, b, *small_args(tmp_path)).exit_code == 0
    r = run("process", a, b, *small_args(tmp_path))
    assert "processed 0, failed 0, skipped 2 already done" in r.stdout
    os.utime(b, ns=(1_000_000_000, 1_000_000_000))  # b changed
    r = run("process", a, b, *small_args(tmp_path))
    assert "processed 1, failed 0, skipped 1 already done" in r.stdout
    r = run("process", a, b, *small_args(tmp_path), "--force")
    assert "processed 2, failed 0" in r.stdout
    (tmp_path / "out" / "a_zoom.png").unlink()  # a product went missing: a is due again
    r = run("process", a, b, *small_args(tmp_path))
    assert "processed 1, failed 0, skipped 1 already done" in r.stdout


def test_json_summary(tmp_path, make_tiq):
    import json

    a = make_tiq("a.tiq", nframes=1)
    r = run("process", a, tmp_path / "nope.tiq", *small_args(tmp_path), "--json")
    doc = json.loads(r.stdout)
    assert doc["processed"] == 1 and doc["failed"] == 1
    assert {o["status"] for o in doc["outcomes"]} == {"ok", "error"}


def test_installed_entry_point_runs(tmp_path, make_tiq):
    exe = shutil.which("crunchctl")
    assert exe, "the crunchctl entry point is not installed"
    a = make_tiq("a.tiq", nframes=2)
    p = subprocess.run(
        [exe, "process", str(a), *small_args(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 0, p.stderr
    assert "processed 1, failed 0" in p.stdout
    assert (tmp_path / "out" / "a.png").exists()
    v = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert v.stdout.startswith("crunchctl ")
    m = subprocess.run(
        [sys.executable, "-m", "crunchctl", "--help"], capture_output=True, text=True, timeout=60
    )
    assert m.returncode == 0 and "Usage: crunchctl" in m.stdout
