"""The campaign of a recorder folder: ``<output>/campaign/<folder>.npz`` and its waterfall PNG.

One row per recording (its mean spectrum on a frequency axis common to the folder), sorted
by acquisition start; updated in the main process after each recording from that
recording's ``_spectrum.npz`` (docs/products.md, "campaign").
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("crunchctl.campaign")

FOLDER = "campaign"
#: Most bins of the common frequency axis (finer spectra are max-pooled into it).
MAX_BINS = 4096
_FIGSIZE, _DPI, _AXES = (10.0, 7.0), 100, (0.12, 0.08, 0.74, 0.82)
KEYS = (
    "arr_0: frequency of each bin (1 x F, Hz); arr_1: acquisition start of each row "
    "(R x 1, UNIX s); arr_2: mean power (R x F, float32, linear, in 'unit'); items: the "
    "recording of each row; spans: each row's own frequency span (R x 2, Hz); "
    "durations: each recording's length (R, s)"
)


def folder_of(item: str) -> str:
    """The recorder folder's name, as the web copies name it (``root`` for ``/``)."""
    return Path(item).resolve().parent.name or "root"


def paths(output: str | os.PathLike, folder: str) -> tuple[Path, Path]:
    base = Path(output) / FOLDER
    return base / f"{folder}.npz", base / f"{folder}.png"


@dataclass
class Spectrum:
    """One recording's mean spectrum as the campaign takes it."""

    item: str
    freqs: np.ndarray
    power: np.ndarray
    acquired: float
    duration: float
    unit: str


def read_spectrum(path: str | os.PathLike) -> Spectrum:
    """A ``<stem>_spectrum.npz`` (its acquisition start, else the recording's mtime)."""
    with np.load(path, allow_pickle=False) as z:
        acquired = float(z["acquired_unix"]) if "acquired_unix" in z.files else math.nan
        source = str(z["source"])
        if not math.isfinite(acquired):
            try:
                acquired = os.stat(source).st_mtime
            except OSError:
                acquired = os.stat(path).st_mtime
        duration = (
            float(z["duration_s"])
            if "duration_s" in z.files
            else (float(z["nframes"]) * float(z["lframes"]) / float(z["sampling_frequency"]))
        )
        unit = str(z["power_unit"]) if "power_unit" in z.files else ""
        return Spectrum(
            source,
            np.asarray(z["arr_0"], dtype=np.float64),
            np.asarray(z["arr_1"], dtype=np.float64),
            acquired,
            duration,
            unit,
        )


@dataclass
class Campaign:
    """The arrays of a campaign NPZ."""

    freqs: np.ndarray  # (F,)
    times: np.ndarray  # (R,)
    power: np.ndarray  # (R, F) float32
    items: list[str]
    spans: np.ndarray  # (R, 2)
    durations: np.ndarray  # (R,)
    unit: str

    @classmethod
    def empty(cls, unit: str) -> Campaign:
        return cls(
            np.zeros(0),
            np.zeros(0),
            np.zeros((0, 0), np.float32),
            [],
            np.zeros((0, 2)),
            np.zeros(0),
            unit,
        )

    @classmethod
    def load(cls, path: Path) -> Campaign:
        with np.load(path, allow_pickle=False) as z:
            c = cls(
                np.asarray(z["arr_0"], np.float64).ravel(),
                np.asarray(z["arr_1"], np.float64).ravel(),
                np.asarray(z["arr_2"], np.float32),
                [str(s) for s in z["items"]],
                np.asarray(z["spans"], np.float64).reshape(-1, 2),
                np.asarray(z["durations"], np.float64).ravel(),
                str(z["unit"]),
            )
        r = len(c.items)
        if c.power.shape != (r, c.freqs.size) or c.times.size != r or c.spans.shape[0] != r:
            raise ValueError("arrays of different lengths")
        return c

    def arrays(self) -> dict[str, Any]:
        return {
            "arr_0": self.freqs[np.newaxis, :],
            "arr_1": self.times[:, np.newaxis],
            "arr_2": self.power.astype(np.float32, copy=False),
            "items": np.array(self.items, dtype=np.str_),
            "unit": np.str_(self.unit),
            "spans": self.spans,
            "durations": self.durations,
            "keys": np.str_(KEYS),
        }

    def add(self, s: Spectrum) -> None:
        """Put a recording's row in (replacing its earlier row), re-gridding if its span or
        bins are not covered by the common axis."""
        df = float(s.freqs[1] - s.freqs[0]) if s.freqs.size > 1 else 1.0
        own = (float(s.freqs[0] - df / 2), float(s.freqs[-1] + df / 2))
        keep = [i for i, it in enumerate(self.items) if it != s.item]
        spans = np.vstack([self.spans[keep], [own]])
        bins = [float(b) for b in self._bins(keep)] + [df]
        grid = common_axis(spans, min(bins))
        old_grid = self.freqs
        new = on_axis(s.freqs, s.power, grid, own)[np.newaxis, :]
        if grid.size != old_grid.size or not np.allclose(grid, old_grid, rtol=0, atol=1e-6):
            rows = [on_axis(old_grid, self.power[i], grid, tuple(self.spans[i])) for i in keep]
            power = np.vstack([*rows, new]).astype(np.float32)
        else:  # the usual case: one copy of the rows kept
            power = np.concatenate([self.power[keep], new], axis=0)
        times = np.append(self.times[keep], s.acquired)
        order = np.argsort(times, kind="stable")
        in_order = bool(np.all(order == np.arange(order.size)))
        self.freqs = grid
        self.power = power if in_order else power[order]
        self.times = times[order]
        items = [self.items[i] for i in keep] + [s.item]
        self.items = [items[j] for j in order]
        self.spans = spans[order]
        self.durations = np.append(self.durations[keep], s.duration)[order]
        self.unit = s.unit or self.unit
        self._row_bins = np.array(bins)[order]

    def _bins(self, keep: list[int]) -> list[float]:
        known = getattr(self, "_row_bins", None)
        if known is not None and len(known) == len(self.items):
            return [known[i] for i in keep]
        step = float(self.freqs[1] - self.freqs[0]) if self.freqs.size > 1 else 1.0
        return [step] * len(keep)


def common_axis(spans: np.ndarray, finest: float) -> np.ndarray:
    """Bin centres over the union of the spans, at most :data:`MAX_BINS`, no finer than the
    finest recording's bins."""
    lo, hi = float(spans[:, 0].min()), float(spans[:, 1].max())
    n = int(min(MAX_BINS, max(1, round((hi - lo) / finest))))
    step = (hi - lo) / n
    return lo + (np.arange(n) + 0.5) * step


def on_axis(
    freqs: np.ndarray, power: np.ndarray, grid: np.ndarray, span: tuple[float, float]
) -> np.ndarray:
    """``power`` (at ``freqs``) max-pooled onto ``grid``; NaN outside ``span``.

    Cells narrower than the source's bins take the bin they lie in, so a coarse recording
    fills its span without holes.
    """
    step = float(grid[1] - grid[0]) if grid.size > 1 else 1.0
    lo = float(grid[0] - step / 2)
    row = np.full(grid.size, np.nan, dtype=np.float64)
    idx = np.floor((freqs - lo) / step).astype(np.int64)
    ok = (idx >= 0) & (idx < grid.size) & np.isfinite(power)
    np.fmax.at(row, idx[ok], power[ok])
    inside = (grid >= span[0]) & (grid <= span[1])
    holes = inside & np.isnan(row)
    if holes.any() and freqs.size:
        nearest = np.clip(np.searchsorted(freqs, grid[holes]), 0, freqs.size - 1)
        before = np.clip(nearest - 1, 0, freqs.size - 1)
        closer = np.abs(freqs[before] - grid[holes]) < np.abs(freqs[nearest] - grid[holes])
        row[holes] = power[np.where(closer, before, nearest)]
    return row.astype(np.float32)


def update(
    output: str | os.PathLike,
    spectrum_npz: str | os.PathLike,
    *,
    db_range: tuple[float, float] | None = None,
    cmap: str = "viridis",
) -> tuple[Path, Path, str | None]:
    """Add one recording (its ``_spectrum.npz``) to its folder's campaign; redraw the PNG.

    A campaign NPZ that cannot be read is rebuilt from the folder's spectrum products in
    ``output``; the returned warning says so.

    Returns:
        (campaign NPZ, campaign PNG, warning or None).

    Raises:
        OutputError: a file cannot be written.
    """
    from crunchctl.quicklook.products import atomic_write, write_npz

    s = read_spectrum(spectrum_npz)
    folder = folder_of(s.item)
    npz, png = paths(output, folder)
    warning = None
    campaign = Campaign.empty(s.unit)
    if npz.exists():
        try:
            campaign = Campaign.load(npz)
        except Exception as e:  # noqa: BLE001 - any damage: rebuild from the spectra
            warning = (
                f"{npz}: damaged ({type(e).__name__}: {e}); rebuilt from the spectrum "
                f"products in {output}"
            )
            campaign = rebuild(output, folder, unit=s.unit, skip=s.item)
    if campaign.items and campaign.unit != s.unit:  # --scaling changed: one unit per file
        warning = (
            f"{npz}: rows in {campaign.unit or 'no unit'} replaced, the campaign "
            f"starts again in {s.unit or 'no unit'}"
        )
        campaign = rebuild(output, folder, unit=s.unit, skip=s.item)
    campaign.add(s)
    npz.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(npz) as f:
        write_npz(f, campaign.arrays())
    draw(
        campaign,
        png,
        title=f"{folder}: {len(campaign.items)} recordings",
        db_range=db_range,
        cmap=cmap,
    )
    return npz, png, warning


def rebuild(
    output: str | os.PathLike, folder: str, *, unit: str = "", skip: str | None = None
) -> Campaign:
    """A campaign made again from every ``*_spectrum.npz`` of ``folder`` in ``output`` whose
    power is in ``unit``."""
    campaign = Campaign.empty(unit)
    for path in sorted(Path(output).glob("*_spectrum.npz")):
        try:
            s = read_spectrum(path)
        except Exception as e:  # noqa: BLE001 - a damaged spectrum is left out
            log.warning("%s: cannot read (%s): left out of the campaign", path, e)
            continue
        if s.item != skip and folder_of(s.item) == folder and s.unit == unit:
            campaign.add(s)
    return campaign


def draw(
    c: Campaign,
    png: Path,
    *,
    title: str,
    db_range: tuple[float, float] | None,
    cmap: str = "viridis",
) -> None:
    """The waterfall: frequency across, acquisition time down with the real gaps, each
    recording a band at least two pixels high, colour in dB."""
    import datetime as _dt

    from matplotlib import colormaps, dates as mdates
    from matplotlib.colors import Normalize

    from crunchctl.quicklook.products import atomic_write
    from crunchctl.quicklook.render import (
        MIN_DB_RANGE,
        color_bounds,
        encode_png,
        fmt_hz,
        freq_scale,
    )

    height = int(_FIGSIZE[1] * _DPI * _AXES[3])  # one row of pixels per row of the axes
    r = len(c.items)
    # A band lasts until the next recording starts unless that gap is longer than the
    # usual cadence: a regular night is filled, a pause stays blank (a real gap).
    cadence = float(np.median(np.diff(c.times))) if r > 1 else 0.0
    ends = c.times + np.maximum(c.durations, 0.0)
    for i in range(r):
        following = c.times[i + 1] if i + 1 < r else c.times[i] + cadence
        ends[i] = max(ends[i], min(following, c.times[i] + 1.5 * cadence))
    start = float(c.times.min()) if r else 0.0
    end = float(ends.max()) if r else 1.0
    if end <= start:
        end = start + 1.0
    pixels = np.full((height, c.freqs.size), np.nan, dtype=np.float32)
    scale = height / (end - start)
    for i in range(r):  # row by row: no second copy of the whole campaign
        top = int((c.times[i] - start) * scale)
        bottom = max(top + 2, math.ceil((ends[i] - start) * scale))
        pixels[min(top, height - 2) : min(bottom, height)] = _db(c.power[i])
    # Max-pooled to the axes' pixels: a line one bin wide stays visible.
    from crunchctl.quicklook.spectrum import pool_max

    pixels = pool_max(pixels, 1, int(_FIGSIZE[0] * _DPI * _AXES[2]), ignore_nan=True)
    if db_range is not None:
        vmin, vmax = db_range
    else:
        vmin, vmax = color_bounds(_db(c.power[:: max(1, r // 256)]), (2.0, 99.95))
        vmax = max(vmax, vmin + MIN_DB_RANGE)
    norm = Normalize(vmin, vmax)
    rgba = colormaps[cmap](norm(pixels), bytes=True)
    rgba[np.isnan(pixels)] = (255, 255, 255, 255)

    step = float(c.freqs[1] - c.freqs[0]) if c.freqs.size > 1 else 1.0
    centre = float((c.freqs[0] + c.freqs[-1]) / 2) if c.freqs.size else 0.0
    digits = 10.0 ** (math.floor(math.log10(step)) + 1)  # a round number near the middle
    centre = round(centre / digits) * digits
    div, unit = freq_scale(float(c.freqs[-1] - c.freqs[0]) + step if c.freqs.size else 1.0)
    utc = _dt.timezone.utc
    t0 = mdates.date2num(_dt.datetime.fromtimestamp(start, utc))
    t1 = mdates.date2num(_dt.datetime.fromtimestamp(end, utc))
    x0 = (c.freqs[0] - step / 2 - centre) / div if c.freqs.size else 0
    x1 = (c.freqs[-1] + step / 2 - centre) / div if c.freqs.size else 1
    canvas = _canvas()
    try:
        canvas.image.set_data(rgba)
        canvas.image.set_extent((x0, x1, t1, t0))
        canvas.ax.set_xlim(x0, x1)
        canvas.ax.set_ylim(t1, t0)
        canvas.ax.set_xlabel(f"frequency offset from {fmt_hz(centre)} ({unit})")
        canvas.mappable.set_cmap(colormaps[cmap])
        canvas.mappable.set_norm(norm)
        canvas.colorbar.set_label(f"mean power (dB re 1 {c.unit})" if c.unit else "mean power (dB)")
        canvas.title.set_text(title)
        first = _dt.datetime.fromtimestamp(start, utc).strftime("%Y-%m-%d %H:%M:%S")
        canvas.subtitle.set_text(
            f"from {first} UTC, {r} rows, {c.freqs.size} bins of {fmt_hz(step)}"
        )
        canvas.fig.canvas.draw()
        pixels = np.array(canvas.fig.canvas.buffer_rgba(), dtype=np.uint8, copy=True)
    except BaseException:
        _CANVAS.clear()  # never reuse a figure left in an unknown state
        raise
    canvas.image.set_data(np.zeros((1, 1, 4), dtype=np.uint8))
    data = encode_png(pixels, _DPI)
    png.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(png) as f:
        f.write(data)


def _db(power: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 10.0 * np.log10(power, dtype=np.float32)
    out[~np.isfinite(out)] = np.nan
    return out


_CANVAS: dict[str, Any] = {}


def _canvas() -> Any:
    """The waterfall's figure, built once per process and reused (building the axes, the
    date axis and the colour bar is most of a drawing's cost); the campaign is drawn in the
    main process only."""
    import datetime as _dt
    from types import SimpleNamespace

    canvas = _CANVAS.get("figure")
    if canvas is not None:
        return canvas
    from matplotlib import colormaps, dates as mdates
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    utc = _dt.timezone.utc
    fig = Figure(figsize=_FIGSIZE, dpi=_DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes(_AXES)
    cax = fig.add_axes((0.88, 0.08, 0.02, 0.82))
    image = ax.imshow(
        np.zeros((1, 1, 4), dtype=np.uint8), aspect="auto", interpolation="nearest", origin="upper"
    )
    ax.yaxis_date(tz=utc)
    ax.yaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M", tz=utc))
    ax.set_ylabel("acquisition start (UTC)")
    mappable = ScalarMappable(norm=Normalize(0.0, 1.0), cmap=colormaps["viridis"])
    colorbar = fig.colorbar(mappable, cax=cax)
    title = fig.text(0.12, 0.965, "", fontsize=12, fontweight="bold", ha="left", va="top")
    subtitle = fig.text(0.12, 0.93, "", fontsize=9, ha="left", va="top", color="0.25")
    canvas = SimpleNamespace(
        fig=fig,
        ax=ax,
        image=image,
        mappable=mappable,
        colorbar=colorbar,
        title=title,
        subtitle=subtitle,
    )
    _CANVAS["figure"] = canvas
    return canvas


def add_outcome(outcome: Any, settings: Any) -> list[str]:
    """After a recording that asked for the campaign: update its folder's campaign, add the
    campaign NPZ to the outcome's products and copy the PNG to the web folder
    (``campaign_<folder>.png``). Returns the web copies. A failure is logged and leaves the
    campaign out of the products (the recording is due again for it)."""
    import time

    from crunchctl.errors import ItemError
    from crunchctl.quicklook.products import atomic_copy

    spectra = [p for p in outcome.products if p.endswith("_spectrum.npz")]
    if not spectra:
        return []
    from crunchctl.quicklook.meanproducts import db_range

    began = time.perf_counter()
    try:
        npz, png, warning = update(
            settings.output_dir(), spectra[0], db_range=db_range(settings), cmap=settings.cmap
        )
    except (ItemError, OSError, ValueError, KeyError) as e:
        log.warning("%s: campaign not updated: %s", outcome.item, e)
        return []
    if warning:
        log.warning("%s", warning)
    outcome.products.append(str(npz))
    log.debug("%s: campaign %s updated in %.3f s", outcome.item, npz, time.perf_counter() - began)
    if not settings.www_path:
        return []
    final = Path(settings.www_path) / f"campaign_{npz.stem}.png"
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        atomic_copy(png, final)
    except (ItemError, OSError) as e:
        log.warning("%s: campaign picture not copied to the web folder: %s", outcome.item, e)
        return []
    return [str(final)]
