"""Batch loaders that misbehave the way users' loaders do, for tests/batch/test_rough_edges.py:
they print, call sys.exit, are slow, or bring rows without labels."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

T0 = 1_700_000_000.0  # UNIX seconds: 2023-11-14T22:13:20Z

print("plugin module imported")  # noqa: T201 - a plugin printing at import time


def _row(item: str) -> dict:
    data = np.arange(1.0, 29.0).repeat(10).reshape(28, 10)  # values 1..28
    return {"x": np.arange(10.0), "y": np.arange(28.0), "data": data, "label": item}


def chatty(item: str) -> list[dict]:
    """Prints, and writes to file descriptor 1 directly, as debugging loaders do."""
    print(f"loading {item} ...")  # noqa: T201
    sys.stdout.flush()
    os.write(1, f"raw output for {item}\n".encode())
    return [_row(item)]


def exits(item: str) -> list[dict]:
    """Calls sys.exit(3) for items named 'bad...', as scripts turned loaders do."""
    if item.startswith("bad"):
        sys.exit(3)
    return [_row(item)]


def unlabelled(item: str) -> list[dict]:
    """Rows without y_label and z_label (legacy loaders have none)."""
    return [_row(item)]


def slow(item: str) -> list[dict]:
    """Marks that it started (a file next to the items), then takes its time."""
    marker = os.environ.get("CRUNCHCTL_TEST_MARKERS")
    if marker:
        Path(marker, item).touch()
    time.sleep(float(os.environ.get("CRUNCHCTL_TEST_SLEEP", "6")))
    return [_row(item)]


def timed(item: str) -> list[dict]:
    """Two hours of counts on a datetime axis from T0."""
    x = np.array([np.datetime64(int(T0 + s), "s") for s in range(0, 7200, 20)])
    rng = np.random.default_rng(3)
    return [
        {
            "x": x,
            "y": np.linspace(100.0, 500.0, 30),
            "data": rng.poisson(3.0, size=(30, x.size)).astype(float),
            "label": item,
        }
    ]
