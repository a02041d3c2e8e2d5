"""The products of a recording's mean spectrum: ``<stem>_spectrum.npz`` and its picture,
``<stem>_peaks.csv``, and the peaks handed to the ledger (docs/products.md).

Called by ``task.make_products`` once the frames have streamed; knows no other recording.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crunchctl.config import Settings

#: Products made from the mean spectrum (``campaign`` is finished in the main process from
#: the spectrum file, so asking for it writes that file too).
MEAN_PRODUCTS = ("spectrum", "peaks", "campaign")
SPECTRUM_PNG = "_spectrum.png"


def wants_mean(wanted: tuple[str, ...]) -> bool:
    return any(k in wanted for k in MEAN_PRODUCTS)


def write(
    output: Path,
    stem: str,
    wanted: tuple[str, ...],
    settings: Settings,
    *,
    freqs: Any,
    mean_raw: Any,
    described: dict[str, Any],
    rec: Any,
    title: str,
) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Write the mean-spectrum products asked for.

    Args:
        mean_raw: the mean |FFT|² per bin; scaled here by ``settings.scaling``.
        described: the NPZ's self-describing scalars.
        rec: the opened recording (``task.Recording``).

    Returns:
        ``({kind: [paths]}, extra)``: the files written per product, and what the outcome
        carries to the main process (``peaks``: the ledger's JSON value).
    """
    import numpy as np

    from crunchctl.quicklook import levels, peaks as peakmod
    from crunchctl.quicklook.products import atomic_write, write_npz

    factor = levels.power_factor(settings.scaling, settings.window, rec.lframes, rec.fs)
    mean = np.asarray(mean_raw, dtype=np.float64) * factor
    unit = levels.power_unit(rec.header.unit, settings.scaling)
    found = peakmod.find_peaks(freqs, mean, max_lines=settings.peaks, min_snr_db=settings.peak_snr)
    when = rec.header.acquisition_start
    acquired = when.timestamp() if when is not None else None
    written: dict[str, list[str]] = {}
    extra: dict[str, Any] = {}
    if "spectrum" in wanted or "campaign" in wanted:
        final = output / f"{stem}_spectrum.npz"
        with atomic_write(final) as f:
            write_npz(
                f,
                {
                    "arr_0": freqs,
                    "arr_1": mean,
                    **described,
                    "power_scaling": np.str_(settings.scaling),
                    "power_unit": np.str_(unit),
                    "acquired_unix": np.float64(acquired if acquired is not None else np.nan),
                    "duration_s": np.float64(rec.nframes * rec.lframes / rec.fs),
                },
            )
        written["spectrum"] = [str(final)]
    if "spectrum" in wanted:
        from crunchctl.quicklook import lineplot

        picture = output / f"{stem}{SPECTRUM_PNG}"
        data = lineplot.spectrum_png(
            freqs,
            mean,
            found,
            title=title,
            label=levels.db_label(rec.header.unit, settings.scaling),
            center=rec.center,
            db_range=db_range(settings),
        )
        with atomic_write(picture) as f:
            f.write(data)
        written["spectrum"].append(str(picture))
    if "peaks" in wanted:
        final = output / f"{stem}_peaks.csv"
        with atomic_write(final) as f:
            f.write(peakmod.to_csv(found).encode())
        written["peaks"] = [str(final)]
        extra["peaks"] = peakmod.to_json(
            found,
            acquired=acquired,
            bin_hz=rec.fs / rec.lframes,
            center_hz=rec.center,
            unit=unit,
            scaling=settings.scaling,
        )
    return written, extra


def db_range(settings: Settings) -> tuple[float, float] | None:
    """``--db-range`` as a pair, or None for each picture's own percentiles."""
    if settings.db_min is None or settings.db_max is None:
        return None
    return float(settings.db_min), float(settings.db_max)
