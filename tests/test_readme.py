"""The README cannot drift: every command it shows runs, and what it shows is printed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from legacy_samples import PROCESSED_TOML, PROGRESS_JSON
from readme_commands import FIRST_COMMAND, README, ROOT, TEST_COMMAND

FAKE_HOME = "/home/me"


def console_blocks() -> list[list[tuple[str, list[str]]]]:
    """Each ```console block as [(command, [expected output lines])]."""
    blocks = re.findall(r"```console\n(.*?)```", README.read_text(), flags=re.S)
    out = []
    for block in blocks:
        steps: list[tuple[str, list[str]]] = []
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif steps and line.strip():
                steps[-1][1].append(line)
        out.append(steps)
    return out


# What differs from run to run and machine to machine: clock times, dates, durations, sizes,
# rates. Everything else (counts, exit codes, file names, settings) is compared as printed.
_CLOCK = re.compile(
    r"\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?( ?UTC|Z|[+-]\d{2}:?\d{2})?"
    r"|\b\d+:\d{2}(:\d{2})?\b"
)
_MEASURED = re.compile(
    r"\b\d+(\.\d+)?(?= ?([A-Za-z]*/(s|min|h)|s|ms|min|h|d|B|kB|KB|MB|GB|KiB|MiB|"
    r"GiB|bytes|%)\b)"
)


def normalise(text: str, cwd: Path) -> str:
    text = text.replace(str(cwd), FAKE_HOME)
    return _MEASURED.sub("N", _CLOCK.sub("T", text))


def test_setup_commands_match_ci():
    text = README.read_text()
    sh = re.findall(r"```sh\n(.*?)```", text, flags=re.S)
    assert sh[0].strip() == FIRST_COMMAND
    test_cmd = sh[1].strip()
    assert test_cmd == TEST_COMMAND
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd in ci.splitlines()


def test_every_readme_command_runs_and_prints_what_the_readme_shows(tmp_path):
    exe = shutil.which("crunchctl")
    assert exe
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    (tmp_path / "legacy").mkdir()
    (tmp_path / "legacy" / "processed.toml").write_text(PROCESSED_TOML)
    (tmp_path / "legacy" / "generic_progress.json").write_text(PROGRESS_JSON)
    # A fresh user: default locations under HOME, as the README describes them.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "CRUNCHCTL_"))}
    env.update(HOME=str(tmp_path), COLUMNS="200")
    steps = [s for block in console_blocks() for s in block]
    assert len(steps) >= 10
    assert steps[0][0] == "crunchctl demo"
    for command, expected in steps:
        p = subprocess.run(
            ["bash", "-c", command],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert p.returncode == 0, (command, p.stdout, p.stderr)
        got = normalise(p.stdout + p.stderr, tmp_path)
        for line in expected:
            assert normalise(line, tmp_path).strip() in got, (command, line, got)
