"""Soak: ``crunchctl watch`` with 2 workers fed thousands of small recordings.

    python bench/soak_watch.py             # 2,000 recordings (about 8 minutes on 2 cores)
    python bench/soak_watch.py --quick     # 300 recordings (about a minute)
    python bench/soak_watch.py -n 5000 --rate 4 --json soak.json

Not part of the test suite (it takes minutes). Everything runs in a temp folder with real
child processes of the installed entry point:

1. A pool of distinct small recordings (4 frames of 1024 samples) is made once; each
   recording fed is a copy of one, written outside the watched folder and renamed in
   (atomic arrival, as a mover does).
2. ``crunchctl watch`` (``-j 2``, ``--www``, plain log lines) starts on the empty folder.
   The feeder keeps a few recordings ahead of the watcher (``--ahead``; the watcher sets
   the pace) or, with ``--rate``, feeds at a fixed rate.
3. A sampler reads ``/proc/<pid>/status`` (VmRSS) and counts ``/proc/<pid>/fd`` of the
   watch main process every ``--interval`` s, with its split into anonymous and file-backed
   pages and the C heap's share (``/proc/<pid>/smaps``, ``[heap]``): where a growth is; the
   workers' resident memory is summed too.
4. When every recording is reported done, the watch gets SIGTERM (must exit 0), then the
   ledger is checked: every recording exactly once, all ``ok``; and every product is there.

Figures printed: recordings, time, throughput, peak RSS of the watch process in the first
and last quarter of the run (by recordings done), its median in each quarter (and of the
anonymous, file-backed and C-heap parts), open fds likewise, worker RSS. Checks (exit 1 if
one fails): all done exactly once; RSS level flat (last-quarter median at most 10 % above
the first-quarter median); RSS peak flat (last-quarter peak at most 10 % + 5 MB above the
first-quarter peak); fds flat (last-quarter median, and the count at the end, at most 2
above the first-quarter median: a leak raises them; the peaks are printed too).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path


def crunchctl() -> list[str]:
    exe = shutil.which("crunchctl")
    return [exe] if exe else [sys.executable, "-m", "crunchctl"]


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRUNCHCTL_")}
    env.update(NO_COLOR="1", PYTHONUNBUFFERED="1", COLUMNS="200")
    return env


# ---------------------------------------------------------------------------- sampling


@dataclass
class Sample:
    t: float  # s since the watch started
    done: int  # recordings reported done by then
    rss_kb: int  # watch main process
    fds: int  # watch main process
    workers_rss_kb: int  # the other processes of its process group (forkserver, workers)
    anon_kb: int = 0  # of rss_kb: anonymous memory (heaps, arenas)
    file_kb: int = 0  # of rss_kb: file-backed pages (libraries, mapped files)
    heap_kb: int = 0  # of anon_kb: the C heap (glibc's main arena, "[heap]")


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _heap_kb(pid: int) -> int:
    """Resident kB of the ``[heap]`` mapping (glibc's main arena)."""
    try:
        in_heap = False
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                if line[0] in "0123456789abcdef" and " " in line:
                    in_heap = line.rstrip().endswith("[heap]")
                elif in_heap and line.startswith("Rss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _group_members(pgid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry))
    return pids


class Sampler(threading.Thread):
    def __init__(self, pid: int, interval: float, done: "DoneCounter") -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.done = done
        self.samples: list[Sample] = []
        self.t0 = time.monotonic()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                fds = len(os.listdir(f"/proc/{self.pid}/fd"))
            except OSError:
                break
            workers = sum(_status_kb(p, "VmRSS") for p in _group_members(self.pid) if p != self.pid)
            self.samples.append(
                Sample(
                    time.monotonic() - self.t0,
                    self.done.count,
                    _status_kb(self.pid, "VmRSS"),
                    fds,
                    workers,
                    _status_kb(self.pid, "RssAnon"),
                    _status_kb(self.pid, "RssFile"),
                    _heap_kb(self.pid),
                )
            )
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


class DoneCounter:
    """Counts "ok <path>" / "error <path>" lines of the watch's plain output (stderr)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self.errors: list[str] = []
        self._pos = 0
        self._partial = ""

    def poll(self) -> int:
        with open(self.path, encoding="utf-8", errors="replace") as f:
            f.seek(self._pos)
            chunk = f.read()
            self._pos = f.tell()
        lines = (self._partial + chunk).split("\n")
        self._partial = lines.pop()
        for line in lines:
            parts = line.split(" ", 2)
            if len(parts) == 3 and parts[1] in ("ok", "no_data"):
                self.count += 1
            elif " ERROR " in line:
                self.count += 1
                self.errors.append(line)
        return self.count


# -------------------------------------------------------------------------------- run


def make_pool(folder: Path, size: int) -> list[bytes]:
    from crunchctl.formats import synth

    folder.mkdir(parents=True, exist_ok=True)
    pool = []
    for i in range(size):
        path = folder / f"pool_{i}.tiq"
        synth.make_recording(path, synth.RecordingSpec(nframes=4, lframes=1024, seed=i))
        pool.append(path.read_bytes())
        path.unlink()
    return pool


def quarter_peaks(samples: list[Sample], n: int, attr: str) -> tuple[int, int]:
    """Peak of ``attr`` while the first and while the last quarter of recordings were done."""
    first = [getattr(s, attr) for s in samples if 0 < s.done <= n // 4]
    last = [getattr(s, attr) for s in samples if s.done >= n - n // 4]
    return (max(first) if first else 0), (max(last) if last else 0)


def quarter_medians(samples: list[Sample], n: int, attr: str) -> tuple[float, float]:
    """Median of ``attr`` in the first and the last quarter: the level, without the short
    peaks of a ledger compaction."""
    import statistics

    first = [getattr(s, attr) for s in samples if 0 < s.done <= n // 4]
    last = [getattr(s, attr) for s in samples if s.done >= n - n // 4]
    return (statistics.median(first) if first else 0), (statistics.median(last) if last else 0)


def soak(
    n: int,
    workers: int,
    ahead: int,
    rate: float | None,
    interval: float,
    base: Path,
    timeout: float,
) -> dict:
    rec, staging = base / "rec", base / "staging"
    out, www, ledger = base / "out", base / "www", base / "ledger"
    rec.mkdir(parents=True)
    staging.mkdir()
    pool = make_pool(base / "pool", 16)
    err = base / "watch.err"
    args = [
        *crunchctl(),
        "watch",
        str(rec),
        "-j",
        str(workers),
        "--lframes",
        "1024",
        "--zoom-span",
        "200000",
        "--output",
        str(out),
        "--www",
        str(www),
        "--ledger",
        str(ledger),
        "--log-file",
        str(base / "watch.log"),
        "--config",
        str(base / "empty.toml"),
    ]
    (base / "empty.toml").write_text("")
    proc = subprocess.Popen(
        args,
        stdout=open(base / "watch.out", "w"),
        stderr=open(err, "w"),
        env=child_env(),
        cwd=base,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while "watching " not in err.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the watch did not start:\n{err.read_text()}")
            time.sleep(0.1)
        counter = DoneCounter(err)
        sampler = Sampler(proc.pid, interval, counter)
        sampler.start()
        started = time.monotonic()
        fed = 0
        next_at = started
        last_report = started
        deadline = started + timeout
        while counter.poll() < n:
            now = time.monotonic()
            if now > deadline:
                raise SystemExit(f"timed out: {counter.count} of {n} done after {timeout:.0f} s")
            if proc.poll() is not None:
                raise SystemExit(
                    f"the watch exited ({proc.returncode}):\n{err.read_text()[-3000:]}"
                )
            while fed < n and (fed - counter.count < ahead if rate is None else now >= next_at):
                name = f"soak_{fed:05d}.tiq"
                (staging / name).write_bytes(pool[fed % len(pool)])
                os.replace(staging / name, rec / name)
                fed += 1
                next_at += 1.0 / rate if rate else 0.0
                if rate is not None:
                    break
            if now - last_report >= 15:
                last_report = now
                s = sampler.samples[-1] if sampler.samples else None
                print(
                    f"  {now - started:6.0f} s  fed {fed:5d}  done {counter.count:5d}"
                    + (f"  rss {s.rss_kb / 1024:6.1f} MB  fds {s.fds}" if s else ""),
                    flush=True,
                )
            time.sleep(0.02)
        elapsed = time.monotonic() - started
        time.sleep(max(2 * interval, 1.0))  # a few samples after the last one
        sampler.stop()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    from crunchctl.ledger.store import Ledger

    reader = Ledger(ledger, create=False)
    rows = reader.scan().collect()
    per_item = dict(rows.group_by("item").len().iter_rows())
    expected = {str(rec / f"soak_{i:05d}.tiq") for i in range(n)}
    statuses = dict(rows.group_by("status").len().iter_rows())
    products_missing = sum(
        1 for ps in rows["products"].to_list() for p in ps if not os.path.exists(p)
    )
    samples = sampler.samples
    rss_first, rss_last = quarter_peaks(samples, n, "rss_kb")
    rss_med_first, rss_med_last = quarter_medians(samples, n, "rss_kb")
    fds_first, fds_last = quarter_peaks(samples, n, "fds")
    fds_med_first, fds_med_last = quarter_medians(samples, n, "fds")
    wrk_first, wrk_last = quarter_peaks(samples, n, "workers_rss_kb")
    checks = {
        "watch exited 0 on SIGTERM": code == 0,
        "every recording done exactly once": set(per_item) == expected
        and set(per_item.values()) == {1},
        "all ok": statuses == {"ok": n},
        "every product present": products_missing == 0,
        "ledger read without warnings": reader.warnings == [],
        "watch RSS flat": rss_last <= rss_first * 1.10 + 5 * 1024,
        # A leak raises the level and the count left at the end; a lone peak is files
        # open together for a moment (a ledger compaction reads its inputs at once).
        "watch fds flat (level and end)": fds_med_last <= fds_med_first + 2
        and samples[-1].fds <= fds_med_first + 2,
        "watch RSS level within 10 % (medians)": rss_med_last <= rss_med_first * 1.10,
    }
    return {
        "recordings": n,
        "workers": workers,
        "seconds": round(elapsed, 1),
        "per_minute": round(n / elapsed * 60, 1),
        "rss_mb_first_quarter_peak": round(rss_first / 1024, 1),
        "rss_mb_last_quarter_peak": round(rss_last / 1024, 1),
        "rss_mb_first_quarter_median": round(rss_med_first / 1024, 1),
        "rss_mb_last_quarter_median": round(rss_med_last / 1024, 1),
        "rss_mb_min": round(min(s.rss_kb for s in samples) / 1024, 1),
        "rss_mb_max": round(max(s.rss_kb for s in samples) / 1024, 1),
        "fds_first_quarter_peak": fds_first,
        "fds_last_quarter_peak": fds_last,
        "fds_first_quarter_median": fds_med_first,
        "fds_last_quarter_median": fds_med_last,
        "fds_at_end": samples[-1].fds,
        "fds_min": min(s.fds for s in samples),
        "fds_max": max(s.fds for s in samples),
        **{
            f"{kind}_mb_{q}_quarter_median": round(v / 1024, 1)
            for kind in ("anon", "file", "heap")
            for q, v in zip(("first", "last"), quarter_medians(samples, n, f"{kind}_kb"))
        },
        "workers_rss_mb_first_quarter_peak": round(wrk_first / 1024, 1),
        "workers_rss_mb_last_quarter_peak": round(wrk_last / 1024, 1),
        "samples": len(samples),
        "ledger_rows": rows.height,
        "ledger_files": len(list(ledger.glob("*.parquet"))),
        "errors_seen": counter.errors[:5],
        "checks": checks,
        "series": [asdict(s) for s in samples],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=2000, help="recordings to feed (default 2000)")
    ap.add_argument("--quick", action="store_true", help="300 recordings")
    ap.add_argument("-j", "--workers", type=int, default=2)
    ap.add_argument(
        "--ahead", type=int, default=6, help="recordings fed ahead of the watcher (default 6)"
    )
    ap.add_argument(
        "--rate", type=float, default=None, help="feed at this many recordings per second instead"
    )
    ap.add_argument("--interval", type=float, default=0.5, help="sampling interval, s")
    ap.add_argument("--timeout", type=float, default=3600.0)
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args(argv)
    n = 300 if args.quick else args.n
    base = Path(tempfile.mkdtemp(prefix="crunchctl-soak-"))
    print(f"soak: {n} recordings, {args.workers} workers, in {base}", flush=True)
    try:
        result = soak(n, args.workers, args.ahead, args.rate, args.interval, base, args.timeout)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    width = 38
    for key, value in result.items():
        if key not in ("checks", "series"):
            print(f"{key:<{width}} {value}")
    failed = [k for k, ok in result["checks"].items() if not ok]
    for key, ok in result["checks"].items():
        print(f"{'PASS' if ok else 'FAIL'}  {key}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
