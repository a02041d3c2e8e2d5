"""Power levels shared by every product: the ``scaling`` of mean power and its unit words.

``spectrum`` and ``density`` mean what they mean in ``scipy.signal.periodogram``
(docs/products.md, "Scaling"). Pure functions: no paths, clocks or printing.
"""

from __future__ import annotations

SCALINGS = ("spectrum", "density")


def power_factor(scaling: str, window_name: str, lframes: int, fs: float) -> float:
    """Factor from |FFT|² (what the stream computes) to the chosen scaling.

    ``spectrum``: divided by (Σw)², so a tone of amplitude A reads A² whatever the frame
    length and window; ``density``: divided by fs · Σw², power per Hz (the noise floor reads
    the same whatever the frame length).
    """
    import numpy as np

    from crunchctl.quicklook.spectrum import window

    w = window(window_name, lframes)
    w = np.ones(lframes) if w is None else w.astype(np.float64)
    if scaling == "density":
        return float(1.0 / (fs * float(np.sum(w * w))))
    if scaling == "spectrum":
        return float(1.0 / float(np.sum(w)) ** 2)
    raise ValueError(f"unknown scaling {scaling!r}; choose one of {', '.join(SCALINGS)}")


def power_unit(unit: str, scaling: str) -> str:
    """The unit of a power value: ``V²``, ``V²/Hz``, ``full scale²/Hz``, or ``""``."""
    squared = {"V": "V²", "full scale": "full scale²", "count": "count²"}.get(unit, "")
    if scaling == "density":
        return f"{squared}/Hz" if squared else "1/Hz"
    return squared


def db_label(unit: str, scaling: str) -> str:
    """The colour bar's words: ``power (dB re 1 V²)``, ``power density (dB re 1 V²/Hz)``."""
    if scaling == "density":
        squared = power_unit(unit, "spectrum")
        return f"power density (dB re 1 {squared}/Hz)" if squared else "power density (dB per Hz)"
    words = power_unit(unit, scaling)
    return f"power (dB re 1 {words})" if words else "power (dB)"
