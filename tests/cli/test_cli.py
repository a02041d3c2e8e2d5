"""What every command shares: help, version, completion, errors, plain output."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import crunchctl
from crunchctl.cli import app

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ["process", "watch", "batch", "status", "reset", "import", "demo"]
runner = CliRunner()


def test_every_command_has_a_summary_and_an_example():
    top = runner.invoke(app, ["--help"])
    assert top.exit_code == 0
    for cmd in COMMANDS:
        assert re.search(rf"^\s+{cmd}\s+\S", top.stdout, flags=re.M), cmd
        r = runner.invoke(app, [cmd, "--help"])
        assert r.exit_code == 0, cmd
        assert "Example: crunchctl " + cmd in " ".join(r.stdout.split()), cmd


def test_version():
    r = runner.invoke(app, ["--version"])
    assert r.stdout.strip() == f"crunchctl {crunchctl.__version__}"


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_committed_completion_scripts_are_up_to_date(shell):
    sys.path.insert(0, str(ROOT / "completions"))
    try:
        import generate
    finally:
        sys.path.pop(0)
    assert (ROOT / "completions" / f"crunchctl.{shell}").read_text() == generate.script(shell)


def complete(words: str) -> list[str]:
    env = {**os.environ, "_CRUNCHCTL_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1))}
    code = "import sys; sys.argv[0] = 'crunchctl'; from crunchctl.cli import main; main()"
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=60)
    return p.stdout.split()


def test_completion_offers_commands_options_and_choices():
    assert "process" in complete("crunchctl pro")
    assert set(COMMANDS) <= set(complete("crunchctl "))
    assert "--window" in complete("crunchctl process --win")
    assert complete("crunchctl process --window ") == ["rectangular", "hann", "hamming",
                                                        "blackman"]
    assert "viridis" in complete("crunchctl process --cmap ")
    assert {"linear", "log"} <= set(complete("crunchctl batch x --z-scale "))
    assert "error" in complete("crunchctl reset --status ")


def test_unexpected_errors_say_what_to_attach_the_log_file_and_v(tmp_path, make_tiq,
                                                                   monkeypatch):
    import crunchctl.run.recordings

    def boom(*a, **k):
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr(crunchctl.run.recordings, "process_files", boom)
    log = tmp_path / "crunch.log"
    args = ["process", str(make_tiq("a.tiq", nframes=1)), "--ledger", str(tmp_path / "l"),
            "--log-file", str(log)]
    r = runner.invoke(app, args)
    assert r.exit_code == 1
    assert "internal error: RuntimeError: something nobody expected" in r.stderr
    assert f"attach the log file {log} and the output of the same command run with -v" \
        in " ".join(r.stderr.split())
    assert "Traceback" not in r.stderr
    assert "something nobody expected" in log.read_text()  # with the traceback
    assert "Traceback" in log.read_text()
    r = runner.invoke(app, [*args, "-v"])
    assert "Traceback" in r.stderr


def test_user_mistakes_are_one_line_exit_2_and_traceback_with_v(tmp_path):
    bad = tmp_path / "c.toml"
    bad.write_text("[settings]\nlframes = -1\n")
    r = runner.invoke(app, ["status", "--config", str(bad)])
    assert r.exit_code == 2 and r.stderr.count("\n") == 1
    r = runner.invoke(app, ["status", "--config", str(bad), "-v"])
    assert r.exit_code == 2 and "Traceback" in r.stderr


def test_plain_output_has_no_colour_codes(tmp_path, make_tiq):
    exe = [sys.executable, "-m", "crunchctl"]
    a = make_tiq("a.tiq", nframes=1)
    env = {**os.environ, "FORCE_COLOR": "1"}
    env.pop("NO_COLOR", None)
    p = subprocess.run([*exe, "process", str(a), "--lframes", "1024", "--zoom-span", "2e5",
                        "--output", str(tmp_path / "o"), "--ledger", str(tmp_path / "l")],
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "\x1b[" not in p.stdout + p.stderr  # not a terminal: plain lines
    p = subprocess.run([*exe, "status", "--json", "--ledger", str(tmp_path / "l")],
                       env={**env, "NO_COLOR": "1"}, capture_output=True, text=True, timeout=60)
    assert "\x1b[" not in p.stdout and p.stdout.lstrip().startswith("{")
