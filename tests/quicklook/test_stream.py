"""The streamed quicklook writes what a straightforward in-memory computation gives: the NPZ
bit for bit, the same pictures, and only the products asked for."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from crunchctl.config import Settings
from crunchctl.errors import FormatError, ItemError
from crunchctl.formats import tiq
from crunchctl.formats.base import Block
from crunchctl.quicklook import render, spectrum, stream, task, zoom
from crunchctl.quicklook.npzstream import NpzStream


def _settings(tmp_path: Path, **kw) -> Settings:
    base = dict(output_path=str(tmp_path / "out"), lframes=1024, zoom_span=2e5)
    return Settings(**{**base, **kw})


def _rechunk(monkeypatch, sizes: tuple[int, ...]) -> None:
    """Make the reader yield uneven chunks (copies), so the stream sees many of them."""
    original = task.Recording.blocks

    def blocks(self):
        pending = []
        for b in original(self):
            pending.extend(np.array(b.data[i]) for i in range(b.data.shape[0]))
            scale = b.scale
        i = n = 0
        while i < len(pending):
            k = sizes[n % len(sizes)]
            n += 1
            yield Block(np.stack(pending[i : i + k]), scale)
            i += k

    monkeypatch.setattr(task.Recording, "blocks", blocks)


def _in_memory(path: Path, lframes: int, window_name: str) -> tuple[np.ndarray, tiq.TiqHeader]:
    """The whole spectrogram in one piece, the plain way."""
    h = tiq.open_recording(path)
    nframes = h.nsamples // lframes
    raw = np.fromfile(h.path, dtype=h.dtype, offset=h.offset, count=2 * lframes * nframes)
    power = spectrum.power_spectrogram_raw(
        [raw.reshape(nframes, 2 * lframes)],
        nframes,
        lframes,
        scale=h.scaling,
        window_name=window_name,
    )
    return power, h


@pytest.mark.parametrize("threaded", [True, False])
@pytest.mark.parametrize("window_name,sizes", [("rectangular", (3, 5, 1)), ("hann", (7,))])
def test_streamed_npz_is_bit_identical_to_the_in_memory_computation(
    tmp_path, make_tiq, monkeypatch, threaded, window_name, sizes
):
    path = make_tiq("a.tiq", nframes=23)
    settings = _settings(tmp_path, window=window_name, products="npz")
    _rechunk(monkeypatch, sizes)
    out = tmp_path / "out"
    out.mkdir()
    written, _ = task.make_products(str(path), out, "a", settings, threaded=threaded)
    assert written == [str(out / "a.npz")]

    power, h = _in_memory(path, 1024, window_name)
    arrays = {
        "arr_0": spectrum.frequency_axis(h.center, h.fs, 1024)[np.newaxis, :],
        "arr_1": spectrum.time_axis(23, 1024, h.fs)[:, np.newaxis],
        "arr_2": power,
        "source": np.str_(str(path)),
        "format": np.str_("tiq"),
        "scaling": np.str_(f"{h.scaling!r} V per count (Int32)"),
        "unit": np.str_("V"),
        "center_frequency": np.float64(h.center),
        "sampling_frequency": np.float64(h.fs),
        "lframes": np.int64(1024),
        "nframes": np.int64(23),
        "window": np.str_(window_name),
        "acquisition_start": np.str_(h.datetime or ""),
        "keys": np.str_(task.NPZ_KEYS),
    }
    with np.load(out / "a.npz") as z:
        assert z.files == list(arrays)
        for key, ref in arrays.items():
            assert z[key].dtype == ref.dtype and z[key].shape == ref.shape, key
            assert np.array_equal(z[key], ref), key
    # Byte for byte what np.savez writes for the same arrays, member by member, stored.
    theirs = io.BytesIO()
    np.savez(theirs, **arrays)
    ours, ref_zip = zipfile.ZipFile(out / "a.npz"), zipfile.ZipFile(theirs)
    assert ours.namelist() == ref_zip.namelist()
    for name in ours.namelist():
        assert ours.getinfo(name).compress_type == zipfile.ZIP_STORED
        assert ours.read(name) == ref_zip.read(name), name


def test_npz_stream_checks_its_rows_and_writes_zip64_members():
    buf = io.BytesIO()
    npz = NpzStream(buf)
    rows = npz.begin("arr_2", np.float32, (4, 3))
    rows.write(np.ones((3, 3), np.float32))
    with pytest.raises(ValueError, match="rows of float64"):
        rows.write(np.ones((1, 3)))
    with pytest.raises(ValueError, match="got 3 rows, expected 4"):
        npz.end()
    npz = NpzStream(io.BytesIO())
    rows = npz.begin("a", np.float32, (2, 3))
    with pytest.raises(ValueError, match="more than 2 rows"):
        rows.write(np.ones((3, 3), np.float32))


@pytest.mark.parametrize(
    "nrows,ncols,height,width",
    [(610, 5000, 686, 1248), (2000, 3000, 686, 1248), (7, 10, 3, 4), (5, 5, 10, 10), (9, 20, 1, 1)],
)
def test_max_pooler_equals_pool_max_of_the_whole_array(nrows, ncols, height, width):
    rng = np.random.default_rng(nrows)
    a = rng.exponential(1.0, (nrows, ncols)).astype(np.float32)
    a[nrows // 2, ncols // 3] = np.nan
    ref = spectrum.pool_max(spectrum.pool_max(a, 1, width), 0, height)
    for sizes in ((1,), (3, 7, 2), (nrows,)):
        pooler = stream.MaxPooler(nrows, ncols, height, width)
        i = n = 0
        while i < nrows:
            k = sizes[n % len(sizes)]
            pooler.add(a[i : i + k])
            i, n = i + k, n + 1
        got = pooler.result()
        assert got.shape == ref.shape and np.array_equal(got, ref, equal_nan=True)


@pytest.mark.parametrize("nframes,n_avg", [(23, 1), (23, 4), (24, 4), (3, 10), (23, 23)])
def test_zoom_averager_equals_averaging_the_whole_array(nframes, n_avg):
    rng = np.random.default_rng(n_avg)
    power = rng.exponential(1e-6, (nframes, 400)).astype(np.float32)
    freqs = spectrum.frequency_axis(1e8, 1e6, 400)
    window = zoom.zoom_window(
        "x.tiq", freqs, 1e8, zoom_center=1e5, zoom_span=3e5, n_avg=n_avg, nframes=nframes
    )
    sl = spectrum.zoom_slice(freqs, 1e8 + 1e5, 3e5)
    ref = spectrum.average_frames(power[:, sl], n_avg)
    for sizes in ((1,), (3, 5), (nframes,)):
        avg = zoom.ZoomAverager(window)
        rows, i, n = [], 0, 0
        while i < nframes:
            k = sizes[n % len(sizes)]
            rows.append(avg.add(power[i : i + k]))
            i, n = i + k, n + 1
        rows.append(avg.finish())
        got = np.concatenate([r for r in rows if r is not None])
        assert got.shape == ref.shape == (window.rows, sl.stop - sl.start)
        assert np.array_equal(got, ref)
    assert len(window.times(400, 1e6)) == window.rows
    whole = zoom.zoom_of(
        "x.tiq",
        power,
        freqs,
        1e8,
        1e6,
        _settings(Path("."), zoom_center=1e5, zoom_span=3e5, n_avg=n_avg),
    )
    assert np.array_equal(whole.power, ref) and np.array_equal(whole.freqs, freqs[sl])


def test_zoom_outside_the_span_is_a_one_line_error():
    freqs = spectrum.frequency_axis(1e8, 1e6, 400)
    with pytest.raises(FormatError, match=r"^x.tiq: zoom window .* lies outside"):
        zoom.zoom_window("x.tiq", freqs, 1e8, zoom_center=5e6, zoom_span=1e3, n_avg=1, nframes=3)


def _pixels(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path))


@pytest.mark.parametrize("n_avg", [1, 3])
def test_streamed_pictures_are_the_pictures_of_the_whole_arrays(
    tmp_path, make_tiq, monkeypatch, n_avg
):
    from crunchctl.formats.synth import Line

    # One-bin lines: they must stay visible after pooling 4096 bins into the image width.
    path = make_tiq("p.tiq", nframes=40, lframes=4096, lines=(Line(123e3, 1e-3, 0.0),))
    settings = _settings(tmp_path, lframes=4096, n_avg=n_avg, zoom_span=3e5)
    _rechunk(monkeypatch, (6, 1, 9))
    out = tmp_path / "out"
    out.mkdir()
    task.make_products(str(path), out, "p", settings)

    power, h = _in_memory(path, 4096, "rectangular")
    freqs = spectrum.frequency_axis(h.center, h.fs, 4096)
    times = spectrum.time_axis(40, 4096, h.fs)
    rec = task.open_for(str(path), settings)
    title = task.title_for(str(path), rec.header)
    style = render.Style(cmap=settings.cmap, scaling="spectrum")
    factor = np.float32(1.0 / 4096**2)  # the spectrum scaling of a rectangular window
    ref_full, ref_zoom = tmp_path / "full.png", tmp_path / "zoom.png"
    with open(ref_full, "wb") as f:
        render.render_spectrogram(
            f,
            power * factor,
            freqs,
            times,
            title=title,
            style=style,
            subtitle=f"centre {render.fmt_hz(h.center)}, "
            f"{render.describe_resolution(h.fs, 4096, window='rectangular')}",
        )
    z = zoom.zoom_of(str(path), power, freqs, h.center, h.fs, settings)
    with open(ref_zoom, "wb") as f:
        render.render_spectrogram(
            f,
            z.power * factor,
            z.freqs,
            z.times,
            title=title + "   (zoom)",
            style=style,
            subtitle=f"span {render.fmt_hz(3e5)}, "
            f"{render.describe_resolution(h.fs, 4096, n_avg, window='rectangular')}",
            relative_to=z.window.centre,
        )
    for got, ref in ((out / "p.png", ref_full), (out / "p_zoom.png", ref_zoom)):
        a, b = _pixels(got), _pixels(ref)
        assert a.shape == b.shape == (858, 1560, 4)
        assert np.array_equal(a, b), got.name
    # The line is in the picture: a column of the image area far above the median.
    img = _pixels(out / "p.png")[120:760, 120:1330, :3].astype(int).sum(axis=2)
    col = np.abs(img - np.median(img)).mean(axis=0)
    assert col.max() > 8 * np.median(col)


@pytest.mark.parametrize(
    "products",
    ["png", "zoom", "npz", "spectrum", "png,spectrum", "zoom,npz", "png,zoom,npz,spectrum"],
)
def test_only_the_asked_products_are_written(tmp_path, make_tiq, products):
    path = make_tiq("r.tiq", nframes=5)
    settings = _settings(tmp_path, products=products)
    out = tmp_path / "out"
    out.mkdir()
    written, _ = task.make_products(str(path), out, "r", settings)
    endings = {
        "png": ["r.png"],
        "zoom": ["r_zoom.png"],
        "npz": ["r.npz"],
        "spectrum": ["r_spectrum.npz", "r_spectrum.png"],
    }
    expected = [str(out / name) for k in products.split(",") for name in endings[k]]
    assert written == expected
    assert sorted(os.listdir(out)) == sorted(Path(p).name for p in expected)


def test_spectrum_product_is_the_float64_mean_over_all_frames(tmp_path, make_tiq):
    path = make_tiq("s.tiq", nframes=9)
    out = tmp_path / "out"
    out.mkdir()
    task.make_products(str(path), out, "s", _settings(tmp_path, products="spectrum"))
    power, h = _in_memory(path, 1024, "rectangular")
    with np.load(out / "s_spectrum.npz") as z:
        assert z["arr_0"].dtype == np.float64 and z["arr_0"].shape == (1024,)
        assert z["arr_1"].dtype == np.float64 and z["arr_1"].shape == (1024,)
        np.testing.assert_array_equal(z["arr_0"], spectrum.frequency_axis(h.center, h.fs, 1024))
        # The spectrum scaling (docs/products.md): |FFT|² / (Σw)², L² for rectangular.
        np.testing.assert_allclose(
            z["arr_1"], power.astype(np.float64).mean(axis=0) / 1024**2, rtol=1e-12
        )
        assert str(z["power_scaling"]) == "spectrum" and str(z["power_unit"]) == "V²"
        assert str(z["source"]) == str(path) and str(z["format"]) == "tiq"
        assert float(z["center_frequency"]) == h.center
        assert float(z["sampling_frequency"]) == h.fs
        assert int(z["lframes"]) == 1024 and int(z["nframes"]) == 9
        assert str(z["window"]) == "rectangular"
        assert str(z["acquisition_start"]) == (h.datetime or "")
        # The strongest line of the recording is the spectrum's peak.
        assert abs(z["arr_0"][z["arr_1"].argmax()] - (h.center + 50e3)) <= h.fs / 1024


def test_a_reader_failing_mid_stream_fails_the_recording_and_leaves_no_temp_file(
    tmp_path, make_tiq, monkeypatch
):
    path = make_tiq("f.tiq", nframes=12)
    original = task.Recording.blocks

    def failing(self):
        for i, b in enumerate(original(self)):
            yield Block(b.data[:2], b.scale)
            raise FormatError(f"{self.path}: file ends at byte 1 while reading its samples")

    monkeypatch.setattr(task.Recording, "blocks", failing)
    out = tmp_path / "out"
    out.mkdir()
    outcome = task.process_recording(
        task.RecordingTask(str(path), "f", _settings(tmp_path, products="png,zoom,npz,spectrum"))
    )
    assert outcome.status == "error" and "file ends at byte" in outcome.error
    assert os.listdir(out) == []


def test_a_product_that_cannot_be_written_fails_the_recording(tmp_path, make_tiq):
    path = make_tiq("a.tiq", nframes=4)
    out = tmp_path / "out"
    out.mkdir()
    (out / "b.npz").mkdir()  # the NPZ cannot replace a folder
    with pytest.raises(ItemError, match="b.npz"):
        task.make_products(str(path), out, "b", _settings(tmp_path))
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]


def test_stream_power_hands_chunks_in_order_and_reraises_consumer_errors():
    rng = np.random.default_rng(3)
    data = rng.standard_normal((10, 64)).astype(np.float32)
    blocks = [Block(data[i : i + 3], 0.5) for i in range(0, 10, 3)]
    got = []
    stream.stream_power(blocks, 10, 32, lambda c: got.append(c.copy()), threaded=True)
    ref = spectrum.power_spectrogram_raw([data], 10, 32, scale=0.5)
    assert np.array_equal(np.concatenate(got), ref)

    def boom(chunk):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        stream.stream_power(blocks, 10, 32, boom, threaded=True)
    with pytest.raises(ValueError, match="got 9 frames, expected 10"):
        stream.stream_power(blocks[:3], 10, 32, lambda c: None, threaded=True)


def test_drawn_pixels_are_what_savefig_writes_and_the_png_holds_them(monkeypatch):
    from PIL import Image

    rng = np.random.default_rng(9)
    img = rng.exponential(1e-6, (300, 1000)).astype(np.float32)
    img[:, 77] = 1e-2
    freqs = spectrum.frequency_axis(245e6, 3.125e6, 1000)
    times = spectrum.time_axis(300, 1000, 3.125e6)
    canvas = render._Canvas.get(render.DPI)
    keep = canvas.image.set_data
    # Keep the image on the figure after drawing, to savefig the very same figure.
    monkeypatch.setattr(
        canvas.image, "set_data", lambda a: None if a is render._EMPTY_RGBA else keep(a)
    )
    pixels = render.draw_pooled(img, freqs, times, title="t", subtitle="s")
    ref = io.BytesIO()
    canvas.fig.savefig(ref, format="png", dpi=render.DPI)
    expected = np.asarray(Image.open(io.BytesIO(ref.getvalue())))
    assert pixels.shape == expected.shape == (858, 1560, 4)
    assert np.array_equal(pixels, expected)
    png = Image.open(io.BytesIO(render.encode_png(pixels, render.DPI)))
    png.load()
    assert np.array_equal(np.asarray(png), pixels)
    assert round(png.info["dpi"][0]) == render.DPI and "Matplotlib" in png.info["Software"]
    render._Canvas.forget(render.DPI)
