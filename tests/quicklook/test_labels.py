"""The colour bar says the unit the recording's samples really have."""

from __future__ import annotations

import numpy as np

from crunchctl.formats import open_recording
from crunchctl.formats.base import ReadOptions
from crunchctl.quicklook.render import Style


def test_power_label_per_unit():
    assert Style(unit="V").power_label() == "power (dB re 1 V² per bin)"
    assert Style(unit="full scale").power_label() == "power (dB re 1 full scale² per bin)"
    assert Style(unit="count", db=False).power_label() == "power (count² per bin)"
    assert Style(unit="").power_label() == "power (dB per bin)"


def test_readers_say_their_unit(tmp_path, make_tiq):
    opts = ReadOptions(sample_rate=1e6)
    ints = tmp_path / "a.cs16"
    np.zeros(2048, dtype=np.int16).tofile(ints)
    floats = tmp_path / "a.cf32"
    np.zeros(2048, dtype=np.float32).tofile(floats)
    assert open_recording(str(make_tiq("a.tiq")), opts)[1].unit == "V"
    assert open_recording(str(ints), opts)[1].unit == "full scale"
    assert open_recording(str(floats), opts)[1].unit == ""
