"""The README's two set-up commands, as the README tests and the set-up test read them."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
FIRST_COMMAND = "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/crunchctl demo"
TEST_COMMAND = (
    'python3 -m venv .venv && .venv/bin/pip install -e ".[test]" && .venv/bin/python -m pytest -q'
)
