"""An example batch loader: turns an orbit id into two rows of spectrogram data.

Use it as ``crunchctl batch orbits.txt --loader examples/orbit_loader.py:load``. A real
loader reads the orbit's files; this one makes reproducible synthetic counts so the example
runs anywhere. It returns a list of dicts with ``x``, ``y``, ``data`` and optional labels
and bounds (README, "batch"); an empty list means "no data" for that item.
"""

from __future__ import annotations

import zlib

import numpy as np


def load(item: str) -> list[dict]:
    if item.endswith("_empty"):
        return []
    rng = np.random.default_rng(zlib.crc32(item.encode()))
    t0 = 1_713_351_922.0  # 2024-04-17T11:05:22Z, UNIX seconds
    x = t0 + np.arange(240) * 15.0  # one hour, 15 s bins
    energy = np.linspace(1.0, 60.0, 120)  # eV
    counts = rng.poisson(4.0, size=(energy.size, x.size)).astype(float)
    peak = 20 + 0.01 * np.arange(x.size)  # a slowly drifting line
    counts += 80 * np.exp(-0.5 * ((energy[:, None] - peak[None, :]) / 0.6) ** 2)
    return [
        {
            "x": x,
            "y": energy,
            "data": counts,
            "label": f"{item}: detector A",
            "y_label": "Energy (eV)",
            "z_label": "Counts",
        },
        {
            "x": x,
            "y": energy,
            "data": counts[::-1] * 0.5,
            "label": f"{item}: detector B",
            "y_label": "Energy (eV)",
            "z_label": "Counts / 15 s",
        },
    ]
