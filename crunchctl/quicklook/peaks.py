"""Lines of a mean spectrum: where they are, how strong, how wide (the ``peaks`` product).

Pure functions on arrays: no paths, clocks or printing (docs/products.md, "peaks").
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

#: Column order of ``<stem>_peaks.csv`` and of each line in the ledger's ``peaks`` column.
FIELDS = ("frequency_hz", "power_db", "fwhm_hz", "snr_db")


@dataclass(frozen=True)
class Peak:
    """One line: absolute frequency (Hz, refined between bins), power at its top (dB, in the
    spectrum's unit), full width at half maximum (Hz) and height above the median (dB)."""

    frequency_hz: float
    power_db: float
    fwhm_hz: float
    snr_db: float


def to_db(power: np.ndarray) -> np.ndarray:
    """10 log10 of linear power; zero and negative values become the smallest finite dB."""
    power = np.asarray(power, dtype=np.float64)
    positive = power[power > 0]
    tiny = positive.min() if positive.size else 1e-300
    return 10.0 * np.log10(np.maximum(power, tiny))


def find_peaks(
    freqs: np.ndarray, power: np.ndarray, *, max_lines: int = 10, min_snr_db: float = 10.0
) -> list[Peak]:
    """The strongest lines of a mean power spectrum, strongest first.

    Args:
        freqs: absolute frequency of each bin, Hz, evenly spaced and increasing.
        power: linear mean power of each bin.
        max_lines: at most this many lines.
        min_snr_db: only lines whose top is at least this far above the median (dB).

    Returns:
        Up to ``max_lines`` peaks. The frequency and power come from a parabola through the
        dB values of the top bin and its neighbours; the width is measured on linear power
        at half the line's prominence (``scipy.signal.peak_widths``).
    """
    from scipy import signal

    freqs = np.asarray(freqs, dtype=np.float64)
    power = np.asarray(power, dtype=np.float64)
    if power.size < 3 or max_lines < 1 or not np.isfinite(power).any():
        return []
    power = np.where(np.isfinite(power), power, 0.0)
    db = to_db(power)
    floor = float(np.median(db))
    index, _ = signal.find_peaks(db, height=floor + min_snr_db)
    if index.size == 0:
        return []
    # Strongest first by the refined top (what is reported), not by the bin's value.
    tops = [_parabola(db, int(i)) for i in index]
    order = sorted(range(index.size), key=lambda k: tops[k][1], reverse=True)[:max_lines]
    index = index[order]
    widths = signal.peak_widths(power, index, rel_height=0.5)[0]
    df = float(freqs[1] - freqs[0])
    out = []
    for k, i, width in zip(order, index, widths):
        offset, top = tops[k]
        out.append(
            Peak(
                float(freqs[i] + offset * df),
                float(top),
                float(width * abs(df)),
                float(top - floor),
            )
        )
    return out


def _parabola(db: np.ndarray, i: int) -> tuple[float, float]:
    """Offset (bins) and height of the vertex of the parabola through bins i-1, i, i+1."""
    if i <= 0 or i >= db.size - 1:
        return 0.0, float(db[i])
    a, b, c = float(db[i - 1]), float(db[i]), float(db[i + 1])
    curve = a - 2.0 * b + c
    if curve >= 0:  # flat top: no vertex above the bin
        return 0.0, b
    p = 0.5 * (a - c) / curve
    return p, b - 0.25 * (a - c) * p


def to_csv(peaks: list[Peak]) -> str:
    """``<stem>_peaks.csv``: one header line, then one line per peak, strongest first."""
    lines = [",".join(FIELDS)]
    for p in peaks:
        lines.append(f"{p.frequency_hz:.6f},{p.power_db:.4f},{p.fwhm_hz:.6g},{p.snr_db:.4f}")
    return "\n".join(lines) + "\n"


def to_json(peaks: list[Peak], **about: object) -> str:
    """The ledger's ``peaks`` value: ``{"lines": [...], **about}`` as compact JSON."""
    return json.dumps({**about, "lines": [asdict(p) for p in peaks]}, separators=(",", ":"))
