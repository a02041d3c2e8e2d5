"""Spectrogram numerics: frames to power, axes, averaging, zoom selection, pooling.

Pure functions on arrays: no paths, clocks or printing.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from crunchctl.config import WINDOWS

_fft_impl = None


def load_fft() -> None:
    """Load the FFT backend now (it is loaded on first use otherwise).

    scipy's pocketfft runs complex64 natively (about 3x numpy's speed here, numpy's own
    complex64 FFT being slower than its complex128 one) and threads over rows; numpy is
    the fallback. Rendering-only callers never pay for it.
    """
    global _fft_impl
    if _fft_impl is not None:
        return
    c2c = _pocketfft_c2c()
    if c2c is not None:

        def impl(a: np.ndarray, w: int) -> np.ndarray:
            # What scipy.fft.fft(a, axis=1, overwrite_x=True, workers=w) calls for a
            # complex64 array: forward, no normalisation, in place.
            return c2c(a, (1,), True, 0, a, w)

    else:  # pragma: no cover - scipy is a declared dependency

        def impl(a: np.ndarray, w: int) -> np.ndarray:
            return np.fft.fft(a, axis=1).astype(np.complex64, copy=False)

    _fft_impl = impl


_POCKETFFT = "scipy.fft._pocketfft.pypocketfft"


def _pocketfft_c2c():  # noqa: ANN202 - a C function
    """scipy's pocketfft ``c2c``, without importing ``scipy.fft`` if it is not loaded yet.

    Importing ``scipy.fft`` imports ``scipy.special`` and the array-API layer: 0.3-0.5 s
    of CPU per process for one function. The extension module itself loads in 2 ms; it is
    registered under its own name, so a later ``import scipy.fft`` reuses it. The kernel
    and its arguments are those of ``scipy.fft.fft``: the numbers are the same. Falls back
    to the ordinary import if the layout of the installed scipy differs.
    """
    import sys

    mod = sys.modules.get(_POCKETFFT)
    if mod is None and "scipy.fft" not in sys.modules:
        try:
            import importlib.machinery
            import importlib.util
            from pathlib import Path

            spec = importlib.util.find_spec("scipy")
            if spec is not None and spec.submodule_search_locations:
                folder = Path(list(spec.submodule_search_locations)[0]) / "fft" / "_pocketfft"
                for so in sorted(folder.glob("pypocketfft*")):
                    if not any(str(so).endswith(s) for s in importlib.machinery.EXTENSION_SUFFIXES):
                        continue
                    loader = importlib.machinery.ExtensionFileLoader(_POCKETFFT, str(so))
                    found = importlib.util.spec_from_file_location(
                        _POCKETFFT, str(so), loader=loader
                    )
                    if found is None:
                        continue
                    mod = importlib.util.module_from_spec(found)
                    loader.exec_module(mod)
                    sys.modules[_POCKETFFT] = mod
                    break
        except Exception:  # noqa: BLE001 - any surprise: the ordinary import below
            mod = None
    if mod is None:
        try:
            import scipy.fft  # noqa: F401

            mod = sys.modules.get(_POCKETFFT)
        except ImportError:  # pragma: no cover
            return None
    c2c = getattr(mod, "c2c", None)
    return c2c


def _fft_rows(x: np.ndarray, workers: int) -> np.ndarray:
    """FFT along axis 1, in place when the backend can (the result may be ``x`` itself)."""
    if _fft_impl is None:
        load_fft()
    return _fft_impl(x, workers)  # type: ignore[misc]


def window(name: str, length: int) -> np.ndarray | None:
    """The window of that name as float32, or None for rectangular (nothing to multiply)."""
    if name == "rectangular":
        return None
    if name == "hann":
        return np.hanning(length).astype(np.float32)
    if name == "hamming":
        return np.hamming(length).astype(np.float32)
    if name == "blackman":
        return np.blackman(length).astype(np.float32)
    raise ValueError(f"unknown window {name!r}; choose one of {', '.join(WINDOWS)}")


def _weights(lframes: int, window_name: str, scale: float) -> tuple[np.ndarray, bool]:
    """Per-component input weights (2 * lframes float32) and whether they do the fftshift.

    For even ``lframes``, multiplying sample n by (-1)^n moves FFT bin k to k + L/2, which
    is exactly ``fftshift``: the shift then costs nothing (no copy of the output). The
    scaling to volts and the window ride on the same multiplication.
    """
    w = np.full(lframes, float(scale), dtype=np.float64)
    win = window(window_name, lframes)
    if win is not None:
        w *= win.astype(np.float64)
    modulated = lframes % 2 == 0
    if modulated:
        w[1::2] *= -1.0
    return np.repeat(w, 2).astype(np.float32), modulated


def power_spectrogram(
    chunks: Iterable[np.ndarray],
    nframes: int,
    lframes: int,
    *,
    window_name: str = "rectangular",
    workers: int = 1,
) -> np.ndarray:
    """Power spectrogram |FFT|^2, fft-shifted, float32, shape (nframes, lframes).

    ``chunks`` yields complex arrays of shape (k, lframes) whose k add up to ``nframes``
    (they are not modified). Peak memory is the result plus one chunk's working set.
    """
    return _spectrogram(
        chunks, nframes, lframes, scale=1.0, window_name=window_name, workers=workers, raw=False
    )


def power_spectrogram_raw(
    chunks: Iterable[np.ndarray],
    nframes: int,
    lframes: int,
    *,
    scale: float,
    window_name: str = "rectangular",
    workers: int = 1,
) -> np.ndarray:
    """Like :func:`power_spectrogram`, from unscaled I, Q pairs (``tiq.iter_raw_frames``).

    ``chunks`` yields real arrays of shape (k, 2 * lframes) (I0, Q0, I1, Q1, ...) of any
    number type; each is multiplied by ``scale`` (volts per count) in float32. Conversion,
    scaling, window and fftshift are one pass over the chunk: the fast path for files.
    """
    return _spectrogram(
        chunks, nframes, lframes, scale=scale, window_name=window_name, workers=workers, raw=True
    )


class FramePower:
    """Frames to power one chunk at a time: the one transform every path uses.

    ``data`` is real interleaved I, Q pairs, shape (k, 2 * lframes), of any number type, or
    complex, shape (k, lframes); the samples are ``data * scale``. Conversion, scaling,
    window and fftshift are one pass over the chunk into a reused complex64 buffer; the
    result is |FFT|^2, fft-shifted, float32, shape (k, lframes). Rows are independent, so
    the numbers do not depend on how the frames are cut into chunks.
    """

    def __init__(self, lframes: int, window_name: str = "rectangular", workers: int = 1) -> None:
        self.lframes = lframes
        self.window_name = window_name
        self.workers = workers
        window(window_name, 2)  # an unknown window fails here, before any reading
        self._weights: dict[float, tuple[np.ndarray, bool]] = {}
        self._work: np.ndarray | None = None

    def weights(self, scale: float) -> tuple[np.ndarray, bool]:
        w = self._weights.get(scale)
        if w is None:
            if len(self._weights) > 64:  # per-block gains: keep the cache small
                self._weights.clear()
            w = self._weights[scale] = _weights(self.lframes, self.window_name, scale)
        return w

    def __call__(
        self, data: np.ndarray, scale: float = 1.0, out: np.ndarray | None = None
    ) -> np.ndarray:
        lframes = self.lframes
        data = np.asarray(data)
        k = data.shape[0]
        if np.iscomplexobj(data):
            data = np.ascontiguousarray(data).reshape(k, lframes)
            pairs = data.view(data.real.dtype)
        else:
            pairs = data.reshape(k, 2 * lframes)
        weights, shifted = self.weights(float(scale))
        if self._work is None or self._work.shape[0] < k:
            self._work = np.empty((k, lframes), dtype=np.complex64)
        buf = self._work[:k]
        # int/float -> float32 volts x window x (-1)^n, straight into the FFT buffer.
        np.multiply(pairs, weights, out=buf.view(np.float32), dtype=np.float32, casting="unsafe")
        spec = _fft_rows(buf, self.workers)
        comps = spec.view(np.float32)
        np.square(comps, out=comps)
        dest = np.empty((k, lframes), dtype=np.float32) if out is None else out
        if shifted:
            np.add(comps[:, 0::2], comps[:, 1::2], out=dest)
        else:  # odd length: shift by copying the two halves
            # fftshift: output bin j holds input bin (j - L//2) mod L.
            half = lframes // 2
            rest = lframes - half
            np.add(comps[:, 2 * rest :: 2], comps[:, 2 * rest + 1 :: 2], out=dest[:, :half])
            np.add(comps[:, : 2 * rest : 2], comps[:, 1 : 2 * rest : 2], out=dest[:, half:])
        return dest


def _spectrogram(
    chunks: Iterable[np.ndarray],
    nframes: int,
    lframes: int,
    *,
    scale: float,
    window_name: str,
    workers: int,
    raw: bool,
) -> np.ndarray:
    transform = FramePower(lframes, window_name, workers)
    out = np.empty((nframes, lframes), dtype=np.float32)
    row = 0
    for chunk in chunks:
        chunk = np.asarray(chunk)
        k = chunk.shape[0]
        if row + k > nframes:
            raise ValueError(f"got more than {nframes} frames")
        if not raw and not np.iscomplexobj(chunk):
            chunk = chunk.astype(np.complex64)
        transform(chunk, scale if raw else 1.0, out=out[row : row + k])
        row += k
    if row != nframes:
        raise ValueError(f"got {row} frames, expected {nframes}")
    return out


def frequency_axis(center: float, fs: float, lframes: int) -> np.ndarray:
    """Absolute frequency of each shifted bin, Hz, float64: center + (k - L/2) * fs / L."""
    return center + (np.arange(lframes, dtype=np.float64) - lframes / 2) * (fs / lframes)


def time_axis(nframes: int, lframes: int, fs: float, step: int = 1) -> np.ndarray:
    """Start time of each (averaged) frame, s: frame * L / fs."""
    return np.arange(0, nframes, step, dtype=np.float64)[: max(1, nframes // step)] * (lframes / fs)


def average_frames(power: np.ndarray, n_avg: int) -> np.ndarray:
    """Mean over groups of ``n_avg`` consecutive frames; a trailing partial group is dropped.

    With fewer frames than ``n_avg``, all frames are averaged into one row.
    """
    if n_avg <= 1:
        return power
    n = power.shape[0]
    groups = n // n_avg
    if groups == 0:
        return power.mean(axis=0, keepdims=True, dtype=np.float64).astype(np.float32)
    return (
        power[: groups * n_avg]
        .reshape(groups, n_avg, power.shape[1])
        .mean(axis=1, dtype=np.float64)
        .astype(np.float32)
    )


def zoom_slice(freqs: np.ndarray, center: float, span: float) -> slice:
    """Index range of the bins within ``span`` around ``center`` (absolute Hz)."""
    lo = int(np.searchsorted(freqs, center - span / 2, side="left"))
    hi = int(np.searchsorted(freqs, center + span / 2, side="right"))
    return slice(lo, max(lo, hi))


def pool_max(a: np.ndarray, axis: int, target: int, *, ignore_nan: bool = False) -> np.ndarray:
    """Max-pool ``a`` along ``axis`` down to at most about ``target`` cells.

    A line one bin wide stays at full height in its pooled cell, so it stays visible after
    the reduction to screen resolution. With ``ignore_nan`` a cell is NaN only when all its
    inputs are (batch data marks missing cells with NaN).
    """
    n = a.shape[axis]
    if target <= 0 or n <= target:
        return a
    factor = -(-n // target)
    # Cells of ``factor`` elements, the last one shorter if n is not a multiple of it.
    # reduceat is about twice as fast as a reshape and max over a short inner axis.
    reduce = np.fmax if ignore_nan else np.maximum
    return reduce.reduceat(a, np.arange(0, n, factor), axis=axis)


def pool_axis(x: np.ndarray, n: int, target: int) -> np.ndarray:
    """Axis values of the cells made by :func:`pool_max` (first value of each cell)."""
    if target <= 0 or n <= target:
        return x
    factor = -(-n // target)
    return x[::factor]
