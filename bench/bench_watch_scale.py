"""Scale: ``crunchctl watch`` on a folder of 50,000 recordings that are already done.

    python bench/bench_watch_scale.py              # 50,000 recordings
    python bench/bench_watch_scale.py -n 5000      # a smaller folder, for a quick look

Not part of the test suite (preparing the folder takes minutes; it is kept in
``bench/results/scale-N`` and reused). Everything runs as real child processes of the
installed entry point:

1. N small recordings (2 frames of 256 samples, Int16) are written into one folder. A copy
   of the first 200 is processed by ``crunchctl watch --once --products npz``; the rows of
   all N are then written through the ledger API with that run's settings digest and a
   copy of a real product each (kept with the folder, so later runs start from "all
   done"; a real run over 50,000 takes about half an hour on 2 busy cores).
2. ``crunchctl watch --poll 5`` starts on that folder; a new recording is renamed in right
   away. Figures: the time from the start to the new recording's product, the peak memory of
   the watch main process (VmHWM), the bytes it read (/proc/PID/io rchar, against the bytes
   of the recordings), and its CPU while nothing changes, over ``--idle`` seconds.
3. The same with file-system events (no ``--poll``): idle CPU.
4. ``crunchctl status`` and ``status --json`` on that ledger: wall time.

Targets (checked, exit 1 if one fails): ready within 10 s; peak memory under 300 MiB; idle
CPU under 5 % of one core with --poll 5; status within 3 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LFRAMES = 256
#: Recordings processed for real when the folder is prepared (the rest: ledger API).
SEED = 200


def crunchctl() -> list[str]:
    exe = shutil.which("crunchctl") or str(Path(sys.executable).parent / "crunchctl")
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "crunchctl"]


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRUNCHCTL_")}
    env.update(NO_COLOR="1", PYTHONUNBUFFERED="1", COLUMNS="200")
    return env


def common(base: Path) -> list[str]:
    return [
        "--ledger",
        str(base / "ledger"),
        "--output",
        str(base / "out"),
        "--lframes",
        str(LFRAMES),
        "--zoom-span",
        "100000",
        "--products",
        "npz",
        "--log-file",
        str(base / "crunchctl.log"),
    ]


def template(base: Path) -> bytes:
    """One small, real recording's bytes (each copy gets its own name and mtime)."""
    from crunchctl.formats.synth import Line, RecordingSpec, make_recording

    path = make_recording(
        base / "template.tiq",
        RecordingSpec(
            nframes=2, lframes=LFRAMES, fs=1.0e6, center=100.0e6, lines=(Line(50e3, 1e-3, 0.0),)
        ),
        chunk_samples=LFRAMES,
    )
    data = path.read_bytes()
    path.unlink()
    return data


def prepare(base: Path, n: int) -> Path:
    folder = base / "recordings"
    done_marker = base / "prepared"
    if done_marker.exists():
        print(f"reusing {folder} ({n} recordings, ledger done)")
        return folder
    shutil.rmtree(base, ignore_errors=True)
    folder.mkdir(parents=True)
    data = template(base)
    t0 = time.monotonic()
    start = time.time() - n
    for i in range(n):
        p = folder / f"rec_{i:06d}.tiq"
        p.write_bytes(data)
        os.utime(p, (start + i, start + i))
    print(f"wrote {n} recordings in {time.monotonic() - t0:.1f} s")
    t0 = time.monotonic()
    # The first SEED recordings are processed for real; their rows give the settings
    # digest, and the rest are recorded through the ledger API with copies of a real
    # product (the done rule wants the product files to exist, not to differ).
    seed = folder.parent / "seed"
    seed.mkdir()
    names = sorted(folder.iterdir())
    for p in names[:SEED]:
        os.link(p, seed / p.name)
    p = subprocess.run(
        [*crunchctl(), "watch", str(seed), "--once", "-j", "2", "-q", *common(base)],
        env=child_env(),
        capture_output=True,
        text=True,
    )
    if p.returncode != 0:
        sys.exit(f"preparing the ledger failed ({p.returncode}): {p.stderr[-2000:]}")
    print(f"processed {min(n, SEED)} recordings with watch --once in {time.monotonic() - t0:.1f} s")
    t0 = time.monotonic()
    record_rest(base, folder, names)
    shutil.rmtree(seed)
    print(f"recorded {n} recordings through the ledger API in {time.monotonic() - t0:.1f} s")
    done_marker.write_text("ok\n")
    return folder


def record_rest(base: Path, folder: Path, names: list[Path]) -> None:
    """Ledger rows for every recording of ``folder``, as ``watch`` writes them."""
    from crunchctl.ledger.store import Ledger
    from crunchctl.outcome import KIND_IQ, OK, Outcome

    with Ledger(base / "ledger", flush_every=10_000) as ledger:
        model = ledger.latest(KIND_IQ).row(0, named=True)
        npz = Path(model["products"][0]).read_bytes()
        now = time.time()
        for p in names:
            st = p.stat()
            product = base / "out" / f"{p.stem}.npz"
            if not product.exists():
                product.write_bytes(npz)
            ledger.record(
                Outcome(
                    item=str(p),
                    kind=KIND_IQ,
                    source=f"watch:{folder}",
                    status=OK,
                    started=now,
                    finished=now + 0.01,
                    size=st.st_size,
                    mtime_ns=st.st_mtime_ns,
                    settings_digest=model["settings_digest"],
                    products=[str(product)],
                )
            )
        ledger.flush()
        ledger.compact()


def proc_stat(pid: int) -> tuple[float, int, int]:
    """(cpu seconds of pid, VmHWM kB, rchar bytes)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / tick
    hwm = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    rchar = 0
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            rchar = int(line.split()[1])
    return cpu, hwm, rchar


def group_cpu(pgid: int) -> float:
    total = 0.0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid:
                    total += proc_stat(int(entry))[0]
            except (OSError, IndexError, ValueError):
                pass
    return total


def run_watch(
    base: Path, folder: Path, extra: list[str], idle: float, label: str, data: bytes, serial: int
) -> dict[str, float]:
    out = base / "out"
    cmd = [*crunchctl(), "watch", str(folder), "-j", "2", *extra, *common(base)]
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        # A recording dropped in right after the start (renamed in, as a mover does).
        name = f"new_{serial:03d}.tiq"
        tmp = base / name
        tmp.write_bytes(data)
        os.replace(tmp, folder / name)
        product = out / f"new_{serial:03d}.npz"
        while not product.exists():
            if proc.poll() is not None:
                sys.exit(f"{label}: watch exited with {proc.returncode}")
            if time.monotonic() - t0 > 120:
                sys.exit(f"{label}: the new recording was not processed within 120 s")
            time.sleep(0.02)
        ready = time.monotonic() - t0
        time.sleep(2.0)  # let the watch settle after the new recording
        cpu0 = group_cpu(proc.pid)
        time.sleep(idle)
        cpu1 = group_cpu(proc.pid)
        _, hwm, rchar = proc_stat(proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    figures = {
        "ready_s": ready,
        "idle_cpu_pct": 100 * (cpu1 - cpu0) / idle,
        "peak_mib": hwm / 1024,
        "read_mib": rchar / 2**20,
        "exit": proc.returncode,
    }
    print(
        f"{label:<22} new recording processed {ready:5.2f} s after start; idle CPU "
        f"{figures['idle_cpu_pct']:4.1f} % of a core; peak {figures['peak_mib']:.0f} MiB; "
        f"read {figures['read_mib']:.1f} MiB; exit {proc.returncode}"
    )
    return figures


def baseline_read(base: Path, empty: Path) -> float:
    """MiB a watch reads on an empty folder (Python, libraries, ledger): what is not the
    recordings' share of ``rchar``."""
    cmd = [*crunchctl(), "watch", str(empty), "-j", "2", *common(base)]
    proc = subprocess.Popen(
        cmd,
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        log = base / "crunchctl.log"
        t0 = time.monotonic()
        while f"watching {empty}" not in (log.read_text() if log.exists() else ""):
            if time.monotonic() - t0 > 120 or proc.poll() is not None:
                sys.exit("baseline watch did not start")
            time.sleep(0.1)
        time.sleep(2.0)
        rchar = proc_stat(proc.pid)[2]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    return rchar / 2**20


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def timed(cmd: list[str]) -> float:
    t0 = time.monotonic()
    p = subprocess.run(cmd, env=child_env(), capture_output=True, text=True)
    if p.returncode not in (0, 1):
        sys.exit(f"{' '.join(cmd)} failed: {p.stderr[-1000:]}")
    return time.monotonic() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=50_000, help="recordings in the folder")
    ap.add_argument("--idle", type=float, default=60.0, help="seconds of idle CPU measured")
    ap.add_argument("--base", type=Path, default=None, help="work folder (kept)")
    args = ap.parse_args(argv)
    base = args.base or HERE / "results" / f"scale-{args.n}"
    folder = prepare(base, args.n)
    data = (folder / "rec_000000.tiq").read_bytes()
    total_mib = sum(e.stat().st_size for e in os.scandir(folder)) / 2**20
    print(f"folder: {args.n} recordings, {total_mib:.0f} MiB; {load()}")
    for stale in [*folder.glob("new_*.tiq"), *(base / "out").glob("new_*")]:
        stale.unlink()  # an earlier run's new recordings and their products
    empty = base / "empty"
    empty.mkdir(exist_ok=True)
    baseline = baseline_read(base, empty)
    poll = run_watch(base, folder, ["--poll", "5"], args.idle, "watch --poll 5", data, 1)
    events = run_watch(base, folder, [], args.idle, "watch (events)", data, 2)
    ledger = ["--ledger", str(base / "ledger")]
    st = min(timed([*crunchctl(), "status", *ledger]) for _ in range(2))
    sj = min(timed([*crunchctl(), "status", "--json", *ledger]) for _ in range(2))
    print(f"status: {st:.2f} s; status --json: {sj:.2f} s")
    print(
        f"read beyond a watch of an empty folder ({baseline:.1f} MiB): "
        f"{max(poll['read_mib'], events['read_mib']) - baseline:.1f} MiB of "
        f"{total_mib:.0f} MiB of recordings; {load()}"
    )
    checks = {
        "ready within 10 s (poll)": poll["ready_s"] <= 10,
        "ready within 10 s (events)": events["ready_s"] <= 10,
        "peak under 300 MiB": max(poll["peak_mib"], events["peak_mib"]) < 300,
        "idle CPU under 5 % with --poll 5": poll["idle_cpu_pct"] < 5,
        "idle CPU near zero with events": events["idle_cpu_pct"] < 1,
        # What a watch reads beyond its own start: well under one byte in ten of the
        # recordings (a header read of each would be a third of these small files).
        "no recording's samples read": max(poll["read_mib"], events["read_mib"]) - baseline
        < total_mib / 10,
        "status within 3 s": max(st, sj) <= 3,
        "watch exits 0 on SIGTERM": poll["exit"] == 0 and events["exit"] == 0,
    }
    for name, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
