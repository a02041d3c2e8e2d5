"""Benchmark: ``crunchctl process`` against the legacy pipeline and the floor.

    python bench/run.py            # full run, under 10 minutes on 2 cores
    python bench/run.py --quick    # fewer repeats, no 1 GB case, under 2 minutes

Generates a synthetic Int32 recording with ``crunchctl.formats.synth.make_recording`` and makes the
big and the small recordings from its frames (all cached in
``/tmp/crunchctl-bench-recordings`` between runs; ``--fresh`` makes them again), then runs,
each as a real child process:

* ``bench/legacy_pipeline.py``: the legacy baseline (one fresh process per recording);
* ``bench/floor.py``: read, chunked float32 spectrogram, three products, nothing else;
* the installed ``crunchctl process`` entry point, with ``--output``, ``--ledger`` (a fresh
  ledger per run, plus ``--force``), ``--config`` (an empty file) and ``--log-file`` all in
  the run's temp folder, so no earlier state skips work.

Wall time is measured around each child, peak memory is the child's ``ru_maxrss`` from
``os.wait4`` (for a multi-worker run: the largest single process), CPU is user + system.
Runs of different programs are interleaved so machine noise hits them alike. Prints a
table of medians, the ratios against the issue's targets, and checks that crunchctl's NPZ
power equals the legacy power up to float32 rounding. The recordings sit in the page
cache (they were just written or read): this measures processing, not the disk.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
LFRAMES = 65536
GIB = 1 << 30
MB = 1 << 20


# ----------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class Plan:
    name: str
    single_frames: int  # the "320 MB" case
    single_repeats: int
    big_frames: int | None  # the "1 GB" case (None: skipped)
    big_repeats: int
    big_legacy: bool
    many_files: int
    many_frames: int
    many_repeats: int
    many_legacy_files: int  # legacy is run once on this many of the files


FULL = Plan(
    "full",
    single_frames=610,
    single_repeats=5,
    big_frames=2048,
    big_repeats=2,
    big_legacy=True,
    many_files=20,
    many_frames=94,
    many_repeats=3,
    many_legacy_files=20,
)
QUICK = Plan(
    "quick",
    single_frames=610,
    single_repeats=2,
    big_frames=None,
    big_repeats=0,
    big_legacy=False,
    many_files=20,
    many_frames=94,
    many_repeats=1,
    many_legacy_files=5,
)


def size_of(frames: int) -> str:
    return f"{frames * LFRAMES * 8 / 1e6:.0f} MB"


# --------------------------------------------------------------------------- children


@dataclass
class Run:
    tool: str
    case: str
    wall: float
    cpu: float
    maxrss: int  # bytes
    tree_pss: int | None = None  # bytes, whole process tree (multi-worker runs)


@dataclass
class Results:
    runs: list[Run] = field(default_factory=list)

    def of(self, tool: str, case: str) -> list[Run]:
        return [r for r in self.runs if r.tool == tool and r.case == case]

    def median(self, tool: str, case: str, attr: str) -> float | None:
        values = [getattr(r, attr) for r in self.of(tool, case)]
        return statistics.median(values) if values else None


class TreeMemory:
    """Sample the summed PSS of a process and all its descendants (worker pools).

    ``ru_maxrss`` only sees the largest single process, and not at all the workers of a
    forkserver (they are not our children); proportional set size counts shared pages once.
    """

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(interval,), daemon=True)
        self._thread.start()

    def _tree(self) -> list[int]:
        try:  # cheap: the kernel's list of each thread's children
            tree, frontier = [self.pid], [self.pid]
            while frontier:
                found = []
                for pid in frontier:
                    for task in os.listdir(f"/proc/{pid}/task"):
                        with open(f"/proc/{pid}/task/{task}/children") as f:
                            found += [int(c) for c in f.read().split()]
                tree += found
                frontier = found
            return tree
        except FileNotFoundError:
            pass  # a process ended mid-walk, or no children files: scan all of /proc
        except OSError:
            pass
        parents: dict[int, int] = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/stat", "rb") as f:
                        stat = f.read()
                    parents[int(d)] = int(stat[stat.rindex(b")") + 2 :].split()[1])
                except (OSError, ValueError):
                    pass
        tree, frontier = [self.pid], [self.pid]
        while frontier:
            frontier = [p for p, pp in parents.items() if pp in frontier]
            tree += frontier
        return tree

    def _loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            total = 0
            for pid in self._tree():
                try:
                    with open(f"/proc/{pid}/smaps_rollup") as f:
                        for line in f:
                            if line.startswith("Pss:"):
                                total += int(line.split()[1]) * 1024
                                break
                except OSError:
                    pass
            self.peak = max(self.peak, total)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def run_child(
    cmd: list[str], log: Path, env: dict[str, str], cwd: Path, tree: bool = False
) -> tuple[float, float, int, int | None]:
    """Run ``cmd``; return (wall s, cpu s, peak RSS bytes, peak tree PSS bytes or None).

    Raises RuntimeError on a non-zero exit.
    """
    with open(log, "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        sampler = TreeMemory(proc.pid) if tree else None
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        tree_peak = sampler.stop() if sampler else None
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited with {proc.returncode}:\n{tail}")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss * 1024, tree_peak


class Runner:
    def __init__(self, work: Path, results: Results, verbose: bool = True) -> None:
        self.work = work
        self.results = results
        self.verbose = verbose
        self.n = 0
        self.crunchctl = find_crunchctl()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CRUNCHCTL_")}
        self.env.pop("MPLBACKEND", None)
        self.config = work / "empty-config.toml"
        self.config.write_text("# benchmark: defaults only\n")

    def _record(self, tool: str, case: str, cmd: list[str], tree: bool = False) -> Run:
        self.n += 1
        log = self.work / "logs" / f"{self.n:03d}-{tool}-{case}.log"
        log.parent.mkdir(exist_ok=True)
        wall, cpu, rss, pss = run_child(cmd, log, self.env, self.work, tree)
        run = Run(tool, case, wall, cpu, rss, pss)
        self.results.runs.append(run)
        if self.verbose:
            extra = f", {pss / MB:.0f} MiB all processes (PSS)" if pss else ""
            cpu_note = " (main process only)" if tree else ""
            print(
                f"    {tool:9s} {case:7s} {wall:7.2f} s wall {cpu:7.2f} s cpu{cpu_note} "
                f"{rss / MB:7.0f} MiB peak{extra}",
                flush=True,
            )
        return run

    def legacy(self, case: str, rec: Path, out: Path) -> Run:
        return self._record(
            "legacy", case, [sys.executable, str(BENCH / "legacy_pipeline.py"), str(rec), str(out)]
        )

    def floor(self, case: str, rec: Path, out: Path) -> Run:
        return self._record(
            "floor", case, [sys.executable, str(BENCH / "floor.py"), str(rec), str(out)]
        )

    def crunch(self, case: str, recs: list[Path], out: Path, workers: int | None = None) -> Run:
        ledger = self.work / "ledgers" / f"run{self.n + 1:03d}"
        cmd = [
            self.crunchctl,
            "process",
            *map(str, recs),
            "--output",
            str(out),
            "--ledger",
            str(ledger),
            "--force",
            "--config",
            str(self.config),
            "--log-file",
            str(self.work / "logs" / "crunchctl.log"),
            "--quiet",
        ]
        if workers:
            cmd += ["--workers", str(workers)]
        return self._record("crunchctl", case, cmd, tree=len(recs) > 1)


def find_crunchctl() -> str:
    """The installed entry point of this interpreter (not a pyenv shim: no shell detour)."""
    here = Path(sys.executable).parent / "crunchctl"
    if here.exists():
        return str(here)
    found = shutil.which("crunchctl")
    if not found:
        raise SystemExit("crunchctl is not installed (pip install -e .)")
    return found


# ------------------------------------------------------------------------- recordings


def _make(path: Path, nframes: int, seed: int) -> None:
    from crunchctl.formats.synth import RecordingSpec, make_recording

    tmp = path.with_name(path.name + ".part")
    make_recording(tmp, RecordingSpec(nframes=nframes, seed=seed))
    os.replace(tmp, path)


def derive(src: Path, dst: Path, first_frame: int, nframes: int) -> None:
    """Write a recording of ``nframes`` frames of ``src``, from ``first_frame`` on, cyclically.

    Same header values as ``src`` (the synthetic generator runs at ~15 MB/s on this
    machine; copying frames runs at page-cache speed). Frames are processed independently,
    so a recording made of another's frames is as realistic to every program measured.
    """
    from crunchctl.formats import tiq

    h = tiq.open_recording(src)
    have = h.nsamples // LFRAMES
    frame_bytes = LFRAMES * h.bytes_per_sample
    header = tiq.build_header(
        nsamples=nframes * LFRAMES,
        fs=h.fs,
        center=h.center,
        scaling=h.scaling,
        number_format=h.number_format,
        acquired=h.datetime,
        pad_to=h.offset,
    )
    tmp = dst.with_name(dst.name + ".part")
    with open(src, "rb") as s, open(tmp, "wb") as d:
        d.write(header)
        done = 0
        while done < nframes:
            at = (first_frame + done) % have
            run = min(nframes - done, have - at, 16)
            s.seek(h.offset + at * frame_bytes)
            d.write(s.read(run * frame_bytes))
            done += run
    os.replace(tmp, dst)


def recordings(plan: Plan, cache: Path, fresh: bool) -> tuple[Path, Path | None, list[Path]]:
    """The single, big and many recordings, made once and kept in ``cache``.

    The single recording comes from ``crunchctl.formats.synth.make_recording``; the big one and
    the small ones are made of its frames (``derive``), which takes seconds, not minutes.
    """
    cache.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    made = 0
    single = cache / f"single_{plan.single_frames}.tiq"
    if fresh or not single.exists():
        print(
            f"generating {single} ({size_of(plan.single_frames)}, crunchctl.formats.synth) ...",
            flush=True,
        )
        _make(single, plan.single_frames, seed=1)
        made += 1
    big = cache / f"big_{plan.big_frames}_from{plan.single_frames}.tiq" if plan.big_frames else None
    if big is not None and (fresh or not big.exists()):
        derive(single, big, 0, plan.big_frames or 0)
        made += 1
    step = max(1, (plan.single_frames - plan.many_frames) // max(1, plan.many_files - 1))
    many = []
    for i in range(plan.many_files):
        p = cache / f"many_{plan.many_frames}_from{plan.single_frames}_{i:02d}.tiq"
        if fresh or not p.exists():
            derive(single, p, i * step, plan.many_frames)
            made += 1
        many.append(p)
    if made:
        print(f"  {made} recordings made in {time.perf_counter() - t0:.0f} s (cached in {cache})")
    else:
        print(f"recordings reused from {cache} (--fresh makes them again)")
    return single, big, many


# ------------------------------------------------------------------------- checks


def compare_power(crunch_npz: Path, legacy_npz: Path) -> dict[str, float]:
    """Check crunchctl's NPZ against the legacy one; return the differences."""
    import numpy as np

    with np.load(crunch_npz) as c, np.load(legacy_npz) as g:
        for key, dtype, ndim in (
            ("arr_0", np.float64, 2),
            ("arr_1", np.float64, 2),
            ("arr_2", np.float32, 2),
        ):
            assert key in c.files, f"{crunch_npz}: no {key}"
            assert c[key].dtype == dtype and c[key].ndim == ndim, (key, c[key].dtype)
        p, ref = c["arr_2"], g["arr_2"]
        assert p.shape == ref.shape, (p.shape, ref.shape)
        assert c["arr_0"].shape == (1, p.shape[1]) and c["arr_1"].shape == (p.shape[0], 1)
        # The legacy frequency row is float32 (16 Hz steps at 245 MHz): equal to that.
        fdiff = float(np.max(np.abs(c["arr_0"] - g["arr_0"].astype(np.float64))))
        tdiff = float(np.max(np.abs(c["arr_1"] - g["arr_1"])))
        r = ref.astype(np.float64)
        diff = np.abs(p - r)
        per_bin = diff / np.maximum(r, np.finfo(np.float64).tiny)
        peak = r.max(axis=1, keepdims=True)
        strong = r >= 1e-6 * peak  # bins within 60 dB of the frame's peak
        out = {
            "max_rel_diff_all_bins": float(per_bin.max()),
            "max_rel_diff_within_60dB": float(per_bin[strong].max()),
            "median_rel_diff": float(np.median(per_bin)),
            "max_diff_over_frame_power": float((diff / r.sum(axis=1, keepdims=True)).max()),
            "max_freq_diff_hz": fdiff,
            "max_time_diff_s": tdiff,
        }
    # float32 rounding of samples, FFT and square, relative to each frame's power; the
    # legacy frequency row itself is float32, so it is off by up to half a 16 Hz step.
    assert out["max_diff_over_frame_power"] < 1e-6, out
    assert out["max_rel_diff_within_60dB"] < 1e-3, out
    assert fdiff <= 16.0 and tdiff < 1e-9, out
    return out


def compare_in_child(crunch_npz: Path, legacy_npz: Path) -> dict[str, float]:
    """Run :func:`compare_power` in a child process.

    A child's ru_maxrss includes the high-water mark of the process it was forked from, so
    this process must stay small: the big arrays are loaded elsewhere.
    """
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import run; "
        "print(json.dumps(run.compare_power(sys.argv[2], sys.argv[3])))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(BENCH), str(crunch_npz), str(legacy_npz)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"products differ from the legacy ones:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)


# --------------------------------------------------------------------------- report


def fmt_ratio(value: float | None, target: str, ok: bool | None) -> str:
    if value is None:
        return "n/a"
    verdict = "" if ok is None else ("  met" if ok else "  NOT MET")
    return f"{value:.2f} (target {target}){verdict}"


def _tree(runs: list[Run]) -> str:
    values = [r.tree_pss for r in runs if r.tree_pss]
    return f"{statistics.median(values) / MB:.0f}" if values else "-"


def report(
    plan: Plan,
    res: Results,
    sizes: dict[str, str],
    elapsed: float,
    check: dict[str, float] | None,
    many_files: int,
    many_legacy: int,
) -> dict:
    lines = []
    hdr = (
        f"{'case':26s} {'program':10s} {'runs':>4s} {'wall s':>8s} {'cpu s':>8s} "
        f"{'peak MiB':>9s} {'tree MiB':>9s}"
    )
    lines += [hdr, "-" * len(hdr)]
    labels = {
        "single": f"single file {sizes['single']}",
        "big": f"big file {sizes.get('big', '')}",
        "many": f"{many_files} x {sizes['many']}, 2 workers",
    }
    for case in ("single", "big", "many"):
        for tool in ("legacy", "floor", "crunchctl"):
            runs = res.of(tool, case)
            if not runs:
                continue
            label = labels[case]
            if case == "many" and tool == "legacy":
                label = f"{many_legacy} x {sizes['many']}, one each"
            lines.append(
                f"{label:26s} {tool:10s} {len(runs):4d} "
                f"{res.median(tool, case, 'wall'):8.2f} "
                f"{res.median(tool, case, 'cpu'):8.2f} "
                f"{res.median(tool, case, 'maxrss') / MB:9.0f} "
                f"{_tree(runs):>9s}"
            )
    lines.append("")
    m = res.median
    ratios: dict[str, dict] = {}

    def ratio(name: str, value: float | None, target: str, ok: bool | None) -> None:
        ratios[name] = {"value": value, "target": target, "met": ok}
        lines.append(f"  {name:44s} {fmt_ratio(value, target, ok)}")

    lines.append(f"Targets (medians; {plan.name} mode):")
    cw, lw = m("crunchctl", "single", "wall"), m("legacy", "single", "wall")
    fw = m("floor", "single", "wall")
    cm, lm = m("crunchctl", "single", "maxrss"), m("legacy", "single", "maxrss")
    ratio(f"{sizes['single']}: crunchctl wall / legacy wall", cw / lw, "<= 0.25", cw / lw <= 0.25)
    ratio(f"{sizes['single']}: crunchctl peak / legacy peak", cm / lm, "<= 0.167", cm / lm <= 1 / 6)
    ratio(f"{sizes['single']}: crunchctl wall / floor wall", cw / fw, "<= 1.3", cw / fw <= 1.3)
    ccpu, fcpu = m("crunchctl", "single", "cpu"), m("floor", "single", "cpu")
    ratio(f"{sizes['single']}: crunchctl cpu / floor cpu (info)", ccpu / fcpu, "-", None)
    bm = m("crunchctl", "big", "maxrss")
    if bm is not None:
        ratio(f"{sizes['big']}: crunchctl peak MiB", bm / MB, "<= 300", bm <= 300 * MB)
        blm = m("legacy", "big", "maxrss")
        if blm is not None:
            ratio(f"{sizes['big']}: legacy peak GiB (info)", blm / GIB, "-", None)
            bw, blw = m("crunchctl", "big", "wall"), m("legacy", "big", "wall")
            ratio(f"{sizes['big']}: crunchctl wall / legacy wall (info)", bw / blw, "-", None)
    else:
        lines.append("  big-file case skipped in quick mode")
    mw = m("crunchctl", "many", "wall")
    legacy_each = [r.wall for r in res.of("legacy", "many")]
    if mw and legacy_each:
        per_crunch = mw / many_files
        per_legacy = sum(legacy_each) / len(legacy_each)
        ratio(
            "many: throughput crunchctl / legacy",
            per_legacy / per_crunch,
            ">= 5",
            per_legacy / per_crunch >= 5,
        )
        lines.append(
            f"    (legacy {per_legacy:.2f} s per recording, crunchctl "
            f"{per_crunch:.2f} s per recording)"
        )
    if check:
        lines.append("")
        lines.append(
            f"Products keep their meaning (crunchctl NPZ vs legacy NPZ, {sizes['single']} file):"
        )
        lines.append(
            f"  arr_2 max relative difference, all bins:         "
            f"{check['max_rel_diff_all_bins']:.3g}  (deep nulls: float32 FFT)"
        )
        lines.append(
            f"  arr_2 max relative difference, bins within 60 dB: "
            f"{check['max_rel_diff_within_60dB']:.3g}"
        )
        lines.append(
            f"  arr_2 median relative difference:                {check['median_rel_diff']:.3g}"
        )
        lines.append(
            f"  arr_2 max |difference| / frame power:            "
            f"{check['max_diff_over_frame_power']:.3g}  (asserted < 1e-6)"
        )
        lines.append(
            f"  arr_0 max |difference| (legacy row is float32):  {check['max_freq_diff_hz']:.3g} Hz"
        )
    lines.append("")
    lines.append(
        "peak MiB: ru_maxrss of the child (a multi-worker run: its largest process);"
        " tree MiB: peak summed PSS of the child and its worker processes. cpu s of a"
        " multi-worker run counts the main process only."
    )
    lines.append(
        f"{plan.name} mode; total bench time {elapsed:.0f} s "
        f"(cpus: {os.cpu_count()}, load average now: "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())})"
    )
    if plan.name == "quick":
        lines.append(
            "QUICK MODE: 2 rounds instead of 5, no 1 GB case, one multi-file run and "
            f"the legacy on {many_legacy} of the {many_files} small files: orientation "
            "only."
        )
    print("\n".join(lines))
    return {
        "mode": plan.name,
        "ratios": ratios,
        "check": check,
        "runs": [r.__dict__ for r in res.runs],
        "table": lines,
    }


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="crunchctl vs legacy vs floor")
    ap.add_argument("--quick", action="store_true", help="fewer repeats, no 1 GB case (< 2 min)")
    ap.add_argument("--repeats", type=int, help="repeats of the single-file case")
    ap.add_argument(
        "--no-big-legacy",
        action="store_true",
        help="skip the legacy run on the 1 GB file (it needs about 8.5 GiB)",
    )
    ap.add_argument(
        "--recordings",
        type=Path,
        default=Path(tempfile.gettempdir()) / "crunchctl-bench-recordings",
        help="recording cache folder",
    )
    ap.add_argument("--fresh", action="store_true", help="regenerate the recordings")
    ap.add_argument("--workdir", type=Path, help="run folder (default: a new temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the run folder (products, logs)")
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = ap.parse_args(argv)

    plan = QUICK if args.quick else FULL
    if args.repeats:
        plan = Plan(**{**plan.__dict__, "single_repeats": args.repeats})
    for p in (args.recordings, args.workdir):
        if p is not None and Path(p).resolve().is_relative_to(REPO):
            raise SystemExit(f"{p}: benchmark files must not go inside the repository")
    t_start = time.perf_counter()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="crunchctl-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"crunchctl bench, {plan.name} mode; run folder {work}")
    single, big, many = recordings(plan, args.recordings, args.fresh)
    results = Results()
    r = Runner(work, results)
    print(f"crunchctl entry point: {r.crunchctl}")
    sizes = {"single": size_of(plan.single_frames), "many": size_of(plan.many_frames)}
    try:
        print(f"single file ({sizes['single']}), {plan.single_repeats} rounds, interleaved:")
        order = [r.legacy, r.floor, lambda c, rec, out: r.crunch(c, [rec], out)]
        names = ["legacy", "floor", "crunchctl"]
        for i in range(plan.single_repeats):
            for j in range(3):
                k = (i + j) % 3
                order[k]("single", single, work / f"out-single-{names[k]}")
        check = compare_in_child(
            work / "out-single-crunchctl" / f"{single.stem}.npz",
            work / "out-single-legacy" / f"{single.stem}.npz",
        )

        if big is not None:
            sizes["big"] = size_of(plan.big_frames or 0)
            print(f"big file ({sizes['big']}):")
            for _ in range(plan.big_repeats):
                r.crunch("big", [big], work / "out-big-crunchctl")
            shutil.rmtree(work / "out-big-crunchctl", ignore_errors=True)
            avail = _mem_available()
            if plan.big_legacy and not args.no_big_legacy:
                if avail is not None and avail < 12 * GIB:
                    print(f"    legacy skipped: only {avail / GIB:.1f} GiB available, it needs ~9")
                else:
                    r.legacy("big", big, work / "out-big-legacy")
                    shutil.rmtree(work / "out-big-legacy", ignore_errors=True)

        print(
            f"{len(many)} files of {sizes['many']}, crunchctl runs interleaved with the "
            f"legacy runs on {plan.many_legacy_files} of them:"
        )
        legacy_files = many[: plan.many_legacy_files]
        rounds = max(1, plan.many_repeats)
        for i in range(rounds):
            r.crunch("many", many, work / "out-many-crunchctl", workers=2)
            share = legacy_files[
                i * len(legacy_files) // rounds : (i + 1) * len(legacy_files) // rounds
            ]
            for rec in share:
                r.legacy("many", rec, work / "out-many-legacy")
        print()
        summary = report(
            plan,
            results,
            sizes,
            time.perf_counter() - t_start,
            check,
            len(many),
            plan.many_legacy_files,
        )
        if args.json:
            args.json.write_text(json.dumps(summary, indent=1))
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
        elif args.keep:
            print(f"run folder kept: {work}")
    return 0


def _mem_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


if __name__ == "__main__":
    sys.exit(main())
