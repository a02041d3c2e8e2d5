"""The patterns of a watch given none are the format registry's (``formats.patterns()``):
what ``watch --help`` says, and what ``status`` counts as pending in a folder no watch
recorded its patterns for (real ``crunchctl`` processes)."""

from __future__ import annotations

import json
import subprocess

from conftest import child_env, crunchctl_cmd
from crunchctl import formats
from crunchctl.formats import synth


def test_watch_help_shows_the_registry_patterns():
    p = subprocess.run(
        [*crunchctl_cmd(), "watch", "--help"],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    text = " ".join(p.stdout.split())  # the help wraps where the terminal ends
    assert f"every format crunchctl reads: {' '.join(formats.patterns())}" in text, text
    assert "[default: *.tiq]" not in text


def test_status_pending_in_the_configured_folder_uses_every_format(tmp_path):
    folder = tmp_path / "rec"
    folder.mkdir()
    spec = synth.RecordingSpec(nframes=2, lframes=1024)
    synth.make_recording_as(folder / "a.tiq", "tiq", spec)
    synth.make_recording_as(folder / "b.wav", "wav", spec)
    synth.make_recording_as(folder / "c.tdms", "tdms", spec)
    config = tmp_path / "config.toml"
    config.write_text(f'[paths]\nfolder_path = "{folder}"\n')
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    p = subprocess.run(
        [*crunchctl_cmd(), "status", "--json", "--config", str(config), "--ledger", str(ledger)],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    pending = sorted(e["item"] for e in json.loads(p.stdout)["pending"])
    assert pending == [str(folder / "a.tiq"), str(folder / "b.wav"), str(folder / "c.tdms")], (
        pending
    )
