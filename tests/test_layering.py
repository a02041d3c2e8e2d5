"""The rooms import downwards only (docs/ARCHITECTURE.md, "The map"): every import of every
module, those inside functions included, read from the source."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "crunchctl"

#: room -> the rooms it must not import.
FORBIDDEN = {
    "ledger": ("watch", "batch", "cli", "www", "recordings"),
    "run": ("www", "watch", "batch", "cli", "recordings"),
}
ROOMS = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists())


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (functions, TYPE_CHECKING blocks)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            names.add(module)
            # ``from crunchctl import watch`` imports the room ``watch``.
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def rooms_imported(path: Path) -> set[str]:
    out = set()
    for name in imported(path):
        parts = name.split(".")
        if parts[0] == "crunchctl" and len(parts) > 1 and parts[1] in ROOMS:
            out.add(parts[1])
    return out


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_lower_rooms_import_nothing_above_them(room):
    bad = [
        f"{path.relative_to(PACKAGE.parent)} imports crunchctl.{other}"
        for path in sorted((PACKAGE / room).rglob("*.py"))
        for other in sorted(rooms_imported(path) & set(FORBIDDEN[room]))
    ]
    assert not bad, "\n".join(bad)


def test_formats_imports_no_other_room():
    bad = [
        f"{path.relative_to(PACKAGE.parent)} imports crunchctl.{other}"
        for path in sorted((PACKAGE / "formats").rglob("*.py"))
        for other in sorted(rooms_imported(path) - {"formats"})
    ]
    assert not bad, "\n".join(bad)


def test_the_checker_sees_function_level_imports(tmp_path):
    """A checker that missed imports inside functions would pass for ever."""
    module = PACKAGE / "ledger" / "store.py"
    assert "polars" in imported(module)  # imported inside functions only
    fake = PACKAGE / "run" / "_layering_probe.py"
    try:
        fake.write_text(
            "def f():\n    from crunchctl.www.site import WebPage\n    from ..watch import scan\n"
        )
        assert rooms_imported(fake) == {"www", "watch"}
    finally:
        fake.unlink()


def test_no_tiq_default_outside_the_formats():
    """Default patterns come from the format registry (``formats.patterns()``)."""
    found = subprocess.run(
        ["grep", "-rn", '"\\*\\.tiq"', str(PACKAGE)], capture_output=True, text=True
    ).stdout.splitlines()
    outside = [line for line in found if not line.startswith(str(PACKAGE / "formats") + "/")]
    assert not outside, "\n".join(outside)


def test_no_test_module_imports_another():
    """Shared test code lives in conftest.py and tests/helpers/, never in a test module."""
    tests = Path(__file__).resolve().parent
    offenders = []
    for path in sorted(tests.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [
                f"{path.relative_to(tests)}: {n}"
                for n in names
                if n.split(".")[-1].startswith("test_")
            ]
    assert offenders == []
