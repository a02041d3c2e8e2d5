"""Shared helpers of the format tests: files written by each format's own library, the
reader-plus-spectrum pipeline, the float64 reference, and a slow writer for watch tests."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from crunchctl import formats
from crunchctl.formats import ReadOptions
from crunchctl.quicklook import spectrum

L = 256  # frame length of the small test files
FS = 2.0e6
CENTER = 150.0e6


def pipeline_power(
    path, options: ReadOptions | None = None, lframes: int = L, forced: str | None = None
):
    """(header, power) through the registry, the reader's blocks and the spectrum."""
    options = options or ReadOptions()
    reader, header = formats.open_recording(path, options, forced)
    n = header.nsamples // lframes
    rows = []
    for b in reader.blocks(header, options, 0, n, lframes):
        k = b.data.shape[0]
        if np.iscomplexobj(b.data):
            rows.append(spectrum.power_spectrogram(iter([b.data * b.scale]), k, lframes))
        else:
            rows.append(spectrum.power_spectrogram_raw(iter([b.data]), k, lframes, scale=b.scale))
    return header, np.vstack(rows)


def reference_power(x: np.ndarray, lframes: int = L) -> np.ndarray:
    """The legacy numbers in float64: |fftshift(fft(frames))|^2."""
    n = x.size // lframes
    frames = np.asarray(x[: n * lframes], dtype=np.complex128).reshape(n, lframes)
    return np.abs(np.fft.fftshift(np.fft.fft(frames, axis=1), axes=1)) ** 2


def assert_same_numbers(power: np.ndarray, ref: np.ndarray) -> None:
    assert power.dtype == np.float32 and power.shape == ref.shape
    np.testing.assert_allclose(power, ref, rtol=1e-3, atol=ref.max() * 1e-6)


def test_signal(n: int, seed: int = 0, amplitude: float = 0.4) -> np.ndarray:
    """Two lines and noise, complex128, within ±1 so every integer type can hold it."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FS
    x = amplitude * np.exp(2j * np.pi * 250e3 * t) + 0.1 * np.exp(-2j * np.pi * 400e3 * t)
    x += (rng.standard_normal(n) + 1j * rng.standard_normal(n)) * 0.05
    return x


test_signal.__test__ = False  # not a pytest test


def slow_write(path: Path, data: bytes, pieces: int = 6, pause: float = 0.4) -> None:
    """Append ``data`` to ``path`` in ``pieces`` parts with pauses (a recorder writing)."""
    step = -(-len(data) // pieces)
    with open(path, "ab") as f:
        for i in range(0, len(data), step):
            f.write(data[i : i + step])
            f.flush()
            time.sleep(pause)


def to_ints(x: np.ndarray, bits: int, unsigned: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved integer components of ``x`` (|x| < 1) and their float64 values on ±1."""
    full = 2.0 ** (bits - 1)
    pairs = np.empty(2 * x.size)
    pairs[0::2], pairs[1::2] = x.real, x.imag
    counts = np.clip(np.rint(pairs * full), -full, full - 1)
    if unsigned:
        counts = counts + full
        values = (counts - full) / full
    else:
        values = counts / full
    return counts, values[0::2] + 1j * values[1::2]


def write_sigmf(
    folder: Path,
    name: str,
    x: np.ndarray,
    datatype: str,
    *,
    capture: dict | None = None,
    global_extra: dict | None = None,
) -> Path:
    from sigmf import SigMFFile

    m = __import__("re").match(r"c(f|i|u)(\d+)(_le|_be)?", datatype)
    kind, bits, endian = m.group(1), int(m.group(2)), m.group(3)
    order = ">" if endian == "_be" else "<"
    if kind == "f":
        comps = np.empty(2 * x.size)
        comps[0::2], comps[1::2] = x.real, x.imag
        stored, values = comps.astype(f"{order}f{bits // 8}"), x
        values = stored.astype(np.float64)[0::2] + 1j * stored.astype(np.float64)[1::2]
    else:
        counts, values = to_ints(x, bits, unsigned=kind == "u")
        stored = counts.astype(f"{order}{'u' if kind == 'u' else 'i'}{bits // 8}")
    data = folder / f"{name}.sigmf-data"
    stored.tofile(data)
    g = {"core:datatype": datatype, "core:sample_rate": FS}
    g.update(global_extra or {})
    meta = SigMFFile(data_file=str(data), global_info=g)
    meta.add_capture(
        0,
        capture
        if capture is not None
        else {"core:frequency": CENTER, "core:datetime": "2024-05-01T10:00:00.250000Z"},
    )
    meta.tofile(str(folder / f"{name}.sigmf-meta"))
    return data, values


def write_tdms(
    path: Path,
    records: list[np.ndarray],
    gains: list[float],
    *,
    group: str = "RecordData",
    i: str = "I",
    q: str = "Q",
    header: bool = True,
    stamp: bool = True,
    root_extra: dict | None = None,
) -> np.ndarray:
    """The lab layout, one segment per record; returns the float64 reference samples."""
    from nptdms import ChannelObject, GroupObject, RootObject, TdmsWriter

    props = {
        "IQRate": FS,
        "IQCarrierFrequency": CENTER,
        "RFAttentuation": 10.0,
        "NSamplesPerRecord": np.int64(records[0].size),
        "NRecordsPerFile": np.int64(len(records)),
    }
    props.update(root_extra or {})
    ref = []
    with TdmsWriter(str(path)) as w:
        for r, (x, gain) in enumerate(zip(records, gains)):
            ci = np.clip(np.rint(x.real / gain), -32768, 32767).astype(np.int16)
            cq = np.clip(np.rint(x.imag / gain), -32768, 32767).astype(np.int16)
            ref.append((ci + 1j * cq) * gain)
            objs = [
                RootObject(props),
                GroupObject(group),
                ChannelObject(group, i, ci),
                ChannelObject(group, q, cq),
            ]
            if header:
                objs += [
                    GroupObject("RecordHeader"),
                    ChannelObject("RecordHeader", "gain", np.array([gain])),
                ]
                if stamp:
                    objs.append(
                        ChannelObject(
                            "RecordHeader",
                            "absolute timestamp",
                            np.array(
                                [np.datetime64("2024-05-01T10:00:00") + np.timedelta64(r, "s")]
                            ),
                        )
                    )
            w.write_segment(objs)
    return np.concatenate(ref)
