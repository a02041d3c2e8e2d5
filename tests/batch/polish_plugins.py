"""Batch loaders for tests/batch/test_batch_polish.py: a dict of rows where a list was
meant, matplotlib's names for colour bounds, and labels in scripts the default font lacks."""

from __future__ import annotations

import numpy as np

T0 = 1_700_000_000.0  # UNIX seconds: 2023-11-14T22:13:20Z


def _row(label: str, **extra) -> dict:
    data = np.random.default_rng(5).random((20, 60))
    return {"x": np.arange(60.0), "y": np.arange(20.0), "data": data, "label": label, **extra}


def dict_of_rows(item: str) -> dict:
    """Rows keyed by name: a dict where the contract wants a list."""
    return {"north": _row("north"), "south": _row("south")}


def inverted_vmin(item: str) -> list[dict]:
    """Colour bounds in matplotlib's names, the wrong way round."""
    return [_row(item, vmin=5, vmax=1)]


def scripts(item: str) -> list[dict]:
    """Row titles in Japanese and in Egyptian hieroglyphs."""
    return [_row("Zeile ünï 日本 データ"), _row("\U00013000\U00013001 sign")]


def relative(item: str) -> list[dict]:
    """Two hours of seconds counted from T0 (x_origin), two rows."""
    x = np.arange(0.0, 7200.0, 10.0)
    data = np.random.default_rng(6).random((20, x.size))
    return [
        {"x": x, "y": np.arange(20.0), "data": data, "label": f"{item} {i}", "x_origin": T0}
        for i in range(2)
    ]
