"""Spectrogram numerics: frames to power, axes, averaging, zoom selection, pooling.

Pure functions on arrays (DESIGN section 4): no paths, clocks or printing.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

WINDOWS = ("rectangular", "hann", "hamming", "blackman")

try:  # scipy's pocketfft runs complex64 natively and threads; numpy's is the fallback.
    import scipy.fft as _fft

    def _fft_rows(x: np.ndarray, workers: int) -> np.ndarray:
        return _fft.fft(x, axis=1, overwrite_x=True, workers=workers)

except ImportError:  # pragma: no cover - scipy is a declared dependency

    def _fft_rows(x: np.ndarray, workers: int) -> np.ndarray:
        return np.fft.fft(x, axis=1).astype(np.complex64, copy=False)


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


def power_spectrogram(
    chunks: Iterable[np.ndarray],
    nframes: int,
    lframes: int,
    *,
    window_name: str = "rectangular",
    workers: int = 1,
) -> np.ndarray:
    """Power spectrogram |FFT|^2, fft-shifted, float32, shape (nframes, lframes).

    ``chunks`` yields complex64 arrays of shape (k, lframes) whose k add up to ``nframes``.
    Peak memory is the result plus one chunk's working set.
    """
    out = np.empty((nframes, lframes), dtype=np.float32)
    win = window(window_name, lframes)
    half = lframes // 2
    rest = lframes - half
    row = 0
    for chunk in chunks:
        k = chunk.shape[0]
        if win is not None:
            chunk = chunk * win
        spec = _fft_rows(chunk, workers)
        re_im = spec.view(np.float32).reshape(k, lframes, 2)
        power = np.einsum("ijk,ijk->ij", re_im, re_im)
        # fftshift: output bin j holds input bin (j - L//2) mod L.
        out[row : row + k, :half] = power[:, rest:]
        out[row : row + k, half:] = power[:, :rest]
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


def pool_max(a: np.ndarray, axis: int, target: int) -> np.ndarray:
    """Max-pool ``a`` along ``axis`` down to at most about ``target`` cells.

    A line one bin wide stays at full height in its pooled cell, so it stays visible after
    the reduction to screen resolution.
    """
    n = a.shape[axis]
    if target <= 0 or n <= target:
        return a
    factor = -(-n // target)
    full = (n // factor) * factor
    a = np.moveaxis(a, axis, -1)
    head = a[..., :full].reshape(*a.shape[:-1], full // factor, factor).max(axis=-1)
    if full < n:
        tail = a[..., full:].max(axis=-1, keepdims=True)
        head = np.concatenate([head, tail], axis=-1)
    return np.moveaxis(head, -1, axis)


def pool_axis(x: np.ndarray, n: int, target: int) -> np.ndarray:
    """Axis values of the cells made by :func:`pool_max` (first value of each cell)."""
    if target <= 0 or n <= target:
        return x
    factor = -(-n // target)
    return x[::factor]
