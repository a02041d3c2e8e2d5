"""A recording of more than 1 GB is processed by the real command in bounded memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import child_env, crunchctl_cmd
from crunchctl.formats import tiq
from crunchctl.formats.synth import RecordingSpec, make_recording

LIMIT = 300 << 20  # bytes

# Runs the command and reports its rusage. A child's ru_maxrss starts from the high-water
# mark of the process that exec'd it: this small process stands between pytest (big) and
# the command, so the figure is the command's own.
_MEASURE = """
import json, os, subprocess, sys, time
t = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
_, status, ru = os.wait4(proc.pid, 0)
err = proc.stderr.read().decode(errors="replace")
print(json.dumps({"rc": os.waitstatus_to_exitcode(status), "maxrss": ru.ru_maxrss * 1024,
                  "wall": time.perf_counter() - t, "stderr": err[-2000:]}))
"""


def _big_recording(tmp_path: Path, frames: int) -> Path:
    """``frames`` frames of 65536 Int32 samples, made of a small synthetic recording's frames."""
    small = make_recording(tmp_path / "small.tiq", RecordingSpec(nframes=16))
    h = tiq.open_recording(small)
    with open(small, "rb") as f:
        f.seek(h.offset)
        block = f.read()
    header = tiq.build_header(
        nsamples=frames * 65536,
        fs=h.fs,
        center=h.center,
        scaling=h.scaling,
        number_format=h.number_format,
        acquired=h.datetime,
        pad_to=h.offset,
    )
    big = tmp_path / "big.tiq"
    with open(big, "wb") as f:
        f.write(header)
        for _ in range(frames // 16):
            f.write(block)
    small.unlink()
    return big


@pytest.mark.slow
def test_a_recording_over_1_gb_is_processed_under_300_mib(tmp_path):
    frames = 2048  # 1.07 GB
    big = _big_recording(tmp_path, frames)
    try:
        assert big.stat().st_size > 1 << 30
        out = tmp_path / "out"
        (tmp_path / "empty.toml").write_text("")
        cmd = [
            *crunchctl_cmd(),
            "process",
            str(big),
            "--output",
            str(out),
            "--ledger",
            str(tmp_path / "ledger"),
            "--log-file",
            str(tmp_path / "log"),
            "--config",
            str(tmp_path / "empty.toml"),
            "--products",
            "png,zoom,npz,spectrum",
            "--quiet",
        ]
        proc = subprocess.run(
            [sys.executable, "-c", _MEASURE, *cmd],
            capture_output=True,
            text=True,
            env=child_env(),
            timeout=900,
        )
        assert proc.returncode == 0, proc.stderr
        got = json.loads(proc.stdout)
        assert got["rc"] == 0, got["stderr"]
        print(
            f"\n1.07 GB recording: peak RSS {got['maxrss'] / (1 << 20):.0f} MiB, "
            f"wall {got['wall']:.1f} s"
        )
        assert got["maxrss"] < LIMIT, f"peak RSS {got['maxrss'] / (1 << 20):.0f} MiB"
        # Every product is there and whole: the NPZ's power has all the frames.
        assert sorted(os.listdir(out)) == [
            "big.npz",
            "big.png",
            "big_spectrum.npz",
            "big_spectrum.png",
            "big_zoom.png",
        ]
        with zipfile.ZipFile(out / "big.npz") as z, z.open("arr_2.npy") as member:
            assert np.lib.format.read_magic(member) == (1, 0)
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
            assert (shape, fortran, dtype) == ((frames, 65536), False, np.float32)
            assert z.getinfo("arr_2.npy").file_size == member.tell() + frames * 65536 * 4
    finally:
        big.unlink(missing_ok=True)
