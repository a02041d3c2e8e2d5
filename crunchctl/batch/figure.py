"""Multi-row spectrogram figures for ``crunchctl batch`` (docs/products.md, "Batch figures").

One row per dataset, a shared x axis, a colour bar per row, event lines and optional
right-hand zoom columns (one per event); matplotlib's object API (Figure + Agg, no
pyplot), so it is safe in worker processes. Takes checked ``rows.Row`` objects and writes a PNG to a file
object; it knows nothing of items, the ledger or file names.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, BinaryIO

from crunchctl.batch.rows import DEFAULT_X_LABEL, DEFAULT_Y_LABEL, DEFAULT_Z_LABEL, Row
from crunchctl.errors import ItemError, UsageError

if TYPE_CHECKING:
    import numpy as np

SCALES = ("linear", "log")
# Layout in inches (fixed margins, no layout engine: one draw per figure, not two).
MAIN_WIDTH_IN = 12.0  # figure width without a zoom column
ZOOM_WIDTH_IN = 3.6  # axes width of a zoom column (one or two of them)
ZOOM_NARROW_IN = 2.9  # axes width of each of three or more zoom columns
#: Zoom columns at most; further events are drawn but not zoomed (said in the figure).
MAX_ZOOM_COLUMNS = 4
ZOOM_GAP_IN = 0.2
LEFT_IN = 0.95  # y tick labels and label
RIGHT_IN = 1.15  # colour bar, its ticks and label
CBAR_GAP_IN, CBAR_WIDTH_IN = 0.12, 0.16
AXES_HEIGHT_IN = 2.1
ROW_TITLE_IN = 0.32
HEADER_IN = 0.55  # two title lines
FOOTER_IN = 0.6  # x tick labels and label
EVENT_COLOR = "#ff2d2d"
NO_DATA_COLOR = "0.85"  # NaN cells
_DAY = 86400.0


@dataclass(frozen=True)
class FigureOptions:
    """Global figure settings; a row's own bounds and scales override them.

    Args:
        y_min, y_max: y range of every row without its own.
        z_min, z_max: colour bounds of every row without its own; missing ones come from
            ``percentiles`` of the row's (displayed) values.
        y_scale, z_scale: ``linear`` or ``log``.
        cmap: matplotlib colour map name.
        percentiles: lower and upper percentile for colour bounds.
        zoom_minutes: width of the zoom window around each event, minutes: one
            right-hand column per event (at most ``MAX_ZOOM_COLUMNS``); None for none.
        events: event times (UNIX seconds) drawn as vertical lines on every figure.
        dpi: resolution of the PNG.
        y_label, z_label: axis and colour bar labels of every row (None: the row's own,
            else ``DEFAULT_Y_LABEL``/``DEFAULT_Z_LABEL``).
        x_label: the shared x axis label (None: the first row's own, else ``time (UTC)``
            on a time axis, ``time (s)`` for rows with an ``x_origin``, else
            ``DEFAULT_X_LABEL``). Naming the x axis also says that plain numbers are not
            UNIX seconds: they are drawn as numbers, not dates.

    Raises:
        UsageError: a value no figure can be drawn with, named by its command-line option.
    """

    y_min: float | None = None
    y_max: float | None = None
    z_min: float | None = None
    z_max: float | None = None
    y_scale: str = "linear"
    z_scale: str = "linear"
    cmap: str = "viridis"
    percentiles: tuple[float, float] = (1.0, 99.0)
    zoom_minutes: float | None = None
    events: tuple[float, ...] = ()
    dpi: int = 100
    y_label: str | None = None
    z_label: str | None = None
    x_label: str | None = None

    def __post_init__(self) -> None:
        for lo, hi, what in (
            (self.y_min, self.y_max, "--y-min/--y-max"),
            (self.z_min, self.z_max, "--z-min/--z-max"),
        ):
            if lo is not None and hi is not None and not hi > lo:
                raise UsageError(f"{what}: {lo:g} is not below {hi:g}")
        for value, what in ((self.y_scale, "--y-scale"), (self.z_scale, "--z-scale")):
            if value not in SCALES:
                raise UsageError(f"{what} {value!r}: expected {' or '.join(SCALES)}")
        lo, hi = self.percentiles
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo < hi <= 100):
            raise UsageError(f"--percentiles {lo:g},{hi:g}: expected 0 <= LO < HI <= 100")
        if self.zoom_minutes is not None and not self.zoom_minutes > 0:
            raise UsageError(
                f"--zoom-minutes {self.zoom_minutes:g}: expected a positive number of minutes"
            )
        if not self.dpi > 0:
            raise UsageError(f"--dpi {self.dpi}: expected a positive resolution")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_percentiles(text: str) -> tuple[float, float]:
    """``--percentiles LO,HI`` as two numbers (``FigureOptions`` checks their range).

    Raises:
        UsageError: not two numbers.
    """
    parts = [p.strip() for p in text.replace(" ", ",").split(",") if p.strip()]
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise UsageError(
            f"--percentiles {text!r}: expected two numbers LO,HI such as 1,99"
        ) from None
    return lo, hi


class FigureError(ItemError):
    """Rows that cannot share one figure (for example datetime and numeric x axes)."""


# --------------------------------------------------------------------------- numerics


def centres_to_edges(c: np.ndarray, log: bool = False) -> np.ndarray:
    """Cell edges around sorted centres: midpoints (geometric on a log axis)."""
    import numpy as np

    if log:
        return 10.0 ** centres_to_edges(np.log10(c))
    if c.size == 1:
        half = abs(c[0]) * 0.05 or 0.5
        return np.array([c[0] - half, c[0] + half])
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


def pool_cells(
    a: np.ndarray, edges: np.ndarray, axis: int, target: int
) -> tuple[np.ndarray, np.ndarray]:
    """Max-pool ``a`` along ``axis`` to at most ``target`` cells, ignoring NaN; returns the
    pooled array and its cell edges (the quicklooks' pooling, ``spectrum.pool_max``)."""
    import numpy as np

    from crunchctl.quicklook.spectrum import pool_axis, pool_max

    n = a.shape[axis]
    pooled = pool_max(a, axis, target, ignore_nan=True)
    return pooled, np.append(pool_axis(edges[:-1], n, target), edges[-1])


def pool_y(
    a: np.ndarray, edges: np.ndarray, target: int, log: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Max-pool rows (axis 0) to about ``target`` pixels; returns (pooled, edges).

    On a linear axis rows are pooled in equal groups; on a log axis by the pixel each row
    lands on, so the decades packed with rows are pooled and sparse ones are left alone.
    """
    import numpy as np

    if not log:
        return pool_cells(a, edges, 0, target)
    n = a.shape[0]
    if target <= 0 or n <= target:
        return a, edges
    d = np.log10(edges)
    centre = (d[:-1] + d[1:]) / 2
    pixel = np.floor((centre - d[0]) / (d[-1] - d[0]) * target).astype(np.int64)
    starts = np.flatnonzero(np.diff(pixel, prepend=-1))
    return np.fmax.reduceat(a, starts, axis=0), np.append(edges[starts], edges[-1])


def color_bounds(
    values: np.ndarray,
    percentiles: tuple[float, float],
    *,
    log: bool,
    lo: float | None,
    hi: float | None,
) -> tuple[float, float] | None:
    """Colour bounds: given ones win, missing ones are percentiles of the finite values.

    On a log scale only positive values count, and a lower bound that is not positive
    becomes the smallest positive value. None when there is nothing to scale (no finite
    value, or no positive one on a log scale).
    """
    import numpy as np

    from crunchctl.quicklook.render import finite_percentiles

    v = values[np.isfinite(values)]
    if log:
        v = v[v > 0]
    if v.size == 0:
        return None
    given = (lo is not None, hi is not None)
    if lo is None or hi is None:
        plo, phi = finite_percentiles(v, percentiles)  # type: ignore[misc]
        lo = plo if lo is None else lo
        hi = phi if hi is None else hi
    if log and lo <= 0:
        lo = float(v.min())
    if not hi > lo:
        if given == (False, False):  # constant data: put it mid-scale
            if log:
                lo, hi = lo / 10**0.5, lo * 10**0.5
            else:
                half = abs(lo) * 0.1 or 1.0
                lo, hi = lo - half, lo + half
        elif given[1] and not given[0]:
            lo = hi / 10.0 if log else hi - (abs(hi) * 0.1 or 1.0)
        else:
            hi = lo * 10.0 if log else lo + (abs(lo) * 0.1 or 1.0)
    return float(lo), float(hi)


def _uniform(edges: np.ndarray) -> bool:
    import numpy as np

    d = np.diff(edges)
    return bool(d.size and np.allclose(d, d[0], rtol=1e-3, atol=0))


# ------------------------------------------------------------------------ rows to cells


@dataclass
class _Prepared:
    """A row cut to its y range, with edges, ready to pool and draw."""

    row: Row
    xe: np.ndarray  # x edges in display units (seconds, or days on a time axis)
    ye: np.ndarray
    data: np.ndarray
    ylog: bool
    zlog: bool
    ylim: tuple[float, float]
    events: list[float]  # in display units
    note: str | None = None
    given: dict[float, float] = field(default_factory=dict)  # display units -> as given


def _prepare(row: Row, opts: FigureOptions, warnings: list[str]) -> _Prepared:
    import numpy as np

    ylog = (row.y_scale or opts.y_scale) == "log"
    zlog = (row.z_scale or opts.z_scale) == "log"
    data = row.data
    ny, nx = data.shape
    label = f"row {row.label!r}" if row.label else "a row"

    xe = row.x if row.x.size == nx + 1 else centres_to_edges(row.x)
    y = row.y
    edges_given = y.size == ny + 1
    if ylog:
        # Cells at or below zero have no place on a log axis.
        if edges_given:
            positive = y[:-1] > 0
            first = int(np.argmax(positive)) if positive.any() else ny
            data, y = data[first:], y[first:]
        else:
            positive = y > 0
            data, y = data[positive], y[positive]
        dropped = ny - data.shape[0]
        if dropped:
            warnings.append(f"{label}: {dropped} y values <= 0 are not shown on the log y scale")
        if data.shape[0] == 0:
            return _Prepared(
                row,
                _to_display(xe, row),
                np.array([1.0, 10.0]),
                np.full((1, nx), np.nan),
                ylog,
                zlog,
                (1.0, 10.0),
                [],
                "no positive y values for a log y scale",
            )
        ye = y if edges_given else centres_to_edges(y, log=True)
    else:
        ye = y if edges_given else centres_to_edges(y)

    y_lo = row.y_min if row.y_min is not None else opts.y_min
    y_hi = row.y_max if row.y_max is not None else opts.y_max
    if ylog and y_lo is not None and y_lo <= 0:
        y_lo = None  # the smallest positive edge instead
    lim_lo = ye[0] if y_lo is None else y_lo
    lim_hi = ye[-1] if y_hi is None else y_hi
    if not lim_hi > lim_lo:
        warnings.append(f"{label}: y range {lim_lo:g} to {lim_hi:g} is empty; showing all")
        lim_lo, lim_hi = ye[0], ye[-1]
    # Cut to the visible y range, so pooling spends the pixels there.
    inside = (ye[1:] > lim_lo) & (ye[:-1] < lim_hi)
    note = None
    if inside.any():
        j0 = int(np.argmax(inside))
        j1 = len(inside) - int(np.argmax(inside[::-1]))
        data, ye = data[j0:j1], ye[j0 : j1 + 1]
    else:
        note = f"no data between y = {lim_lo:g} and {lim_hi:g}"

    given = {
        (e - (row.x_origin or 0.0)) / (_DAY if row.x_is_time else 1.0): e
        for e in (*opts.events, *row.events)
    }
    return _Prepared(
        row,
        _to_display(xe, row),
        ye,
        data,
        ylog,
        zlog,
        (float(lim_lo), float(lim_hi)),
        sorted(given),
        note,
        given,
    )


def _to_display(xe: np.ndarray, row: Row) -> np.ndarray:
    # Matplotlib dates are days since 1970 (its default epoch).
    return xe / _DAY if row.x_is_time else xe


def _draw(
    ax: Any, xe: np.ndarray, ye: np.ndarray, img: np.ndarray, cmap: Any, norm: Any, ylog: bool
) -> Any:
    if not ylog and _uniform(xe) and _uniform(ye):
        return ax.imshow(
            img,
            origin="lower",
            aspect="auto",
            interpolation="nearest",
            extent=(xe[0], xe[-1], ye[0], ye[-1]),
            cmap=cmap,
            norm=norm,
        )
    return ax.pcolormesh(xe, ye, img, shading="flat", cmap=cmap, norm=norm)


def _cut_x(p: _Prepared, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray] | None:
    import numpy as np

    inside = (p.xe[1:] > lo) & (p.xe[:-1] < hi)
    if not inside.any():
        return None
    i0 = int(np.argmax(inside))
    i1 = len(inside) - int(np.argmax(inside[::-1]))
    return p.xe[i0 : i1 + 1], p.data[:, i0:i1]


# ---------------------------------------------------------------------------- drawing


@dataclass(frozen=True)
class _Layout:
    """Sizes of a figure of ``n`` rows and ``zooms`` zoom columns, in inches, and the axes
    rectangles in it."""

    n: int
    zooms: int
    dpi: int

    @property
    def zoom_width(self) -> float:
        return ZOOM_WIDTH_IN if self.zooms <= 2 else ZOOM_NARROW_IN

    @property
    def zoom_block(self) -> float:
        """Width of all zoom columns with their gaps."""
        return self.zooms * (self.zoom_width + ZOOM_GAP_IN)

    @property
    def width(self) -> float:
        return MAIN_WIDTH_IN + self.zoom_block

    @property
    def height(self) -> float:
        return HEADER_IN + FOOTER_IN + (ROW_TITLE_IN + AXES_HEIGHT_IN) * self.n

    @property
    def main_width(self) -> float:
        return MAIN_WIDTH_IN - LEFT_IN - RIGHT_IN

    def zoom_left(self, k: int) -> float:
        """Left edge of zoom column ``k``."""
        return LEFT_IN + self.main_width + ZOOM_GAP_IN + k * (self.zoom_width + ZOOM_GAP_IN)

    @property
    def cbar_left(self) -> float:
        return LEFT_IN + self.main_width + self.zoom_block + CBAR_GAP_IN

    def pixels(self, inches: float) -> int:
        return int(inches * self.dpi)

    def rect(self, left_in: float, width_in: float, i: int) -> tuple[float, float, float, float]:
        """Figure-fraction rectangle of row ``i`` from ``left_in`` on, ``width_in`` wide."""
        top = HEADER_IN + ROW_TITLE_IN + i * (ROW_TITLE_IN + AXES_HEIGHT_IN)
        bottom = self.height - top - AXES_HEIGHT_IN
        w, h = self.width, self.height
        return (left_in / w, bottom / h, width_in / w, AXES_HEIGHT_IN / h)


@dataclass(frozen=True)
class _XRange:
    """The shared x range, the events inside it, one zoom window per zoomed event
    (event, lo, hi) and the events left without a zoom column."""

    lo: float
    hi: float
    events: list[float]
    zooms: list[tuple[float, float, float]]
    not_zoomed: list[float]
    unit: str = ""  # of numeric x values: " s" when rows count seconds from an x_origin


def _x_range(
    prepared: list[_Prepared], options: FigureOptions, time_axis: bool, warnings: list[str]
) -> _XRange:
    lo = min(float(p.xe[0]) for p in prepared)
    hi = max(float(p.xe[-1]) for p in prepared)
    unit = " s" if any(p.row.x_origin is not None for p in prepared) else ""
    all_events = sorted({e for p in prepared for e in p.events})
    visible = [e for e in all_events if lo <= e <= hi]
    outside = [e for e in all_events if not lo <= e <= hi]
    if outside:
        given = {k: v for p in prepared for k, v in p.given.items()}
        shown = ", ".join(_given_text(given.get(e, e)) for e in outside[:5])
        more = f" and {len(outside) - 5} more" if len(outside) > 5 else ""
        warnings.append(
            f"{len(outside)} of {len(all_events)} event(s) outside the x range "
            f"({_range_text(lo, hi, time_axis, unit)}), not drawn: {shown}{more}"
        )
    zooms: list[tuple[float, float, float]] = []
    rest: list[float] = []
    if options.zoom_minutes:
        half = options.zoom_minutes * 60.0 / 2 / (_DAY if time_axis else 1.0)
        if visible:
            # One window per event, in time order; the first MAX_ZOOM_COLUMNS get one.
            zooms = [(e, e - half, e + half) for e in visible[:MAX_ZOOM_COLUMNS]]
            rest = visible[MAX_ZOOM_COLUMNS:]
            if rest:
                warnings.append(
                    f"{len(rest)} of {len(visible)} events not zoomed (at most "
                    f"{MAX_ZOOM_COLUMNS} zoom columns): "
                    f"{', '.join(_event_text(e, time_axis, unit=unit) for e in rest)}"
                )
        elif all_events:
            warnings.append("no event inside the x range: zoom column left out")
        # No events at all: said once for the run (``run.run_batch``), not per figure.
    return _XRange(lo, hi, visible, zooms, rest, unit)


def _given_text(e: float) -> str:
    """An event as the user gave it: a UTC time when it can be UNIX seconds, else a number."""
    from crunchctl.batch.rows import UNIX_RANGE

    return _event_text(e / _DAY, True) if UNIX_RANGE[0] <= e <= UNIX_RANGE[1] else f"{e:g}"


def _range_text(lo: float, hi: float, time_axis: bool, unit: str) -> str:
    if not time_axis:
        return f"{lo:g} to {hi:g}{unit}"
    return f"{_event_text(lo, True)[:-4]} to {_event_text(hi, True)}"


def _event_text(e: float, time_axis: bool, *, short: bool = False, unit: str = "") -> str:
    """An event's time as a reader wants it: UTC on a time axis, a number otherwise."""
    if not time_axis:
        # Seconds from an x_origin carry the rounding of UNIX seconds (0.0999999): to the µs.
        return f"{round(e, 6) if unit else e:g}{unit}"
    import datetime as _dt

    when = _dt.datetime.fromtimestamp(e * _DAY, _dt.timezone.utc)
    text = when.strftime("%H:%M:%S" if short else "%Y-%m-%d %H:%M:%S")
    if when.microsecond:
        text += f".{when.microsecond // 1000:03d}"
    return text + " UTC"


def _norm(
    img: np.ndarray, bounds: tuple[float, float], zlog: bool
) -> tuple[Any, np.ndarray, str, bool]:
    """(norm, image to draw, colour bar extension, values <= 0 present on a log scale)."""
    import numpy as np
    from matplotlib.colors import LogNorm, Normalize

    lo, hi = bounds
    finite = np.isfinite(img)
    nonpos = False
    if zlog:
        norm: Any = LogNorm(lo, hi, clip=False)
        below = finite & (img <= 0)
        nonpos = bool(below.any())
        under = nonpos or bool((finite & (img < lo)).any())
        # Zeros and negatives have no logarithm: drawn in the lowest colour.
        img = np.where(below, lo * 0.5, img)
    else:
        norm = Normalize(lo, hi, clip=False)
        under = bool((img[finite] < lo).any())
    over = bool((img[np.isfinite(img)] > hi).any())
    extend = {(True, True): "both", (True, False): "min", (False, True): "max"}.get(
        (under, over), "neither"
    )
    return norm, img, extend, nonpos


def _colorbar(
    fig: Any,
    layout: _Layout,
    i: int,
    mesh: Any,
    p: _Prepared,
    bounds: tuple[float, float],
    extend: str,
    label: str,
) -> None:
    cb = fig.colorbar(
        mesh, cax=fig.add_axes(layout.rect(layout.cbar_left, CBAR_WIDTH_IN, i)), extend=extend
    )
    lo, hi = bounds
    if p.zlog and hi / lo < 100:
        # Under two decades matplotlib labels minor ticks too, in another font size and
        # on top of each other; a few round values, all alike, read better.
        from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

        cb.ax.yaxis.set_major_locator(FixedLocator(log_ticks(lo, hi)))
        cb.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
        cb.ax.yaxis.set_minor_formatter(NullFormatter())
    cb.set_label(label, fontsize=9)
    cb.ax.tick_params(which="both", labelsize=8)


def log_ticks(lo: float, hi: float, most: int = 6) -> list[float]:
    """Round tick values for a log colour bar from ``lo`` to ``hi`` (under two decades).

    The sparsest of 1-2-5, 1-2-3-5 and 1..9 series giving at least three ticks inside the
    range; a range too narrow even for 1..9 gets evenly spaced round values.
    """
    import numpy as np

    span = (math.floor(math.log10(lo)), math.ceil(math.log10(hi)))
    eps = 1e-9 * hi
    best: list[float] = []
    for subs in ((1,), (1, 2, 5), (1, 2, 3, 5), (1, 2, 3, 4, 5, 6, 7, 8, 9)):
        ticks = [
            float(f"{m * 10.0**k:.12g}")
            for k in range(span[0], span[1] + 1)
            for m in subs
            if lo - eps <= m * 10.0**k <= hi + eps
        ]
        if len(ticks) > most:
            break
        best = ticks
        if len(ticks) >= 3:
            return ticks
    if len(best) >= 2:
        return best
    from matplotlib.ticker import MaxNLocator

    values = MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
    return [float(f"{v:.12g}") for v in np.asarray(values) if lo - eps <= v <= hi + eps and v > 0]


def _zoom_column(
    zax: Any,
    layout: _Layout,
    p: _Prepared,
    window: tuple[float, float],
    cmap: Any,
    norm: Any,
    bounds: tuple[float, float] | None,
) -> None:
    import numpy as np

    if bounds is not None:
        cut = _cut_x(p, *window)
        if cut is not None:
            zxe, zdata = cut
            zimg, zxe = pool_cells(zdata, zxe, 1, layout.pixels(layout.zoom_width))
            zimg, zye = pool_y(zimg, p.ye, layout.pixels(AXES_HEIGHT_IN), p.ylog)
            if p.zlog:
                zimg = np.where(np.isfinite(zimg) & (zimg <= 0), bounds[0] * 0.5, zimg)
            _draw(zax, zxe, zye, zimg, cmap, norm, p.ylog)
    zax.set_xlim(*window)
    zax.tick_params(labelleft=False, labelsize=8)
    for e in p.events:
        if window[0] <= e <= window[1]:
            _event_line(zax, e)


def _draw_row(
    fig: Any,
    layout: _Layout,
    i: int,
    p: _Prepared,
    options: FigureOptions,
    cmap: Any,
    xr: _XRange,
    sharex: Any,
    warnings: list[str],
) -> tuple[Any, list[Any]]:
    """Row ``i``: its spectrogram, colour bar, events and zooms; returns (axes, zoom axes)."""
    import numpy as np

    row = p.row
    ax = fig.add_axes(layout.rect(LEFT_IN, layout.main_width, i), sharex=sharex)
    zaxes = [
        fig.add_axes(layout.rect(layout.zoom_left(k), layout.zoom_width, i), sharey=ax)
        for k in range(len(xr.zooms))
    ]
    # x first: it is the long axis, and max-pooling gives the same cells in either order.
    img, xe = pool_cells(p.data, p.xe, 1, layout.pixels(layout.main_width))
    img, ye = pool_y(img, p.ye, layout.pixels(AXES_HEIGHT_IN), p.ylog)
    z_lo = row.z_min if row.z_min is not None else options.z_min
    z_hi = row.z_max if row.z_max is not None else options.z_max
    bounds = (
        None if p.note else color_bounds(img, options.percentiles, log=p.zlog, lo=z_lo, hi=z_hi)
    )
    note = p.note
    if bounds is None and note is None:
        note = (
            "no finite values (all NaN)"
            if not np.isfinite(row.data).any()
            else "no positive values for a log colour scale"
        )
    if note:
        warnings.append(f"{'row ' + repr(row.label) if row.label else f'row {i + 1}'}: {note}")
    ax.set_yscale("log" if p.ylog else "linear")
    ax.set_ylim(*p.ylim)
    ax.set_title(row.label or f"row {i + 1}", loc="left", fontsize=10)
    ax.set_ylabel(options.y_label or row.y_label or DEFAULT_Y_LABEL, fontsize=9)
    norm = None
    if bounds is not None:
        norm, img, extend, nonpos = _norm(img, bounds, p.zlog)
        if nonpos:
            ax.set_title("values <= 0 in the lowest colour", loc="right", fontsize=8, color="0.35")
        _colorbar(
            fig,
            layout,
            i,
            _draw(ax, xe, ye, img, cmap, norm, p.ylog),
            p,
            bounds,
            extend,
            options.z_label or row.z_label or DEFAULT_Z_LABEL,
        )
    for zax, (_, lo, hi) in zip(zaxes, xr.zooms):
        _zoom_column(zax, layout, p, (lo, hi), cmap, norm, bounds)
    if note:
        ax.set_facecolor(NO_DATA_COLOR)
        ax.text(
            0.5,
            0.5,
            note,
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=11,
            color="0.2",
        )
    for e in p.events:
        if xr.lo <= e <= xr.hi:
            _event_line(ax, e)
    ax.tick_params(labelsize=8)
    return ax, zaxes


def render_figure(
    out: BinaryIO,
    rows: list[Row],
    *,
    title: str,
    subtitle: str = "",
    options: FigureOptions = FigureOptions(),
) -> list[str]:
    """Draw one multi-row figure and write it as PNG to ``out``.

    Args:
        out: binary file object.
        rows: checked rows (see ``rows.check_rows``); at least one.
        title: first title line (the item).
        subtitle: second title line (loader, counts).
        options: global bounds, scales, colour map, events, zoom.

    Returns:
        Warnings about what could not be shown as asked (one line each).

    Raises:
        FigureError: the rows cannot share a figure.
    """
    from warnings import catch_warnings, simplefilter

    from matplotlib import colormaps, rc_context, rcParams
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not rows:
        raise FigureError(f"{title}: no rows to draw")
    if options.x_label:
        # A named x axis holds numbers, even ones that could be UNIX seconds.
        rows = [replace(r, x_is_time=False) if r.x_guessed_time else r for r in rows]
    if len({r.x_is_time for r in rows}) > 1:
        raise FigureError(
            f"{title}: rows mix datetime and numeric x values; a shared x axis needs one kind"
        )
    time_axis = rows[0].x_is_time
    warnings: list[str] = []
    prepared = [_prepare(r, options, warnings) for r in rows]
    for r in rows:
        warnings.extend(r.warnings)
    xr = _x_range(prepared, options, time_axis, warnings)
    layout = _Layout(len(rows), len(xr.zooms), options.dpi)
    base = colormaps[options.cmap]
    cmap = base.with_extremes(under=base(0.0), bad=NO_DATA_COLOR)

    texts = [
        title,
        subtitle,
        options.x_label,
        options.y_label,
        options.z_label,
        *(t for r in rows for t in (r.label, r.x_label, r.y_label, r.z_label)),
    ]
    families, lacking = font_families([t for t in texts if t])
    if lacking:
        warnings.append(
            f"{FONT_NOTE} {', '.join(lacking)}: drawn as boxes (install a font "
            f"that has them: Noto fonts cover most scripts; Chinese, Japanese "
            f"and Korean are in Noto Sans CJK, Debian's fonts-noto-cjk)"
        )
    # Text takes its font when it is made: the fallback fonts are set around all of it.
    # Matplotlib's own warnings (a missing glyph, with its source line) would reach stderr
    # from every worker; they become this figure's warnings instead, glyphs said above.
    fallback = {"font.family": [*rcParams["font.family"], *families]} if families else {}
    with rc_context(fallback), catch_warnings(record=True) as caught:
        simplefilter("always")
        fig = Figure(figsize=(layout.width, layout.height), dpi=options.dpi)
        FigureCanvasAgg(fig)
        axes: list[tuple[Any, list[Any]]] = []
        for i, p in enumerate(prepared):
            ax, zaxes = _draw_row(
                fig, layout, i, p, options, cmap, xr, axes[0][0] if axes else None, warnings
            )
            axes.append((ax, zaxes))
        _x_axes(axes, rows, xr, options, time_axis, layout.zoom_width)
        _header(fig, layout, title, subtitle, xr, time_axis)
        fig.savefig(out, format="png", dpi=options.dpi)
    for w in caught:
        text = " ".join(str(w.message).split())
        if not (text.startswith("Glyph ") and "missing from font" in text):
            warnings.append(f"while drawing: {text}")
    return warnings


# ------------------------------------------------------------------------------ fonts

#: The note about characters no installed font has starts so (``run.py`` says it once
#: per run, not once per figure).
FONT_NOTE = "no installed font has the characters"
#: Families tried first for characters the default font (DejaVu Sans) lacks.
PREFERRED_FONTS = (
    "Noto Sans CJK JP",
    "Noto Sans CJK SC",
    "Noto Sans CJK TC",
    "Noto Sans CJK KR",
    "Source Han Sans",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Droid Sans Fallback",
    "IPAGothic",
    "IPAexGothic",
    "Noto Sans",
)
_CHARMAPS: dict[str, frozenset[int]] = {}
_FALLBACKS: dict[frozenset[str], tuple[list[str], str]] = {}


def font_families(texts: list[str]) -> tuple[list[str], str]:
    """Fonts for the characters of ``texts`` that the default font lacks.

    Returns:
        (families to fall back to, in order; the characters no installed font has). Both
        empty when the default font has every character. Installed fonts matplotlib has
        not listed yet (installed after its font cache was made) are found too.
    """
    from matplotlib import font_manager

    needed = {c for t in texts for c in t if ord(c) > 0x7F and c.isprintable() and not c.isspace()}
    if not needed:
        return [], ""
    default = font_manager.findfont(font_manager.FontProperties())
    missing = frozenset(c for c in needed if ord(c) not in _charmap(default))
    if not missing:
        return [], ""
    if missing not in _FALLBACKS:
        _FALLBACKS[missing] = _cover(missing)
    return _FALLBACKS[missing]


def _cover(missing: frozenset[str]) -> tuple[list[str], str]:
    from matplotlib import font_manager

    manager = font_manager.fontManager
    rank = {name: i for i, name in enumerate(PREFERRED_FONTS)}
    left = set(missing)
    families: list[str] = []

    def take(entries: list[Any]) -> None:
        for entry in sorted(entries, key=lambda e: (rank.get(e.name, len(rank)), e.name)):
            if not left:
                return
            if entry.name.startswith("Last Resort"):
                continue  # matplotlib's own: a box for every character, which is no glyph
            covered = {c for c in left if ord(c) in _charmap(entry.fname)}
            if covered and entry.name not in families:
                families.append(entry.name)
                left.difference_update(covered)

    take(list(manager.ttflist))
    if left:
        known = {e.fname for e in manager.ttflist}
        for path in font_manager.findSystemFonts():
            if (
                path not in known
                and "LastResort" not in os.path.basename(path)
                and any(ord(c) in _charmap(path) for c in left)
            ):
                try:
                    manager.addfont(path)
                except (OSError, RuntimeError, ValueError):
                    continue
        take([e for e in manager.ttflist if e.fname not in known])
    return families, "".join(sorted(left))


def _charmap(path: str) -> frozenset[int]:
    found = _CHARMAPS.get(path)
    if found is None:
        from matplotlib.ft2font import FT2Font

        try:
            found = frozenset(FT2Font(path).get_charmap())
        except (OSError, RuntimeError, ValueError):
            found = frozenset()
        _CHARMAPS[path] = found
    return found


def _x_axes(
    axes: list[tuple[Any, list[Any]]],
    rows: list[Row],
    xr: _XRange,
    options: FigureOptions,
    time_axis: bool,
    zoom_width: float,
) -> None:
    """Tick labels on the bottom row only, each zoom column's title (its event ± half the
    window), the x label and range."""
    from matplotlib import dates as mdates

    half = _fmt_minutes((options.zoom_minutes or 0) / 2)
    for i, (ax, zaxes) in enumerate(axes):
        last = i == len(axes) - 1
        if not last:
            ax.tick_params(labelbottom=False)
        for zax, (event, _, _) in zip(zaxes, xr.zooms):
            if i == 0:
                zax.set_title(
                    f"{_event_text(event, time_axis, short=True, unit=xr.unit)} \u00b1 {half}",
                    loc="left",
                    fontsize=9 if layout_narrow(xr) else 10,
                )
            if not last:
                zax.tick_params(labelbottom=False)
            _zoom_ticks(zax, zoom_width, time_axis)
    first, bottom = axes[0][0], axes[-1][0]
    first.set_xlim(xr.lo, xr.hi)
    bottom.set_xlabel(x_label(rows, options, time_axis), fontsize=9)
    if time_axis:
        _date_axis(first, mdates)
    else:
        # Matplotlib's offset and powers of ten ("1e13" at the axis end) for large values:
        # 10000000000000 on every tick reads as nothing.
        from matplotlib.ticker import ScalarFormatter

        first.xaxis.set_major_formatter(ScalarFormatter(useMathText=True))


def x_label(rows: list[Row], options: FigureOptions, time_axis: bool) -> str:
    """The x axis label: ``--x-label``, else the first row's ``x_label``, else what x is."""
    given = options.x_label or next((r.x_label for r in rows if r.x_label), None)
    if given:
        return given
    if time_axis:
        return "time (UTC)"
    # Plain numbers are seconds only when a row says they count from a time (x_origin).
    return "time (s)" if any(r.x_origin is not None for r in rows) else DEFAULT_X_LABEL


def layout_narrow(xr: _XRange) -> bool:
    """Three or more zoom columns are narrow: their titles get a smaller font."""
    return len(xr.zooms) > 2


def _header(
    fig: Any, layout: _Layout, title: str, subtitle: str, xr: _XRange, time_axis: bool
) -> None:
    if len(title) > 140:  # long paths: the end says most
        title = "…" + title[-139:]
    n_events = len(xr.events)
    if n_events:
        subtitle += (
            f"{', ' if subtitle else ''}{n_events} event{'s' if n_events != 1 else ''} (dashed red)"
        )
    if xr.zooms:
        subtitle += f", zoom on {'each' if not xr.not_zoomed else f'the first {len(xr.zooms)}'}"
    if xr.not_zoomed:
        shown = ", ".join(
            _event_text(e, time_axis, short=True, unit=xr.unit) for e in xr.not_zoomed[:4]
        )
        more = f" and {len(xr.not_zoomed) - 4} more" if len(xr.not_zoomed) > 4 else ""
        subtitle += f"; not zoomed: {shown}{more}"
    head = title if not subtitle else f"{title}\n{subtitle}"
    fig.text(
        0.12 / layout.width,
        1 - 0.1 / layout.height,
        head,
        ha="left",
        va="top",
        fontsize=11,
        fontweight="bold",
        linespacing=1.3,
    )


def _event_line(ax: Any, x: float) -> None:
    # A light halo under the dashed line keeps it visible on dark and bright colours alike.
    ax.axvline(x, color="white", lw=2.8, alpha=0.55)
    ax.axvline(x, color=EVENT_COLOR, lw=1.4, ls=(0, (4, 2)))


def _date_axis(ax: Any, mdates: Any) -> None:
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


# Zoom columns stand 0.2 in apart: a label at a column's edge runs into the next column's
# ("11:1511:15"). Their ticks are chosen so that every label fits inside its column.
TICK_PT = 8  # tick label size
#: Width of one character of a tick label, inches (DejaVu Sans digits are 0.64 em).
CHAR_IN = 0.64 * TICK_PT / 72
TICK_GAP_IN = 0.1  # at least this between two labels, and between a label and the edge
#: Tick steps on a time axis, seconds: round clock values.
TIME_STEPS = (
    1,
    2,
    5,
    10,
    15,
    20,
    30,
    60,
    120,
    300,
    600,
    900,
    1200,
    1800,
    3600,
    7200,
    10800,
    21600,
    43200,
    _DAY,
    2 * _DAY,
    7 * _DAY,
    14 * _DAY,
    28 * _DAY,
)


def zoom_ticks(
    lo: float, hi: float, width_in: float, time_axis: bool
) -> tuple[list[float], list[str]]:
    """The ticks and labels of a zoom column ``width_in`` inches wide showing ``lo..hi``
    (days on a time axis): the densest round ticks whose labels all lie inside the column
    without touching each other; one tick when no two fit, none when no label fits."""
    single: tuple[list[float], list[str]] = ([], [])
    for ticks, labels in _tick_candidates(lo, hi, time_axis):
        fitted = _fitting(ticks, labels, lo, hi, width_in)
        if fitted is None:
            continue  # labels too close together: try sparser ticks
        if len(fitted[0]) >= 2:
            return fitted
        if fitted[0] and not single[0]:
            single = fitted
    return single


def _tick_candidates(lo: float, hi: float, time_axis: bool):
    """(ticks, labels) from the densest to the sparsest."""
    import datetime as _dt

    import numpy as np

    if time_axis:
        a, b = lo * _DAY, hi * _DAY
        for step in TIME_STEPS:
            first = math.ceil(a / step - 1e-9) * step
            ticks = np.arange(first, b + 1e-9 * step, step)
            if ticks.size > 12:
                continue
            fmt = "%H:%M:%S" if step < 60 else "%H:%M" if step < _DAY else "%Y-%m-%d"
            yield (
                [float(t) / _DAY for t in ticks],
                [
                    _dt.datetime.fromtimestamp(float(t), _dt.timezone.utc).strftime(fmt)
                    for t in ticks
                ],
            )
        return
    from matplotlib.ticker import MaxNLocator, ScalarFormatter

    for nbins in (8, 6, 5, 4, 3, 2, 1):
        ticks = [
            float(t)
            for t in MaxNLocator(nbins=nbins, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
            if lo <= t <= hi
        ]
        formatter = ScalarFormatter()
        formatter.create_dummy_axis()
        formatter.axis.set_view_interval(lo, hi)
        formatter.set_locs(ticks)
        yield ticks, [formatter(t) for t in ticks]


def _fitting(
    ticks: list[float], labels: list[str], lo: float, hi: float, width_in: float
) -> tuple[list[float], list[str]] | None:
    """The ticks whose labels lie inside the column; None when two labels would touch."""
    from itertools import pairwise

    per_unit = width_in / (hi - lo)
    kept: list[tuple[float, str]] = []
    for t, text in zip(ticks, labels):
        half = len(text) * CHAR_IN / 2 + TICK_GAP_IN
        if (t - lo) * per_unit >= half and (hi - t) * per_unit >= half:
            kept.append((t, text))
    for (t1, a), (t2, b) in pairwise(kept):
        if (t2 - t1) * per_unit < (len(a) + len(b)) * CHAR_IN / 2 + TICK_GAP_IN:
            return None
    return [t for t, _ in kept], [text for _, text in kept]


def _zoom_ticks(zax: Any, width_in: float, time_axis: bool) -> None:
    from matplotlib.ticker import FixedFormatter, FixedLocator, ScalarFormatter

    lo, hi = zax.get_xlim()
    ticks, labels = zoom_ticks(lo, hi, width_in, time_axis)
    zax.xaxis.set_major_locator(FixedLocator(ticks))
    # A time axis gets the labels as chosen; numbers keep matplotlib's offset (+1e13).
    zax.xaxis.set_major_formatter(FixedFormatter(labels) if time_axis else ScalarFormatter())


def _fmt_minutes(m: float) -> str:
    if m >= 1:
        return f"{m:g} min"
    return f"{m * 60:g} s"
