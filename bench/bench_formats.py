"""Reading speed of every recording format against ``.tiq`` holding the same samples.

Writes the synthetic signal (crunchctl.formats.synth) once per format in a temporary folder,
then reads each through the registry (``open_recording`` + ``reader.blocks``) and the same
conversion pass the spectrum makes (data x scale -> float32), best of ``--repeats``. Files
sit in the page cache: the figures are the readers' own cost, not the disk's. MB/s counts
the file's bytes; "Msamples/s" makes formats with other sample sizes comparable.

Usage: ``python bench/bench_formats.py [--frames 256] [--lframes 65536] [--repeats 7]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from crunchctl import formats  # noqa: E402
from crunchctl.formats import ReadOptions, synth  # noqa: E402

#: (label, writer format, file name, TIQ number format it is compared with)
CASES = [
    ("tiq Int16", "tiq16", "base16.tiq", None),
    ("tiq Single", "tiqf", "basef.tiq", None),
    ("tiq Int32", "tiq", "base32.tiq", None),
    ("sigmf ci16_le", "sigmf", "rec.sigmf-data", "tiq Int16"),
    ("tdms int16 (8 records, 2 gains)", "tdms", "rec.tdms", "tiq Int16"),
    ("tdms int16 (1 gain)", "tdms1", "one.tdms", "tiq Int16"),
    ("wav int16", "wav", "rec.wav", "tiq Int16"),
    ("raw cs16", "raw", "rec.cs16", "tiq Int16"),
    ("raw cf32", "raw", "rec.cf32", "tiq Single"),
]


def write(folder: Path, kind: str, name: str, spec: synth.RecordingSpec) -> Path:
    path = folder / name
    if kind == "tiq16":
        return synth.make_recording(
            path, synth.RecordingSpec(**{**spec.__dict__, "number_format": "Int16"})
        )
    if kind == "tiqf":
        return synth.make_recording(
            path, synth.RecordingSpec(**{**spec.__dict__, "number_format": "Single"})
        )
    if kind == "tdms1":
        return synth.make_recording_as(path, "tdms", spec, records=1)
    return synth.make_recording_as(path, kind, spec)


def read_once(path: Path, options: ReadOptions, lframes: int) -> float:
    start = time.perf_counter()
    reader, header = formats.open_recording(path, options)
    n = header.nsamples // lframes
    work = None
    for b in reader.blocks(header, options, 0, n, lframes):
        data = (
            b.data.view(np.float32 if b.data.dtype == np.complex64 else b.data.dtype)
            if np.iscomplexobj(b.data)
            else b.data
        )
        if work is None or work.shape[0] < data.shape[0]:
            work = np.empty(data.shape, dtype=np.float32)
        np.multiply(
            data, np.float32(b.scale), out=work[: data.shape[0]], dtype=np.float32, casting="unsafe"
        )
    return time.perf_counter() - start


def data_bytes(path: Path) -> int:
    size = os.path.getsize(path)
    meta = path.with_suffix(".sigmf-meta")
    return size + (os.path.getsize(meta) if path.suffix == ".sigmf-data" else 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=256, help="frames per recording")
    ap.add_argument("--lframes", type=int, default=65536)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    spec = synth.RecordingSpec(nframes=args.frames, lframes=args.lframes, lines=())
    opts = ReadOptions(sample_rate=spec.fs, center_frequency=spec.center)
    folder = Path(tempfile.mkdtemp(prefix="crunchctl-bench-formats-"))
    try:
        paths = {}
        for label, kind, name, _ in CASES:
            paths[label] = write(folder, kind, name, spec)
            read_once(paths[label], opts, args.lframes)  # warm the page cache and imports
        # Rounds over all formats, best per format: a busy moment hits every format alike.
        best = {label: float("inf") for label in paths}
        for _ in range(args.repeats):
            for label, path in paths.items():
                best[label] = min(best[label], read_once(path, opts, args.lframes))
        rows = {}
        for label, path in paths.items():
            size = data_bytes(path)
            rows[label] = (size / 1e6 / best[label], spec.nsamples / 1e6 / best[label], size)
        print(
            f"{spec.nsamples} samples ({args.frames} frames of {args.lframes}), best of "
            f"{args.repeats}, page cache warm"
        )
        print(f"{'format':34} {'MB':>7} {'MB/s':>8} {'Msamp/s':>8} {'vs tiq':>16}")
        for label, _, _, base in CASES:
            mbs, mss, size = rows[label]
            ratio = f"{mss / rows[base][1]:.2f} x {base.split()[1]}" if base else ""
            print(f"{label:34} {size / 1e6:7.1f} {mbs:8.0f} {mss:8.1f} {ratio:>16}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
