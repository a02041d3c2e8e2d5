"""The legacy pipeline, re-implemented as the benchmark's baseline.

One recording per (fresh) process, exactly as the old tools did it:

* read ``nframes * lframes`` samples as one bytes object, convert to int32, multiply by
  the scaling (float64) and view as complex128, reshape to (nframes, lframes);
* ``abs(fftshift(fft(x, axis=1), axes=1))**2`` cast to float32;
* pyplot ``imshow`` of the full-resolution array (``cmap='jet'``, ``aspect='auto'``,
  linear colour), saved at dpi 150;
* ``np.savez`` (uncompressed) of the sparse frequency row (float32, 1 x L), the time
  column (N x 1) and the power;
* average every ``n_avg`` frames, then the same ``imshow`` restricted to a 1 MHz span,
  saved as the zoom PNG.

Deliberately independent of crunchctl (its own header parsing), so it measures what the
old tools cost, imports included. What the description leaves open takes pyplot's defaults
(figure size 6.4 x 4.8 in, so 960 x 720 px at dpi 150) or the plainest choice (a colour
bar, axis labels and a title; nothing freed early).

Usage: python bench/legacy_pipeline.py REC.tiq OUTDIR [--lframes 65536] [--nframes N]
       [--n-avg 1] [--zoom-span 1e6] [--zoom-center 0]
"""

from __future__ import annotations

import argparse
import os
import re
import sys


def read_header(path: str) -> dict:
    with open(path, "rb") as f:
        head = f.read(32)
        offset = int(head[18:27])
        f.seek(0)
        text = f.read(offset).decode("utf-8", "replace")

    def field(name: str) -> str:
        m = re.search(rf"<{name}\b[^>]*>([^<]+)</{name}>", text)
        if not m:
            raise SystemExit(f"{path}: header has no {name}")
        return m.group(1).strip()

    return {
        "offset": offset,
        "nsamples": int(field("NumberSamples")),
        "fs": float(field("SamplingFrequency")),
        "scaling": float(field("Scaling")),
        "center": float(field("Frequency")),
        "format": field("NumberFormat"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recording")
    ap.add_argument("output")
    ap.add_argument("--lframes", type=int, default=65536)
    ap.add_argument("--nframes", type=int, default=None)
    ap.add_argument("--n-avg", type=int, default=1)
    ap.add_argument("--zoom-span", type=float, default=1.0e6)
    ap.add_argument("--zoom-center", type=float, default=0.0)
    args = ap.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    h = read_header(args.recording)
    if h["format"] != "Int32":
        raise SystemExit("the legacy pipeline reads Int32 recordings only")
    lframes = args.lframes
    nframes = args.nframes if args.nframes is not None else h["nsamples"] // lframes
    stem = os.path.splitext(os.path.basename(args.recording))[0]
    os.makedirs(args.output, exist_ok=True)

    # Read everything at once, int32 -> float64 x scaling -> complex128.
    with open(args.recording, "rb") as f:
        f.seek(h["offset"])
        data = np.frombuffer(f.read(nframes * lframes * 8), dtype="<i4") * h["scaling"]
    # Written as the old tools wrote it: nothing is freed early.
    x = data.view(np.complex128).reshape(nframes, lframes)
    power = (np.abs(np.fft.fftshift(np.fft.fft(x, axis=1), axes=1)) ** 2).astype(np.float32)

    fs, center = h["fs"], h["center"]
    freq = (np.fft.fftshift(np.fft.fftfreq(lframes, 1.0 / fs)) + center).astype(np.float32)
    time = np.arange(nframes, dtype=np.float64) * (lframes / fs)
    xx, yy = np.meshgrid(freq, time, sparse=True)

    # Full-resolution image, linear colour, jet.
    fig = plt.figure()
    plt.imshow(
        power,
        cmap="jet",
        aspect="auto",
        origin="lower",
        extent=(float(freq[0]), float(freq[-1]), 0.0, float(time[-1] + lframes / fs)),
    )
    plt.colorbar()
    plt.xlabel("frequency (Hz)")
    plt.ylabel("time (s)")
    plt.title(stem)
    plt.savefig(os.path.join(args.output, stem + ".png"), dpi=150)
    plt.close(fig)

    np.savez(os.path.join(args.output, stem + ".npz"), xx, yy, power)

    # Zoom: average every n_avg frames, then a 1 MHz span around the centre.
    n_avg = max(1, args.n_avg)
    groups = max(1, nframes // n_avg)
    if n_avg > 1:
        avg = power[: groups * n_avg].reshape(groups, n_avg, lframes).mean(axis=1)
    else:
        avg = power
    zc = center + args.zoom_center
    sel = (freq >= zc - args.zoom_span / 2) & (freq <= zc + args.zoom_span / 2)
    fig = plt.figure()
    plt.imshow(
        avg[:, sel],
        cmap="jet",
        aspect="auto",
        origin="lower",
        extent=(
            float(freq[sel][0]),
            float(freq[sel][-1]),
            0.0,
            float(groups * n_avg * lframes / fs),
        ),
    )
    plt.colorbar()
    plt.xlabel("frequency (Hz)")
    plt.ylabel("time (s)")
    plt.title(stem + " zoom")
    plt.savefig(os.path.join(args.output, stem + "_zoom.png"), dpi=150)
    plt.close(fig)
    return 0


if __name__ == "__main__":
    sys.exit(main())
