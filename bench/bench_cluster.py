"""Benchmark: the built-in worker pool against ``--scheduler local`` (Dask), in one run.

    python bench/bench_cluster.py                 # 20 recordings of 50 MB, 2 workers
    python bench/bench_cluster.py --n 6 --rounds 1   # quicker look

Target: the Dask path keeps at least 85% of the built-in pool's throughput.

Both modes run the installed ``crunchctl process`` as a child process over the same
recordings (the demo recording, 94 frames of 65536 samples, about 50 MB, copied ``--n``
times), each with a fresh output folder and ledger (the file system synced in between),
``-j WORKERS``, and ``--json``. Rounds
alternate the order (pool, dask, then dask, pool) so a machine shared with other work
biases neither. Figures per run:

- wall: the command's wall time, start-up of workers or of the local cluster included;
- throughput: recordings per second of wall time; ratio = dask / pool;
- span: first task started to last task finished (the ledger's times), so wall - span is
  the start-up and wind-down around the work; steady ratio = the same ratio over spans;
- task seconds: the sum of the outcomes' own times (the work on the workers);
- idle per task: (workers x span - task seconds) / n, the worker time each task waits
  beyond its own work (hand-offs); Dask's per-task overhead is the difference between the
  two modes, and so is the change in task seconds (the same work run inside a Dask worker).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def crunchctl() -> list[str]:
    exe = shutil.which("crunchctl")
    return [exe] if exe else [sys.executable, "-m", "crunchctl"]


def make_inputs(folder: Path, n: int) -> list[Path]:
    from crunchctl.formats.synth import RecordingSpec, make_recording

    folder.mkdir(parents=True, exist_ok=True)
    first = folder / "rec_000.tiq"
    if not first.exists():
        make_recording(first, RecordingSpec())
    paths = [first]
    for i in range(1, n):
        p = folder / f"rec_{i:03d}.tiq"
        if not p.exists() or p.stat().st_size != first.stat().st_size:
            shutil.copyfile(first, p)
        paths.append(p)
    return paths


def run(mode: str, paths: list[Path], workers: int, work: Path) -> dict:
    out = work / f"out-{mode}"
    ledger = work / f"ledger-{mode}"
    for d in (out, ledger):
        shutil.rmtree(d, ignore_errors=True)
    args = [
        *crunchctl(),
        "process",
        *map(str, paths),
        "-j",
        str(workers),
        "--output",
        str(out),
        "--ledger",
        str(ledger),
        "--log-file",
        str(work / f"{mode}.log"),
        "--json",
    ]
    if mode == "dask":
        args += ["--scheduler", "local"]
    env = dict(os.environ, NO_COLOR="1")
    env.pop("CRUNCHCTL_SCHEDULER", None)
    os.sync()
    t0 = time.perf_counter()
    p = subprocess.run(args, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"{mode}: exit {p.returncode}\n{p.stderr[-2000:]}")
    doc = json.loads(p.stdout)
    n = len(paths)
    if doc["processed"] != n:
        sys.exit(f"{mode}: processed {doc['processed']} of {n}")
    task = sum(o["seconds"] for o in doc["outcomes"])
    from crunchctl.ledger.store import Ledger

    frame = Ledger(ledger, create=False).scan().collect()
    span = _seconds(frame["finished"].max()) - _seconds(frame["started"].min())
    # The next run must not pay for writing this one's ~0.5 GB of products back to disk.
    shutil.rmtree(out, ignore_errors=True)
    os.sync()
    return {
        "mode": mode,
        "wall": wall,
        "per_s": n / wall,
        "task_s": task,
        "span": span,
        "start_up": wall - span,
        "span_per_s": n / span,
        "idle_per_task": (workers * span - task) / n,
    }


def _seconds(value: object) -> float:
    return value.timestamp() if hasattr(value, "timestamp") else float(value)  # type: ignore[union-attr]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20, help="recordings (default 20)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2, help="pool+dask pairs (default 2)")
    ap.add_argument("--folder", type=Path, help="keep inputs here between runs")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="crunchctl-bench-cluster-"))
    try:
        inputs = make_inputs(args.folder or work / "in", args.n)
        mb = inputs[0].stat().st_size / 1e6
        print(
            f"{args.n} recordings of {mb:.0f} MB, {args.workers} workers, "
            f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
        )
        results: list[dict] = []
        for r in range(args.rounds):
            order = ("pool", "dask") if r % 2 == 0 else ("dask", "pool")
            for mode in order:
                res = run(mode, inputs, args.workers, work)
                res["round"] = r + 1
                results.append(res)
                print(
                    f"  round {r + 1} {mode:4s}: wall {res['wall']:6.2f} s "
                    f"(start-up {res['start_up']:5.2f} s), {res['per_s']:.3f} rec/s, "
                    f"task sum {res['task_s']:6.2f} s, idle/task "
                    f"{res['idle_per_task'] * 1000:.0f} ms"
                )
        ratios, steady, overheads, slower = [], [], [], []
        for r in range(1, args.rounds + 1):
            pool = next(x for x in results if x["round"] == r and x["mode"] == "pool")
            dask = next(x for x in results if x["round"] == r and x["mode"] == "dask")
            ratios.append(dask["per_s"] / pool["per_s"])
            steady.append(dask["span_per_s"] / pool["span_per_s"])
            overheads.append(dask["idle_per_task"] - pool["idle_per_task"])
            slower.append((dask["task_s"] - pool["task_s"]) / args.n)

        def show(xs: list[float], fmt: str) -> str:
            return ", ".join(format(x, fmt) for x in xs)

        print(f"throughput dask/pool, whole command: {show(ratios, '.1%')} (target >= 85%)")
        print(f"throughput dask/pool, first task to last: {show(steady, '.1%')}")
        print(
            f"Dask overhead per task: hand-off {show([x * 1000 for x in overheads], '.0f')}"
            f" ms; task itself {show([x * 1000 for x in slower], '.0f')} ms"
        )
        print(
            json.dumps(
                {
                    "n": args.n,
                    "workers": args.workers,
                    "mb": round(mb),
                    "load": round(os.getloadavg()[0], 1),
                    "ratios": [round(x, 4) for x in ratios],
                    "steady_ratios": [round(x, 4) for x in steady],
                    "handoff_per_task_s": [round(x, 4) for x in overheads],
                    "task_slower_s": [round(x, 4) for x in slower],
                    "runs": results,
                }
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
