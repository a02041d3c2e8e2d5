"""Products are never overwritten by another recording's: a stem is claimed by the ledger's
rows (and the files), whatever products were asked for (real ``crunchctl process`` runs)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from conftest import child_env, crunchctl_cmd, small_args


def _process(tmp_path: Path, rec: Path, *extra: str) -> dict:
    cmd = [*crunchctl_cmd(), "process", str(rec), *small_args(tmp_path), "--json", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _hashed(rec: Path) -> str:
    digest = hashlib.sha1(str(rec.parent).encode()).hexdigest()[:6]
    return f"{rec.stem}__{rec.parent.name}-{digest}"


def test_same_stem_in_separate_runs_without_npz_gets_distinct_names(tmp_path, make_tiq):
    a = make_tiq("x.tiq", folder=tmp_path / "a", seed=1)
    b = make_tiq("x.tiq", folder=tmp_path / "b", seed=2)
    out = tmp_path / "out"
    first = _process(tmp_path, a, "--products", "png,zoom")
    assert [Path(p).name for p in first["outcomes"][0]["products"]] == ["x.png", "x_zoom.png"]
    a_png = (out / "x.png").read_bytes()

    second = _process(tmp_path, b, "--products", "png,zoom")
    names = [Path(p).name for p in second["outcomes"][0]["products"]]
    assert names == [f"{_hashed(b)}.png", f"{_hashed(b)}_zoom.png"], names
    assert (out / "x.png").read_bytes() == a_png  # a's picture is still a's

    # Both stay done: neither run makes the other due.
    assert _process(tmp_path, a, "--products", "png,zoom")["skipped"] == 1
    assert _process(tmp_path, b, "--products", "png,zoom")["skipped"] == 1


def test_an_unreadable_npz_does_not_hide_the_clash(tmp_path, make_tiq):
    a = make_tiq("x.tiq", folder=tmp_path / "a", seed=1)
    b = make_tiq("x.tiq", folder=tmp_path / "b", seed=2)
    out = tmp_path / "out"
    _process(tmp_path, a)
    (out / "x.npz").write_bytes(b"not a zip file")  # damaged after the run
    a_png = (out / "x.png").read_bytes()
    second = _process(tmp_path, b)
    names = [Path(p).name for p in second["outcomes"][0]["products"]]
    assert names[0] == f"{_hashed(b)}.png", names
    assert (out / "x.png").read_bytes() == a_png


def test_the_same_recording_keeps_its_plain_stem_when_redone(tmp_path, make_tiq):
    a = make_tiq("x.tiq", folder=tmp_path / "a")
    _process(tmp_path, a, "--products", "png")
    doc = _process(tmp_path, a, "--products", "png", "--force")
    assert [Path(p).name for p in doc["outcomes"][0]["products"]] == ["x.png"]
