"""A fixed dB range makes pictures of different recordings compare colour for colour."""

from __future__ import annotations

import numpy as np

from crunchctl.quicklook import render


def _centre_colour(img: np.ndarray, db_range) -> tuple:
    freqs = np.linspace(100e6, 101e6, img.shape[1])
    times = np.arange(img.shape[0]) * 0.01
    style = render.Style(scaling="spectrum", db_range=db_range)
    px = render.draw_pooled(img, freqs, times, title="t", style=style)
    h, w = px.shape[:2]
    return tuple(px[h // 2, int(w * 0.2)])  # inside the axes, left of the line


def test_the_same_level_has_the_same_colour_with_a_db_range_only():
    # -90 to -70 dB across the picture; the same level at the same place in both.
    ramp = 10 ** (np.linspace(-90, -70, 400) / 10)
    quiet = np.tile(ramp, (50, 1)).astype(np.float32)
    loud = quiet.copy()
    loud[:, 300:] = 1e-3  # and a bright band: its own percentiles move the colours
    fixed = (-100.0, -40.0)
    assert _centre_colour(quiet, fixed) == _centre_colour(loud, fixed)
    assert _centre_colour(quiet, None) != _centre_colour(loud, None)


def test_the_colour_bar_says_which_scaling():
    assert render.Style(unit="V", scaling="density").power_label() == (
        "power density (dB re 1 V²/Hz)"
    )
    assert render.Style(unit="full scale", scaling="spectrum").power_label() == (
        "power (dB re 1 full scale²)"
    )
    assert render.Style(unit="V").power_label() == "power (dB re 1 V² per bin)"
