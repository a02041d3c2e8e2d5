"""Realistic synthetic recordings: Schottky-like lines drifting over a noise floor.

Used by ``crunchctl demo``, the tests and the benchmarks. Writes ``.tiq`` (and the same
signal in every other format) in chunks, so any size takes a small, bounded amount of memory.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from pathlib import Path

#: Demo defaults: 94 frames of 65536 samples (about 50 MB of Int32), 245 MHz, 3.125 MS/s.
DEMO_CENTER = 245.0e6
DEMO_FS = 3.125e6
DEMO_LFRAMES = 65536
DEMO_NFRAMES = 94


@dataclass(frozen=True)
class Line:
    """One narrow spectral line: offset from the centre (Hz), amplitude (V), drift (Hz/s)."""

    offset: float
    amplitude: float
    drift: float = 0.0


def schottky_lines(fs: float = DEMO_FS, seed: int = 1) -> list[Line]:
    """A family of revolution harmonics spread over the span, with slow, unequal drifts."""
    import numpy as np

    rng = np.random.default_rng(seed)
    frev = fs / 7.3  # a few harmonics fit inside the span
    lines = []
    for h in range(-3, 4):
        offset = h * frev * 0.45 + rng.uniform(-2e3, 2e3)
        # Upper and lower sidebands of a coasting beam, a few hundred Hz apart.
        amp = 10 ** rng.uniform(-4.6, -3.4)
        drift = rng.uniform(-120.0, 120.0)
        lines.append(Line(offset, amp, drift))
        lines.append(Line(offset + rng.uniform(300, 900), amp * 0.3, drift * 1.05))
    # A weak line near the centre, for the zoom.
    lines.append(Line(12.5e3, 10**-4.3, 60.0))
    return lines


@dataclass(frozen=True)
class RecordingSpec:
    """What to write: sizes, rates, format, lines and noise level."""

    nframes: int = DEMO_NFRAMES
    lframes: int = DEMO_LFRAMES
    fs: float = DEMO_FS
    center: float = DEMO_CENTER
    number_format: str = "Int32"
    big_endian: bool = False
    noise_rms: float = 2.0e-5  # volts per component
    scaling: float | None = None  # volts per count; chosen from the noise level if None
    lines: tuple[Line, ...] | None = None  # None: Schottky-like family; () for noise only
    seed: int = 1
    acquired: _dt.datetime | None = None
    extra_samples: int = 0
    header_fields: dict = field(default_factory=dict)

    @property
    def nsamples(self) -> int:
        return self.nframes * self.lframes + self.extra_samples


def signal_chunks(spec: RecordingSpec, chunk_samples: int = 1 << 20):
    """The synthetic signal in volts, complex128 chunks of at most ``chunk_samples``."""
    import numpy as np

    lines = spec.lines if spec.lines is not None else tuple(schottky_lines(spec.fs, spec.seed))
    rng = np.random.default_rng(spec.seed)
    phases = rng.uniform(0, 2 * np.pi, len(lines))
    for start in range(0, spec.nsamples, chunk_samples):
        n = min(chunk_samples, spec.nsamples - start)
        t = (start + np.arange(n, dtype=np.float64)) / spec.fs
        x = rng.standard_normal(2 * n).view(np.complex128) * spec.noise_rms
        for line, phase0 in zip(lines, phases):
            # Linear drift: phase = 2 pi (f0 t + drift t^2 / 2).
            phase = 2 * np.pi * (line.offset * t + 0.5 * line.drift * t * t) + phase0
            x += line.amplitude * np.exp(1j * phase)
        yield x


def _scaling(spec: RecordingSpec, int16: bool) -> float:
    if spec.scaling is not None:
        return spec.scaling
    # Noise of ~3000 counts leaves ample head room for the lines in 16 and 32 bits.
    return spec.noise_rms / (300.0 if int16 else 3000.0)


def _acquired(spec: RecordingSpec) -> _dt.datetime:
    return spec.acquired or _dt.datetime(
        2024, 4, 17, 13, 5, 22, 123456, tzinfo=_dt.timezone(_dt.timedelta(hours=2))
    )


def make_recording(
    path: str | os.PathLike, spec: RecordingSpec | None = None, *, chunk_samples: int = 1 << 20
) -> Path:
    """Write a realistic ``.tiq`` recording and return its path.

    Args:
        path: the file to write (its folder must exist).
        spec: sizes and content; the demo recording by default.
        chunk_samples: samples generated and written at a time (bounds memory).
    """
    from crunchctl.formats.tiq import TiqWriter

    spec = spec or RecordingSpec()
    scaling = _scaling(spec, spec.number_format == "Int16")
    with TiqWriter(
        path,
        nsamples=spec.nsamples,
        fs=spec.fs,
        center=spec.center,
        scaling=scaling,
        number_format=spec.number_format,
        big_endian=spec.big_endian,
        acquired=_acquired(spec),
        **spec.header_fields,
    ) as w:
        for x in signal_chunks(spec, chunk_samples):
            w.write(x)
    return Path(path)


def _pairs(x, dtype, scaling: float):
    """Complex volts -> interleaved I, Q of ``dtype`` (counts = volts / scaling for ints)."""
    import numpy as np

    pairs = np.empty(2 * x.size, dtype=np.float64)
    pairs[0::2] = x.real
    pairs[1::2] = x.imag
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return pairs.astype(dtype)
    pairs /= scaling
    np.rint(pairs, out=pairs)
    info = np.iinfo(dtype)
    np.clip(pairs, info.min, info.max, out=pairs)
    return pairs.astype(dtype)


def make_recording_as(
    path: str | os.PathLike,
    fmt: str,
    spec: RecordingSpec | None = None,
    *,
    chunk_samples: int = 1 << 20,
    records: int = 8,
) -> Path:
    """Write the same synthetic signal as :func:`make_recording` in another format.

    ``fmt``: ``tiq``; ``sigmf`` (ci16_le, ``path`` is the ``.sigmf-data``); ``tdms`` (the
    lab layout, int16, ``records`` records each with its gain); ``wav`` (int16 stereo);
    ``raw`` (by ``path``'s extension: ``.cf32`` float32 volts, ``.cs16`` int16 counts).
    Integer formats store the signal as int16 counts of ``scaling`` volts; their readers
    give full scale = 1, so their powers differ from the ``.tiq`` ones by a constant factor.
    """
    import numpy as np

    spec = spec or RecordingSpec()
    path = Path(path)
    scaling = _scaling(spec, True)
    chunks = signal_chunks(spec, chunk_samples)
    if fmt == "tiq":
        return make_recording(path, spec, chunk_samples=chunk_samples)
    if fmt == "raw":
        dtype = "<f4" if path.suffix.lower() in (".cf32", ".fc32", ".cfile") else "<i2"
        with open(path, "wb") as f:
            for x in chunks:
                f.write(_pairs(x, dtype, scaling).tobytes())
        return path
    if fmt == "wav":
        import struct

        data_bytes = spec.nsamples * 4
        with open(path, "wb") as f:
            f.write(b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE")
            f.write(
                b"fmt " + struct.pack("<IHHIIHH", 16, 1, 2, int(spec.fs), int(spec.fs) * 4, 4, 16)
            )
            f.write(b"data" + struct.pack("<I", data_bytes))
            for x in chunks:
                f.write(_pairs(x, "<i2", scaling).tobytes())
        return path
    if fmt == "sigmf":
        from sigmf import SigMFFile

        data = path.with_suffix(".sigmf-data")
        with open(data, "wb") as f:
            for x in chunks:
                f.write(_pairs(x, "<i2", scaling).tobytes())
        meta = SigMFFile(
            data_file=str(data),
            skip_checksum=True,
            global_info={
                "core:datatype": "ci16_le",
                "core:sample_rate": spec.fs,
                "core:description": "crunchctl synthetic Schottky-like lines",
            },
        )
        meta.add_capture(
            0,
            {
                "core:frequency": spec.center,
                "core:datetime": _acquired(spec)
                .astimezone(_dt.timezone.utc)
                .strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            },
        )
        meta.tofile(str(path.with_suffix(".sigmf-meta")), skip_validate=False)
        return data
    if fmt == "tdms":
        from nptdms import ChannelObject, GroupObject, RootObject, TdmsWriter

        per_record = -(-spec.nsamples // records)
        root = RootObject(
            properties={
                "IQRate": float(spec.fs),
                "IQCarrierFrequency": float(spec.center),
                "RFAttentuation": 0.0,
                "NSamplesPerRecord": np.int64(per_record),
                "NRecordsPerFile": np.int64(records),
            }
        )
        start_us = int(_acquired(spec).timestamp() * 1e6)
        signal = signal_chunks(spec, per_record)
        with TdmsWriter(str(path)) as w:
            for r, x in enumerate(signal):
                # Alternate two gains (a gain switch mid-file), counts follow.
                gain = scaling * (1.0 if r % 2 == 0 else 2.0)
                iq = _pairs(x, "<i2", gain)
                stamp = np.array(
                    [start_us + int(r * per_record / spec.fs * 1e6)], dtype="datetime64[us]"
                )
                w.write_segment(
                    [
                        root,
                        GroupObject("RecordData"),
                        ChannelObject("RecordData", "I", iq[0::2].copy()),
                        ChannelObject("RecordData", "Q", iq[1::2].copy()),
                        GroupObject("RecordHeader"),
                        ChannelObject("RecordHeader", "gain", np.array([gain])),
                        ChannelObject("RecordHeader", "absolute timestamp", stamp),
                    ]
                )
        return path
    raise ValueError(f"unknown format {fmt!r}")


def make_night(
    folder: str | os.PathLike,
    count: int = 30,
    *,
    every: float = 600.0,
    spec: RecordingSpec | None = None,
    lifetime_h: float = 6.0,
    drift_hz_per_h: float = 400.0,
    pause: tuple[int, int] = (0, 0),
) -> list[Path]:
    """A night of a recorder: ``count`` recordings ``every`` seconds apart whose Schottky-like
    lines drift (``drift_hz_per_h``, scaled per line) and decay (``lifetime_h``: the
    amplitude's e-folding time), with ``pause = (first, how many)`` recordings not taken (a
    beam stop). Names are ``night_NNN.tiq``; returns the paths written."""
    import dataclasses

    spec = spec or RecordingSpec(nframes=16, lframes=16384)
    base = spec.lines if spec.lines is not None else tuple(schottky_lines(spec.fs, spec.seed))
    start = _acquired(spec)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for i in range(count):
        if pause[0] <= i < pause[0] + pause[1]:
            continue
        hours = i * every / 3600.0
        lines = tuple(
            Line(
                ln.offset + drift_hz_per_h * hours * (1 + ln.offset / spec.fs),
                ln.amplitude * 2.718281828459045 ** (-hours / lifetime_h),
                ln.drift,
            )
            for ln in base
        )
        one = dataclasses.replace(
            spec, lines=lines, seed=spec.seed + i, acquired=start + _dt.timedelta(seconds=i * every)
        )
        written.append(make_recording(folder / f"night_{i:03d}.tiq", one))
    return written


#: The demo signal in every format: (writer format, file name).
ALL_FORMATS = (
    ("tiq", "demo_tiq.tiq"),
    ("sigmf", "demo_sigmf.sigmf-data"),
    ("tdms", "demo_tdms.tdms"),
    ("wav", "demo_wav.wav"),
    ("raw", "demo_cs16.cs16"),
    ("raw", "demo_cf32.cf32"),
)


def main(argv: list[str] | None = None) -> None:
    """``python -m crunchctl.formats.synth FOLDER [--frames N] [--night N]``: the demo signal
    written in every format into FOLDER (raw files need ``--sample-rate 3.125e6 --center
    245e6``); with ``--night N``, a night of N .tiq recordings ten minutes apart instead."""
    import argparse

    ap = argparse.ArgumentParser(
        prog="python -m crunchctl.formats.synth",
        description=main.__doc__.splitlines()[0] if main.__doc__ else "",
    )
    ap.add_argument("folder")
    ap.add_argument("--frames", type=int, default=DEMO_NFRAMES)
    ap.add_argument(
        "--night",
        type=int,
        default=0,
        metavar="N",
        help="N recordings of 16384-sample frames, ten minutes apart, whose lines drift and decay",
    )
    args = ap.parse_args(argv)
    folder = Path(args.folder)
    if args.night:
        spec = RecordingSpec(
            nframes=args.frames if args.frames != DEMO_NFRAMES else 16, lframes=16384
        )
        for path in make_night(folder, args.night, spec=spec):
            print(path)
        return
    folder.mkdir(parents=True, exist_ok=True)
    spec = RecordingSpec(nframes=args.frames)
    for fmt, name in ALL_FORMATS:
        print(make_recording_as(folder / name, fmt, spec))


if __name__ == "__main__":
    main()
