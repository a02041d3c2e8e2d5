"""The floor: the least a program must do to turn one recording into the three products.

Reads the Int32 samples in chunks (plain ``readinto`` into one reused buffer), computes the
float32 power spectrogram chunk by chunk (scipy.fft in complex64, all cores, the fftshift
folded into the input as a (-1)^n modulation, |X|^2 written straight into the result),
writes the NPZ (the legacy keys) from the array's memory, and draws the full and zoom
images max-pooled to screen resolution with matplotlib's object API (PNG zlib level 1).

No CLI framework, configuration, ledger, logging, atomic renames or fsync: what is left
between this and ``crunchctl process`` is the cost of those. Independent of crunchctl, so
optimising crunchctl does not move the floor.

Usage: python bench/floor.py REC.tiq OUTDIR [--lframes 65536] [--n-avg 1] [--zoom-span 1e6]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import zipfile


def read_header(path: str) -> dict:
    with open(path, "rb") as f:
        offset = int(f.read(27)[18:27])
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
    }


def spectrogram(path: str, h: dict, lframes: int, nframes: int, chunk: int = 16):
    import numpy as np
    import scipy.fft as sfft

    assert lframes % 2 == 0
    out = np.empty((nframes, lframes), dtype=np.float32)
    weights = np.full(2 * lframes, h["scaling"], dtype=np.float32)
    weights.reshape(lframes, 2)[1::2] *= -1  # (-1)^n: the fftshift for free
    raw = np.empty((chunk, 2 * lframes), dtype="<i4")
    work = np.empty((chunk, lframes), dtype=np.complex64)
    workers = os.cpu_count() or 1
    with open(path, "rb", buffering=0) as f:
        f.seek(h["offset"])
        for start in range(0, nframes, chunk):
            k = min(chunk, nframes - start)
            f.readinto(raw[:k])
            np.multiply(
                raw[:k], weights, out=work[:k].view(np.float32), dtype=np.float32, casting="unsafe"
            )
            spec = sfft.fft(work[:k], axis=1, overwrite_x=True, workers=workers)
            comps = spec.view(np.float32)
            np.square(comps, out=comps)
            np.add(comps[:, 0::2], comps[:, 1::2], out=out[start : start + k])
    return out


def write_npz(path: str, arrays: dict) -> None:
    import numpy as np
    from numpy.lib import format as npformat

    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, a in arrays.items():
            a = np.ascontiguousarray(a)
            with zf.open(name + ".npy", "w", force_zip64=True) as m:
                npformat.write_array_header_1_0(m, npformat.header_data_from_array_1_0(a))
                data = memoryview(a.reshape(-1).view(np.uint8))
                for i in range(0, len(data), 4 << 20):
                    m.write(data[i : i + (4 << 20)])


def pool(a, axis: int, target: int):
    n = a.shape[axis]
    if n <= target:
        return a
    factor = -(-n // target)
    full = (n // factor) * factor
    a = a.swapaxes(axis, -1)
    p = a[..., :full].reshape(*a.shape[:-1], full // factor, factor).max(axis=-1)
    return p.swapaxes(axis, -1)


def render(path: str, power, extent, title: str) -> None:
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dpi, size = 130, (12.0, 6.6)
    fig = Figure(figsize=size, dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.075, 0.10, 0.80, 0.80))
    cax = fig.add_axes((0.895, 0.10, 0.018, 0.80))
    img = pool(pool(power, 1, int(size[0] * dpi * 0.8)), 0, int(size[1] * dpi * 0.8))
    img = 10 * np.log10(img)
    lo, hi = np.percentile(img[np.isfinite(img)], (2, 99.95))
    im = ax.imshow(
        img, origin="lower", aspect="auto", interpolation="nearest", extent=extent, vmin=lo, vmax=hi
    )
    fig.colorbar(im, cax=cax).set_label("power (dB)")
    ax.set_xlabel("frequency (MHz)")
    ax.set_ylabel("time (s)")
    ax.set_title(title)
    fig.savefig(path, format="png", pil_kwargs={"compress_level": 1})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recording")
    ap.add_argument("output")
    ap.add_argument("--lframes", type=int, default=65536)
    ap.add_argument("--n-avg", type=int, default=1)
    ap.add_argument("--zoom-span", type=float, default=1.0e6)
    args = ap.parse_args(argv)

    import numpy as np

    h = read_header(args.recording)
    lframes = args.lframes
    nframes = h["nsamples"] // lframes
    stem = os.path.splitext(os.path.basename(args.recording))[0]
    os.makedirs(args.output, exist_ok=True)
    fs, center = h["fs"], h["center"]

    power = spectrogram(args.recording, h, lframes, nframes)
    freqs = center + (np.arange(lframes) - lframes / 2) * (fs / lframes)
    times = np.arange(nframes) * (lframes / fs)

    write_npz(
        os.path.join(args.output, stem + ".npz"),
        {"arr_0": freqs[np.newaxis, :], "arr_1": times[:, np.newaxis], "arr_2": power},
    )
    t_end = nframes * lframes / fs
    render(
        os.path.join(args.output, stem + ".png"),
        power,
        ((freqs[0] - center) / 1e6, (freqs[-1] - center) / 1e6, 0.0, t_end),
        stem,
    )

    lo = np.searchsorted(freqs, center - args.zoom_span / 2)
    hi = np.searchsorted(freqs, center + args.zoom_span / 2, side="right")
    n_avg = max(1, args.n_avg)
    zoom = power[:, lo:hi]
    if n_avg > 1:
        g = nframes // n_avg
        zoom = zoom[: g * n_avg].reshape(g, n_avg, hi - lo).mean(axis=1)
    render(
        os.path.join(args.output, stem + "_zoom.png"),
        zoom,
        ((freqs[lo] - center) / 1e6, (freqs[hi - 1] - center) / 1e6, 0.0, t_end),
        stem + " zoom",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
