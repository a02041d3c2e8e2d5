"""Batch loader plugins for tests/batch/test_batch.py (docs/products.md, "Batch figures").

Each function takes an item string and returns rows (dicts with x, y, data ...), nothing,
or raises: the shapes users' own loaders have.
"""

from __future__ import annotations

import time

import numpy as np

T0 = 1_700_000_000.0  # UNIX seconds: 2023-11-14T22:13:20Z


def _counts(seed: int, nx: int = 120, ny: int = 40) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = rng.poisson(3.0, size=(ny, nx)).astype(float)
    data[ny // 3, :] += 40  # a bright line, to survive pooling
    return data


def two_rows(item: str) -> list[dict]:
    """Two rows with per-row overrides; x is a datetime axis around T0."""
    seed = sum(map(ord, item))
    x = np.datetime64(int(T0), "s") + np.arange(120) * np.timedelta64(30, "s")
    return [
        {
            "x": x,
            "y": np.linspace(100.0, 500.0, 40),
            "data": _counts(seed),
            "label": f"{item} detector A",
            "y_min": 150.0,
            "y_max": 450.0,
            "z_min": 0.0,
            "z_max": 20.0,
            "y_label": "Energy (keV)",
            "z_label": "Counts / 30 s",
        },
        {
            "x": x,
            "y": np.linspace(100.0, 500.0, 40),
            "data": _counts(seed + 1) * 2,
            "label": f"{item} detector B",
            "vmin": 1.0,
            "vmax": 60.0,
            "events": [T0 + 1800.0],
        },
    ]


def slow(item: str) -> list[dict]:
    """Two small rows, after a short sleep (so a run can be interrupted mid-way)."""
    time.sleep(0.15)
    x = np.arange(30, dtype=float)
    return [{"x": x, "y": np.arange(10, dtype=float), "data": _counts(1, 30, 10), "label": item}]


def raises(item: str) -> list[dict]:
    """Always fails, as a loader with a bug or missing input does."""
    raise ValueError(f"no such orbit: {item}")


def nothing(item: str) -> list[dict]:
    """Returns no rows: the item has no data."""
    return []


def by_name(item: str) -> list[dict] | None:
    """Dispatch on the item: 'raise' in the name raises, 'empty' returns nothing."""
    if "raise" in item:
        return raises(item)
    if "empty" in item:
        return None
    return two_rows(item)


def log_rows(item: str) -> list[dict]:
    """Count data with zeros (and a negative) and a y axis from 0, for log scales."""
    data = _counts(7, 80, 30)
    data[:, :20] = 0.0
    data[5, 5] = -3.0
    return [
        {
            "x": np.arange(80, dtype=float),
            "y": np.arange(30, dtype=float) * 10.0,
            "data": data,
            "label": "with zeros",
        },
        {
            "x": np.arange(80, dtype=float),
            "y": np.arange(30, dtype=float) * 10.0,
            "data": np.zeros((30, 80)),
            "label": "all zeros",
        },
    ]


def cube(item: str) -> list[dict]:
    """3-D data collapsed along the last axis."""
    data = np.ones((25, 60, 4))
    data[:, :, 1] = np.nan
    return [
        {
            "x": np.arange(60.0),
            "y": np.arange(25.0),
            "data": data,
            "collapse_axis": 2,
            "label": "collapsed",
        }
    ]


def bad_shape(item: str) -> list[dict]:
    """'data' does not match the axes."""
    return [
        {"x": np.arange(10.0), "y": np.arange(5.0), "data": np.zeros((7, 3)), "label": "broken"}
    ]


def all_nan(item: str) -> list[dict]:
    return [{"x": np.arange(10.0), "y": np.arange(5.0), "data": np.full((5, 10), np.nan)}]


not_callable = 42
