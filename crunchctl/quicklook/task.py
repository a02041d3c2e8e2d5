"""One recording in, three products out: the work a worker process does for process/watch.

``process_recording`` is the task function the run engine calls; it never raises for a bad
recording, it returns an error ``Outcome`` with a one-line message instead.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from crunchctl.config import Settings
from crunchctl.errors import ItemError, OutputError
from crunchctl.run.outcome import ERROR, KIND_IQ, OK, Outcome


@dataclass(frozen=True)
class RecordingTask:
    """What a worker needs to process one recording (small and picklable)."""

    path: str
    stem: str
    settings: Settings
    source: str = "process"
    fft_workers: int = 1

    @property
    def item(self) -> str:
        return self.path

    def failure(self, message: str, started: float) -> Outcome:
        size, mtime = fingerprint(self.path)
        return Outcome(self.path, KIND_IQ, self.source, ERROR, started, time.time(),
                       size, mtime, self.settings.product_digest(), [], message)


def fingerprint(path: str) -> tuple[int | None, int | None]:
    """(size, mtime_ns) of a file, or (None, None) if it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None, None
    return st.st_size, st.st_mtime_ns


def product_paths(output: Path, stem: str) -> tuple[Path, Path, Path]:
    """The three products of a recording: full PNG, zoom PNG, NPZ."""
    return output / f"{stem}.png", output / f"{stem}_zoom.png", output / f"{stem}.npz"


@dataclass
class Spectrogram:
    """A computed spectrogram with its axes and the header it came from."""

    power: object  # np.ndarray (nframes, lframes) float32
    freqs: object  # np.ndarray (lframes,) float64, absolute Hz
    times: object  # np.ndarray (nframes,) float64, s
    header: object  # tiq.TiqHeader
    nframes: int
    lframes: int


def compute(path: str, settings: Settings, *, fft_workers: int = 1) -> Spectrogram:
    """Read a recording and compute its power spectrogram per the settings.

    Raises:
        TiqError: the recording cannot be read, or holds fewer frames than asked for.
    """
    from crunchctl.quicklook import spectrum
    from crunchctl.formats import tiq
    from crunchctl.errors import TiqError

    header = tiq.open_recording(path)
    lframes = settings.lframes
    whole = header.nsamples // lframes
    nframes = settings.nframes if settings.nframes is not None else whole
    if nframes > whole:
        raise TiqError(f"{path}: asked for {nframes} frames of {lframes} samples but the "
                       f"file holds only {whole} whole frames ({header.nsamples} samples)")
    if nframes == 0:
        raise TiqError(f"{path}: holds {header.nsamples} samples, fewer than one frame of "
                       f"{lframes}")
    chunks = tiq.iter_raw_frames(header, lframes, nframes)
    power = spectrum.power_spectrogram_raw(chunks, nframes, lframes, scale=header.scaling,
                                           window_name=settings.window, workers=fft_workers)
    freqs = spectrum.frequency_axis(header.center, header.fs, lframes)
    times = spectrum.time_axis(nframes, lframes, header.fs)
    return Spectrogram(power, freqs, times, header, nframes, lframes)


def title_for(path: str, header: object) -> str:
    acquired = header.acquired_at()  # type: ignore[attr-defined]
    when = acquired.isoformat(sep=" ", timespec="milliseconds") if acquired else "time unknown"
    return f"{Path(path).name}   {when}"


def write_products(spec: Spectrogram, path: str, output: Path, stem: str,
                   settings: Settings) -> list[str]:
    """Write ``<stem>.png``, ``<stem>_zoom.png`` and ``<stem>.npz`` atomically.

    The NPZ is written by a helper thread while the images are drawn (writing is mostly
    crc32 and copies into the page cache, which run without the GIL).
    """
    import numpy as np

    from crunchctl.quicklook import render, spectrum
    from crunchctl.errors import TiqError
    from crunchctl.quicklook.products import atomic_write, write_npz

    header = spec.header
    full_png, zoom_png, npz = product_paths(output, stem)
    zoom_centre = header.center + settings.zoom_center  # type: ignore[attr-defined]
    sl = spectrum.zoom_slice(spec.freqs, zoom_centre, settings.zoom_span)
    if sl.stop - sl.start < 2:
        raise TiqError(
            f"{path}: zoom window {render.fmt_hz(settings.zoom_span)} around "
            f"{render.fmt_hz(zoom_centre)} lies outside the recording's span "
            f"({render.fmt_hz(spec.freqs[0])} to {render.fmt_hz(spec.freqs[-1])})")

    arrays = dict(
        arr_0=spec.freqs[np.newaxis, :],
        arr_1=spec.times[:, np.newaxis],
        arr_2=spec.power,
        source=np.str_(path),
        center_frequency=np.float64(header.center),  # type: ignore[attr-defined]
        sampling_frequency=np.float64(header.fs),  # type: ignore[attr-defined]
        lframes=np.int64(spec.lframes),
        nframes=np.int64(spec.nframes),
        window=np.str_(settings.window),
        acquisition_start=np.str_(header.datetime or ""),  # type: ignore[attr-defined]
        keys=np.str_("arr_0: frequency (1 x L, Hz); arr_1: frame start time (N x 1, s); "
                     "arr_2: power |FFT|^2 (N x L, V^2 per bin, float32)"),
    )

    def write_arrays() -> None:
        with atomic_write(npz) as f:
            write_npz(f, arrays)

    npz_writer = _Background(write_arrays)
    try:
        style = render.Style(cmap=settings.cmap)
        title = title_for(path, header)
        res = render.describe_resolution(header.fs, spec.lframes)  # type: ignore[attr-defined]
        info = f"centre {render.fmt_hz(header.center)}, {res}"  # type: ignore[attr-defined]
        with atomic_write(full_png) as f:
            render.render_spectrogram(f, spec.power, spec.freqs, spec.times, title=title,
                                      subtitle=info, style=style)

        averaged = spectrum.average_frames(spec.power[:, sl], settings.n_avg)
        ztimes = spectrum.time_axis(spec.nframes, spec.lframes, header.fs, settings.n_avg)[
            : averaged.shape[0]]
        zres = render.describe_resolution(header.fs, spec.lframes, settings.n_avg)
        with atomic_write(zoom_png) as f:
            render.render_spectrogram(
                f, averaged, spec.freqs[sl], ztimes, title=title + "   (zoom)",
                subtitle=f"span {render.fmt_hz(settings.zoom_span)}, {zres}",
                relative_to=zoom_centre, style=style)
    finally:
        npz_writer.result()  # wait for it even when drawing failed; its error counts too
    return [str(full_png), str(zoom_png), str(npz)]


class _Background:
    """Run ``fn`` in a thread now; ``result()`` waits and re-raises its exception here."""

    def __init__(self, fn: Callable[[], None]) -> None:
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True,
                                        name="crunchctl-npz")
        self._thread.start()

    def _run(self, fn: Callable[[], None]) -> None:
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
        size, mtime = fingerprint(task.path)
        output = task.settings.output_dir()
        spec = compute(task.path, task.settings, fft_workers=task.fft_workers)
        products = write_products(spec, task.path, output, task.stem, task.settings)
        return Outcome(task.path, KIND_IQ, task.source, OK, started, time.time(), size, mtime,
                       task.settings.product_digest(), products, None,
                       {"nframes": spec.nframes, "center": spec.header.center})  # type: ignore[attr-defined]
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
