"""Peaks and campaign for recordings already done: made from their ``_spectrum.npz`` in the
main process, without reading the recordings again (docs/products.md, "campaign").
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crunchctl.config import Settings
from crunchctl.outcome import KIND_IQ, OK, Outcome

log = logging.getLogger("crunchctl.recordings")

#: Products that can be made from the spectrum product alone.
FROM_SPECTRUM = frozenset({"peaks", "campaign"})
NOTE = "made from the spectrum product, recording not read again"


def derivable(paths: Sequence[str], settings: Settings, ledger: Any) -> dict[str, list[str]]:
    """Among due ``paths``, those that lack only peaks or campaign and whose spectrum
    product is there: ``{item: products of its latest row}``."""
    from crunchctl.quicklook.task import fingerprint, wanted_products

    wanted = set(wanted_products(settings))
    if ledger is None or not paths or not wanted & FROM_SPECTRUM:
        return {}
    rest = (wanted - FROM_SPECTRUM) | {"spectrum"}
    candidates = []
    for p in paths:
        try:
            candidates.append((p, *fingerprint(p)))
        except OSError:
            continue
    from crunchctl.identity import Digests

    done = ledger.done_items(
        KIND_IQ, candidates, Digests(settings), products=",".join(sorted(rest))
    )
    if not done:
        return {}
    import polars as pl

    rows = ledger.latest(KIND_IQ, where=pl.col("item").is_in(sorted(done)), columns=["products"])
    return {r["item"]: list(r["products"] or []) for r in rows.iter_rows(named=True)}


def outcome_from_spectrum(
    item: str, products: list[str], settings: Settings, source: str
) -> Outcome:
    """The outcome of making the peaks (and, through ``RecordingRun.finish``, the campaign)
    of a done recording from its spectrum product; an error outcome if that fails."""
    import numpy as np

    from crunchctl.errors import ItemError
    from crunchctl.identity import settings_digest
    from crunchctl.quicklook import levels, peaks as peakmod
    from crunchctl.quicklook.products import atomic_write
    from crunchctl.quicklook.task import fingerprint

    started = time.time()
    size, mtime = fingerprint(item)
    spectrum = next(p for p in products if p.endswith("_spectrum.npz"))
    wanted = settings.products.split(",")
    digest = settings_digest(settings, item, wanted)  # made again over the row's products
    extra: dict[str, Any] = {"note": NOTE}
    kept = [p for p in products if not p.endswith("_peaks.csv")]
    try:
        with np.load(spectrum, allow_pickle=False) as z:
            freqs = np.asarray(z["arr_0"], dtype=np.float64)
            mean = np.asarray(z["arr_1"], dtype=np.float64)
            if "power_scaling" not in z.files:  # written as |FFT|² per bin
                mean = mean * levels.power_factor(
                    settings.scaling,
                    str(z["window"]),
                    int(z["lframes"]),
                    float(z["sampling_frequency"]),
                )
            fs, lframes = float(z["sampling_frequency"]), int(z["lframes"])
            acquired = float(z["acquired_unix"]) if "acquired_unix" in z.files else None
            unit = (
                str(z["power_unit"])
                if "power_unit" in z.files
                else levels.power_unit(str(z["unit"]), settings.scaling)
            )
            center = float(z["center_frequency"])
        if "peaks" in wanted:
            found = peakmod.find_peaks(
                freqs, mean, max_lines=settings.peaks, min_snr_db=settings.peak_snr
            )
            final = Path(spectrum[: -len("_spectrum.npz")] + "_peaks.csv")
            with atomic_write(final) as f:
                f.write(peakmod.to_csv(found).encode())
            kept.append(str(final))
            extra["peaks"] = peakmod.to_json(
                found,
                acquired=acquired if acquired is not None and np.isfinite(acquired) else None,
                bin_hz=fs / lframes,
                center_hz=center,
                unit=unit,
                scaling=settings.scaling,
            )
    except (ItemError, OSError, KeyError, ValueError) as e:
        return Outcome(
            item,
            KIND_IQ,
            source,
            "error",
            started,
            time.time(),
            size,
            mtime,
            digest,
            [],
            f"{item}: from {spectrum}: {e}",
            {"retry": True},
        )
    # The campaign path is added by RecordingRun.finish; older campaign paths go.
    kept = [p for p in kept if os.path.basename(os.path.dirname(p)) != "campaign"]
    return Outcome(
        item, KIND_IQ, source, OK, started, time.time(), size, mtime, digest, kept, None, extra
    )
