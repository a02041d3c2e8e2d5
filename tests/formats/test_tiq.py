"""The TIQ reader and writer against docs/formats.md, including every bad-file case it lists."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from crunchctl.errors import IncompleteRecording, TiqError
from crunchctl.formats import tiq
from crunchctl.formats.synth import Line, RecordingSpec, make_recording


def test_header_round_trip(make_tiq):
    path = make_tiq("a.tiq", nframes=3)
    raw = path.read_bytes()
    assert raw.startswith(b'<DataFile offset="')
    offset = int(raw[18:27])
    assert raw[27:28] == b'"'
    h = tiq.open_recording(path)
    assert h.offset == offset
    assert h.nsamples == 3 * 1024
    assert h.fs == 1.0e6 and h.center == 100.0e6
    assert h.number_format == "Int32" and not h.big_endian
    assert os.path.getsize(path) == h.expected_size
    assert h.span is not None and h.rbw is not None
    assert h.acquired_at().utcoffset().total_seconds() == 7200


@pytest.mark.parametrize(
    "fmt,big",
    [
        ("Int32", False),
        ("Int16", False),
        ("Single", False),
        ("Int32", True),
        ("Int16", True),
        ("Single", True),
    ],
)
def test_formats_and_endianness_read_back_the_samples(tmp_path: Path, fmt: str, big: bool):
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(2048) + 1j * rng.standard_normal(2048)) * 1e-3
    scaling = 1e-7 if fmt != "Int16" else 1e-6
    path = tiq.write_tiq(
        tmp_path / "x.tiq",
        [x[:1000], x[1000:]],
        nsamples=2048,
        fs=1e6,
        center=1e8,
        scaling=scaling,
        number_format=fmt,
        big_endian=big,
    )
    h = tiq.open_recording(path)
    assert h.big_endian is big and h.number_format == fmt
    got = np.concatenate(list(tiq.iter_frames(h, 256, 8, chunk_frames=3)))
    assert got.dtype == np.complex64 and got.shape == (8, 256)
    tol = scaling if fmt != "Single" else 1e-9
    np.testing.assert_allclose(got.ravel(), x, atol=tol)


def test_fields_found_by_local_name_anywhere(tmp_path: Path):
    # A differently nested header, other namespaces, and a decoy element whose name contains
    # "Frequency" before the real one.
    body = (
        'version="1.0" xmlns="http://www.tektronix.com" xmlns:t="http://www.tektronix.com">'
        "<Outer><t:SamplingFrequency>2000000</t:SamplingFrequency>"
        "<MeasurementFrequency>1</MeasurementFrequency></Outer>"
        "<ProductSpecific><Deep><Frequency>123000000</Frequency></Deep></ProductSpecific>"
        "<Extra><!-- comment --><NumberFormat>Int16</NumberFormat><Scaling>1e-6</Scaling>"
        "<Endian>Little</Endian><SamplesType>IQ</SamplesType>"
        "<NumberSamples>4</NumberSamples><Note>&lt;not a tag&gt; &amp;</Note></Extra>"
        "</DataFile>"
    )
    head = f'<DataFile offset="{0:09d}" ' + body
    offset = len(head.encode())
    head = f'<DataFile offset="{offset:09d}" ' + body
    data = np.arange(8, dtype="<i2").tobytes()
    path = tmp_path / "nested.tiq"
    path.write_bytes(head.encode() + data)
    h = tiq.open_recording(path)
    assert (h.fs, h.center, h.number_format, h.nsamples) == (2e6, 123e6, "Int16", 4)
    np.testing.assert_allclose(
        tiq.read_samples(h), (np.arange(8) * 1e-6).astype(np.float32).view(np.complex64)
    )


def _bad(tmp_path: Path, make_tiq) -> dict[str, tuple[Path, type, str]]:
    good = make_tiq("good.tiq", nframes=2).read_bytes()
    h = tiq.read_header(tmp_path / "good.tiq")
    cases: dict[str, tuple[bytes | None, type, str]] = {
        "empty": (b"", IncompleteRecording, "empty file (0 bytes)"),
        "cut_header": (good[: h.offset // 2], IncompleteRecording, "header cut"),
        "cut_prefix": (good[:10], IncompleteRecording, "header cut after 10 bytes"),
        "truncated": (
            good[: h.offset + 1000],
            IncompleteRecording,
            "header says 2048 samples (16384 bytes) but only 1000 bytes of data follow",
        ),
        "not_tiq": (b"hello world, this is not a recording", TiqError, "not a TIQ recording"),
        "offset_not_9_digits": (
            good.replace(good[18:27], b"00000012x", 1),
            TiqError,
            "is not nine decimal digits",
        ),
        "offset_past_end": (
            good[:18] + b"999999999" + good[27:],
            IncompleteRecording,
            "header says the samples start at byte 999999999",
        ),
        "unknown_format": (
            good.replace(b"<NumberFormat>Int32<", b"<NumberFormat>Int24<"),
            TiqError,
            "unknown NumberFormat 'Int24'",
        ),
        "bad_xml": (
            good.replace(b"</DataDescription>", b"</DataDescriptio>"),
            TiqError,
            "header is not valid XML",
        ),
        "samples_larger": (
            good.replace(b">2048<", b">9999<"),
            IncompleteRecording,
            "header says 9999 samples (79992 bytes) but only 16384 bytes",
        ),
    }
    out = {}
    for name, (content, exc, msg) in cases.items():
        p = tmp_path / f"{name}.tiq"
        p.write_bytes(content)
        out[name] = (p, exc, msg)
    d = tmp_path / "dir.tiq"
    d.mkdir()
    out["directory"] = (d, TiqError, "is a directory")
    link = tmp_path / "dangling.tiq"
    link.symlink_to(tmp_path / "nowhere.tiq")
    out["dangling"] = (link, TiqError, "broken symbolic link")
    out["missing"] = (tmp_path / "missing.tiq", TiqError, "no such file")
    return out


def test_every_bad_file_gives_a_one_line_error_naming_it(tmp_path: Path, make_tiq):
    for name, (path, exc, msg) in _bad(tmp_path, make_tiq).items():
        with pytest.raises(exc) as info:
            tiq.open_recording(path)
        text = str(info.value)
        assert text.startswith(str(path) + ":"), (name, text)
        assert msg in text, (name, text)
        assert "\n" not in text, name


def test_more_frames_than_the_file_holds(make_tiq):
    h = tiq.open_recording(make_tiq("short.tiq", nframes=3))
    with pytest.raises(TiqError, match=r"asked for 4 frames of 1024 samples but the file holds 3"):
        list(tiq.iter_frames(h, 1024, 4))


def test_writer_streams_without_holding_the_recording(tmp_path: Path):
    spec = RecordingSpec(nframes=8, lframes=4096, lines=(Line(1e3, 1e-3),))
    path = make_recording(tmp_path / "s.tiq", spec, chunk_samples=1000)
    h = tiq.open_recording(path)
    assert h.nsamples == 8 * 4096
    assert os.path.getsize(path) == h.offset + 8 * 4096 * 8
