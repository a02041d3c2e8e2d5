"""What the commands say: usage errors that name the choices, times with their zone, tables
that keep the folder a file is in, help a person reads, counts in the right number."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crunchctl.cli import app
from conftest import child_env, crunchctl_cmd, small_args

runner = CliRunner()

PLUGIN = '''
import numpy as np

def load(item):
    if item == "quiet":
        return []
    return [{"x": np.arange(8.0), "y": np.arange(4.0), "data": np.ones((4, 8)), "label": item}]
'''


def run(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False, input=input)


def crunchctl(*args, env=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run(crunchctl_cmd() + [str(a) for a in args], capture_output=True,
                          text=True, env=env or child_env(), timeout=timeout)


@pytest.fixture
def mixed_ledger(tmp_path, make_tiq) -> Path:
    """A ledger with one item of each status a run records: ok, error, no_data."""
    good = make_tiq("good.tiq", nframes=2)
    bad = tmp_path / "bad.tiq"
    bad.write_bytes(b"not a recording")
    assert run("process", good, bad, *small_args(tmp_path)).exit_code == 1
    plugin = tmp_path / "plug.py"
    plugin.write_text(PLUGIN)
    items = tmp_path / "items.txt"
    items.write_text("quiet\n")
    r = run("batch", items, "--loader", f"{plugin}:load", "--output", tmp_path / "figs",
            "--ledger", tmp_path / "ledger", "--log-file", tmp_path / "crunchctl.log")
    assert r.exit_code == 0, r.output
    return tmp_path / "ledger"


# ------------------------------------------------------------------ --status choices


def test_reset_of_an_unknown_status_is_a_usage_error_naming_the_choices(mixed_ledger):
    r = run("reset", "--status", "bogus", "--yes", "--ledger", mixed_ledger)
    assert r.exit_code == 2
    assert "'bogus' is not a status; choose ok, error or no_data" in r.stderr
    assert "nothing to reset" not in r.output
    # Nothing was reset: every item keeps its status.
    doc = json.loads(run("status", "--ledger", mixed_ledger, "--json").stdout)
    assert doc["by_status"] == {"ok": 1, "error": 1, "no_data": 1, "reset": 0}
    r = run("reset", "--status", "no_data", "--yes", "--ledger", mixed_ledger)
    assert r.exit_code == 0 and "reset 1 item;" in r.stdout


@pytest.mark.parametrize(("given", "shown"), [
    (["--status", "no_data"], {"no_data"}),
    (["--status", "ok"], {"ok"}),
    (["--status", "error"], {"error"}),
    (["--errors"], {"error"}),
    (["--status", "ok,no_data"], {"ok", "no_data"}),
    (["--status", "ok", "--status", "error"], {"ok", "error"}),
])
def test_status_shows_the_items_of_each_status_asked_for(mixed_ledger, given, shown):
    r = run("status", "--ledger", mixed_ledger, "--json", "--list", *given)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert {e["status"] for e in doc["list"]} == shown
    assert doc["items"] == len(shown)
    assert {k for k, n in doc["by_status"].items() if n} == shown


def test_status_of_an_unknown_status_is_a_usage_error(mixed_ledger):
    r = run("status", "--ledger", mixed_ledger, "--status", "failed")
    assert r.exit_code == 2
    assert "'failed' is not a status; choose ok, error, no_data or reset" in r.stderr
