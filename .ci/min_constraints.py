"""Print pip constraints pinning every dependency of pyproject.toml to its declared lower bound.

``python3 .ci/min_constraints.py [EXTRA...]`` reads ``[project] dependencies`` and the named
optional-dependency groups; a requirement ``name>=X`` becomes ``name==X`` (its environment
marker kept). A requirement without a lower bound is an error: every bound is tested.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

REQ = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(\[[^\]]*\])?\s*([^;]*?)\s*(;.*)?$")


def constraints(pyproject: Path, extras: list[str]) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in extras:
        reqs += project["optional-dependencies"][extra]
    out = []
    for req in reqs:
        m = REQ.match(req)
        if m is None:
            raise SystemExit(f"cannot read the requirement {req!r}")
        name, spec, marker = m.group(1), m.group(3), m.group(4) or ""
        lower = re.search(r">=\s*([^,\s]+)", spec)
        if lower is None:
            raise SystemExit(f"{name}: no lower bound (>=) in {pyproject}")
        out.append(f"{name}=={lower.group(1)}{' ' + marker if marker else ''}")
    return out


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[1]
    print("\n".join(constraints(root / "pyproject.toml", sys.argv[1:])))
