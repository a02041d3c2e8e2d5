"""Rendering spectrograms to PNG with matplotlib's object API (Figure + Agg, no pyplot).

Safe in worker processes and threads: no pyplot state, and each thread reuses a figure of
its own. The array is max-pooled to the axes' pixel size before drawing, so a line one bin
wide stays visible and drawing stays cheap.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from crunchctl.quicklook import spectrum

FIG_SIZE = (12.0, 6.6)  # inches
DPI = 130
_AX_RECT = (0.075, 0.10, 0.80, 0.80)  # left, bottom, width, height (figure fraction)
_CB_RECT = (0.895, 0.10, 0.018, 0.80)
MIN_DB_RANGE = 20.0  # dB; smallest colour range of a dB image


@dataclass(frozen=True)
class Style:
    """How a spectrogram is drawn."""

    cmap: str = "viridis"
    db: bool = True
    #: Percentiles of the pooled image for the colour bounds (robust to one bright bin).
    percentiles: tuple[float, float] = (2.0, 99.95)
    dpi: int = DPI
    #: zlib level of the PNG: 1 encodes a noisy spectrogram about 5x faster than the
    #: default 6, for files about 10% larger.
    png_compress: int = 1
    #: what one unit of a sample is (the reader's ``Header.unit``): the colour bar's unit
    unit: str = "V"
    #: ``spectrum`` or ``density`` (quicklook/levels.py), None: |FFT|² per bin
    scaling: str | None = None
    #: fixed colour range in dB (``--db-range``) instead of the image's percentiles
    db_range: tuple[float, float] | None = None

    def power_label(self) -> str:
        if self.scaling is not None and self.db:
            from crunchctl.quicklook.levels import db_label

            return db_label(self.unit, self.scaling)
        unit = {"V": "V²", "full scale": "full scale²", "count": "count²"}.get(self.unit)
        if self.db:
            return f"power (dB re 1 {unit} per bin)" if unit else "power (dB per bin)"
        return f"power ({unit} per bin)" if unit else "power (per bin)"


def freq_scale(span_hz: float) -> tuple[float, str]:
    """Divisor and unit for a frequency span: MHz for wide spans, kHz or Hz for narrow."""
    if span_hz >= 2e6:
        return 1e6, "MHz"
    if span_hz >= 2e3:
        return 1e3, "kHz"
    return 1.0, "Hz"


def fmt_hz(value: float) -> str:
    """A frequency in the most readable unit: ``47.7 Hz``, ``12.5 kHz``, ``245.000000 MHz``."""
    v = abs(value)
    if v >= 1e6:
        return f"{value / 1e6:.6f}".rstrip("0").rstrip(".") + " MHz"
    if v >= 1e3:
        return f"{value / 1e3:.3g} kHz"
    return f"{value:.3g} Hz"


def fmt_seconds(value: float) -> str:
    if value >= 1:
        return f"{value:.3g} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3g} ms"
    return f"{value * 1e6:.3g} µs"


def finite_percentiles(
    values: np.ndarray, percentiles: tuple[float, float]
) -> tuple[float, float] | None:
    """Two percentiles of the finite values (a regular subsample of big arrays); None if
    there is no finite value."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    if finite.size > 400_000:  # a regular subsample is plenty for percentiles
        finite = finite[:: finite.size // 200_000]
    lo, hi = np.percentile(finite, percentiles)
    return float(lo), float(hi)


def color_bounds(img: np.ndarray, percentiles: tuple[float, float]) -> tuple[float, float]:
    """Robust colour bounds of an image: percentiles of its finite values."""
    bounds = finite_percentiles(img, percentiles)
    if bounds is None:
        return 0.0, 1.0
    lo, hi = bounds
    if not hi > lo:
        hi = lo + (abs(lo) * 0.01 if lo else 1.0)
    return float(lo), float(hi)


def image_size(style: Style = Style()) -> tuple[int, int]:
    """Pixels of the axes, (width, height): the size the array is max-pooled to."""
    return (int(FIG_SIZE[0] * style.dpi * _AX_RECT[2]), int(FIG_SIZE[1] * style.dpi * _AX_RECT[3]))


def render_spectrogram(
    out: BinaryIO,
    power: np.ndarray,
    freqs: np.ndarray,
    times: np.ndarray,
    *,
    title: str,
    subtitle: str = "",
    relative_to: float | None = None,
    style: Style = Style(),
) -> None:
    """Draw one spectrogram (time down the y axis, frequency along x) and write a PNG.

    Args:
        out: a binary file object the PNG is written to.
        power: (n_times, n_freqs) linear power.
        freqs: absolute frequency of each column, Hz.
        times: time of each row, s (row start).
        title: first title line (file name and acquisition time).
        subtitle: second line (resolution and settings).
        relative_to: if given, the x axis shows the offset from this frequency.
        style: colour map, dB or linear, percentiles, dpi.
    """
    width_px, height_px = image_size(style)
    img = spectrum.pool_max(power, 1, width_px)
    img = spectrum.pool_max(img, 0, height_px)
    render_pooled(
        out, img, freqs, times, title=title, subtitle=subtitle, relative_to=relative_to, style=style
    )


def render_pooled(
    out: BinaryIO,
    img: np.ndarray,
    freqs: np.ndarray,
    times: np.ndarray,
    *,
    title: str,
    subtitle: str = "",
    relative_to: float | None = None,
    style: Style = Style(),
) -> None:
    """Like :func:`render_spectrogram`, from the spectrogram already max-pooled to
    :func:`image_size` (along frequency, then time, as ``spectrum.pool_max`` does).

    ``freqs`` and ``times`` are the axes of the full-resolution spectrogram: the picture
    is the same as :func:`render_spectrogram` draws from the full array. The pooled image
    is not modified.
    """
    pixels = draw_pooled(
        img, freqs, times, title=title, subtitle=subtitle, relative_to=relative_to, style=style
    )
    out.write(encode_png(pixels, style.dpi, style.png_compress))


def draw_pooled(
    img: np.ndarray,
    freqs: np.ndarray,
    times: np.ndarray,
    *,
    title: str,
    subtitle: str = "",
    relative_to: float | None = None,
    style: Style = Style(),
    row_time: float | None = None,
) -> np.ndarray:
    """Draw the figure of :func:`render_pooled` and return its pixels, (height, width, 4)
    uint8 RGBA (a copy: the figure is reused); :func:`encode_png` makes the file.

    ``row_time`` is the time one row stands for (s): it sets the time axis of an image of
    a single row, which has no second row to tell."""
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    n_t, n_f = len(times), len(freqs)
    if style.db:
        with np.errstate(divide="ignore", invalid="ignore"):
            img = 10.0 * np.log10(img, dtype=np.float32)
        img[~np.isfinite(img)] = np.nan
    vmin, vmax = color_bounds(img, style.percentiles)
    if style.db and style.db_range is not None:
        vmin, vmax = style.db_range
    elif style.db and vmax - vmin < MIN_DB_RANGE:
        # Noise alone must not be stretched over the whole colour map: it would look like
        # signal. Keep the floor where it is and extend the top.
        vmax = vmin + MIN_DB_RANGE

    # Cell edges: bins are centred on their frequency; rows start at their time.
    df = (freqs[1] - freqs[0]) if n_f > 1 else 1.0
    span = (freqs[-1] - freqs[0]) + df
    ref = relative_to if relative_to is not None else 0.0
    div, unit = freq_scale(span)
    x0 = (freqs[0] - df / 2 - ref) / div
    x1 = (freqs[-1] + df / 2 - ref) / div
    if n_t > 1:
        dt = times[1] - times[0]
    else:
        dt = row_time if row_time else (times[0] if times[0] > 0 else 1.0)
    y0, y1 = times[0], times[-1] + dt
    # Colour-map the pooled image here, to 8-bit RGBA: matplotlib would do it in float64
    # (about 100 MB of temporaries for a full image); with nearest-neighbour drawing the
    # pixels are the same.
    norm = Normalize(vmin=vmin, vmax=vmax)
    cmap = colormaps[style.cmap]
    rgba = cmap(norm(img), bytes=True)
    del img

    canvas = _Canvas.get(style.dpi)
    try:
        canvas.image.set_data(rgba)
        canvas.image.set_extent((x0, x1, y0, y1))
        canvas.mappable.set_cmap(cmap)
        canvas.mappable.set_norm(norm)
        canvas.colorbar.set_label(style.power_label())
        if relative_to is not None:
            canvas.ax.set_xlabel(f"frequency offset from {fmt_hz(relative_to)} ({unit})")
        else:
            canvas.ax.set_xlabel(f"frequency ({unit})")
        canvas.title.set_text(title)
        canvas.subtitle.set_text(subtitle)
        # What savefig(format="png") draws (same figure, same dpi), without its encoder.
        canvas.fig.canvas.draw()
        pixels = np.array(canvas.fig.canvas.buffer_rgba(), dtype=np.uint8, copy=True)
    except BaseException:
        _Canvas.forget(style.dpi)  # never reuse a figure left in an unknown state
        raise
    canvas.image.set_data(_EMPTY_RGBA)  # do not keep the image alive between drawings
    return pixels


def encode_png(
    pixels: np.ndarray, dpi: float, level: int = 1, text: Mapping[str, str] | None = None
) -> bytes:
    """A PNG file of (height, width, 4) uint8 RGBA pixels, as matplotlib's savefig labels
    it (software, dpi); ``text``: more ``iTXt`` entries (UTF-8), e.g. ``Title``, the picture's
    title lines as text (read back by :func:`png_text`).

    Each row is stored as its difference from the row above (PNG filter "Up", one numpy
    pass) and deflated by zlib, which runs without the GIL: about twice as fast as the
    per-row filter search of the usual encoder for the same file size, and another
    thread can draw meanwhile.
    """
    import struct
    import zlib

    import matplotlib

    height, width, depth = pixels.shape
    if depth != 4 or pixels.dtype != np.uint8:
        raise ValueError("expected (height, width, 4) uint8 pixels")
    rows = np.ascontiguousarray(pixels).reshape(height, width * 4)
    filtered = np.empty((height, width * 4 + 1), dtype=np.uint8)
    filtered[:, 0] = 2  # "Up"; the row above the first counts as zeros
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # modulo 256, as PNG wants

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))
        )

    per_metre = int(dpi / 0.0254 + 0.5)
    software = f"Matplotlib version{matplotlib.__version__}, https://matplotlib.org/"
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)),
            chunk(b"tEXt", b"Software\x00" + software.encode("latin-1")),
            chunk(b"pHYs", struct.pack(">IIB", per_metre, per_metre, 1)),
            *(
                chunk(b"iTXt", key.encode("latin-1") + b"\x00\x00\x00\x00\x00" + value.encode())
                for key, value in (text or {}).items()
                if value
            ),
            chunk(b"IDAT", zlib.compress(memoryview(filtered), level)),
            chunk(b"IEND", b""),
        )
    )


def png_text(path: str | os.PathLike) -> dict[str, str]:
    """The ``iTXt`` entries of a PNG :func:`encode_png` wrote (the chunks before its
    pixels); empty for another PNG or an unreadable file."""
    import struct

    out: dict[str, str] = {}
    try:
        with open(path, "rb") as f:
            if f.read(8) != b"\x89PNG\r\n\x1a\n":
                return out
            while len(head := f.read(8)) == 8:
                size, kind = struct.unpack(">I4s", head)
                if kind in (b"IDAT", b"IEND") or size > 1 << 16:
                    break
                data = f.read(size)
                f.seek(4, 1)  # CRC
                if kind == b"iTXt":
                    key, _, rest = data.partition(b"\x00")
                    if rest[:2] == b"\x00\x00":  # not compressed
                        value = rest[2:].split(b"\x00", 2)[-1]
                        out[key.decode("latin-1")] = value.decode("utf-8", "replace")
    except OSError:
        pass
    return out


_EMPTY_RGBA = np.zeros((1, 1, 4), dtype=np.uint8)


class _Canvas:
    """A figure with its axes, image, colour bar and texts, reused from drawing to drawing.

    Building the axes, colour bar and tick artists is about a third of the cost of a
    drawing; everything that differs between drawings is set anew on each use, so the PNG
    is pixel for pixel the one a fresh figure gives. One per thread and dpi (matplotlib
    figures must not be shared between threads).
    """

    _local = threading.local()

    def __init__(self, dpi: int) -> None:
        from matplotlib import colormaps
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize
        from matplotlib.figure import Figure

        self.fig = Figure(figsize=FIG_SIZE, dpi=dpi)
        FigureCanvasAgg(self.fig)
        self.ax = self.fig.add_axes(_AX_RECT)
        cax = self.fig.add_axes(_CB_RECT)
        self.image = self.ax.imshow(
            _EMPTY_RGBA, origin="lower", aspect="auto", interpolation="nearest"
        )
        self.mappable = ScalarMappable(norm=Normalize(0.0, 1.0), cmap=colormaps["viridis"])
        self.colorbar = self.fig.colorbar(self.mappable, cax=cax)
        self.ax.set_ylabel("time (s)")
        self.ax.ticklabel_format(axis="x", useOffset=False, style="plain")
        self.title = self.fig.text(
            _AX_RECT[0], 0.965, "", fontsize=12, fontweight="bold", ha="left", va="top"
        )
        self.subtitle = self.fig.text(
            _AX_RECT[0], 0.925, "", fontsize=9, ha="left", va="top", color="0.25"
        )

    @classmethod
    def get(cls, dpi: int) -> _Canvas:
        cache = cls._local.__dict__.setdefault("by_dpi", {})
        if dpi not in cache:
            cache[dpi] = cls(dpi)
        return cache[dpi]

    @classmethod
    def forget(cls, dpi: int) -> None:
        cls._local.__dict__.get("by_dpi", {}).pop(dpi, None)


def describe_resolution(
    fs: float, lframes: int, n_avg: int = 1, pooled: int | None = None, window: str | None = None
) -> str:
    """Subtitle text: bin width, frame time, FFT window and averaging."""
    rbw = fs / lframes
    frame_t = lframes / fs
    parts = [f"bin {fmt_hz(rbw)}", f"frame {fmt_seconds(frame_t)}", f"L={lframes}"]
    if window:
        parts.append(f"window {window}")
    if n_avg > 1:
        parts.append(f"averaged x{n_avg} ({fmt_seconds(frame_t * n_avg)})")
    if pooled and pooled > 1:
        parts.append(f"display max of {pooled} bins per column")
    return ", ".join(parts)
