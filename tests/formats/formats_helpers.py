"""Shared helpers of the format tests: files written by each format's own library, the
reader-plus-spectrum pipeline, the float64 reference, and slow writers for watch tests."""

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


def pipeline_power(path, options: ReadOptions | None = None, lframes: int = L,
                   forced: str | None = None):
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
            rows.append(spectrum.power_spectrogram_raw(iter([b.data]), k, lframes,
                                                       scale=b.scale))
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


class Watcher:
    """A real ``crunchctl watch`` child on ``base/rec`` with its own ledger and output."""

    def __init__(self, base: Path, *extra: str) -> None:
        self.base = base
        self.folder = base / "rec"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ledger = base / "ledger"
        self.extra = extra
        self.proc = None

    def start(self) -> "Watcher":
        import subprocess

        from conftest import child_env, crunchctl_cmd, wait_for

        self.stderr_path = self.base / "watch.err"
        self.proc = subprocess.Popen(
            [*crunchctl_cmd(), "watch", str(self.folder), "--ledger", str(self.ledger),
             "--output", str(self.base / "out"), "--log-file", str(self.base / "watch.log"),
             "--lframes", str(L), "--zoom-span", "200000", "-j", "1", *self.extra],
            stdout=open(self.base / "watch.out", "w"), stderr=open(self.stderr_path, "w"),
            env=child_env(), cwd=self.base)
        wait_for(lambda: "watching " in self.stderr or self.proc.poll() is not None, 30,
                 "the watcher to start")
        assert self.proc.poll() is None, self.stderr
        return self

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def rows(self) -> list[dict]:
        from crunchctl.ledger.store import Ledger

        if not self.ledger.exists():
            return []
        try:
            frame = Ledger(self.ledger, create=False).scan().collect()
        except Exception:  # noqa: BLE001 - no part file yet
            return []
        return [r for r in frame.to_dicts() if r["kind"] == "iq"]

    def stop(self) -> None:
        import signal

        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except Exception:  # noqa: BLE001
                self.proc.kill()
                self.proc.wait(10)
