"""The campaign's arrays on their own: the common axis, max-pooling, rows in time order."""

from __future__ import annotations

import numpy as np

from crunchctl.night import campaign
from crunchctl.quicklook.spectrum import frequency_axis


def _spectrum(item, center, fs, lframes, t, line_hz=None, level=1e-12):
    freqs = frequency_axis(center, fs, lframes)
    power = np.full(lframes, level)
    if line_hz is not None:
        power[np.argmin(np.abs(freqs - line_hz))] = 1e-6
    return campaign.Spectrum(item, freqs, power, t, 1.0, "V²")


def test_a_fine_spectrum_is_max_pooled_to_4096_bins_and_keeps_a_one_bin_line():
    c = campaign.Campaign.empty("V²")
    c.add(_spectrum("/r/a.tiq", 245e6, 3.125e6, 65536, 100.0, line_hz=245.123456e6))
    assert c.freqs.size == campaign.MAX_BINS and c.power.shape == (1, campaign.MAX_BINS)
    step = c.freqs[1] - c.freqs[0]
    assert step == 3.125e6 / campaign.MAX_BINS
    top = int(np.nanargmax(c.power[0]))
    assert c.power[0, top] == np.float32(1e-6)
    assert abs(c.freqs[top] - 245.123456e6) <= step / 2


def test_rows_follow_acquisition_and_a_wider_recording_regrids_the_others():
    c = campaign.Campaign.empty("V²")
    c.add(_spectrum("/r/b.tiq", 100e6, 1e6, 1024, 200.0, line_hz=100.1e6))
    c.add(_spectrum("/r/a.tiq", 100e6, 1e6, 1024, 100.0, line_hz=99.9e6))
    assert c.items == ["/r/a.tiq", "/r/b.tiq"] and list(c.times) == [100.0, 200.0]
    assert c.freqs.size == 1024
    # Another centre: the axis becomes the union, the old rows keep their lines.
    c.add(_spectrum("/r/c.tiq", 101e6, 1e6, 1024, 300.0, line_hz=101.2e6))
    assert c.freqs[0] < 99.5e6 + 1e3 and c.freqs[-1] > 101.5e6 - 2e3
    step = c.freqs[1] - c.freqs[0]
    for row, line in enumerate((99.9e6, 100.1e6, 101.2e6)):
        assert abs(c.freqs[np.nanargmax(c.power[row])] - line) <= step
    assert np.isnan(c.power[0][c.freqs > 100.6e6]).all()
    # Again with new data: replaced, not added.
    c.add(_spectrum("/r/a.tiq", 100e6, 1e6, 1024, 100.0, line_hz=100.3e6))
    assert c.items == ["/r/a.tiq", "/r/b.tiq", "/r/c.tiq"]
    assert abs(c.freqs[np.nanargmax(c.power[0])] - 100.3e6) <= step


def test_a_coarse_spectrum_on_a_finer_axis_fills_its_span_without_holes():
    c = campaign.Campaign.empty("V²")
    c.add(_spectrum("/r/fine.tiq", 100e6, 1e6, 1024, 1.0))
    c.add(_spectrum("/r/coarse.tiq", 100e6, 1e6, 128, 2.0))
    # The union of the spans (their edges differ by half a coarse bin), at the fine bins.
    assert 1024 <= c.freqs.size <= 1030
    inside = (c.freqs >= c.spans[1, 0]) & (c.freqs <= c.spans[1, 1])
    assert inside.sum() > 1000 and not np.isnan(c.power[1][inside]).any()
