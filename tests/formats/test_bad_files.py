"""A table of bad files per format, each next to a good one, through ONE real
``crunchctl process`` run per format: every bad file gets one clear line naming it and an
``error`` row in the ledger; the good neighbour is processed as usual."""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import child_env, crunchctl_cmd
from crunchctl.ledger.store import Ledger
from formats_helpers import CENTER, FS, L, test_signal, write_sigmf, write_tdms

N = 8 * L


def _sigmf(folder: Path) -> dict[str, str]:
    write_sigmf(folder, "good", test_signal(N), "ci16_le")
    write_sigmf(folder, "nodata", test_signal(N), "ci16_le")
    (folder / "nodata.sigmf-data").unlink()
    write_sigmf(folder, "nometa", test_signal(N), "ci16_le")
    (folder / "nometa.sigmf-meta").unlink()
    for name, change in [
        ("unknowntype", {"core:datatype": "cq7_le"}),
        ("realtype", {"core:datatype": "rf32_le"}),
        ("norate", {"core:sample_rate": None}),
    ]:
        write_sigmf(folder, name, test_signal(N), "ci16_le")
        meta = json.loads((folder / f"{name}.sigmf-meta").read_text())
        for k, v in change.items():
            if v is None:
                del meta["global"][k]
            else:
                meta["global"][k] = v
        (folder / f"{name}.sigmf-meta").write_text(json.dumps(meta))
    write_sigmf(folder, "cut", test_signal(N), "ci16_le")
    with open(folder / "cut.sigmf-data", "ab") as f:
        f.write(b"\x01\x02")  # half a ci16 sample
    return {
        "good.sigmf-data": "",
        "nodata.sigmf-meta": "SigMF metadata without its data (nodata.sigmf-data is missing)",
        "nometa.sigmf-data": "SigMF data without its metadata (nometa.sigmf-meta is missing)",
        "unknowntype.sigmf-data": "unknown SigMF datatype 'cq7_le'",
        "realtype.sigmf-data": "datatype rf32_le: real-valued samples: not IQ",
        "norate.sigmf-data": "SigMF metadata has no core:sample_rate",
        "cut.sigmf-data": "truncated: 8194 bytes is not a whole number of 4-byte ci16_le samples",
    }


def _tdms(folder: Path) -> dict[str, str]:
    x = test_signal(N) * 1e-3
    write_tdms(folder / "good.tdms", [x[: N // 2], x[N // 2 :]], [1e-7, 2e-7])
    write_tdms(folder / "noiq.tdms", [x], [1e-7], group="Samples")
    data = (folder / "good.tdms").read_bytes()
    (folder / "cut.tdms").write_bytes(data[: len(data) - 1000])
    (folder / "empty.tdms").write_bytes(b"")
    return {
        "good.tdms": "",
        "noiq.tdms": "no TDMS group 'RecordData' (so no RecordData/I); groups: Samples, "
        "RecordHeader",
        "cut.tdms": "bytes: the file ends inside the segment at byte",
        "empty.tdms": "empty file (0 bytes)",
    }


def _wav(folder: Path) -> dict[str, str]:
    from scipy.io import wavfile

    x = test_signal(N)
    stereo = (np.stack([x.real, x.imag], axis=1) * 20000).astype(np.int16)
    wavfile.write(folder / "good.wav", int(FS), stereo)
    wavfile.write(folder / "mono.wav", int(FS), stereo[:, 0].copy())
    data = bytearray((folder / "good.wav").read_bytes())
    data[4:8] = struct.pack("<I", len(data) + 5000)  # RIFF size beyond the end of the file
    (folder / "short.wav").write_bytes(bytes(data))
    return {
        "good.wav": "",
        "mono.wav": "mono WAV: IQ needs two channels (left = I, right = Q)",
        "short.wav": f"{len(data)} bytes, but its header says a complete file has "
        f"{len(data) + 5008}",
    }


def _raw(folder: Path) -> dict[str, str]:
    x = test_signal(N)
    pairs = np.empty(2 * N, dtype=np.float32)
    pairs[0::2], pairs[1::2] = x.real, x.imag
    pairs.tofile(folder / "good.cf32")
    (folder / "empty.cs16").write_bytes(b"")
    return {"good.cf32": "", "empty.cs16": "empty file (0 bytes)"}


def _raw_without_rate(folder: Path) -> dict[str, str]:
    write_sigmf(folder, "good", test_signal(N), "cf32_le")
    test_signal(N).astype(np.complex64).tofile(folder / "norate.cf32")
    return {
        "good.sigmf-data": "",
        "norate.cf32": "raw IQ has no header: give its sample rate with --sample-rate HZ",
    }


TABLES = {
    "sigmf": (_sigmf, []),
    "tdms": (_tdms, []),
    "wav": (_wav, []),
    "raw": (_raw, ["--sample-rate", str(FS), "--center", str(CENTER)]),
    "raw-no-rate": (_raw_without_rate, []),
}


@pytest.mark.parametrize("fmt", list(TABLES))
def test_bad_files_next_to_a_good_one(tmp_path: Path, fmt: str):
    make, extra = TABLES[fmt]
    folder = tmp_path / "rec"
    folder.mkdir()
    cases = make(folder)
    files = sorted(str(p) for p in folder.iterdir())
    r = subprocess.run(
        crunchctl_cmd()
        + [
            "process",
            *files,
            "--lframes",
            str(L),
            "--zoom-span",
            "200000",
            "--output",
            str(tmp_path / "out"),
            "--ledger",
            str(tmp_path / "ledger"),
            "--log-file",
            str(tmp_path / "log"),
            *extra,
        ],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=300,
    )
    assert r.returncode == 1, r.stderr
    rows = {
        row["item"]: row
        for row in Ledger(tmp_path / "ledger", create=False).scan().collect().to_dicts()
    }
    for name, message in cases.items():
        item = str(folder / name)
        if name.endswith(".sigmf-meta"):
            item = item[: -len(".sigmf-meta")] + ".sigmf-data"  # the pair's ledger item
        assert item in rows, (name, sorted(rows))
        row = rows[item]
        if not message:
            assert row["status"] == "ok", row["error"]
            stem = Path(name).name.split(".")[0]
            assert (tmp_path / "out" / f"{stem}.png").stat().st_size > 1000
            continue
        assert row["status"] == "error"
        assert row["error"].startswith(str(folder / name.split(".")[0])), row["error"]
        assert message in row["error"], row["error"]
        assert "\n" not in row["error"]
        lines = [ln for ln in r.stderr.splitlines() if str(folder / name.split(".")[0]) in ln]
        assert len(lines) == 1 and message in lines[0], r.stderr
    assert len(rows) == len(cases)
