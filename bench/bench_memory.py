"""Benchmark: peak memory and wall time of ``crunchctl process`` whatever the recording's size.

    python bench/bench_memory.py              # 320 MB vs legacy, 1 GB and 4 GB, legacy 1 GB
    python bench/bench_memory.py --rounds 1 --no-legacy-big   # quicker look

One run measures, each as a real child process (``bench/run.py``'s runner: wall time around
the child, ``ru_maxrss`` and CPU from ``os.wait4``):

* the 320 MB recording: ``crunchctl process`` and the legacy pipeline, interleaved, ``--rounds``
  times each, and the ratio of their median wall times (target <= 0.25);
* a 1 GB and a 4 GB recording (made here from the 320 MB recording's frames, deleted at
  the end): ``crunchctl process``, ``--rounds`` times each; peak RSS target <= 300 MiB;
* the legacy pipeline on the 1 GB recording, once (it needs about 9 GiB; skipped when the
  machine has less available).

Prints the table, the ratios and the spread (min-max) of every figure. The recordings sit
in the page cache; fsync of the products is part of crunchctl's time, as in production.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as benchrun  # noqa: E402 - the shared runner, recordings and legacy baseline

MIB = 1 << 20
GIB = 1 << 30
TARGET_RSS = 300 * MIB
TARGET_RATIO = 0.25
SIZES = {"1 GB": 2048, "4 GB": 8192}  # frames of 65536 Int32 samples (512 KiB each)


def _spread(values: list[float], scale: float = 1.0, fmt: str = "{:.2f}") -> str:
    if not values:
        return "-"
    med = statistics.median(values) / scale
    if len(values) == 1:
        return fmt.format(med)
    return (
        f"{fmt.format(med)} ({fmt.format(min(values) / scale)}-{fmt.format(max(values) / scale)})"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2, help="repeats of each crunchctl case")
    ap.add_argument("--no-legacy-big", action="store_true", help="skip the legacy 1 GB run")
    ap.add_argument("--no-4gb", action="store_true", help="skip the 4 GB recording")
    ap.add_argument(
        "--recordings",
        type=Path,
        default=Path(tempfile.gettempdir()) / "crunchctl-bench-recordings",
        help="cache of the 320 MB recording",
    )
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="crunchctl-bench-mem-"))
    big_dir = work / "recordings"
    big_dir.mkdir()
    plan = benchrun.Plan(
        "memory",
        single_frames=610,
        single_repeats=args.rounds,
        big_frames=None,
        big_repeats=0,
        big_legacy=False,
        many_files=0,
        many_frames=94,
        many_repeats=0,
        many_legacy_files=0,
    )
    single, _, _ = benchrun.recordings(plan, args.recordings, False)
    results = benchrun.Results()
    runner = benchrun.Runner(work, results)
    print(
        f"crunchctl bench (memory); run folder {work}; cpus {os.cpu_count()}, "
        f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    try:
        print(f"320 MB recording, {args.rounds} rounds, crunchctl and legacy interleaved:")
        for i in range(args.rounds):
            pair = [
                lambda: runner.crunch("320 MB", [single], work / "out-single"),
                lambda: runner.legacy("320 MB", single, work / "out-legacy"),
            ]
            for run in pair if i % 2 == 0 else pair[::-1]:
                run()
        shutil.rmtree(work / "out-legacy", ignore_errors=True)
        for label, frames in SIZES.items():
            if label == "4 GB" and args.no_4gb:
                continue
            rec = big_dir / f"big_{frames}.tiq"
            t = time.perf_counter()
            benchrun.derive(single, rec, 0, frames)
            print(
                f"{label} recording ({rec.stat().st_size / 1e9:.2f} GB) made in "
                f"{time.perf_counter() - t:.0f} s; {args.rounds} crunchctl rounds:"
            )
            for _ in range(args.rounds):
                runner.crunch(label, [rec], work / "out-big")
                shutil.rmtree(work / "out-big", ignore_errors=True)
            if label == "1 GB" and not args.no_legacy_big:
                avail = benchrun._mem_available()
                if avail is not None and avail < 12 * GIB:
                    print(f"    legacy skipped: only {avail / GIB:.1f} GiB available, it needs ~9")
                else:
                    runner.legacy(label, rec, work / "out-big-legacy")
                    shutil.rmtree(work / "out-big-legacy", ignore_errors=True)
            rec.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    lines = [
        f"{'case':8s} {'program':10s} {'runs':>4s} {'wall s (min-max)':>22s} "
        f"{'cpu s':>7s} {'peak RSS MiB (min-max)':>24s}"
    ]
    lines.append("-" * len(lines[0]))
    for case in ("320 MB", *SIZES):
        for tool in ("legacy", "crunchctl"):
            runs = results.of(tool, case)
            if runs:
                lines.append(
                    f"{case:8s} {tool:10s} {len(runs):4d} "
                    f"{_spread([r.wall for r in runs]):>22s} "
                    f"{statistics.median(r.cpu for r in runs):7.2f} "
                    f"{_spread([r.maxrss for r in runs], MIB, '{:.0f}'):>24s}"
                )
    lines.append("")
    verdicts: dict[str, dict] = {}
    cw = [r.wall for r in results.of("crunchctl", "320 MB")]
    lw = [r.wall for r in results.of("legacy", "320 MB")]
    ratio = statistics.median(cw) / statistics.median(lw)
    # Spread of the ratio: each crunchctl run against the legacy run of its own round.
    per_round = [c / g for c, g in zip(cw, lw)]
    verdicts["320 MB wall ratio"] = {
        "value": ratio,
        "rounds": per_round,
        "met": ratio <= TARGET_RATIO,
    }
    lines.append(
        f"320 MB: crunchctl wall / legacy wall = {ratio:.3f} (per round "
        f"{', '.join(f'{x:.3f}' for x in per_round)}; target <= {TARGET_RATIO}) "
        f"{'met' if ratio <= TARGET_RATIO else 'NOT MET'}"
    )
    for case in ("320 MB", *SIZES):
        runs = results.of("crunchctl", case)
        if runs:
            peak = max(r.maxrss for r in runs)
            ok = peak <= TARGET_RSS
            verdicts[f"{case} peak RSS"] = {"value_mib": peak / MIB, "met": ok}
            lines.append(
                f"{case}: crunchctl peak RSS (largest run) {peak / MIB:.0f} MiB "
                f"(target <= 300) {'met' if ok else 'NOT MET'}"
            )
    legacy_big = results.of("legacy", "1 GB")
    if legacy_big:
        lines.append(
            f"1 GB: legacy peak RSS {legacy_big[0].maxrss / MIB:.0f} MiB, wall "
            f"{legacy_big[0].wall:.2f} s; crunchctl / legacy wall "
            f"{statistics.median(r.wall for r in results.of('crunchctl', '1 GB')) / legacy_big[0].wall:.3f}"
        )
    lines.append(
        f"total bench time {time.perf_counter() - t0:.0f} s; load average now "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    print("\n".join(lines))
    if args.json:
        args.json.write_text(
            json.dumps(
                {"table": lines, "verdicts": verdicts, "runs": [r.__dict__ for r in results.runs]},
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
