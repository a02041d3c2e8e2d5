"""Start-up time of ``crunchctl --help`` and of completion, against ``import typer``.

Usage: python bench/bench_startup.py [--runs N]

Prints medians of N runs each (interleaved, so machine noise hits all alike) and the
ratio; the target is crunchctl --help < 1.5 x python -c "import typer".
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    exe = shutil.which("crunchctl")
    if exe is None:
        sys.exit("crunchctl is not installed (pip install -e .)")
    complete_env = {
        **os.environ,
        "_CRUNCHCTL_COMPLETE": "complete_bash",
        "COMP_WORDS": "crunchctl process --win",
        "COMP_CWORD": "2",
    }
    cases = {
        "python -c 'import typer' (baseline)": ([sys.executable, "-c", "import typer"], None),
        "crunchctl --help": ([exe, "--help"], None),
        "crunchctl process --help": ([exe, "process", "--help"], None),
        "completion of 'crunchctl process --win'": ([exe], complete_env),
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(2):  # warm the page cache and byte-code caches
        for cmd, env in cases.values():
            timed(cmd, env)
    for _ in range(args.runs):
        for name, (cmd, env) in cases.items():
            times[name].append(timed(cmd, env))
    base = statistics.median(times["python -c 'import typer' (baseline)"])
    print(f"{'case':45} {'median s':>9} {'ratio':>7}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:45} {med:9.3f} {med / base:7.2f}")
    ratio = statistics.median(times["crunchctl --help"]) / base
    verdict = "met" if ratio < 1.5 else "NOT met"
    print(f"\ntarget: crunchctl --help < 1.5 x baseline -> {ratio:.2f} ({verdict})")


if __name__ == "__main__":
    main()
