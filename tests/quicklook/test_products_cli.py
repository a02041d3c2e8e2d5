"""``--products`` through the real command: only the asked products are written, the ledger
records them, and a later run asking for more makes the missing ones."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np

from conftest import child_env, crunchctl_cmd, small_args


def _process(tmp_path: Path, rec: Path, *extra: str) -> dict:
    cmd = [*crunchctl_cmd(), "process", str(rec), *small_args(tmp_path), "--json", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_products_are_chosen_and_a_later_run_asking_for_more_makes_them(tmp_path, make_tiq):
    rec = make_tiq("r.tiq", nframes=6)
    out = tmp_path / "out"
    www = tmp_path / "www"

    doc = _process(tmp_path, rec, "--products", "spectrum,png", "--www", str(www))
    [outcome] = doc["outcomes"]
    assert outcome["status"] == "ok"
    assert outcome["products"] == [
        str(out / "r.png"),
        str(out / "r_spectrum.npz"),
        str(out / "r_spectrum.png"),
    ]
    assert sorted(os.listdir(out)) == ["r.png", "r_spectrum.npz", "r_spectrum.png"]
    # Only the picture that was made goes to the web folder.
    assert sorted(p for p in os.listdir(www) if p.endswith(".png")) == [f"{tmp_path.name}.png"]
    with np.load(out / "r_spectrum.npz") as z:
        assert z["arr_1"].shape == (1024,) and str(z["format"]) == "tiq"

    # The same products again: done, nothing is made.
    doc = _process(tmp_path, rec, "--products", "png,spectrum")
    assert doc["outcomes"] == []

    # More products: the recording is due again; every asked product is written (the whole
    # recording is processed again, which is as fast as making only the missing ones).
    before = (out / "r.png").stat().st_mtime_ns
    doc = _process(tmp_path, rec, "--products", "png,zoom,npz,spectrum")
    [outcome] = doc["outcomes"]
    assert outcome["status"] == "ok"
    assert [Path(p).name for p in outcome["products"]] == [
        "r.png",
        "r_zoom.png",
        "r.npz",
        "r_spectrum.npz",
        "r_spectrum.png",
    ]
    assert sorted(os.listdir(out)) == [
        "r.npz",
        "r.png",
        "r_spectrum.npz",
        "r_spectrum.png",
        "r_zoom.png",
    ]
    assert (out / "r.png").stat().st_mtime_ns >= before

    # Fewer products than are there: done.
    assert _process(tmp_path, rec, "--products", "npz")["outcomes"] == []


def test_an_unknown_product_is_a_usage_error(tmp_path, make_tiq):
    rec = make_tiq("r.tiq", nframes=2)
    cmd = [*crunchctl_cmd(), "process", str(rec), *small_args(tmp_path), "--products", "png,gif"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env(), timeout=120)
    assert proc.returncode == 2
    assert "--products 'png,gif'" in proc.stderr
    assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []
