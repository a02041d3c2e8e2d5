"""The fast paths (fused conversion and FFT, plain reads, fast PNG) compute and write exactly what the plain ones do (small arrays)."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from crunchctl.errors import TiqError
from crunchctl.formats import tiq
from crunchctl.quicklook import spectrum
from crunchctl.quicklook.products import write_npz


def _reference(h: tiq.TiqHeader, lframes: int, nframes: int, window_name: str) -> np.ndarray:
    """The legacy formula in float64: abs(fftshift(fft(frames * scaling * window)))**2."""
    raw = np.fromfile(h.path, dtype=h.dtype, offset=h.offset, count=2 * lframes * nframes)
    x = (raw.astype(np.float64) * h.scaling).view(np.complex128).reshape(nframes, lframes)
    win = spectrum.window(window_name, lframes)
    if win is not None:
        x = x * win.astype(np.float64)
    return np.abs(np.fft.fftshift(np.fft.fft(x, axis=1), axes=1)) ** 2


def _write(tmp_path: Path, fmt: str, big: bool, nsamples: int) -> tiq.TiqHeader:
    rng = np.random.default_rng(7)
    n = np.arange(nsamples)
    x = (rng.standard_normal(nsamples) + 1j * rng.standard_normal(nsamples)) * 1e-4
    x += 3e-3 * np.exp(2j * np.pi * 0.1234 * n)  # a line well above the noise
    scaling = 1e-7 if fmt != "Int16" else 1e-6
    path = tiq.write_tiq(
        tmp_path / f"{fmt}{big}.tiq",
        [x],
        nsamples=nsamples,
        fs=1e6,
        center=1e8,
        scaling=scaling,
        number_format=fmt,
        big_endian=big,
    )
    return tiq.open_recording(path)


@pytest.mark.parametrize("fmt,big", [("Int32", False), ("Int16", True), ("Single", False)])
@pytest.mark.parametrize("lframes,chunk", [(256, 3), (250, 4), (255, 1)])
@pytest.mark.parametrize("window_name", ["rectangular", "hann"])
def test_raw_and_complex_paths_equal_the_legacy_formula(
    tmp_path, fmt, big, lframes, chunk, window_name
):
    nframes = 7
    h = _write(tmp_path, fmt, big, 2048)
    ref = _reference(h, lframes, nframes, window_name)
    fast = spectrum.power_spectrogram_raw(
        tiq.iter_raw_frames(h, lframes, nframes, chunk_frames=chunk),
        nframes,
        lframes,
        scale=h.scaling,
        window_name=window_name,
    )
    plain = spectrum.power_spectrogram(
        tiq.iter_frames(h, lframes, nframes, chunk_frames=chunk),
        nframes,
        lframes,
        window_name=window_name,
    )
    for got in (fast, plain):
        assert got.dtype == np.float32 and got.shape == (nframes, lframes)
        assert np.max(np.abs(got - ref) / ref.sum(axis=1, keepdims=True)) < 1e-6
        assert np.array_equal(got.argmax(axis=1), ref.argmax(axis=1))
    if window_name == "rectangular":  # scaling by +-s is exact: both paths agree bit for bit
        assert np.array_equal(fast, plain)


def test_input_chunks_are_not_modified(tmp_path):
    h = _write(tmp_path, "Int32", False, 1024)
    chunks = list(tiq.iter_frames(h, 256, 4, chunk_frames=2))
    before = [c.copy() for c in chunks]
    spectrum.power_spectrogram(iter(chunks), 4, 256, window_name="hann")
    assert all(np.array_equal(a, b) for a, b in zip(chunks, before))


def test_complex128_and_non_contiguous_chunks_are_accepted(tmp_path):
    h = _write(tmp_path, "Int32", False, 1024)
    x = np.concatenate(list(tiq.iter_frames(h, 256, 4))).astype(np.complex128)
    ref = spectrum.power_spectrogram([x.astype(np.complex64)], 4, 256)
    wide = np.zeros((4, 512), np.complex128)
    wide[:, ::2] = x
    got = spectrum.power_spectrogram([x[:2], wide[2:, ::2]], 4, 256)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=ref.max() * 1e-7)


def test_frame_count_mismatch_is_an_error(tmp_path):
    h = _write(tmp_path, "Int32", False, 1024)
    with pytest.raises(ValueError, match="got 2 frames, expected 3"):
        spectrum.power_spectrogram(tiq.iter_frames(h, 256, 2), 3, 256)
    with pytest.raises(ValueError, match="more than 1 frames"):
        spectrum.power_spectrogram(tiq.iter_frames(h, 256, 2), 1, 256)


def test_raw_frames_share_one_buffer_but_iter_frames_does_not(tmp_path):
    h = _write(tmp_path, "Int32", False, 1024)
    raw = list(tiq.iter_raw_frames(h, 256, 4, chunk_frames=2))
    assert raw[0].shape == (2, 512) and np.shares_memory(raw[0], raw[1])
    frames = list(tiq.iter_frames(h, 256, 4, chunk_frames=2))
    assert not np.shares_memory(frames[0], frames[1])
    np.testing.assert_allclose(np.concatenate(frames).ravel(), tiq.read_samples(h, 0, 1024))


def test_a_file_that_shrinks_while_being_read_is_a_clean_error(tmp_path):
    h = _write(tmp_path, "Int32", False, 2048)
    it = tiq.iter_raw_frames(h, 256, 8, chunk_frames=2)
    next(it)
    os.truncate(h.path, h.offset + 3 * 256 * 8)
    with pytest.raises(TiqError, match=r"file ends at byte .* while reading its samples"):
        list(it)


def test_write_npz_writes_what_np_savez_writes():
    arrays = {
        "arr_0": np.arange(10.0)[np.newaxis, :],
        "arr_1": np.arange(3.0)[:, np.newaxis],
        "arr_2": np.random.default_rng(1).random((3, 10)).astype(np.float32),
        "strided": np.arange(3000, dtype=np.float32).reshape(30, 100)[:, ::3],
        "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        "empty": np.zeros((0, 4), np.float32),
        "source": np.str_("/data/a b/é.tiq"),
        "n": np.int64(5),
    }
    ours, theirs = io.BytesIO(), io.BytesIO()
    write_npz(ours, arrays)
    np.savez(theirs, **arrays)
    a, b = zipfile.ZipFile(ours), zipfile.ZipFile(theirs)
    assert a.namelist() == b.namelist()
    for name in a.namelist():
        assert a.getinfo(name).compress_type == zipfile.ZIP_STORED
        assert a.read(name) == b.read(name), name
    with np.load(io.BytesIO(ours.getvalue())) as z:
        np.testing.assert_array_equal(z["strided"], arrays["strided"])
        assert str(z["source"]) == "/data/a b/é.tiq"


def _pool_reference(a: np.ndarray, axis: int, target: int) -> np.ndarray:
    """Max-pooling written out: full cells by reshape, then the shorter last cell."""
    n = a.shape[axis]
    if target <= 0 or n <= target:
        return a
    factor = -(-n // target)
    full = (n // factor) * factor
    a = np.moveaxis(a, axis, -1)
    head = a[..., :full].reshape(*a.shape[:-1], full // factor, factor).max(axis=-1)
    if full < n:
        head = np.concatenate([head, a[..., full:].max(axis=-1, keepdims=True)], axis=-1)
    return np.moveaxis(head, -1, axis)


@pytest.mark.parametrize("shape", [(7, 1000), (40, 5003), (1000, 5)])
@pytest.mark.parametrize("target", [1, 3, 300, 1248, 10**6])
def test_pool_max_equals_the_plain_reshape(shape, target):
    a = np.random.default_rng(2).random(shape, dtype=np.float32)
    a[0, 0] = np.nan
    for axis in (0, 1):
        for view in (a, a[:, 1 : shape[1] // 2 + 1]):
            got, ref = spectrum.pool_max(view, axis, target), _pool_reference(view, axis, target)
            assert got.shape == ref.shape and np.array_equal(got, ref, equal_nan=True)


def test_reused_figures_draw_what_a_fresh_figure_draws():
    from PIL import Image

    from crunchctl.quicklook import render

    rng = np.random.default_rng(4)

    def case(n_t, n_f, center, fs):
        p = rng.exponential(1e-6, (n_t, n_f)).astype(np.float32)
        p[:, n_f // 3] = 1e-2
        return p, spectrum.frequency_axis(center, fs, n_f), spectrum.time_axis(n_t, n_f, fs)

    def draw(data, style, relative_to, subtitle):
        buf = io.BytesIO()
        render.render_spectrogram(
            buf, *data, title="T", subtitle=subtitle, relative_to=relative_to, style=style
        )
        return np.asarray(Image.open(io.BytesIO(buf.getvalue())))

    wide, narrow = case(20, 4000, 245e6, 3.125e6), case(3, 300, 1e8, 1e3)
    drawings = [
        (wide, render.Style(), None, "first"),
        (narrow, render.Style(cmap="jet", db=False), 100e6 + 10.0, ""),
        (wide, render.Style(cmap="magma"), 245e6, "third"),
    ]
    reused = [draw(*d) for d in drawings]
    for d, img in zip(drawings, reused):
        render._Canvas.forget(render.DPI)
        assert np.array_equal(draw(*d), img)


def test_the_fft_is_scipys_without_importing_scipy_fft():
    """The pocketfft kernel loaded directly gives scipy.fft.fft's numbers, bit for bit, and
    a later ``import scipy.fft`` reuses the loaded module."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from crunchctl.quicklook import spectrum\n"
        "x = np.random.default_rng(5).standard_normal((3, 2048)).astype(np.float32)\n"
        "a = x.view(np.complex64).copy()\n"
        "got = spectrum._fft_rows(a, 2).copy()\n"
        "assert 'scipy.fft' not in sys.modules, 'scipy.fft was imported'\n"
        "import scipy.fft\n"
        "assert scipy.fft._pocketfft.basic.pfft is sys.modules[spectrum._POCKETFFT]\n"
        "ref = scipy.fft.fft(x.view(np.complex64).copy(), axis=1, overwrite_x=True, workers=1)\n"
        "assert got.dtype == ref.dtype == np.complex64 and np.array_equal(got, ref)\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
