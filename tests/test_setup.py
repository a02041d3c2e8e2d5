"""The README's first command works with a distribution's own Python (PEP 668).

Debian and Ubuntu mark their Python "externally managed": ``pip install`` outside a virtual
environment is refused. The README's set-up command must work there as it is, so this test
runs it, word for word, in a clean copy of the repository with such a Python as ``python3``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from conftest import SYSTEM_PYTHON, require
from readme_commands import FIRST_COMMAND, README, ROOT


def _clean_copy(dest: Path) -> Path:
    """The files git tracks (plus the working tree's current versions), as a fresh clone has."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        src = ROOT / name.decode()
        if src.is_file():
            target = dest / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    return dest


def test_the_readme_command_is_the_one_tested():
    sh = re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.S)
    assert sh[0].strip() == FIRST_COMMAND


def test_first_readme_command_installs_and_runs_the_demo_with_a_system_python(tmp_path):
    require("system-python")  # skipped where missing, failed in CI (.ci/run installs it)
    repo = _clean_copy(tmp_path / "crunchctl")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python3").symlink_to(SYSTEM_PYTHON)
    home = tmp_path / "home"
    home.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("XDG_", "CRUNCHCTL_", "VIRTUAL_ENV", "PYTHON", "PIP_"))
    }
    # Only the system Python on PATH, as on a fresh Debian machine; pip's download cache
    # stays the user's so the test does not download every wheel again.
    env.update(
        PATH=f"{bindir}:/usr/bin:/bin",
        HOME=str(home),
        PIP_CACHE_DIR=os.path.expanduser("~/.cache/pip"),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )

    # The situation the README must survive: plain pip is refused by this Python.
    refused = subprocess.run(
        ["python3", "-m", "pip", "install", "-e", "."],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode != 0
    assert "externally-managed-environment" in refused.stdout + refused.stderr

    # The README's first command, word for word; the demo's recording is kept small.
    command = FIRST_COMMAND.replace("crunchctl demo", "crunchctl demo --frames 4 --dir demo")
    p = subprocess.run(
        ["bash", "-c", command], cwd=repo, env=env, capture_output=True, text=True, timeout=900
    )
    assert p.returncode == 0, (p.stdout[-3000:], p.stderr[-3000:])
    assert "processed 1, failed 0" in p.stdout
    assert list((repo / "demo" / "products").glob("*.png"))
    # The demo ran on the system Python's own version, inside the new environment.
    venv_python = repo / ".venv" / "bin" / "python"
    version = subprocess.run(
        [str(venv_python), "-c", "import sys; print(sys.base_prefix)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version == "/usr"
