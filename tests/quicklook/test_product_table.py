"""A product added as docs/ARCHITECTURE.md says (one table entry plus its maker) is made,
recorded and keeps resume right: a second run skips everything (real processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import child_env, small_args

PLUGINS = Path(__file__).resolve().parent.parent / "plugins"


def _run(tmp_path: Path, *args: str, **env_extra: str) -> subprocess.CompletedProcess:
    env = child_env(
        PYTHONPATH=os.pathsep.join([str(PLUGINS), os.environ.get("PYTHONPATH", "")]), **env_extra
    )
    cmd = [sys.executable, str(PLUGINS / "dummy_product.py"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def _process(tmp_path: Path, recs: list[Path], *extra: str) -> dict:
    proc = _run(
        tmp_path, "process", *map(str, recs), *small_args(tmp_path), "--json", "-j", "2", *extra
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_a_product_added_by_one_entry_is_made_and_resume_holds(tmp_path, make_tiq):
    recs = [make_tiq("a.tiq"), make_tiq("b.tiq", seed=2)]
    out = tmp_path / "out"
    first = _process(tmp_path, recs, "--products", "png,peakbins")
    assert first["processed"] == 2, first
    assert sorted(os.listdir(out)) == ["a.png", "a_peakbins.txt", "b.png", "b_peakbins.txt"]
    assert (out / "a_peakbins.txt").read_text().startswith("6 frames\n")

    # Resume: everything done, with this product and with fewer.
    assert _process(tmp_path, recs, "--products", "png,peakbins")["skipped"] == 2
    assert _process(tmp_path, recs, "--products", "peakbins")["skipped"] == 2
    assert _process(tmp_path, recs, "--products", "png")["skipped"] == 2

    # A setting it declares redoes it; a missing file of it makes its recording due.
    (out / "b_peakbins.txt").unlink()
    doc = _process(tmp_path, recs, "--products", "peakbins")
    assert [Path(o["item"]).name for o in doc["outcomes"]] == ["b.tiq"]
    doc = _process(tmp_path, recs, "--products", "peakbins", "--nframes", "4")
    assert doc["processed"] == 2
    assert (out / "a_peakbins.txt").read_text().startswith("4 frames\n")


def test_the_products_option_knows_the_added_product(tmp_path):
    proc = _run(tmp_path, "process", "--help")
    assert "peakbins" in proc.stdout
    bad = _run(tmp_path, "process", "x.tiq", *small_args(tmp_path), "--products", "gif")
    assert bad.returncode == 2 and "peakbins" in bad.stderr, bad.stderr
    completed = _run(
        tmp_path,
        _CRUNCHCTL_COMPLETE="complete_bash",
        COMP_CWORD="3",
        COMP_WORDS="crunchctl process --products png,peakb",
    )
    assert completed.stdout.split() == ["png,peakbins"], completed
