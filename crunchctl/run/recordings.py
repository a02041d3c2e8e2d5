"""Processing recordings: the one body behind ``process``, ``watch``'s backlog and ``demo``.

Decides what is due (via the ledger), names products, runs the engine, records outcomes
and publishes web copies. No printing: progress goes to a ``Reporter``, messages to logs.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crunchctl.run import engine
from crunchctl.config import Settings
from crunchctl.errors import ItemError
from crunchctl.run.outcome import ERROR, KIND_IQ, OK, Outcome
from crunchctl.quicklook.task import RecordingTask, fingerprint, process_recording

if TYPE_CHECKING:
    from crunchctl.ledger.store import Ledger

log = logging.getLogger("crunchctl.jobs")


@dataclass
class ProcessResult:
    """What a processing run did."""

    summary: engine.RunSummary
    outcomes: list[Outcome] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    published: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == ERROR]


class Publisher:
    """Copies each finished recording's PNGs into the web folder, newest recording last.

    With parallel workers an older recording can finish after a newer one; the web folder
    keeps showing the newest (by mtime) of each source folder.
    """

    def __init__(self, www: str | None) -> None:
        self.www = www
        self._newest: dict[str, int] = {}
        self._cleaned = False

    def publish(self, outcome: Outcome) -> list[str]:
        if not self.www or outcome.status != OK or len(outcome.products) < 2:
            return []
        from crunchctl.quicklook.products import clean_stale_temps, publish_www

        if not self._cleaned:
            # Temp copies of a run killed mid-copy would stay in the web folder for good.
            self._cleaned = True
            clean_stale_temps(self.www)

        folder = str(Path(outcome.item).parent)
        mtime = outcome.mtime_ns or 0
        if mtime < self._newest.get(folder, -1):
            return []
        self._newest[folder] = mtime
        return publish_www(self.www, outcome.item, outcome.products[0], outcome.products[1])

    def publish_and_log(self, outcome: Outcome) -> list[str]:
        """Publish an outcome's PNGs and log it; a failed web copy makes it an error.

        The products themselves stay; the recording is tried again on the next run.
        """
        published: list[str] = []
        if outcome.status == OK:
            try:
                published = self.publish(outcome)
            except (ItemError, OSError) as e:
                outcome.status = ERROR
                outcome.error = f"{outcome.item}: products written, web copy failed: {e}"
                outcome.extra["retry"] = True
        if outcome.status == ERROR:
            log.error("%s", outcome.error)
        else:
            log.info("%s: %s in %.2f s", outcome.item, outcome.status, outcome.duration)
        return published


def normalise(paths: Iterable[str | os.PathLike]) -> list[str]:
    """Absolute paths, duplicates removed, order kept; the two files of a SigMF pair are
    one recording (docs/formats.md)."""
    from crunchctl.formats import item_path

    seen: dict[str, None] = {}
    for p in paths:
        seen.setdefault(os.path.abspath(item_path(os.fspath(p))), None)
    return list(seen)


def make_tasks(paths: Sequence[str], settings: Settings, *, source: str,
               fft_workers: int = 1) -> list[RecordingTask]:
    """Tasks with collision-free product stems (DESIGN section 4)."""
    from crunchctl.quicklook.products import plan_stems

    stems = plan_stems(paths, settings.output_dir())
    return [RecordingTask(p, stems[p], settings, source, fft_workers) for p in paths]


def split_due(paths: Sequence[str], settings: Settings, ledger: Ledger | None,
              *, force: bool = False) -> tuple[list[str], list[str]]:
    """(due, done) among ``paths`` per the ledger's done-state rules (DESIGN section 5)."""
    if ledger is None or force:
        return list(paths), []
    candidates = [(p, *fingerprint(p)) for p in paths]
    done = ledger.done_items(KIND_IQ, candidates, settings.product_digest())
    return [p for p in paths if p not in done], [p for p in paths if p in done]


def process_files(
    paths: Iterable[str | os.PathLike],
    settings: Settings,
    *,
    ledger: Ledger | None = None,
    force: bool = False,
    source: str = "process",
    reporter: engine.Reporter | None = None,
    flags: engine.StopFlags | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> ProcessResult:
    """Process recordings into products, skipping those the ledger says are done.

    Args:
        paths: recordings (missing or bad ones become ``error`` outcomes).
        settings: resolved settings (output folder, numerics, workers, www).
        ledger: where outcomes are recorded and done-state is read; None for neither.
        force: process even recordings that are done.
        source: the ledger's source column (``process``, ``watch:<folder>``, ...).
        reporter: progress callbacks.
        flags: stop/cancel flags for signal handling.
        on_outcome: extra per-outcome callback (the watch panel).

    Returns:
        The outcomes, the skipped items and the run summary.

    Raises:
        ItemError: the output folder cannot be created or written (nothing could succeed).
    """
    from crunchctl.quicklook.products import clean_stale_temps, ensure_output_dir

    all_paths = normalise(paths)
    due, done = split_due(all_paths, settings, ledger, force=force)
    for p in done:
        log.info("%s: already done, skipped", p)
    output = settings.output_dir()
    result = ProcessResult(engine.RunSummary(), skipped=done)
    if not due:
        result.summary.skipped = len(done)
        result.summary.finished = time.time()
        return result
    try:
        ensure_output_dir(output)
        clean_stale_temps(output)
    except ItemError as e:
        # Every due item fails the same way; record each so status shows them.
        log.error("%s (%d recording%s not processed)", e, len(due), "" if len(due) == 1 else "s")
        now = time.time()
        for p in due:
            o = Outcome(p, KIND_IQ, source, ERROR, now, now, *fingerprint(p),
                        settings.product_digest(), [], str(e))
            result.outcomes.append(o)
            result.summary.add(o)
            if ledger is not None:
                ledger.record(o)
            if reporter is not None:
                reporter.item_done(o)
        result.summary.skipped = len(done)
        result.summary.finished = time.time()
        return result

    inline = len(due) == 1
    workers = max(1, min(settings.workers, len(due)))
    fft_workers = (os.cpu_count() or 1) if inline else 1
    tasks = make_tasks(due, settings, source=source, fft_workers=fft_workers)
    publisher = Publisher(settings.www_path)

    def handle(outcome: Outcome) -> None:
        result.published.extend(publisher.publish_and_log(outcome))
        result.outcomes.append(outcome)
        if ledger is not None:
            ledger.record(outcome)
        if on_outcome is not None:
            on_outcome(outcome)

    try:
        summary = engine.run_tasks(tasks, process_recording, workers=workers, on_outcome=handle,
                                   reporter=reporter, flags=flags, total=len(tasks),
                                   inline=inline)
    finally:
        if ledger is not None:
            ledger.flush()
    summary.skipped = len(done)
    result.summary = summary
    return result


def describe(result: ProcessResult) -> str:
    """The one-line summary printed at the end of a run."""
    s = result.summary
    parts = [f"processed {s.ok}", f"failed {s.error}"]
    if s.skipped:
        parts.append(f"skipped {s.skipped} already done")
    if s.not_started:
        parts.append(f"not started {s.not_started}")
    return ", ".join(parts) + f" in {s.elapsed:.1f} s"


def as_json(result: ProcessResult) -> dict[str, Any]:
    s = result.summary
    return {
        "processed": s.ok, "failed": s.error, "skipped": s.skipped,
        "not_started": s.not_started, "seconds": round(s.elapsed, 3),
        "interrupted": s.interrupted_by is not None,
        "outcomes": [{"item": o.item, "status": o.status, "products": o.products,
                      "error": o.error, "seconds": round(o.duration, 3)}
                     for o in result.outcomes],
        "skipped_items": result.skipped,
    }
