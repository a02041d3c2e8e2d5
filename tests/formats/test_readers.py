"""Every reader against files written by the format's own library, checked against a
float64 reference for each data type; header facts (rates, centres, times) per format."""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from crunchctl import formats
from crunchctl.errors import FormatError
from crunchctl.formats import ReadOptions
from crunchctl.quicklook import spectrum
from formats_helpers import (
    CENTER,
    FS,
    L,
    assert_same_numbers,
    pipeline_power,
    reference_power,
    test_signal,
    to_ints,
    write_sigmf,
    write_tdms,
)

N = 8 * L


# --------------------------------------------------------------------------------- SigMF

SIGMF_TYPES = [
    "cf32_le",
    "cf64_le",
    "ci32_le",
    "ci16_le",
    "ci8",
    "cu8",
    "cu16_le",
    "cf32_be",
    "cf64_be",
    "ci32_be",
    "ci16_be",
    "cu16_be",
]


@pytest.mark.parametrize("datatype", SIGMF_TYPES)
def test_sigmf_every_complex_datatype(tmp_path: Path, datatype: str):
    data, values = write_sigmf(tmp_path, "rec", test_signal(N), datatype)
    for given in (data, tmp_path / "rec.sigmf-meta"):  # either name is the recording
        header, power = pipeline_power(given)
        assert header.format == "sigmf" and header.path == str(data)
        assert header.sample_rate == FS and header.center_frequency == CENTER
        assert header.nsamples == N
        assert header.acquisition_start == dt.datetime(
            2024, 5, 1, 10, 0, 0, 250000, tzinfo=dt.timezone.utc
        )
        assert_same_numbers(power, reference_power(values))
    if datatype.startswith(("ci", "cu")):
        assert "full scale = 1" in header.scaling


def test_sigmf_matches_the_package_read_samples(tmp_path: Path):
    import sigmf

    data, _ = write_sigmf(tmp_path, "rec", test_signal(N), "ci16_le")
    pkg = sigmf.fromfile(str(data)).read_samples(0, N)
    _, power = pipeline_power(data)
    assert_same_numbers(power, reference_power(pkg.astype(np.complex128)))


def test_sigmf_archive_is_read_through_the_package(tmp_path: Path):
    import sigmf

    data, values = write_sigmf(tmp_path, "rec", test_signal(N), "ci16_le")
    handle = sigmf.fromfile(str(data))
    handle.tofile(str(tmp_path / "arch"), toarchive=True)
    archive = tmp_path / "arch.sigmf"
    assert archive.is_file()
    header, power = pipeline_power(archive)
    assert header.nsamples == N and header.center_frequency == CENTER
    assert_same_numbers(power, reference_power(values))


def test_sigmf_without_frequency_is_centred_at_zero_with_a_warning(tmp_path, caplog):
    data, _ = write_sigmf(tmp_path, "rec", test_signal(N), "cf32_le", capture={})
    with caplog.at_level(logging.WARNING, logger="crunchctl.formats"):
        header, _ = pipeline_power(data)
    assert header.center_frequency == 0.0 and header.acquisition_start is None
    assert f"{data}: first capture has no core:frequency" in caplog.text


def test_sigmf_checksum_only_when_asked(tmp_path: Path):
    data, _ = write_sigmf(tmp_path, "rec", test_signal(N), "ci16_le")
    raw = bytearray(data.read_bytes())
    raw[100] ^= 0xFF  # same size, other bytes: the stored SHA-512 no longer matches
    data.write_bytes(bytes(raw))
    formats.open_recording(data)  # not verified by default
    with pytest.raises(FormatError, match="checksum"):
        formats.open_recording(data, ReadOptions(verify_checksum=True))


# ---------------------------------------------------------------------------------- TDMS


def test_tdms_per_record_gain_and_header(tmp_path: Path):
    x = test_signal(N) * 1e-3
    # Records of 3 frames minus 100 samples: gain switches fall inside frames.
    per = 3 * L - 100
    records = [x[i : i + per] for i in range(0, N, per)]
    records[-1] = np.concatenate([records[-1], np.zeros(per - records[-1].size)])
    gains = [1e-7, 4e-7, 2e-8, 1e-7][: len(records)] + [1e-7] * max(0, len(records) - 4)
    ref = write_tdms(tmp_path / "a.tdms", records, gains)
    header, power = pipeline_power(tmp_path / "a.tdms")
    assert header.format == "tdms" and header.sample_rate == FS
    assert header.center_frequency == CENTER
    assert header.nsamples == per * len(records)
    assert header.acquisition_start == dt.datetime(2024, 5, 1, 10, tzinfo=dt.timezone.utc)
    assert header.scaling.startswith("per-record gain")
    assert header.info["rf_attenuation"] == 10.0
    assert_same_numbers(power, reference_power(ref))


def test_tdms_constant_gain_takes_the_integer_path_and_mtime_as_time(tmp_path: Path):
    x = test_signal(N) * 1e-3
    ref = write_tdms(tmp_path / "a.tdms", [x[: N // 2], x[N // 2 :]], [1e-7, 1e-7], stamp=False)
    os.utime(tmp_path / "a.tdms", (1.7e9, 1.7e9))
    reader, header = formats.open_recording(tmp_path / "a.tdms")
    first = next(iter(reader.blocks(header, ReadOptions(), 0, 2, L)))
    assert first.data.dtype == np.int16 and first.scale == 1e-7
    assert header.acquisition_start == dt.datetime.fromtimestamp(1.7e9, dt.timezone.utc)
    _, power = pipeline_power(tmp_path / "a.tdms")
    assert_same_numbers(power, reference_power(ref))


def test_tdms_other_channel_names(tmp_path: Path):
    x = test_signal(N) * 1e-3
    ref = write_tdms(tmp_path / "a.tdms", [x], [1e-7], group="IQ", i="re", q="im")
    with pytest.raises(FormatError, match=r"no TDMS group 'RecordData' .*groups: IQ"):
        formats.open_recording(tmp_path / "a.tdms")
    header, power = pipeline_power(tmp_path / "a.tdms", ReadOptions(tdms_channels="IQ/re,IQ/im"))
    assert_same_numbers(power, reference_power(ref))
    with pytest.raises(FormatError, match=r"no TDMS channel IQ/x; IQ has: re, im"):
        formats.open_recording(tmp_path / "a.tdms", ReadOptions(tdms_channels="IQ/re,IQ/x"))


# ----------------------------------------------------------------------------------- WAV


@pytest.mark.parametrize("dtype", ["int16", "int32", "float32"])
def test_wav_written_by_scipy(tmp_path: Path, dtype: str):
    from scipy.io import wavfile

    x = test_signal(N)
    if dtype == "float32":
        stereo = np.stack([x.real, x.imag], axis=1).astype(np.float32)
        values = stereo[:, 0].astype(np.float64) + 1j * stereo[:, 1]
    else:
        bits = 16 if dtype == "int16" else 32
        counts, values = to_ints(x, bits)
        stereo = counts.reshape(-1, 2).astype(dtype)
    wavfile.write(tmp_path / "a.wav", int(FS), stereo)
    header, power = pipeline_power(tmp_path / "a.wav", ReadOptions(center_frequency=1e6))
    assert header.format == "wav" and header.sample_rate == FS and header.nsamples == N
    assert header.center_frequency == 1e6
    assert_same_numbers(power, reference_power(values))
    assert pipeline_power(tmp_path / "a.wav")[0].center_frequency == 0.0


# ----------------------------------------------------------------------------------- raw

RAW = [
    (".cf32", "<f4", 0),
    (".fc32", "<f4", 0),
    (".cfile", "<f4", 0),
    (".cf64", "<f8", 0),
    (".fc64", "<f8", 0),
    (".cs32", "<i4", 32),
    (".sc32", "<i4", 32),
    (".cs16", "<i2", 16),
    (".sc16", "<i2", 16),
    (".cs8", "i1", 8),
    (".sc8", "i1", 8),
    (".cu8", "u1", 8),
    (".uc8", "u1", 8),
]


@pytest.mark.parametrize("ext,dtype,bits", RAW)
def test_raw_every_extension(tmp_path: Path, ext: str, dtype: str, bits: int):
    x = test_signal(N)
    if bits == 0:
        comps = np.empty(2 * N)
        comps[0::2], comps[1::2] = x.real, x.imag
        stored = comps.astype(dtype)
        v = stored.astype(np.float64)
    elif dtype == "u1":  # RTL-SDR: centred at 127.5, full scale 127.5
        comps = np.empty(2 * N)
        comps[0::2], comps[1::2] = x.real, x.imag
        stored = np.clip(np.rint(comps * 127.5 + 127.5), 0, 255).astype("u1")
        v = (stored - 127.5) / 127.5
    else:
        counts, _ = to_ints(x, bits)
        stored = counts.astype(dtype)
        v = counts / 2.0 ** (bits - 1)
    path = tmp_path / f"a{ext}"
    stored.tofile(path)
    opts = ReadOptions(sample_rate=FS, center_frequency=CENTER)
    header, power = pipeline_power(path, opts)
    assert header.format == "raw" and header.nsamples == N
    assert header.sample_rate == FS and header.center_frequency == CENTER
    assert_same_numbers(power, reference_power(v[0::2] + 1j * v[1::2]))
    freqs = spectrum.frequency_axis(header.center_frequency, header.sample_rate, L)
    assert freqs[L // 2] == CENTER and freqs[0] == CENTER - FS / 2


def test_raw_trailing_partial_sample_is_ignored_with_a_warning(tmp_path: Path, caplog):
    x = test_signal(N)
    counts, v = to_ints(x, 16)
    path = tmp_path / "a.cs16"
    path.write_bytes(counts.astype("<i2").tobytes() + b"\x01\x02\x03")
    with caplog.at_level(logging.WARNING, logger="crunchctl.formats"):
        header, power = pipeline_power(path, ReadOptions(sample_rate=FS))
    assert header.nsamples == N and header.center_frequency == 0.0
    assert f"{path}: ignoring a trailing partial sample (3 of 4 bytes)" in caplog.text
    assert_same_numbers(power, reference_power(v))


def test_raw_forced_on_an_odd_extension_says_to_rename(tmp_path: Path):
    p = tmp_path / "a.iq"
    p.write_bytes(b"\0" * 64)
    with pytest.raises(FormatError, match="raw IQ type unknown"):
        formats.open_recording(p, ReadOptions(sample_rate=FS), forced="raw")


def test_every_format_yields_the_same_picture_of_the_synth_signal(tmp_path: Path):
    """The demo signal written in each format: same peaks and noise floor shape."""
    from crunchctl.formats import synth

    spec = synth.RecordingSpec(nframes=4, lframes=4096)
    opts = ReadOptions(sample_rate=spec.fs, center_frequency=spec.center)
    shapes = {}
    for fmt, name in [
        ("tiq", "a.tiq"),
        ("sigmf", "b.sigmf-data"),
        ("tdms", "c.tdms"),
        ("wav", "d.wav"),
        ("raw", "e.cs16"),
        ("raw", "f.cf32"),
    ]:
        path = synth.make_recording_as(tmp_path / name, fmt, spec, records=4)
        header, power = pipeline_power(path, opts, lframes=4096)
        assert header.nsamples == spec.nsamples
        p = power.mean(axis=0)
        shapes[name] = p / np.median(p)  # scale-free: int formats are on full scale = 1
    ref = shapes["a.tiq"]
    for name, s in shapes.items():
        np.testing.assert_allclose(s, ref, rtol=0.05, atol=0.05, err_msg=name)
