"""Benchmark of the ledger at scale (the aim: it stays fast at a million rows).

Builds a ledger of N rows in a temporary folder the way the commands write it: outcomes go
through ``Ledger.record_many`` in batches of 5,000 rows per flush (not 50: that would make
20,000 part files, which compaction would merge anyway), and the automatic tiered
compaction runs along the way. Then it measures ``record`` at ``flush_every=50`` on top of
that ledger (flushes, fsyncs and compactions included), the status summary (``watch.status.summary``),
``Ledger.done_items`` for 100,000 candidates whose products exist, and the real
``crunchctl status`` / ``crunchctl status --json`` when that command exists.

Usage: ``python bench/bench_ledger.py [--rows 1000000] [--quick] [--keep]``
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crunchctl.ledger.store import Ledger  # noqa: E402
from crunchctl.outcome import Outcome  # noqa: E402

DIGEST = "3f2a9c"
T_START = 1_714_000_000.0  # rows spread over 30 days from here


def build(path: Path, rows: int, out: Path, n_candidates: int) -> list[tuple[str, int, int]]:
    """Write ``rows`` rows; return the (item, size, mtime_ns) of ``n_candidates`` done items."""
    rng = random.Random(1)
    span = 30 * 86400.0
    candidates = []
    out.mkdir(parents=True, exist_ok=True)

    def mtime_ns(j: int) -> int:  # the recording's fingerprint does not change on retries
        return int((T_START + span * j / rows) * 1e9) - 10**9

    with Ledger(path, flush_every=5000) as led:

        def outcomes():
            for i in range(rows):
                t = T_START + span * i / rows
                if i % 10 == 9:  # a retry of an earlier recording (~10 % of rows)
                    j = rng.randrange(max(1, i - 1))
                    item = f"/data/rsa510/2024/rec_{j:07d}.tiq"
                else:
                    j = i
                    item = f"/data/rsa510/2024/rec_{i:07d}.tiq"
                r = rng.random()
                status = "ok" if r < 0.9 else ("error" if r < 0.97 else "no_data")
                if j < n_candidates:
                    status = "ok"  # the candidates are done items
                products = [str(out / f"rec_{j:07d}.png")] if status == "ok" else []
                source = "watch:/data/rsa510/2024" if i % 3 else "process"
                yield Outcome(
                    item=item,
                    kind="iq",
                    source=source,
                    status=status,
                    started=t - 2.5,
                    finished=t,
                    size=4_000_000 + j,
                    mtime_ns=mtime_ns(j),
                    settings_digest=DIGEST,
                    products=products,
                    error="short read: 1024 of 4096 bytes" if status == "error" else None,
                )

        led.record_many(outcomes())
    # The candidates' products exist: all of them are done, so every check is made.
    for j in range(n_candidates):
        (out / f"rec_{j:07d}.png").touch()
        candidates.append((f"/data/rsa510/2024/rec_{j:07d}.tiq", 4_000_000 + j, mtime_ns(j)))
    return candidates


def timed(fn, repeat: int = 3) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def cli_status(state_dir: Path) -> dict[str, float | str]:
    exe = shutil.which("crunchctl")
    if exe is None:
        return {"note": "no `crunchctl` command on PATH"}
    env = {
        **os.environ,
        "CRUNCHCTL_STATE_DIR": str(state_dir),
        "NO_COLOR": "1",
        "TERMINAL_WIDTH": "3000",
        "_TYPER_FORCE_DISABLE_TERMINAL": "1",
    }
    helped = subprocess.run([exe, "--help"], capture_output=True, text=True, env=env)
    if helped.returncode != 0 or "status" not in helped.stdout:
        return {"note": "`crunchctl` has no `status` command yet"}
    result: dict[str, float | str] = {}
    for args in (["status"], ["status", "--json"]):
        runs = []
        for _ in range(3):
            t = time.perf_counter()
            proc = subprocess.run([exe, *args], capture_output=True, text=True, env=env)
            runs.append(time.perf_counter() - t)
            if proc.returncode not in (0, 1):
                first = (proc.stderr.strip().splitlines() or ["?"])[-1]
                result["note"] = f"`crunchctl {' '.join(args)}` exited {proc.returncode}: {first}"
                return result
        result[" ".join(args)] = statistics.median(runs)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--quick", action="store_true", help="100,000 rows")
    ap.add_argument("--candidates", type=int, default=100_000)
    ap.add_argument(
        "--records", type=int, default=20_000, help="outcomes recorded for the record() figure"
    )
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    rows = 100_000 if args.quick else args.rows
    n_cand = min(args.candidates, rows // 2)
    base = Path(tempfile.mkdtemp(prefix="crunchctl-bench-"))
    state = base / "state"
    ledger_path = state / "ledger"
    try:
        t = time.perf_counter()
        candidates = build(ledger_path, rows, base / "out", n_cand)
        build_s = time.perf_counter() - t
        names = os.listdir(ledger_path)
        n_parts = sum(n.startswith("part-") for n in names)
        n_comp = sum(n.startswith("compact-") for n in names)
        size_mb = sum(f.stat().st_size for f in ledger_path.glob("*.parquet")) / 1e6
        print(
            f"built {rows:,} rows in {build_s:.1f} s (record_many, 5,000 rows per flush): "
            f"{n_comp} compact + {n_parts} part files, {size_mb:.1f} MB in {ledger_path}"
        )

        led = Ledger(ledger_path, flush_every=50)
        n_rec = args.records if not args.quick else min(args.records, 10_000)
        outs = [
            Outcome(
                item=f"/data/new/rec_{i:07d}.tiq",
                kind="iq",
                source="watch:/data/new",
                status="ok",
                started=time.time() - 1,
                finished=time.time(),
                size=i,
                mtime_ns=i,
                settings_digest=DIGEST,
                products=[f"/out/rec_{i:07d}.png"],
            )
            for i in range(n_rec)
        ]
        t = time.perf_counter()
        for o in outs:
            led.record(o)
        led.flush()
        record_s = (time.perf_counter() - t) / n_rec

        reader = Ledger(ledger_path, create=False)
        status_s, status = timed(reader.status)
        assert status["rows"] == rows + n_rec, status["rows"]
        due_s, done = timed(lambda: reader.done_items("iq", candidates, DIGEST))
        due_np_s, _ = timed(
            lambda: reader.done_items("iq", candidates, DIGEST, check_products=False)
        )
        cli = cli_status(state)

        print(
            f"\nrecorded {n_rec:,} outcomes at flush_every=50 on top; "
            f"done_items: {len(done):,} of {len(candidates):,} candidates done "
            f"(the others have no row)\n"
        )
        table = [
            ("record + flush, amortized (flush_every=50)", "< 1 ms", f"{record_s * 1e3:.3f} ms"),
            (f"status summary on {status['rows']:,} rows", "< 2 s", f"{status_s:.2f} s"),
            (f"done_items, {len(candidates):,} candidates", "< 1 s", f"{due_s:.2f} s"),
            ("  same, check_products=False", "", f"{due_np_s:.2f} s"),
        ]
        for key in ("status", "status --json"):
            if key in cli:
                table.append((f"CLI `crunchctl {key}` wall time", "< 2 s", f"{cli[key]:.2f} s"))
        w = max(len(r[0]) for r in table)
        print(f"{'measure':<{w}}  {'target':>7}  {'measured':>10}")
        for name, target, value in table:
            print(f"{name:<{w}}  {target:>7}  {value:>10}")
        if "note" in cli:
            print(f"\nCLI skipped: {cli['note']}")
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(
            f"\n(median of 3 runs for status, done_items and the CLI; warm page cache; "
            f"{os.cpu_count()} CPUs, load average {load})"
        )
    finally:
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
