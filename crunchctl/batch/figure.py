"""Multi-row spectrogram figures for ``crunchctl batch`` (DESIGN section 7).

One row per dataset, a shared x axis, a colour bar per row, event lines and an optional
right-hand zoom column; matplotlib's object API (Figure + Agg, no pyplot), so it is safe
in worker processes. Takes checked ``loaders.Row`` objects and writes a PNG to a file
object; it knows nothing of items, the ledger or file names.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from crunchctl.errors import ItemError

if TYPE_CHECKING:
    import numpy as np

    from crunchctl.batch.loaders import Row

SCALES = ("linear", "log")
# Layout in inches (fixed margins, no layout engine: one draw per figure, not two).
MAIN_WIDTH_IN = 12.0  # figure width without a zoom column
ZOOM_WIDTH_IN = 3.6  # axes width of the zoom column
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
        zoom_minutes: width of the right-hand zoom column around the events, minutes;
            None for no zoom column.
        events: event times (UNIX seconds) drawn as vertical lines on every figure.
        dpi: resolution of the PNG.
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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def pool_nanmax(a: np.ndarray, axis: int, target: int) -> tuple[np.ndarray, int]:
    """Max-pool ``a`` along ``axis`` to at most ``target`` cells, ignoring NaN.

    Like ``spectrum.pool_max`` (a line one bin wide survives the reduction to screen
    resolution), but a cell is NaN only when all its inputs are. Returns the pooled array
    and the pooling factor.
    """
    import numpy as np

    n = a.shape[axis]
    if target <= 0 or n <= target:
        return a, 1
    factor = -(-n // target)
    pad = (-n) % factor
    a = np.moveaxis(a, axis, -1)
    if pad:
        a = np.concatenate([a, np.full(a.shape[:-1] + (pad,), np.nan, dtype=a.dtype)], axis=-1)
    cells = a.reshape(*a.shape[:-1], a.shape[-1] // factor, factor)
    return np.moveaxis(np.fmax.reduce(cells, axis=-1), -1, axis), factor


def pool_edges(edges: np.ndarray, factor: int) -> np.ndarray:
    """Edges of the cells made by :func:`pool_nanmax` with that factor."""
    import numpy as np

    if factor <= 1:
        return edges
    n = edges.size - 1
    return np.append(edges[0:n:factor], edges[n])


def color_bounds(values: np.ndarray, percentiles: tuple[float, float], *, log: bool,
                 lo: float | None, hi: float | None) -> tuple[float, float] | None:
    """Colour bounds: given ones win, missing ones are percentiles of the finite values.

    On a log scale only positive values count, and a lower bound that is not positive
    becomes the smallest positive value. None when there is nothing to scale (no finite
    value, or no positive one on a log scale).
    """
    import numpy as np

    v = values[np.isfinite(values)]
    if log:
        v = v[v > 0]
    if v.size == 0:
        return None
    if v.size > 400_000:  # a regular subsample is plenty for percentiles
        v = v[:: v.size // 200_000]
    given = (lo is not None, hi is not None)
    if lo is None or hi is None:
        plo, phi = np.percentile(v, percentiles)
        lo = float(plo) if lo is None else lo
        hi = float(phi) if hi is None else hi
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


def pool_y(a: np.ndarray, edges: np.ndarray, target: int,
           log: bool) -> tuple[np.ndarray, np.ndarray]:
    """Max-pool rows (axis 0) to about ``target`` pixels; returns (pooled, edges).

    On a linear axis rows are pooled in equal groups; on a log axis by the pixel each row
    lands on, so the decades packed with rows are pooled and sparse ones are left alone.
    """
    import numpy as np

    if not log:
        pooled, factor = pool_nanmax(a, 0, target)
        return pooled, pool_edges(edges, factor)
    n = a.shape[0]
    if target <= 0 or n <= target:
        return a, edges
    d = np.log10(edges)
    centre = (d[:-1] + d[1:]) / 2
    pixel = np.floor((centre - d[0]) / (d[-1] - d[0]) * target).astype(np.int64)
    starts = np.flatnonzero(np.diff(pixel, prepend=-1))
    return np.fmax.reduceat(a, starts, axis=0), np.append(edges[starts], edges[-1])


def _uniform(edges: np.ndarray) -> bool:
    import numpy as np

    d = np.diff(edges)
    return bool(d.size and np.allclose(d, d[0], rtol=1e-3, atol=0))


# ---------------------------------------------------------------------------- drawing


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
            warnings.append(f"{label}: {dropped} y values <= 0 are not shown on the log "
                            f"y scale")
        if data.shape[0] == 0:
            return _Prepared(row, _to_display(xe, row), np.array([1.0, 10.0]),
                             np.full((1, nx), np.nan), ylog, zlog, (1.0, 10.0), [],
                             "no positive y values for a log y scale")
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
        data, ye = data[j0:j1], ye[j0:j1 + 1]
    else:
        note = f"no data between y = {lim_lo:g} and {lim_hi:g}"

    events = [e - (row.x_origin or 0.0) for e in (*opts.events, *row.events)]
    if row.x_is_time:
        events = [e / _DAY for e in events]
    return _Prepared(row, _to_display(xe, row), ye, data, ylog, zlog,
                     (float(lim_lo), float(lim_hi)), sorted(set(events)), note)


def _to_display(xe: np.ndarray, row: Row) -> np.ndarray:
    # Matplotlib dates are days since 1970 (its default epoch).
    return xe / _DAY if row.x_is_time else xe


def _draw(ax: Any, xe: np.ndarray, ye: np.ndarray, img: np.ndarray, cmap: Any, norm: Any,
          ylog: bool) -> Any:
    if not ylog and _uniform(xe) and _uniform(ye):
        return ax.imshow(img, origin="lower", aspect="auto", interpolation="nearest",
                         extent=(xe[0], xe[-1], ye[0], ye[-1]), cmap=cmap, norm=norm)
    return ax.pcolormesh(xe, ye, img, shading="flat", cmap=cmap, norm=norm)


def _cut_x(p: _Prepared, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray] | None:
    import numpy as np

    inside = (p.xe[1:] > lo) & (p.xe[:-1] < hi)
    if not inside.any():
        return None
    i0 = int(np.argmax(inside))
    i1 = len(inside) - int(np.argmax(inside[::-1]))
    return p.xe[i0:i1 + 1], p.data[:, i0:i1]


def render_figure(out: BinaryIO, rows: list[Row], *, title: str, subtitle: str = "",
                  options: FigureOptions = FigureOptions()) -> list[str]:
    """Draw one multi-row figure and write it as PNG to ``out``.

    Args:
        out: binary file object.
        rows: checked rows (see ``loaders.normalise``); at least one.
        title: first title line (the item).
        subtitle: second title line (loader, counts).
        options: global bounds, scales, colour map, events, zoom.

    Returns:
        Warnings about what could not be shown as asked (one line each).

    Raises:
        FigureError: the rows cannot share a figure.
    """
    import numpy as np
    from matplotlib import colormaps
    from matplotlib import dates as mdates
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.figure import Figure

    if not rows:
        raise FigureError(f"{title}: no rows to draw")
    if len({r.x_is_time for r in rows}) > 1:
        raise FigureError(f"{title}: rows mix datetime and numeric x values; a shared x axis "
                          f"needs one kind")
    time_axis = rows[0].x_is_time
    warnings: list[str] = []
    prepared = [_prepare(r, options, warnings) for r in rows]
    for r in rows:
        warnings.extend(r.warnings)

    x_lo = min(float(p.xe[0]) for p in prepared)
    x_hi = max(float(p.xe[-1]) for p in prepared)
    all_events = sorted({e for p in prepared for e in p.events})
    visible = [e for e in all_events if x_lo <= e <= x_hi]
    if len(visible) < len(all_events):
        warnings.append(f"{len(all_events) - len(visible)} of {len(all_events)} event(s) "
                        f"outside the x range, not drawn")
    zoom: tuple[float, float] | None = None
    if options.zoom_minutes:
        half = options.zoom_minutes * 60.0 / 2 / (_DAY if time_axis else 1.0)
        if visible:
            zoom = (visible[0] - half, visible[-1] + half)
        else:
            warnings.append("no event inside the x range: zoom column left out")

    n = len(rows)
    width = MAIN_WIDTH_IN + (ZOOM_WIDTH_IN + ZOOM_GAP_IN if zoom else 0.0)
    height = HEADER_IN + FOOTER_IN + (ROW_TITLE_IN + AXES_HEIGHT_IN) * n
    dpi = options.dpi
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    main_w = MAIN_WIDTH_IN - LEFT_IN - RIGHT_IN
    main_px = int(main_w * dpi)
    zoom_px = int(ZOOM_WIDTH_IN * dpi)
    row_px = int(AXES_HEIGHT_IN * dpi)

    def rect(left_in: float, width_in: float, i: int) -> tuple[float, float, float, float]:
        top = HEADER_IN + ROW_TITLE_IN + i * (ROW_TITLE_IN + AXES_HEIGHT_IN)
        bottom = height - top - AXES_HEIGHT_IN
        return (left_in / width, bottom / height, width_in / width, AXES_HEIGHT_IN / height)

    cbar_left = LEFT_IN + main_w + (ZOOM_GAP_IN + ZOOM_WIDTH_IN if zoom else 0.0) + CBAR_GAP_IN

    base = colormaps[options.cmap]
    cmap = base.with_extremes(under=base(0.0), bad=NO_DATA_COLOR)
    first_ax = None
    axes = []
    for i, p in enumerate(prepared):
        row = p.row
        ax = fig.add_axes(rect(LEFT_IN, main_w, i), sharex=first_ax)
        first_ax = first_ax or ax
        axes.append(ax)
        zax = (fig.add_axes(rect(LEFT_IN + main_w + ZOOM_GAP_IN, ZOOM_WIDTH_IN, i), sharey=ax)
               if zoom else None)

        img, ye = pool_y(p.data, p.ye, row_px, p.ylog)
        img, fx = pool_nanmax(img, 1, main_px)
        xe = pool_edges(p.xe, fx)
        z_lo = row.z_min if row.z_min is not None else options.z_min
        z_hi = row.z_max if row.z_max is not None else options.z_max
        bounds = None if p.note else color_bounds(img, options.percentiles, log=p.zlog,
                                                  lo=z_lo, hi=z_hi)
        note = p.note
        if bounds is None and note is None:
            if not np.isfinite(row.data).any():
                note = "no finite values (all NaN)"
            else:
                note = "no positive values for a log colour scale"
        if note:
            warnings.append(f"{'row ' + repr(row.label) if row.label else f'row {i + 1}'}: "
                            f"{note}")
        ax.set_yscale("log" if p.ylog else "linear")
        ax.set_ylim(*p.ylim)
        ax.set_title(row.label or f"row {i + 1}", loc="left", fontsize=10)
        ax.set_ylabel(row.y_label or _default_y(), fontsize=9)
        if bounds is not None:
            lo, hi = bounds
            under = False
            if p.zlog:
                norm: Any = LogNorm(lo, hi, clip=False)
                finite = np.isfinite(img)
                nonpos = finite & (img <= 0)
                under = bool(nonpos.any() or (finite & (img < lo)).any())
                # Zeros and negatives have no logarithm: drawn in the lowest colour.
                img = np.where(nonpos, lo * 0.5, img)
                if nonpos.any():
                    ax.set_title("values <= 0 in the lowest colour", loc="right", fontsize=8,
                                 color="0.35")
            else:
                norm = Normalize(lo, hi, clip=False)
                under = bool((img[np.isfinite(img)] < lo).any())
            over = bool((img[np.isfinite(img)] > hi).any())
            mesh = _draw(ax, xe, ye, img, cmap, norm, p.ylog)
            extend = {(True, True): "both", (True, False): "min",
                      (False, True): "max"}.get((under, over), "neither")
            cax = fig.add_axes(rect(cbar_left, CBAR_WIDTH_IN, i))
            cb = fig.colorbar(mesh, cax=cax, extend=extend)
            if p.zlog and hi / lo < 100:
                # Under two decades matplotlib labels minor ticks in long scientific form.
                from matplotlib.ticker import FuncFormatter

                short = FuncFormatter(lambda v, _: f"{v:.3g}")
                cb.ax.yaxis.set_major_formatter(short)
                cb.ax.yaxis.set_minor_formatter(short)
            cb.set_label(row.z_label or _default_z(), fontsize=9)
            cb.ax.tick_params(labelsize=8)
            if zax is not None and zoom is not None:
                cut = _cut_x(p, *zoom)
                if cut is not None:
                    zxe, zdata = cut
                    zimg, zye = pool_y(zdata, p.ye, row_px, p.ylog)
                    zimg, fzx = pool_nanmax(zimg, 1, zoom_px)
                    if p.zlog:
                        zimg = np.where(np.isfinite(zimg) & (zimg <= 0), lo * 0.5, zimg)
                    _draw(zax, pool_edges(zxe, fzx), zye, zimg, cmap, norm,
                          p.ylog)
        if note:
            ax.set_facecolor(NO_DATA_COLOR)
            ax.text(0.5, 0.5, note, transform=ax.transAxes, ha="center", va="center",
                    fontsize=11, color="0.2")
        for e in p.events:
            if x_lo <= e <= x_hi:
                _event_line(ax, e)
        ax.tick_params(labelsize=8)
        if i < n - 1:
            ax.tick_params(labelbottom=False)
        if zax is not None and zoom is not None:
            zax.set_xlim(*zoom)
            zax.tick_params(labelleft=False, labelsize=8)
            for e in p.events:
                if zoom[0] <= e <= zoom[1]:
                    _event_line(zax, e)
            if i == 0:
                what = "the event" if len(visible) == 1 else "the events"
                zax.set_title(f"zoom: {what} \u00b1 {_fmt_minutes((options.zoom_minutes or 0) / 2)}",
                              loc="left", fontsize=10)
            if i < n - 1:
                zax.tick_params(labelbottom=False)
            if time_axis:
                _date_axis(zax, mdates)

    assert first_ax is not None
    first_ax.set_xlim(x_lo, x_hi)
    bottom = axes[-1]
    x_label = next((r.x_label for r in rows if r.x_label), None)
    bottom.set_xlabel(x_label or ("time (UTC)" if time_axis else "Time (s)"), fontsize=9)
    if time_axis:
        _date_axis(first_ax, mdates)
    else:
        first_ax.ticklabel_format(axis="x", useOffset=False, style="plain")
    if len(title) > 140:  # long paths: the end says most
        title = "…" + title[-139:]
    if visible:
        n_ev = len(visible)
        subtitle += f"{', ' if subtitle else ''}{n_ev} event{'s' if n_ev != 1 else ''} (dashed red)"
    head = title if not subtitle else f"{title}\n{subtitle}"
    fig.text(0.12 / width, 1 - 0.1 / height, head, ha="left", va="top", fontsize=11,
             fontweight="bold", linespacing=1.3)
    fig.savefig(out, format="png", dpi=dpi)
    return warnings


def _event_line(ax: Any, x: float) -> None:
    # A light halo under the dashed line keeps it visible on dark and bright colours alike.
    ax.axvline(x, color="white", lw=2.8, alpha=0.55)
    ax.axvline(x, color=EVENT_COLOR, lw=1.4, ls=(0, (4, 2)))


def _date_axis(ax: Any, mdates: Any) -> None:
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _fmt_minutes(m: float) -> str:
    if m >= 1:
        return f"{m:g} min"
    return f"{m * 60:g} s"


def _default_y() -> str:
    from crunchctl.batch.loaders import DEFAULT_Y_LABEL

    return DEFAULT_Y_LABEL


def _default_z() -> str:
    from crunchctl.batch.loaders import DEFAULT_Z_LABEL

    return DEFAULT_Z_LABEL


def check_percentiles(text: str) -> tuple[float, float]:
    """Parse ``--percentiles LO,HI`` (0 <= LO < HI <= 100).

    Raises:
        ValueError: with a message saying what was expected.
    """
    parts = [p.strip() for p in text.replace(" ", ",").split(",") if p.strip()]
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise ValueError(f"{text!r}: expected two numbers LO,HI such as 1,99") from None
    if not (0 <= lo < hi <= 100) or not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{text!r}: expected 0 <= LO < HI <= 100")
    return lo, hi
