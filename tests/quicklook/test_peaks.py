"""Lines found on synthetic mean spectra with known lines, and the scaling of power."""

from __future__ import annotations

import numpy as np
import pytest

from crunchctl.quicklook import levels, peaks, spectrum

FS = 1.0e6
L = 4096
CENTER = 100.0e6


def _mean_spectrum(tones, *, noise=1e-5, frames=16, window="hann", seed=3):
    """Mean |FFT|² of ``frames`` frames of complex tones (offset Hz, amplitude V) in noise."""
    rng = np.random.default_rng(seed)
    n = frames * L
    t = np.arange(n) / FS
    x = (rng.standard_normal(n) + 1j * rng.standard_normal(n)) * noise / np.sqrt(2)
    for offset, amp in tones:
        x += amp * np.exp(2j * np.pi * offset * t)
    power = spectrum.power_spectrogram(
        [x.reshape(frames, L).astype(np.complex64)], frames, L, window_name=window
    )
    factor = levels.power_factor("spectrum", window, L, FS)
    return spectrum.frequency_axis(CENTER, FS, L), power.mean(axis=0, dtype=np.float64) * factor


def test_known_lines_are_found_strongest_first_between_bins_with_their_power():
    df = FS / L
    tones = [(100.3 * df, 1e-3), (-200.6 * df, 1e-2), (50.0 * df, 3e-4)]
    freqs, power = _mean_spectrum(tones)
    found = peaks.find_peaks(freqs, power, max_lines=10, min_snr_db=10.0)
    assert [round((p.frequency_hz - CENTER) / df, 1) for p in found] == pytest.approx(
        [-200.6, 100.3, 50.0], abs=0.1
    )
    # Spectrum scaling: a tone of amplitude A reads A² (within the hann window's scalloping
    # of an off-bin tone after the parabola, well under 1 dB).
    for p, amp in zip(found, (1e-2, 1e-3, 3e-4)):
        assert p.power_db == pytest.approx(20 * np.log10(amp), abs=0.5)
    # Hann: the main lobe's half-power width is 1.44 bins.
    for p in found:
        assert 1.0 * df < p.fwhm_hz < 2.0 * df
    floor = np.median(10 * np.log10(power))
    assert found[0].snr_db == pytest.approx(found[0].power_db - floor, abs=1e-9)


def test_at_most_n_lines_and_only_those_above_the_threshold():
    df = FS / L
    tones = [(k * 150 * df - 1000 * df, 1e-3 * (k + 1)) for k in range(12)]
    freqs, power = _mean_spectrum(tones)
    assert len(peaks.find_peaks(freqs, power, max_lines=5)) == 5
    found = peaks.find_peaks(freqs, power, max_lines=20)
    assert len(found) == 12
    assert [p.power_db for p in found] == sorted((p.power_db for p in found), reverse=True)
    # A weak line (about 6 dB over the median) is not a line at 10 dB, and is one at 3 dB.
    freqs, power = _mean_spectrum([(300 * df, 2.2e-5 / np.sqrt(L / 2.7))])
    snr = peaks.find_peaks(freqs, power, min_snr_db=3.0)
    assert snr and 3.0 <= snr[0].snr_db < 10.0
    assert peaks.find_peaks(freqs, power, min_snr_db=10.0) == []


def test_noise_alone_has_no_lines_and_degenerate_spectra_do_not_crash():
    freqs, power = _mean_spectrum([])
    assert peaks.find_peaks(freqs, power) == []
    assert peaks.find_peaks(freqs, np.zeros(L)) == []
    assert peaks.find_peaks(freqs[:2], power[:2]) == []
    assert peaks.find_peaks(freqs, np.full(L, np.nan)) == []


def test_csv_has_one_header_line_and_one_line_per_peak():
    freqs, power = _mean_spectrum([(1e4, 1e-3), (-3e4, 1e-3)])
    found = peaks.find_peaks(freqs, power)
    text = peaks.to_csv(found).splitlines()
    assert text[0] == "frequency_hz,power_db,fwhm_hz,snr_db"
    assert len(text) == 3
    assert float(text[1].split(",")[0]) == pytest.approx(found[0].frequency_hz, abs=1e-5)


def test_density_divides_by_the_sample_rate_and_the_windows_noise_bandwidth():
    w = np.hanning(L)
    enbw = L * np.sum(w**2) / np.sum(w) ** 2  # bins
    spec = levels.power_factor("spectrum", "hann", L, FS)
    dens = levels.power_factor("density", "hann", L, FS)
    assert dens == pytest.approx(spec / (FS / L * enbw), rel=1e-6)
    # The noise floor in density scaling is the noise power per Hz whatever L is.
    for length in (1024, 8192):
        rng = np.random.default_rng(1)
        x = rng.standard_normal(64 * length) + 1j * rng.standard_normal(64 * length)
        p = spectrum.power_spectrogram(
            [x.reshape(64, length).astype(np.complex64)], 64, length, window_name="hann"
        ).mean()
        assert p * levels.power_factor("density", "hann", length, FS) == pytest.approx(
            2.0 / FS, rel=0.05
        )
    assert levels.db_label("V", "density") == "power density (dB re 1 V²/Hz)"
    assert levels.db_label("V", "spectrum") == "power (dB re 1 V²)"


def test_strongest_first_is_by_the_reported_power():
    df = FS / L
    # Two lines of nearly equal power, one on a bin and one between bins: the bin values
    # and the refined tops order them differently.
    freqs, power = _mean_spectrum([(100.0 * df, 1.0e-3), (300.5 * df, 1.05e-3)], noise=1e-7)
    found = peaks.find_peaks(freqs, power)
    assert [p.power_db for p in found] == sorted((p.power_db for p in found), reverse=True)
    assert round((found[0].frequency_hz - CENTER) / df, 1) == 300.5
