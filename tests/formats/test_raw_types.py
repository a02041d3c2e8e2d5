"""Raw IQ files whose extension does not say their sample type (HackRF ``.iq``, GNU Radio
``.dat``/``.bin``): ``--format cf32`` (or ``raw:cf32``) types them, through real processes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import child_env, crunchctl_cmd, small_args
from crunchctl import formats
from crunchctl.errors import UsageError
from crunchctl.formats.synth import Line, RecordingSpec, make_recording_as

SPEC = RecordingSpec(nframes=6, lframes=1024, fs=1.0e6, center=0.0, lines=(Line(50e3, 1e-3, 0.0),))


def crunch(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        crunchctl_cmd()
        + [
            "process",
            *map(str, args),
            *small_args(tmp_path),
            "--sample-rate",
            "1e6",
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=120,
        check=False,
    )


def peak_hz(npz: Path) -> float:
    with np.load(npz) as z:
        return float(z["arr_0"][0, np.argmax(z["arr_2"].mean(axis=0))])


@pytest.mark.parametrize(
    ("stored", "odd_name", "given"),
    [
        ("a.cf32", "hackrf.iq", "cf32"),
        ("a.cf32", "hackrf.iq", "raw:CF32"),
        ("a.cs16", "capture.dat", "cs16"),
        ("a.cs16", "capture.bin", "raw:cs16"),
    ],
)
def test_format_names_the_sample_type_of_a_file_of_any_name(tmp_path, stored, odd_name, given):
    typed = make_recording_as(tmp_path / stored, "raw", SPEC)
    odd = tmp_path / odd_name
    shutil.copyfile(typed, odd)
    r = crunch(tmp_path, odd, "--format", given)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out"
    with np.load(out / (odd.stem + ".npz")) as z:
        assert str(z["format"]) == "raw"
        assert str(z["scaling"]).endswith(f"({Path(stored).suffix[1:]})")
    # The same numbers as the file whose extension says its type.
    r = crunch(tmp_path, typed)
    assert r.returncode == 0, r.stderr
    with np.load(out / (odd.stem + ".npz")) as z_odd, np.load(out / "a.npz") as z_typed:
        np.testing.assert_array_equal(z_odd["arr_2"], z_typed["arr_2"])
    assert peak_hz(out / (odd.stem + ".npz")) == pytest.approx(50e3, abs=1e3)


def test_an_untyped_raw_file_is_told_how_to_give_its_type(tmp_path):
    odd = tmp_path / "hackrf.iq"
    shutil.copyfile(make_recording_as(tmp_path / "a.cf32", "raw", SPEC), odd)
    r = crunch(tmp_path, odd)
    assert r.returncode == 1
    assert "unknown recording format (extension .iq)" in r.stderr
    assert "--format cf32" in r.stderr
    # --format raw alone cannot know the type: the message says how to give it.
    r = crunch(tmp_path, odd, "--format", "raw")
    assert r.returncode == 1
    assert "raw IQ type unknown: give it with --format TYPE" in r.stderr
    assert "cs16" in r.stderr


@pytest.mark.parametrize("bad", ["bogus", "raw:bogus", "tiq:cf32"])
def test_an_unknown_format_or_sample_type_is_a_usage_error_naming_the_choices(tmp_path, bad):
    odd = tmp_path / "hackrf.iq"
    odd.write_bytes(b"\0" * 8192)
    r = crunch(tmp_path, odd, "--format", bad)
    assert r.returncode == 2
    assert f"unknown format {bad!r}" in r.stderr
    assert "tiq, sigmf, tdms, wav, raw" in r.stderr and "cf32, " in r.stderr
    assert not (tmp_path / "ledger").exists() or not list((tmp_path / "ledger").rglob("*.parquet"))


def test_check_name_has_one_spelling_per_choice():
    assert formats.check_name("TIQ") == "tiq"
    assert formats.check_name("raw") == "raw"
    assert formats.check_name("cf32") == formats.check_name("raw:cf32") == "raw:cf32"
    assert formats.check_name(".cs16") == "raw:cs16"
    with pytest.raises(UsageError, match="cu8"):
        formats.check_name("wav:cs16")


def test_the_config_key_format_takes_a_sample_type_too(tmp_path):
    odd = tmp_path / "capture.dat"
    shutil.copyfile(make_recording_as(tmp_path / "a.cs16", "raw", SPEC), odd)
    cfg = tmp_path / "config.toml"
    cfg.write_text('[settings]\nformat = "cs16"\n')
    r = crunch(tmp_path, odd, "--config", cfg)
    assert r.returncode == 0, r.stderr
    cfg.write_text('[settings]\nformat = "cs17"\n')
    r = crunch(tmp_path, odd, "--config", cfg)
    assert r.returncode == 2, r.stderr
    assert f"{cfg}: format = 'cs17': choose one of tiq, sigmf, tdms, wav, raw" in r.stderr
    assert "internal error" not in r.stderr
