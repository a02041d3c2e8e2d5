"""watch with every format, each recording written slowly into the watched folder (SigMF:
data first, meta last): processed once, after it is complete, with the default patterns."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import WatchProc, wait_for
from formats_helpers import CENTER, FS, L, slow_write, test_signal, write_sigmf, write_tdms

N = 16 * L

# Each test runs a real watcher for about 20 s (settle times, a late second look).
pytestmark = pytest.mark.slow
SETTLE = "1.5"  # seconds unchanged; longer than the writer's pauses


def _pairs_f32(x: np.ndarray) -> bytes:
    p = np.empty(2 * x.size, dtype=np.float32)
    p[0::2], p[1::2] = x.real, x.imag
    return p.tobytes()


@pytest.fixture
def watcher(tmp_path: Path, watchers):
    def make(*extra: str) -> WatchProc:
        return watchers(
            tmp_path / "w",
            "--settle",
            SETTLE,
            *extra,
            workers=1,
            www=False,
            zoom_span="200000",
            lframes=L,
        ).start()

    return make


def _rows(w: WatchProc) -> list[dict]:
    return w.rows().to_dicts()


def _processed_once(w: WatchProc, item: Path, size: int) -> None:
    wait_for(
        lambda: any(r["item"] == str(item) for r in _rows(w)), 60, f"{item.name} to be processed"
    )
    time.sleep(2.0)  # would a second, late event process it again?
    rows = [r for r in _rows(w) if r["item"] == str(item)]
    assert len(rows) == 1, rows
    assert rows[0]["status"] == "ok", rows[0]["error"]
    assert rows[0]["size"] == size  # processed after the last byte, not before
    assert len(_rows(w)) == 1, [r["item"] for r in _rows(w)]


def test_tdms_written_segment_by_segment(tmp_path: Path, watcher):
    x = test_signal(N) * 1e-3
    src = tmp_path / "src.tdms"
    write_tdms(src, [x[i : i + 4 * L] for i in range(0, N, 4 * L)], [1e-7, 2e-7, 1e-7, 2e-7])
    w = watcher()
    dest = w.folder / "a.tdms"
    slow_write(dest, src.read_bytes(), pieces=7, pause=0.3)  # cuts fall inside segments
    _processed_once(w, dest, src.stat().st_size)


def test_wav_written_slowly(tmp_path: Path, watcher):
    from scipy.io import wavfile

    x = test_signal(N)
    src = tmp_path / "src.wav"
    wavfile.write(src, int(FS), (np.stack([x.real, x.imag], 1) * 20000).astype(np.int16))
    w = watcher()
    dest = w.folder / "a.wav"
    slow_write(dest, src.read_bytes(), pieces=6, pause=0.3)
    _processed_once(w, dest, src.stat().st_size)


def test_raw_written_slowly_only_with_a_sample_rate(tmp_path: Path, watcher):
    data = _pairs_f32(test_signal(N))
    w = watcher("--sample-rate", str(FS), "--center", str(CENTER))
    dest = w.folder / "a.cf32"
    slow_write(dest, data, pieces=6, pause=0.3)
    _processed_once(w, dest, len(data))


def test_sigmf_data_first_meta_last_is_one_item(tmp_path: Path, watcher):
    src = tmp_path / "src"
    src.mkdir()
    data_src, _ = write_sigmf(src, "a", test_signal(N), "ci16_le")
    w = watcher()
    slow_write(w.folder / "a.sigmf-data", data_src.read_bytes(), pieces=5, pause=0.3)
    time.sleep(2.5)  # data complete and settled, meta not there yet: nothing to process
    assert _rows(w) == []
    slow_write(w.folder / "a.sigmf-meta", (src / "a.sigmf-meta").read_bytes(), pieces=3, pause=0.3)
    # The fingerprint covers both files of the pair (docs/ledger.md).
    both = data_src.stat().st_size + (src / "a.sigmf-meta").stat().st_size
    _processed_once(w, w.folder / "a.sigmf-data", both)


def test_raw_files_are_not_watched_without_a_sample_rate(tmp_path: Path, watcher):
    from crunchctl import formats
    from crunchctl.formats import ReadOptions

    assert "*.cf32" not in formats.patterns(ReadOptions())
    assert "*.cf32" in formats.patterns(ReadOptions(sample_rate=FS))
    w = watcher()
    (w.folder / "a.cf32").write_bytes(_pairs_f32(test_signal(N)))
    src = tmp_path / "src"
    src.mkdir()
    write_sigmf(src, "s", test_signal(N), "cf32_le")
    shutil.copy(src / "s.sigmf-data", w.folder)
    shutil.copy(src / "s.sigmf-meta", w.folder)
    wait_for(lambda: len(_rows(w)) >= 1, 60, "the SigMF recording")
    time.sleep(2.0)
    assert [Path(r["item"]).name for r in _rows(w)] == ["s.sigmf-data"]
