"""One recording in, its products out (streamed): the work a worker does for process/watch.

``process_recording`` is the task function the run engine calls; it never raises for a bad
recording, it returns an error ``Outcome`` with a one-line message instead.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from crunchctl.catalog import Product
from crunchctl.config import Settings
from crunchctl.errors import ItemError, OutputError
from crunchctl.outcome import ERROR, KIND_IQ, OK, Outcome


@dataclass(frozen=True)
class RecordingTask:
    """What a worker needs to process one recording (small and picklable)."""

    path: str
    stem: str
    settings: Settings
    source: str = "process"
    fft_workers: int = 1
    #: Read an incomplete recording as far as it goes (``watch --incomplete-after``).
    partial: bool = False
    #: The product table's entries of the products to make, taken in the main process (a
    #: worker's table may lack products registered there); empty: from the settings.
    products: tuple[Product, ...] = ()
    #: The settings digest of those products (``identity.settings_digest``); "": computed.
    digest: str = ""

    @property
    def item(self) -> str:
        return self.path

    def entries(self) -> tuple[Product, ...]:
        from crunchctl import catalog

        return self.products or catalog.chosen(self.settings.products)

    def settings_digest(self) -> str:
        from crunchctl.identity import settings_digest

        return self.digest or settings_digest(
            self.settings, self.path, [p.name for p in self.entries()]
        )

    def failure(self, message: str, started: float) -> Outcome:
        size, mtime = fingerprint(self.path, self.settings.format)
        return Outcome(
            self.path,
            KIND_IQ,
            self.source,
            ERROR,
            started,
            time.time(),
            size,
            mtime,
            self.settings_digest(),
            [],
            message,
        )


def fingerprint(path: str, forced: str | None = None) -> tuple[int | None, int | None]:
    """(size, mtime_ns) of a recording over all its files (``identity.fingerprint``)."""
    from crunchctl.identity import fingerprint as of_files

    return of_files(path, forced)


def product_path(output: Path, stem: str, kind: str | Product) -> Path:
    """Where product ``kind`` of the recording ``stem`` goes (its ending: ``catalog.py``)."""
    from crunchctl import catalog

    entry = kind if not isinstance(kind, str) else catalog.product(kind)
    return output / f"{stem}{entry.ending}"


def product_paths(output: Path, stem: str) -> tuple[Path, Path, Path]:
    """The full PNG, zoom PNG and NPZ of a recording."""
    return (
        product_path(output, stem, "png"),
        product_path(output, stem, "zoom"),
        product_path(output, stem, "npz"),
    )


def wanted_products(settings: Settings) -> tuple[str, ...]:
    """The products the settings ask for, in the product table's order."""
    return tuple(p.name for p in catalog_chosen(settings))


def catalog_chosen(settings: Settings) -> tuple[Product, ...]:
    from crunchctl import catalog

    return catalog.chosen(settings.products)


def entries_in_order(entries: tuple[Product, ...], made: dict[str, list[str]]) -> list[Product]:
    """The products asked for, and those made for them (the spectrum file of a campaign), in
    the product table's order; entries this process's table lacks (registered in the main
    process only) keep their place at the end."""
    from crunchctl import catalog

    names = {e.name for e in entries} | set(made)
    ordered = [p for p in catalog.products() if p.name in names]
    known = {p.name for p in ordered}
    return ordered + [e for e in entries if e.name not in known]


def _maker(spec: str) -> Callable[..., object]:
    import importlib

    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]


@dataclass
class Recording:
    """An opened recording with the frames the settings take from it."""

    path: str
    reader: object  # formats.base.Reader
    header: object  # formats.base.Header
    options: object  # formats.base.ReadOptions
    nframes: int
    lframes: int
    #: settings clamped to what the recording has (one line each), for the outcome
    notes: list[str] = field(default_factory=list)
    #: what the outcome carries beside its products (the peaks for the ledger)
    extra: dict = field(default_factory=dict)

    @property
    def center(self) -> float:
        return float(self.header.center_frequency)  # type: ignore[attr-defined]

    @property
    def fs(self) -> float:
        return float(self.header.sample_rate)  # type: ignore[attr-defined]

    def freqs(self) -> object:
        from crunchctl.quicklook import spectrum

        return spectrum.frequency_axis(self.center, self.fs, self.lframes)

    def times(self) -> object:
        from crunchctl.quicklook import spectrum

        return spectrum.time_axis(self.nframes, self.lframes, self.fs)

    def blocks(self) -> object:
        return self.reader.blocks(
            self.header,
            self.options,
            0,
            self.nframes,  # type: ignore[attr-defined]
            self.lframes,
        )

    def acquisition_text(self) -> str:
        """The acquisition start as the NPZ stores it: the header's own text where the
        format keeps one (``.tiq``), else ISO 8601; empty if unknown."""
        h = self.header
        raw = h.info.get("datetime") if h.info else None  # type: ignore[attr-defined]
        if raw:
            return str(raw)
        when = h.acquisition_start  # type: ignore[attr-defined]
        return when.isoformat() if when is not None else ""


def open_for(path: str, settings: Settings, *, partial: bool = False) -> Recording:
    """Open a recording through the format registry and check it holds the frames asked for.

    Raises:
        FormatError: unknown format, unreadable or incomplete file, or fewer frames than
            asked for (one line naming the file).
    """
    from crunchctl import formats
    from crunchctl.errors import FormatError
    from crunchctl.formats.base import ReadOptions

    options = ReadOptions.from_settings(settings)
    reader, header = formats.open_recording(path, options, settings.format, partial=partial)
    lframes = settings.lframes
    whole = header.nsamples // lframes
    nframes = settings.nframes if settings.nframes is not None else whole
    if nframes > whole:
        raise FormatError(
            f"{path}: asked for {nframes} frames of {lframes} samples but the "
            f"file holds only {whole} whole frames ({header.nsamples} samples)"
        )
    if nframes == 0:
        raise FormatError(
            f"{path}: holds {header.nsamples} samples, fewer than one frame of {lframes}"
        )
    return Recording(path, reader, header, options, nframes, lframes)


@dataclass
class Spectrogram:
    """A computed spectrogram with its axes and the header it came from."""

    power: object  # np.ndarray (nframes, lframes) float32
    freqs: object  # np.ndarray (lframes,) float64, absolute Hz
    times: object  # np.ndarray (nframes,) float64, s
    header: object  # formats.base.Header
    nframes: int
    lframes: int
    #: the opened recording (``Recording``), for the mean-spectrum products of a batch item
    recording: object = None


def compute(path: str, settings: Settings, *, fft_workers: int = 1) -> Spectrogram:
    """Read a recording and compute its whole power spectrogram in memory (the batch
    loader's entry; the quicklook streams instead, see :func:`make_products`).

    Raises:
        FormatError: the recording cannot be read, or holds fewer frames than asked for.
    """
    import numpy as np

    rec = open_for(path, settings)
    power = np.empty((rec.nframes, rec.lframes), dtype=np.float32)
    row = 0

    def keep(chunk: np.ndarray) -> None:
        nonlocal row
        power[row : row + chunk.shape[0]] = chunk
        row += chunk.shape[0]

    _stream(rec, settings, keep, fft_workers=fft_workers, threaded=False)
    return Spectrogram(power, rec.freqs(), rec.times(), rec.header, rec.nframes, rec.lframes, rec)


def _stream(
    rec: Recording,
    settings: Settings,
    consume: Callable[..., None],
    *,
    fft_workers: int,
    threaded: bool,
) -> None:
    from crunchctl.errors import FormatError
    from crunchctl.quicklook.stream import stream_power

    try:
        stream_power(
            rec.blocks(),
            rec.nframes,
            rec.lframes,
            consume,  # type: ignore[arg-type]
            window_name=settings.window,
            workers=fft_workers,
            threaded=threaded,
        )
    except ValueError as e:  # the reader yielded fewer or more frames than it announced
        raise FormatError(f"{rec.path}: {e}") from None


def title_for(path: str, header: object) -> str:
    """File name and acquisition start; a recording read as far as it goes says so
    (docs/products.md)."""
    acquired = header.acquisition_start  # type: ignore[attr-defined]
    when = acquired.isoformat(sep=" ", timespec="milliseconds") if acquired else "time unknown"
    info = header.info or {}  # type: ignore[attr-defined]
    return f"{Path(path).name}   {when}" + ("   (incomplete)" if info.get("incomplete") else "")


#: What the NPZ's ``keys`` entry says about its arrays.
NPZ_KEYS = (
    "arr_0: frequency (1 x L, Hz); arr_1: frame start time (N x 1, s); "
    "arr_2: power |FFT|^2 (N x L, float32, per bin in the square of the unit in 'unit')"
)


def describe(rec: Recording, settings: Settings) -> dict[str, object]:
    """The self-describing scalar entries of the NPZ and spectrum products."""
    import numpy as np

    return dict(
        source=np.str_(rec.path),
        format=np.str_(rec.header.format),  # type: ignore[attr-defined]
        scaling=np.str_(rec.header.scaling),  # type: ignore[attr-defined]  (docs/formats.md)
        unit=np.str_(rec.header.unit),  # type: ignore[attr-defined]
        center_frequency=np.float64(rec.center),
        sampling_frequency=np.float64(rec.fs),
        lframes=np.int64(rec.lframes),
        nframes=np.int64(rec.nframes),
        window=np.str_(settings.window),
        acquisition_start=np.str_(rec.acquisition_text()),
    )


def make_products(
    path: str,
    output: Path,
    stem: str,
    settings: Settings,
    *,
    fft_workers: int = 1,
    threaded: bool = True,
    partial: bool = False,
    products: tuple[Product, ...] = (),
) -> tuple[list[str], Recording]:
    """Stream one recording into the products the settings ask for; return their paths
    (canonical order) and the opened recording.

    Frames are read and transformed in chunks; each chunk goes to the NPZ (its ``arr_2``
    rows), to the max-pooled full image, to the zoom averager and to the mean spectrum,
    then is dropped. Every file is written under a temp name and renamed when complete
    (after the stream for the NPZ, so a failure leaves no product half-written).

    ``products``: the table's entries to make (default: those the settings ask for).

    Raises:
        FormatError: unreadable recording, or a zoom span outside it.
        OutputError: a product cannot be written.
    """
    import contextlib

    import numpy as np

    from crunchctl.quicklook import levels, meanproducts, render, zoom as zoommod
    from crunchctl.quicklook.npzstream import NpzStream
    from crunchctl.quicklook.products import Flusher, atomic_write
    from crunchctl.quicklook.stream import MaxPooler, MeanSpectrum

    entries = products or catalog_chosen(settings)
    wanted = tuple(p.name for p in entries)
    made: dict[str, list[str]] = {}
    rec = open_for(path, settings, partial=partial)
    freqs, times = rec.freqs(), rec.times()
    style = render.Style(
        cmap=settings.cmap,
        unit=rec.header.unit,
        scaling=settings.scaling,
        db_range=meanproducts.db_range(settings),
    )
    # |FFT|² to the chosen scaling, for every product but the NPZ's legacy numbers.
    factor = levels.power_factor(settings.scaling, settings.window, rec.lframes, rec.fs)
    width, height = render.image_size(style)
    window = None
    if "zoom" in wanted:  # checked before any reading: a bad span fails fast
        window = zoommod.zoom_window(
            path,
            freqs,
            rec.center,
            zoom_center=settings.zoom_center,
            zoom_span=settings.zoom_span,
            n_avg=settings.n_avg,
            nframes=rec.nframes,
        )
        rec.notes.extend(window.notes)

    full = MaxPooler(rec.nframes, rec.lframes, height, width) if "png" in wanted else None
    averager = zoommod.ZoomAverager(window) if window is not None else None
    zoomed = (
        MaxPooler(window.rows, window.stop - window.start, height, width)
        if window is not None
        else None
    )
    # Products with a maker of their own (catalog.py) are fed the same chunks.
    makers = [
        (entry, _maker(entry.maker)(rec, settings)) for entry in entries if entry.maker is not None
    ]
    mean = MeanSpectrum(rec.lframes) if meanproducts.wants_mean(wanted) else None
    described = describe(rec, settings)

    if full is not None or zoomed is not None:
        _warm_up_drawing()
    with contextlib.ExitStack() as files:
        rows = flusher = None
        npz = None
        if "npz" in wanted:
            f = files.enter_context(atomic_write(product_path(output, stem, "npz")))
            npz = NpzStream(f)
            files.callback(npz.abort)  # after close(): nothing left to do
            flusher = Flusher(f)
            files.callback(flusher.close)
            npz.add("arr_0", freqs[np.newaxis, :])
            npz.add("arr_1", times[:, np.newaxis])
            rows = npz.begin("arr_2", np.float32, (rec.nframes, rec.lframes))

        def consume(power: np.ndarray) -> None:
            if rows is not None and flusher is not None:
                rows.write(power)
                flusher.wrote(power.nbytes)
            if full is not None:
                full.add(power)
            if averager is not None and zoomed is not None:
                done = averager.add(power)
                if done is not None:
                    zoomed.add(done)
            for _, maker in makers:
                maker.add(power)  # type: ignore[attr-defined]
            if mean is not None:
                mean.add(power)

        _stream(rec, settings, consume, fft_workers=fft_workers, threaded=threaded)

        finishing = None
        if npz is not None:
            npz.end()
            for key, value in described.items():
                npz.add(key, value)
            npz.add("keys", np.str_(NPZ_KEYS))
            npz.close()
            # The NPZ's last fsync and its rename (disk time) while the pictures are drawn.
            finishing = _Background(files.pop_all().close) if threaded else None
        encoding = None
        try:
            title = title_for(path, rec.header)
            if full is not None:
                res = render.describe_resolution(rec.fs, rec.lframes, window=settings.window)
                subtitle = f"centre {render.fmt_hz(rec.center)}, {res}"
                pixels = render.draw_pooled(
                    full.result() * np.float32(factor),
                    freqs,
                    times,
                    title=title,
                    style=style,
                    row_time=rec.lframes / rec.fs,
                    subtitle=subtitle,
                )
                # Encoded (zlib, without the GIL) and written while the zoom is drawn.
                encoding = _Background(
                    functools.partial(
                        _write_png,
                        product_path(output, stem, "png"),
                        pixels,
                        style,
                        (title, subtitle),
                    )
                )
                if not threaded:
                    encoding.result()
            if averager is not None and zoomed is not None and window is not None:
                last = averager.finish()
                if last is not None:
                    zoomed.add(last)
                zres = render.describe_resolution(
                    rec.fs, rec.lframes, window.n_avg, window=settings.window
                )
                ztitle = (title + "   (zoom)", f"span {render.fmt_hz(window.span)}, {zres}")
                pixels = render.draw_pooled(
                    zoomed.result() * np.float32(factor),
                    window.freqs(freqs),
                    window.times(rec.lframes, rec.fs),
                    title=ztitle[0],
                    subtitle=ztitle[1],
                    relative_to=window.centre,
                    style=style,
                    row_time=window.n_avg * rec.lframes / rec.fs,
                )
                _write_png(product_path(output, stem, "zoom"), pixels, style, ztitle)
            for entry, maker in makers:
                with atomic_write(product_path(output, stem, entry)) as f:
                    maker.write(f)  # type: ignore[attr-defined]
            if mean is not None:
                made, rec.extra = meanproducts.write(
                    output,
                    stem,
                    wanted,
                    settings,
                    freqs=freqs,
                    mean_raw=mean.result(),
                    described=described,
                    rec=rec,
                    title=title,
                )
        finally:
            # Waited for even when something else failed; their errors count too.
            for pending in (encoding, finishing):
                if pending is not None:
                    pending.result()
    paths = []
    for entry in entries_in_order(entries, made):
        if entry.name in made:  # the mean spectrum's files: made for the campaign too
            paths.extend(made[entry.name])
        elif entry.folder is None:  # a folder's product is added in the main process
            paths.append(str(product_path(output, stem, entry)))
    return paths, rec


def _write_png(
    final: Path, pixels: object, style: object, title: tuple[str, str] = ("", "")
) -> None:
    from crunchctl.quicklook import render
    from crunchctl.quicklook.products import atomic_write

    # The title lines as text too: the page shows them, legible at any size.
    data = render.encode_png(
        pixels,
        style.dpi,
        style.png_compress,  # type: ignore[arg-type, attr-defined]
        text={"Title": title[0], "Description": title[1]},
    )
    with atomic_write(final) as f:
        f.write(data)


def _warm_up_drawing() -> None:
    """Import matplotlib's drawing modules in a helper thread while the frames stream (in a
    worker they are imported already; in a one-recording run this overlaps ~0.4 s)."""
    import sys

    if "matplotlib.backends.backend_agg" in sys.modules:
        return

    def load() -> None:
        import contextlib

        with contextlib.suppress(Exception):  # the drawing itself reports a broken install
            import matplotlib.backends.backend_agg  # noqa: F401
            import matplotlib.colorbar  # noqa: F401
            import matplotlib.figure  # noqa: F401

    threading.Thread(target=load, daemon=True, name="crunchctl-mpl-import").start()


class _Background:
    """Run ``fn`` in a thread now; ``result()`` waits and re-raises its exception here."""

    def __init__(self, fn: Callable[[], object]) -> None:
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(fn,), daemon=True, name="crunchctl-finish"
        )
        self._thread.start()

    def _run(self, fn: Callable[[], object]) -> None:
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - handed to the caller by result()
            self._error = e

    def result(self) -> None:
        self._thread.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error


def process_recording(task: RecordingTask) -> Outcome:
    """Process one recording into its products; errors become an error ``Outcome``."""
    started = time.time()
    try:
        size, mtime = fingerprint(task.path, task.settings.format)
        output = task.settings.output_dir()
        products, rec = make_products(
            task.path,
            output,
            task.stem,
            task.settings,
            fft_workers=task.fft_workers,
            partial=task.partial,
            products=task.entries(),
        )
        cut = rec.header.info.get("incomplete") if rec.header.info else None
        notes = (
            [f"incomplete: processed the {rec.nframes} whole frames present ({cut})"] if cut else []
        )
        notes += rec.notes
        warning = "; ".join(notes) or None
        return Outcome(
            task.path,
            KIND_IQ,
            task.source,
            OK,
            started,
            time.time(),
            size,
            mtime,
            task.settings_digest(),
            products,
            None,
            {"nframes": rec.nframes, "center": rec.center, **rec.extra},
            warning=warning,
        )

    except ItemError as e:
        message = str(e)
        if not message.startswith(task.path):
            # e.g. "<output>/a.png: cannot write: No space left on device": say which item.
            message = f"{task.path}: {message}"
        outcome = task.failure(message, started)
        if isinstance(e, OutputError):
            outcome.extra["retry"] = True  # the output side failed, not the recording
        return outcome
    except MemoryError:
        return task.failure(f"{task.path}: out of memory", started)
    except OSError as e:
        where = e.filename or task.path
        return task.failure(f"{where}: {e.strerror or e}", started)
