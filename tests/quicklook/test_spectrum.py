"""Spectrogram numerics against a straightforward float64 reference (docs/formats.md)."""

from __future__ import annotations

import numpy as np
import pytest

from crunchctl.formats import tiq
from crunchctl.quicklook import spectrum


def _legacy(path, lframes, nframes):
    h = tiq.open_recording(path)
    raw = np.fromfile(path, dtype=h.dtype, offset=h.offset, count=2 * lframes * nframes)
    frames = (raw.astype(np.float64) * h.scaling).view(np.complex128).reshape(nframes, lframes)
    return np.abs(np.fft.fftshift(np.fft.fft(frames, axis=1), axes=1)) ** 2, h


@pytest.mark.parametrize("lframes,chunk", [(1024, 1), (1024, 4), (1000, 3), (1023, 2)])
def test_power_equals_the_legacy_formula(make_tiq, lframes, chunk):
    path = make_tiq("p.tiq", nframes=6, lframes=1024)
    nframes = (6 * 1024) // lframes
    ref, h = _legacy(path, lframes, nframes)
    got = spectrum.power_spectrogram(
        tiq.iter_frames(h, lframes, nframes, chunk_frames=chunk), nframes, lframes
    )
    assert got.dtype == np.float32 and got.shape == (nframes, lframes)
    # float32 rounding of samples, FFT and square: relative to each frame's total power.
    scale = ref.sum(axis=1, keepdims=True)
    assert np.max(np.abs(got - ref) / scale) < 1e-6
    # The strong line lands in the same bin.
    assert np.array_equal(got.argmax(axis=1), ref.argmax(axis=1))


def test_axes_follow_the_design_formulas():
    f = spectrum.frequency_axis(245e6, 3.125e6, 65536)
    assert f.dtype == np.float64
    assert f[32768] == 245e6
    assert f[0] == 245e6 - 3.125e6 / 2
    assert f[1] - f[0] == pytest.approx(3.125e6 / 65536)
    t = spectrum.time_axis(10, 65536, 3.125e6)
    assert t[3] == pytest.approx(3 * 65536 / 3.125e6)
    assert len(spectrum.time_axis(10, 8, 1.0, step=3)) == 3


def test_line_lands_at_its_frequency(make_tiq):
    from crunchctl.formats.synth import Line

    path = make_tiq("l.tiq", nframes=2, lframes=1024, lines=(Line(250e3, 1e-2),))
    h = tiq.open_recording(path)
    p = spectrum.power_spectrogram(tiq.iter_frames(h, 1024, 2), 2, 1024)
    f = spectrum.frequency_axis(h.center, h.fs, 1024)
    assert abs(f[p[0].argmax()] - (h.center + 250e3)) <= h.fs / 1024


def test_windows_change_leakage_not_the_peak(make_tiq):
    h = tiq.open_recording(make_tiq("w.tiq", nframes=2))
    rect = spectrum.power_spectrogram(tiq.iter_frames(h, 1024, 2), 2, 1024)
    hann = spectrum.power_spectrogram(tiq.iter_frames(h, 1024, 2), 2, 1024, window_name="hann")
    assert rect.argmax() == hann.argmax()
    assert not np.allclose(rect, hann)
    with pytest.raises(ValueError, match="unknown window"):
        spectrum.window("kaiser", 8)


def test_average_frames_groups_and_drops_the_partial_tail():
    p = np.arange(7 * 2, dtype=np.float32).reshape(7, 2)
    a = spectrum.average_frames(p, 3)
    assert a.shape == (2, 2)
    np.testing.assert_allclose(a[0], p[:3].mean(axis=0))
    assert spectrum.average_frames(p, 10).shape == (1, 2)
    assert spectrum.average_frames(p, 1) is p


def test_max_pooling_keeps_a_one_bin_line():
    a = np.ones((5, 10_000), dtype=np.float32)
    a[:, 7777] = 1e6
    pooled = spectrum.pool_max(a, 1, 300)
    assert pooled.shape[1] <= 301
    assert (pooled.max(axis=1) == 1e6).all()
    assert spectrum.pool_axis(np.arange(10_000), 10_000, 300).shape[0] == pooled.shape[1]
    tall = spectrum.pool_max(a, 0, 2)
    assert tall.shape == (2, 10_000) or tall.shape == (3, 10_000)
    assert tall[:, 7777].min() == 1e6


def test_zoom_slice_selects_the_span():
    f = spectrum.frequency_axis(100e6, 1e6, 1000)
    sl = spectrum.zoom_slice(f, 100e6 + 100e3, 50e3)
    assert f[sl][0] >= 100e6 + 75e3 - 1 and f[sl][-1] <= 100e6 + 125e3 + 1
    assert 45 <= sl.stop - sl.start <= 52
