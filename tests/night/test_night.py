"""The night at a glance through real processes: peaks in the ledger, ``crunchctl trend``,
the campaign of a recorder folder, and their edge cases (docs/products.md)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import child_env, crunchctl_cmd
from crunchctl.formats.synth import Line, RecordingSpec, make_recording

FS = 1.0e6
L = 1024
BIN = FS / L
CENTER = 100.0e6
START = dt.datetime(2026, 3, 1, 22, 0, tzinfo=dt.timezone.utc)
#: The tone: starts 50 kHz + 0.3 bins above the centre, moves 1.7 bins per recording and
#: falls 3 dB per recording; a steady weaker line at -200 kHz.
TONE0, STEP, AMP0 = 50e3 + 0.3 * BIN, 1.7 * BIN, 1e-3
PRODUCTS = "png,spectrum,peaks,campaign"


def tone(i: int) -> tuple[float, float]:
    """(absolute frequency Hz, power dB re 1 V²) of the tone in recording i."""
    return CENTER + TONE0 + i * STEP, 20 * np.log10(AMP0) - 3.0 * i


def record(
    folder: Path, name: str, i: int, *, center: float = CENTER, lines=None, nframes: int = 8
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if lines is None:
        lines = (
            Line(TONE0 + i * STEP + CENTER - center, AMP0 * 10 ** (-3.0 * i / 20)),
            Line(-200e3 + CENTER - center, 3e-4),
        )
    spec = RecordingSpec(
        nframes=nframes,
        lframes=L,
        fs=FS,
        center=center,
        lines=lines,
        seed=10 + i,
        acquired=START + dt.timedelta(minutes=10 * i),
    )
    return make_recording(folder / name, spec, chunk_samples=4096)


def run(
    tmp_path: Path, *args: str, check: bool = True, products: str = PRODUCTS
) -> subprocess.CompletedProcess:
    common = ["--ledger", str(tmp_path / "ledger")]
    if args[0] in ("process", "watch"):
        common += [
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
            "--products",
            products,
        ]
    proc = subprocess.run(
        [*crunchctl_cmd(), *args, *common],
        check=False,
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=120,
    )
    if check:
        assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc


def campaign(tmp_path: Path, folder: str = "rsa") -> dict:
    with np.load(tmp_path / "out" / "campaign" / f"{folder}.npz") as z:
        return {k: z[k] for k in z.files}


def strongest_above_centre(c: dict, row: int) -> float:
    """Frequency of the strongest bin above the centre (the tone's side) of a campaign row."""
    freqs = c["arr_0"][0]
    upper = np.where(freqs > CENTER, c["arr_2"][row], np.nan)
    return float(freqs[np.nanargmax(upper)])


def test_a_moving_fading_tone_is_followed_across_four_recordings(tmp_path):
    folder = tmp_path / "rec" / "rsa"
    # Names out of time order: the rows follow the headers' acquisition start.
    paths = [record(folder, name, i) for i, name in enumerate(("d.tiq", "c.tiq", "b.tiq", "a.tiq"))]
    run(tmp_path, "process", *map(str, paths))

    doc = json.loads(run(tmp_path, "trend", "--json", "--lines", "1").stdout)
    [line] = doc["lines"]
    assert line["frequency_hz"] == pytest.approx(tone(3)[0], abs=BIN)
    points = line["points"]
    assert [p["item"] for p in points] == [str(p) for p in paths]
    assert [p["time"] for p in points] == [
        (START + dt.timedelta(minutes=10 * i)).isoformat().replace("+00:00", "Z") for i in range(4)
    ]
    for i, p in enumerate(points):
        freq, power = tone(i)
        assert abs(p["frequency_hz"] - freq) < BIN
        assert abs(p["power_db"] - power) < 0.5
        assert 1.0 * BIN < p["fwhm_hz"] < 2.5 * BIN  # the hann main lobe, sampled in bins
        assert p["snr_db"] > 30

    # The table: -3 dB per 10 minutes is -18 dB per hour; 1.7 bins per 10 minutes.
    table = run(tmp_path, "trend", str(tmp_path / "rec")).stdout
    row = next(r for r in table.splitlines() if "100.05" in r)
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    assert cells[1] == "4"
    assert float(cells[4]) == pytest.approx(-18.0, abs=1.0)
    assert float(cells[5]) == pytest.approx(6 * STEP, rel=0.03)

    c = campaign(tmp_path)
    assert c["arr_2"].shape == (4, L) and c["arr_2"].dtype == np.float32
    assert c["arr_0"].shape == (1, L) and c["arr_1"].shape == (4, 1)
    assert list(c["items"]) == [str(p) for p in paths]
    assert np.all(np.diff(c["arr_1"].ravel()) == 600.0)
    assert c["arr_1"][0, 0] == START.timestamp()
    for i in range(4):
        assert abs(strongest_above_centre(c, i) - tone(i)[0]) < BIN
    assert str(c["unit"]) == "V²"

    csv = (tmp_path / "out" / "a_peaks.csv").read_text().splitlines()
    assert csv[0] == "frequency_hz,power_db,fwhm_hz,snr_db" and len(csv) == 3
    assert float(csv[1].split(",")[0]) == pytest.approx(tone(3)[0], abs=BIN)

    # A fifth recording through watch adds the fifth row.
    fifth = record(folder, "e.tiq", 4)
    run(tmp_path, "watch", str(folder), "--once")
    c = campaign(tmp_path)
    assert list(c["items"]) == [*map(str, paths), str(fifth)]
    assert abs(strongest_above_centre(c, 4) - tone(4)[0]) < BIN
    csv_out = run(tmp_path, "trend", "--csv", "--lines", "1").stdout.splitlines()
    assert csv_out[0] == "line_hz,item,time,frequency_hz,power_db,fwhm_hz,snr_db"
    assert len(csv_out) == 6 and csv_out[-1].split(",")[1] == str(fifth)


def test_trend_without_peaks_says_how_to_get_them(tmp_path):
    (tmp_path / "ledger").mkdir()
    proc = run(tmp_path, "trend")
    assert "--products png,zoom,npz,peaks" in proc.stdout
    proc = run(tmp_path, "trend", "--json")
    assert json.loads(proc.stdout) == {"lines": []} and "peaks" in proc.stderr
    bad = run(tmp_path, "trend", "--at", "245e6,abc", check=False)
    assert bad.returncode == 2 and "expected frequencies in Hz" in bad.stderr
    both = run(tmp_path, "trend", "--json", "--csv", check=False)
    assert both.returncode == 2 and "choose one" in both.stderr


def test_a_recording_without_lines_has_no_peaks_and_a_flat_campaign_row(tmp_path):
    folder = tmp_path / "rec" / "rsa"
    quiet = record(folder, "quiet.tiq", 0, lines=())
    run(tmp_path, "process", str(quiet))
    assert (tmp_path / "out" / "quiet_peaks.csv").read_text().splitlines() == [
        "frequency_hz,power_db,fwhm_hz,snr_db"
    ]
    c = campaign(tmp_path)
    row = 10 * np.log10(c["arr_2"][0])
    assert np.all(np.isfinite(row)) and row.max() - np.median(row) < 8.0  # noise only
    proc = run(tmp_path, "trend")
    assert "no line" in proc.stdout


def test_different_centre_frequencies_share_one_axis(tmp_path):
    folder = tmp_path / "rec" / "rsa"
    a = record(folder, "a.tiq", 0)
    b = record(
        folder, "b.tiq", 1, center=CENTER + 600e3, lines=(Line(100e3, 1e-3),)
    )  # a line at 100.7 MHz
    run(tmp_path, "process", str(a), str(b))
    c = campaign(tmp_path)
    freqs = c["arr_0"][0]
    assert c["arr_2"].shape[1] == freqs.size <= 4096
    assert freqs[0] < CENTER - FS / 2 + BIN and freqs[-1] > CENTER + 600e3 + FS / 2 - 2 * BIN
    first, second = c["arr_2"]
    # Each row holds its own span only; its line sits at its frequency.
    assert np.isnan(first[freqs > CENTER + FS / 2 + BIN]).all()
    assert np.isnan(second[freqs < CENTER + 600e3 - FS / 2 - BIN]).all()
    assert abs(freqs[np.nanargmax(first)] - tone(0)[0]) < 2 * BIN
    assert abs(freqs[np.nanargmax(second)] - (CENTER + 700e3)) < 2 * BIN


def test_a_reprocessed_recording_replaces_its_row(tmp_path):
    folder = tmp_path / "rec" / "rsa"
    paths = [record(folder, f"r{i}.tiq", i) for i in range(3)]
    run(tmp_path, "process", *map(str, paths))
    # r1 is written again with its tone elsewhere: one row still, with the new line.
    record(folder, "r1.tiq", 1, lines=(Line(-300e3, 1e-3),))
    run(tmp_path, "process", *map(str, paths))
    c = campaign(tmp_path)
    assert list(c["items"]) == [str(p) for p in paths]
    assert abs(c["arr_0"][0, np.nanargmax(c["arr_2"][1])] - (CENTER - 300e3)) < BIN
    run(tmp_path, "process", "--force", str(paths[0]))
    assert campaign(tmp_path)["arr_2"].shape[0] == 3


def test_a_damaged_campaign_is_rebuilt_from_the_spectrum_products(tmp_path):
    folder = tmp_path / "rec" / "rsa"
    paths = [record(folder, f"r{i}.tiq", i) for i in range(3)]
    run(tmp_path, "process", *map(str, paths[:2]))
    npz = tmp_path / "out" / "campaign" / "rsa.npz"
    npz.write_bytes(b"PK\x03\x04 not a zip any more")
    run(tmp_path, "process", str(paths[2]))
    c = campaign(tmp_path)
    assert list(c["items"]) == [str(p) for p in paths]
    log = (tmp_path / "log").read_text()
    assert "rsa.npz: damaged" in log and "rebuilt from the spectrum products" in log


def test_density_scaling_and_a_fixed_db_range_shape_the_products(tmp_path):
    folder = tmp_path / "rec" / "rsa"
    rec = record(folder, "r.tiq", 0, lines=())
    run(tmp_path, "process", str(rec), "--scaling", "density", "--db-range", "-150,-100")
    with np.load(tmp_path / "out" / "r_spectrum.npz") as z:
        assert str(z["power_unit"]) == "V²/Hz"
        # Noise of 2e-5 V rms per component: 8e-10 V² spread over 1 MHz.
        assert float(np.median(z["arr_1"])) == pytest.approx(8e-10 / FS, rel=0.1)
    # Other levels: the products are due again.
    out = run(
        tmp_path, "process", str(rec), "--scaling", "density", "--db-range", "-140,-100", "--json"
    ).stdout
    assert json.loads(out)["processed"] == 1
    bad = run(tmp_path, "process", str(rec), "--db-range", "-100,-140", check=False)
    assert bad.returncode == 2 and "MIN must be below MAX" in bad.stderr
    assert str(campaign(tmp_path)["unit"]) == "V²/Hz"
    # Back to the spectrum scaling: the campaign starts again in its unit, one row.
    other = record(folder, "s.tiq", 1, lines=())
    run(tmp_path, "process", str(other))
    c = campaign(tmp_path)
    assert str(c["unit"]) == "V²" and list(c["items"]) == [str(other)]
    assert "the campaign starts again in V²" in (tmp_path / "log").read_text()


def test_the_page_lists_the_campaign_the_trend_and_the_latest_peaks(tmp_path):
    folder = tmp_path / "rec" / "rsa"
    paths = [record(folder, f"r{i}.tiq", i) for i in range(3)]
    www = tmp_path / "www"
    run(tmp_path, "process", *map(str, paths), "--www", str(www))
    [rec] = json.loads((www / "status.json").read_text())["recorders"]
    assert rec["campaign_image"] == "campaign_rsa.png" and (www / "campaign_rsa.png").is_file()
    assert rec["trend_image"] == "trend_rsa.png" and (www / "trend_rsa.png").is_file()
    assert rec["peaks"]["file"] == "r2.tiq" and rec["peaks"]["unit"] == "V²"
    assert abs(rec["peaks"]["lines"][0]["frequency_hz"] - tone(2)[0]) < BIN
    # The quicklook copies are the recording's, not its mean spectrum's picture.
    assert (www / "rsa.png").read_bytes() == (tmp_path / "out" / "r2.png").read_bytes()
    assert "openNight" in (www / "index.html").read_text()


def test_peaks_and_campaign_for_done_recordings_come_from_their_spectrum_products(tmp_path):
    folder = tmp_path / "rec" / "rsa"
    paths = [record(folder, f"r{i}.tiq", i) for i in range(3)]
    run(tmp_path, "process", *map(str, paths), products="png,spectrum")
    out = tmp_path / "out"
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    proc = run(tmp_path, "process", *map(str, paths), "--json")
    assert (
        "3 recordings done already: campaign and peaks made from the spectrum product, "
        "the recordings not read again" in proc.stderr
    )
    assert json.loads(proc.stdout)["processed"] == 3
    # Nothing read or drawn again; the new products are there.
    assert {n: (out / n).stat().st_mtime_ns for n in before} == before
    assert (out / "r2_peaks.csv").is_file()
    assert list(campaign(tmp_path)["items"]) == [str(p) for p in paths]
    [line] = json.loads(run(tmp_path, "trend", "--json", "--lines", "1").stdout)["lines"]
    assert [abs(p["frequency_hz"] - tone(i)[0]) < BIN for i, p in enumerate(line["points"])] == [
        True
    ] * 3
    # Now done with every product.
    assert json.loads(run(tmp_path, "process", *map(str, paths), "--json").stdout)["skipped"] == 3


def _rows(tmp_path: Path) -> list[str]:
    try:
        return [str(i) for i in campaign(tmp_path)["items"]]
    except (OSError, KeyError, ValueError):
        return []


def test_a_running_watch_adds_each_new_recording_to_the_campaign_and_the_page(tmp_path):
    import signal

    from conftest import wait_for

    folder = tmp_path / "rec" / "rsa"
    folder.mkdir(parents=True)
    staging = tmp_path / "staging"
    www = tmp_path / "www"
    cmd = [
        *crunchctl_cmd(),
        "watch",
        str(folder),
        "--ledger",
        str(tmp_path / "ledger"),
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
        "--products",
        PRODUCTS,
        "--www",
        str(www),
        "-j",
        "1",
    ]
    with open(tmp_path / "stderr", "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=child_env())
    try:
        wait_for(
            lambda: "watching " in (tmp_path / "stderr").read_text() or proc.poll() is not None,
            30,
            "the watcher to start",
        )
        made = []
        for i in range(3):
            # Written elsewhere and moved in whole, as a recorder's finished file appears.
            path = record(staging, f"w{i}.tiq", i)
            os.replace(path, folder / path.name)
            made.append(str(folder / path.name))
            wait_for(lambda: _rows(tmp_path) == made, 60, f"campaign row {i + 1}")

        # The page follows within seconds (docs: the control-room page).
        def latest_peaks() -> str | None:
            recs = json.loads((www / "status.json").read_text())["recorders"]
            return recs[0]["peaks"]["file"] if recs and recs[0]["peaks"] else None

        wait_for(lambda: latest_peaks() == "w2.tiq", 30, "the page to list w2's peaks")
        [rec] = json.loads((www / "status.json").read_text())["recorders"]
        assert rec["campaign_image"] == "campaign_rsa.png"
        assert (www / rec["campaign_image"]).is_file()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    # The watch's last page write drew the trend of the three recordings.
    doc = json.loads((www / "status.json").read_text())
    assert doc["recorders"][0]["trend_image"] == "trend_rsa.png"
    assert (www / "trend_rsa.png").is_file()
