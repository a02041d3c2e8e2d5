"""Realistic synthetic recordings: Schottky-like lines drifting over a noise floor.

Used by ``crunchctl demo``, the tests and the benchmarks. Writes through the TIQ writer in
chunks, so a recording of any size is made with a small, bounded amount of memory.
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


def make_recording(path: str | os.PathLike, spec: RecordingSpec | None = None,
                   *, chunk_samples: int = 1 << 20) -> Path:
    """Write a realistic ``.tiq`` recording and return its path.

    Args:
        path: the file to write (its folder must exist).
        spec: sizes and content; the demo recording by default.
        chunk_samples: samples generated and written at a time (bounds memory).
    """
    import numpy as np

    from crunchctl.formats.tiq import TiqWriter

    spec = spec or RecordingSpec()
    lines = spec.lines if spec.lines is not None else tuple(schottky_lines(spec.fs, spec.seed))
    scaling = spec.scaling
    if scaling is None:
        # Noise of ~3000 counts leaves ample head room for the lines in 16 and 32 bits.
        scaling = spec.noise_rms / (300.0 if spec.number_format == "Int16" else 3000.0)
    acquired = spec.acquired or _dt.datetime(2024, 4, 17, 13, 5, 22, 123456,
                                              tzinfo=_dt.timezone(_dt.timedelta(hours=2)))
    rng = np.random.default_rng(spec.seed)
    phases = rng.uniform(0, 2 * np.pi, len(lines))
    with TiqWriter(path, nsamples=spec.nsamples, fs=spec.fs, center=spec.center,
                   scaling=scaling, number_format=spec.number_format,
                   big_endian=spec.big_endian, acquired=acquired,
                   **spec.header_fields) as w:
        for start in range(0, spec.nsamples, chunk_samples):
            n = min(chunk_samples, spec.nsamples - start)
            t = (start + np.arange(n, dtype=np.float64)) / spec.fs
            x = rng.standard_normal(2 * n).view(np.complex128) * spec.noise_rms
            for line, phase0 in zip(lines, phases):
                # Linear drift: phase = 2 pi (f0 t + drift t^2 / 2).
                phase = 2 * np.pi * (line.offset * t + 0.5 * line.drift * t * t) + phase0
                x += line.amplitude * np.exp(1j * phase)
            w.write(x)
    return Path(path)
