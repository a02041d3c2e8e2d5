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
    env = {
        **os.environ,
        "_CRUNCHCTL_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
    }
    code = "import sys; sys.argv[0] = 'crunchctl'; from crunchctl.cli import main; main()"
    p = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    return p.stdout.split()


def test_completion_offers_commands_options_and_choices():
    assert "process" in complete("crunchctl pro")
    assert set(COMMANDS) <= set(complete("crunchctl "))
    assert "--window" in complete("crunchctl process --win")
    assert complete("crunchctl process --window ") == ["rectangular", "hann", "hamming", "blackman"]
    assert "viridis" in complete("crunchctl process --cmap ")
    assert {"linear", "log"} <= set(complete("crunchctl batch x --z-scale "))
    assert "error" in complete("crunchctl reset --status ")


def test_unexpected_errors_say_what_to_attach_the_log_file_and_v(tmp_path, make_tiq, monkeypatch):
    import crunchctl.recordings.run

    def boom(*a, **k):
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr(crunchctl.recordings.run, "process_files", boom)
    log = tmp_path / "crunch.log"
    args = [
        "process",
        str(make_tiq("a.tiq", nframes=1)),
        "--ledger",
        str(tmp_path / "l"),
        "--log-file",
        str(log),
    ]
    r = runner.invoke(app, args)
    assert r.exit_code == 1
    assert "internal error: RuntimeError: something nobody expected" in r.stderr
    assert f"attach the log file {log} and the output of the same command run with -v" in " ".join(
        r.stderr.split()
    )
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
    p = subprocess.run(
        [
            *exe,
            "process",
            str(a),
            "--lframes",
            "1024",
            "--zoom-span",
            "2e5",
            "--output",
            str(tmp_path / "o"),
            "--ledger",
            str(tmp_path / "l"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    assert "\x1b[" not in p.stdout + p.stderr  # not a terminal: plain lines
    p = subprocess.run(
        [*exe, "status", "--json", "--ledger", str(tmp_path / "l")],
        env={**env, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "\x1b[" not in p.stdout and p.stdout.lstrip().startswith("{")


# ------------------------------------------------------------- settings said plainly


@pytest.mark.parametrize("value", ["1", "99999999999999999999"])
def test_frame_length_out_of_range_is_a_usage_error(tmp_path, make_tiq, value):
    rec = make_tiq("a.tiq")
    for cmd in (["process", str(rec)], ["batch", str(tmp_path / "items.txt")]):
        (tmp_path / "items.txt").write_text(f"{rec}\n")
        r = runner.invoke(
            app,
            [
                *cmd,
                "--lframes",
                value,
                "--output",
                str(tmp_path / "o"),
                "--ledger",
                str(tmp_path / "l"),
            ],
        )
        assert r.exit_code == 2, (cmd, r.stderr)
        assert r.stderr == (
            f"Error: --lframes {value}: expected a frame length from 16 to 16777216 samples\n"
        )
    assert not (tmp_path / "l").exists()  # nothing ran


def test_a_frame_length_not_a_power_of_two_works_with_one_note(tmp_path, make_tiq):
    rec = make_tiq("a.tiq")
    from conftest import small_args

    args = [a if a != "1024" else "1000" for a in small_args(tmp_path)]
    r = runner.invoke(app, ["process", str(rec), *args])
    assert r.exit_code == 0, r.stderr
    note = "lframes 1000 is not a power of two: it works, but the FFT is faster with 512 or 1024"
    assert r.stderr.count(note) == 1 and f"Warning: {note}" in r.stderr
    assert (tmp_path / "crunchctl.log").read_text().count(note) == 1
    r = runner.invoke(app, ["process", str(rec), *args, "-q"])
    assert note not in r.stderr


def test_vv_logs_every_setting_and_where_it_came_from(tmp_path, make_tiq, monkeypatch):
    from conftest import small_args

    monkeypatch.setenv("CRUNCHCTL_WINDOW", "hann")
    r = runner.invoke(app, ["process", str(make_tiq("a.tiq")), *small_args(tmp_path), "-vv"])
    assert r.exit_code == 0, r.stderr
    assert r.stderr.count("lframes = 1024  (command line)") == 1
    assert "window = 'hann'  (environment CRUNCHCTL_WINDOW)" in r.stderr
    assert "n_avg = 1  (default)" in r.stderr
    assert "settings (config file: none):" in r.stderr
    log = tmp_path / "crunchctl.log"
    assert log.read_text().count("lframes = 1024  (command line)") == 1
    r = runner.invoke(app, ["process", str(make_tiq("a.tiq")), *small_args(tmp_path)])
    assert "(command line)" not in r.stderr  # without -vv: neither on the console
    assert log.read_text().count("lframes = 1024  (command line)") == 1  # nor in the log


def test_unknown_option_that_names_a_positional_argument_says_how_to_give_it():
    r = runner.invoke(app, ["watch", "--folder", "/data/rsa510"])
    assert r.exit_code == 2
    assert (
        "Error: FOLDER is a positional argument, not an option: give it without "
        "--folder (for example: crunchctl watch /data/rsa510)"
    ) in r.stderr
    assert "Possible options" not in r.stderr
    r = runner.invoke(app, ["batch", "--items=list.txt"])
    assert "crunchctl batch list.txt" in r.stderr
    r = runner.invoke(app, ["process", "--frobnicate", "x"])  # other typos as before
    assert "No such option: --frobnicate" in r.stderr
    r = runner.invoke(app, ["batch", "x", "--dpi", "5"])
    assert "Invalid value for '--dpi': expected at least 20" in r.stderr


# --------------------------------------------------------------- completion in bash


def test_bash_completes_values_with_a_colon(tmp_path):
    import time as _time

    from crunchctl.ledger.store import Ledger, default_ledger_path
    from crunchctl.outcome import Outcome

    with Ledger(default_ledger_path()) as led:
        for src in (
            "watch:/data/rsa510",
            "watch:/data/rsa306",
            "batch:/home/a/orbits.txt",
            "process",
        ):
            now = _time.time()
            led.record(Outcome(f"x-{src}", "iq", src, "ok", now, now, 1, 1, "d", [], None))
    script = ROOT / "completions" / "crunchctl.bash"

    def bash(*words: str) -> list[str]:
        # COMP_WORDS as bash splits a line at COMP_WORDBREAKS (':' is one of them).
        line = "".join(
            w if w == ":" or (i and words[i - 1] == ":") else (" " if i else "") + w
            for i, w in enumerate(words)
        )
        array = " ".join(f"'{w}'" for w in words)
        code = (
            f"source {script}; COMP_WORDS=({array}); COMP_CWORD={len(words) - 1}; "
            f"COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}; "
            f"_crunchctl_completion crunchctl; printf '%s\\n' \"${{COMPREPLY[@]}}\""
        )
        p = subprocess.run(["bash", "-c", code], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return [x for x in p.stdout.splitlines() if x]

    # after the colon, bash replaces only what follows it
    assert bash("crunchctl", "status", "--source", "watch", ":", "/data/rsa") == [
        "/data/rsa306",
        "/data/rsa510",
    ]
    assert bash("crunchctl", "status", "--source", "batch", ":") == ["/home/a/orbits.txt"]
    assert bash("crunchctl", "status", "--source", "wa") == [
        "watch:/data/rsa306",
        "watch:/data/rsa510",
    ]
    assert bash("crunchctl", "pro") == ["process"]
    assert bash("crunchctl", "process", "--window", "ha") == ["hann", "hamming"]


# ----------------------------------------------------------------------------- demo


def test_demo_help_names_its_ledger_and_a_second_demo_reuses_the_recording(tmp_path):
    r = runner.invoke(app, ["demo", "--help"])
    assert "[default: DIR/ledger]" in " ".join(r.stdout.split())
    args = [
        "demo",
        "--dir",
        str(tmp_path / "d"),
        "--frames",
        "2",
        "--log-file",
        str(tmp_path / "demo.log"),
    ]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.stderr
    assert "made in" in first.stdout
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.stderr
    assert "reused from an earlier demo" in second.stdout and "made in" not in second.stdout
