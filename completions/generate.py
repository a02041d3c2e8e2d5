"""Regenerate completions/crunchctl.{bash,zsh,fish} from the installed Typer app.

Run after changing commands or options: ``python completions/generate.py``. A test fails
when the committed scripts differ from what this prints.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SHELLS = ("bash", "zsh", "fish")
HERE = Path(__file__).resolve().parent


def script(shell: str) -> str:
    """The completion script Typer emits for ``shell`` (its ``source_<shell>`` mode)."""
    env = {**os.environ, "_CRUNCHCTL_COMPLETE": f"source_{shell}"}
    code = "import sys; sys.argv[0] = 'crunchctl'; from crunchctl.cli import main; main()"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True)
    return out.stdout


def main() -> None:
    for shell in SHELLS:
        target = HERE / f"crunchctl.{shell}"
        target.write_text(script(shell))
        print(f"wrote {target}")


if __name__ == "__main__":
    main()
