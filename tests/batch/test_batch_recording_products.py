"""``batch --loader iq --products ...,peaks,campaign``: the recordings' own mean-spectrum
products beside the figures, their ledger rows read by ``trend``, resumed like figures
(docs/products.md)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import child_env, crunchctl_cmd
from crunchctl.formats.synth import Line, RecordingSpec, make_recording

FS, L, CENTER = 1.0e6, 1024, 100.0e6
BIN = FS / L
START = dt.datetime(2026, 3, 1, 22, 0, tzinfo=dt.timezone.utc)
#: The tone: 50 kHz + 0.3 bins above the centre, 1.7 bins higher and 3 dB weaker in each
#: recording; a steady weaker line at -200 kHz.
TONE0, STEP, AMP0 = 50e3 + 0.3 * BIN, 1.7 * BIN, 1e-3


def tone(i: int) -> tuple[float, float]:
    """(absolute frequency Hz, power dB re 1 V²) of the tone in recording i."""
    return CENTER + TONE0 + i * STEP, 20 * np.log10(AMP0) - 3.0 * i


def record(folder: Path, name: str, i: int) -> Path:
    """Recording i of the night: ten minutes after the one before."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = (Line(TONE0 + i * STEP, AMP0 * 10 ** (-3.0 * i / 20)), Line(-200e3, 3e-4))
    spec = RecordingSpec(
        nframes=8,
        lframes=L,
        fs=FS,
        center=CENTER,
        lines=lines,
        seed=10 + i,
        acquired=START + dt.timedelta(minutes=10 * i),
    )
    return make_recording(folder / name, spec, chunk_samples=4096)


def crunchctl(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [*crunchctl_cmd(), *args, "--ledger", str(tmp_path / "ledger")],
        check=False,
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc


def batch(tmp_path: Path, items: Path) -> dict:
    proc = crunchctl(
        tmp_path,
        "batch",
        str(items),
        "--loader",
        "iq",
        "--products",
        "png,peaks,campaign",
        "--lframes",
        str(L),
        "--zoom-span",
        "2e5",
        "--window",
        "hann",
        "--output",
        str(tmp_path / "out"),
        "--log-file",
        str(tmp_path / "log"),
        "--workers",
        "2",
        "--json",
    )
    return json.loads(proc.stdout)


def test_batch_iq_writes_peaks_and_campaign_and_trend_sees_them(tmp_path):
    folder = tmp_path / "rec" / "rsa"
    paths = [record(folder, f"r{i}.tiq", i) for i in range(3)]
    items = tmp_path / "items.txt"
    items.write_text("".join(f"{p}\n" for p in reversed(paths)))

    doc = batch(tmp_path, items)
    assert (doc["ok"], doc["failed"], doc["skipped"]) == (3, 0, 0)
    out = tmp_path / "out"
    for i, p in enumerate(paths):
        figure = next(o for o in doc["outcomes"] if o["item"] == str(p))["products"]
        assert len(figure) == 1 and Path(figure[0]).is_file()  # the figure itself
        csv = (out / f"r{i}_peaks.csv").read_text().splitlines()
        assert csv[0] == "frequency_hz,power_db,fwhm_hz,snr_db" and len(csv) == 3
        assert float(csv[1].split(",")[0]) == pytest.approx(tone(i)[0], abs=BIN)
    assert not list(out.glob("*_spectrum.png"))  # spectrum not asked for: its file only

    with np.load(out / "campaign" / "rsa.npz") as z:
        assert list(z["items"]) == [str(p) for p in paths]  # acquisition order
        assert z["arr_2"].shape == (3, L)
        freqs = z["arr_0"][0]
        for i in range(3):
            upper = np.where(freqs > tone(0)[0] - 10 * BIN, z["arr_2"][i], np.nan)
            assert abs(float(freqs[np.nanargmax(upper)]) - tone(i)[0]) < BIN
    assert (out / "campaign" / "rsa.png").is_file()

    trend = json.loads(crunchctl(tmp_path, "trend", "--json", "--lines", "1").stdout)
    [line] = trend["lines"]
    assert [p["item"] for p in line["points"]] == [str(p) for p in paths]
    for i, point in enumerate(line["points"]):
        assert abs(point["frequency_hz"] - tone(i)[0]) < BIN
        assert abs(point["power_db"] - tone(i)[1]) < 0.5

    # A second run skips them all and leaves the products alone.
    before = {f: f.stat().st_mtime_ns for f in out.rglob("*") if f.is_file()}
    doc = batch(tmp_path, items)
    assert (doc["ok"], doc["skipped"]) == (0, 3)
    assert {f: f.stat().st_mtime_ns for f in out.rglob("*") if f.is_file()} == before
    assert len(json.loads(crunchctl(tmp_path, "trend", "--json").stdout)["lines"][0]["points"]) == 3


def test_asking_for_peaks_later_redoes_done_figures_and_only_then(tmp_path):
    p = record(tmp_path / "rec" / "rsa", "r0.tiq", 0)
    items = tmp_path / "items.txt"
    items.write_text(f"{p}\n")
    args = [
        "batch",
        str(items),
        "--loader",
        "iq",
        "--lframes",
        str(L),
        "--zoom-span",
        "2e5",
        "--output",
        str(tmp_path / "out"),
        "--log-file",
        str(tmp_path / "log"),
        "--json",
    ]
    assert json.loads(crunchctl(tmp_path, *args).stdout)["ok"] == 1
    # Names batch does not make change nothing: the figure stays done.
    doc = json.loads(crunchctl(tmp_path, *args, "--products", "png,zoom,npz").stdout)
    assert (doc["ok"], doc["skipped"]) == (0, 1)
    assert not (tmp_path / "out" / "r0_peaks.csv").exists()
    doc = json.loads(crunchctl(tmp_path, *args, "--products", "png,peaks").stdout)
    assert (doc["ok"], doc["skipped"]) == (1, 0)
    assert (tmp_path / "out" / "r0_peaks.csv").is_file()
    assert not (tmp_path / "out" / "campaign").exists()
    trend = json.loads(crunchctl(tmp_path, "trend", "--json", "--lines", "1").stdout)
    assert [pt["item"] for pt in trend["lines"][0]["points"]] == [str(p)]
