"""The format registry: choice by extension or name, completeness, patterns, readiness."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from crunchctl import formats
from crunchctl.errors import FormatError, IncompleteRecording, UsageError
from crunchctl.formats import ReadOptions, tiq
from crunchctl.quicklook import spectrum


def test_tiq_by_extension_and_blocks_match_the_legacy_numbers(make_tiq):
    path = make_tiq("a.TIQ", nframes=5)
    reader, header = formats.open_recording(path)
    assert reader.name == "tiq" and header.format == "tiq"
    assert header.nsamples == 5 * 1024 and header.sample_rate == 1.0e6
    blocks = [(b.data.copy(), b.scale) for b in reader.blocks(header, ReadOptions(), 1, 3, 1024)]
    assert all(b.dtype == np.dtype("<i4") for b, _ in blocks)  # the raw fast path
    power = spectrum.power_spectrogram_raw((b for b, _ in blocks), 3, 1024, scale=blocks[0][1])
    x = tiq.read_samples(tiq.read_header(path), 1024, 3 * 1024).astype(np.complex128)
    ref = np.abs(np.fft.fftshift(np.fft.fft(x.reshape(3, 1024), axis=1), axes=1)) ** 2
    np.testing.assert_allclose(power, ref, rtol=2e-4, atol=ref.max() * 1e-6)


def test_unknown_extension_lists_the_known_ones(tmp_path: Path):
    p = tmp_path / "x.dat"
    p.write_bytes(b"123")
    with pytest.raises(FormatError) as e:
        formats.reader_for(p)
    assert str(e.value).startswith(str(p) + ": unknown recording format")
    for ext in formats.extensions():
        assert ext in str(e.value)
    assert "--format" in str(e.value)


def test_forced_format_and_unknown_name(make_tiq, tmp_path: Path):
    src = make_tiq("a.tiq")
    odd = tmp_path / "a.rec"
    odd.write_bytes(src.read_bytes())
    reader, header = formats.open_recording(odd, forced="TIQ")
    assert reader.name == "tiq" and header.nsamples == 6 * 1024
    with pytest.raises(UsageError, match="unknown format 'nope'"):
        formats.reader_for(odd, forced="nope")


def test_incomplete_tiq_is_reported_with_both_sizes(make_tiq):
    path = make_tiq("a.tiq")
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - 100)
    with pytest.raises(IncompleteRecording, match="but only"):
        formats.open_recording(path)
    r = formats.readiness(str(path))
    assert r.complete is False and r.reason.startswith("incomplete: ")


def test_readiness_of_unknown_files_is_one_answer_the_settle_time_decides(tmp_path):
    from crunchctl.watch.readiness import readiness

    path = tmp_path / "x.dat"
    path.write_bytes(b"whatever a --pattern '*.dat' finds")
    # The registry and watch give the same answer: no format can tell, so the settle
    # time decides (and processing records the error).
    assert formats.readiness(str(path)).complete is None
    assert readiness(str(path)) == formats.readiness(str(path))


def test_import_is_light():
    code = (
        "import sys, crunchctl.formats as f; f.patterns(); f.extensions(); "
        "print(sorted(m for m in ('numpy', 'sigmf', 'nptdms', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
