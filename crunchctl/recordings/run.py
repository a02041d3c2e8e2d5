"""Process these recordings, record, publish: the one path behind ``process``, ``demo`` and
``watch`` (docs/ARCHITECTURE.md).

:class:`RecordingRun` plans which recordings are due (the ledger's done-state), makes their
tasks with collision-free product stems, and finishes each outcome (web copies, ledger row,
log line). ``process`` drives it as one batch through :func:`process_files`; ``watch``
feeds it recordings as they become ready. No printing: messages go to the logs.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from crunchctl.config import Settings
from crunchctl.errors import ItemError, LedgerError, UsageError
from crunchctl.outcome import ERROR, KIND_IQ, OK, Outcome
from crunchctl.run import engine
from crunchctl.words import count

if TYPE_CHECKING:
    from crunchctl.ledger.store import Ledger
    from crunchctl.quicklook.task import RecordingTask

log = logging.getLogger("crunchctl.recordings")

#: Longest delay between an outcome and its ledger flush in a long run (watch), s.
FLUSH_INTERVAL = 0.5


class Page(Protocol):
    """The control-room page of the web folder (``www.site.WebPage``), built by the command
    and handed in: this path tells it each outcome and keeps its heartbeat."""

    def note(self, outcome: Outcome, published: list[str]) -> None: ...
    def is_latest(self, outcome: Outcome) -> bool: ...
    def tick(self) -> None: ...
    def close(self) -> None: ...


class Publisher:
    """Copies each finished recording's PNGs into the web folder, newest recording last.

    With parallel workers, or a late copy of an old recording, an older recording can
    finish after a newer one; the web folder keeps showing the page's latest recording of
    each folder (the newest by acquisition start, else by processing time).

    Args:
        www: the web folder, or None for no web copies.
        page: the control-room page to tell about each outcome, or None.
    """

    def __init__(self, www: str | None, page: Page | None = None) -> None:
        self.www = www
        self._newest: dict[str, int] = {}
        self._cleaned = False
        self.page = page

    def publish(self, outcome: Outcome) -> list[str]:
        if not self.www or outcome.status != OK:
            return []
        from crunchctl.quicklook.products import clean_stale_temps, publish_www, quicklook_pngs

        png, zoom_png = quicklook_pngs(outcome.item, outcome.products)  # --products may omit them
        if png is None and zoom_png is None:
            return []

        if not self._cleaned:
            # Temp copies of a run killed mid-copy would stay in the web folder for good.
            self._cleaned = True
            clean_stale_temps(self.www)

        if self.page is not None:
            # The fixed-name copies show the page's latest recording: the newest by
            # acquisition start, else by processing time (docs/products.md).
            if not self.page.is_latest(outcome):
                return []
        else:  # no page to follow: the newest file of each folder in this run
            folder = str(Path(outcome.item).parent)
            mtime = outcome.mtime_ns or 0
            if mtime < self._newest.get(folder, -1):
                return []
            self._newest[folder] = mtime
        return publish_www(self.www, outcome.item, png, zoom_png)

    def publish_and_log(self, outcome: Outcome) -> list[str]:
        """Publish an outcome's PNGs and log it; a failed web copy is a warning.

        The products are written and recorded as done; the next recording's web copy
        tries the web folder again (docs/ARCHITECTURE.md).
        """
        published: list[str] = []
        if outcome.status == OK:
            try:
                published = self.publish(outcome)
            except (ItemError, OSError) as e:
                outcome.warning = "; ".join(
                    w for w in (outcome.warning, f"web copy failed: {e}") if w
                )
        note = outcome.extra.get("note")  # e.g. a watch's "changed, processed again"
        what = f"{note}: {outcome.status}" if note else outcome.status
        if outcome.status == ERROR:
            log.error("%s%s", outcome.error, f" ({note})" if note else "")
        elif outcome.warning:  # an ok with a warning (incomplete, web copy failed)
            log.warning(
                "%s: %s in %.2f s, %s", outcome.item, what, outcome.duration, outcome.warning
            )
        else:
            log.info("%s: %s in %.2f s", outcome.item, what, outcome.duration)

        if self.page is not None:
            self.page.note(outcome, published)
        return published

    def tick(self, *, final: bool = False) -> None:
        """Keep the page's status current: heartbeat while running, final state at the end."""
        if self.page is not None:
            self.page.close() if final else self.page.tick()


def unique_paths(paths: Iterable[str | os.PathLike]) -> list[str]:
    """Absolute paths, duplicates removed, order kept; the two files of a SigMF pair are
    one recording (docs/formats.md)."""
    from crunchctl.formats import item_path

    seen: dict[str, None] = {}
    for p in paths:
        seen.setdefault(os.path.abspath(item_path(os.fspath(p))), None)
    return list(seen)


def prepare_output(settings: Settings) -> Path:
    """Check the output folder and the web folder (--www) once, before any recording runs
    (docs/ARCHITECTURE.md).

    Creates them if needed and removes temp files of runs that died.

    Raises:
        UsageError: one cannot be created or written (one line naming it; exit 2).
    """
    from crunchctl.quicklook.products import clean_stale_temps, ensure_output_dir

    output = settings.output_dir()
    try:
        ensure_output_dir(output)
        if settings.www_path:
            ensure_output_dir(settings.www_path, "web")
    except ItemError as e:
        raise UsageError(str(e)) from None
    clean_stale_temps(output)
    return output


def remake_output(settings: Settings) -> None:
    """Make the output folder again if it went away since :func:`prepare_output` made it
    (deleted while a watch runs); a failure is left to the recording's own write."""
    output = settings.output_dir()
    if not output.is_dir():
        try:
            output.mkdir(parents=True, exist_ok=True)
        except OSError:
            return
        log.warning("%s: the output folder was gone; made it again", output)


def split_due(
    paths: Sequence[str], settings: Settings, ledger: Ledger | None, *, force: bool = False
) -> tuple[list[str], list[str]]:
    """(due, done) among ``paths`` per the ledger's done-state rules (docs/ledger.md)."""
    from crunchctl.identity import Digests, fingerprint

    if ledger is None or force:
        return list(paths), []
    candidates = [(p, *fingerprint(p, settings.format)) for p in paths]
    done = ledger.done_items(KIND_IQ, candidates, Digests(settings), products=settings.products)
    return [p for p in paths if p not in done], [p for p in paths if p in done]


class RecordingRun:
    """Plans, names and finishes the recordings of one command run.

    Args:
        settings: resolved settings (output, www, numerics).
        ledger: where outcomes are recorded and done-state is read; None for neither.
        source: the ledger's source column (``process``, ``demo``, ``watch:<folder>``).
        keep_outcomes: keep every outcome in :attr:`outcomes` (a batch run reports them;
            a watch runs for months and keeps counts only).
        page: the control-room page of the web folder (the command builds it), or None.
    """

    def __init__(
        self,
        settings: Settings,
        ledger: Ledger | None,
        *,
        source: str,
        keep_outcomes: bool = True,
        page: Page | None = None,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.source = source
        self.keep_outcomes = keep_outcomes
        self.summary = engine.RunSummary()
        self.publisher = Publisher(settings.www_path, page)
        self.outcomes: list[Outcome] = []
        self.skipped: list[str] = []
        self.published: list[str] = []
        self._stem_owner: dict[str, str] = {}  # plain stem -> first recording that had it
        self._unflushed = False
        self._last_flush = 0.0
        self._campaign = "campaign" in settings.products.split(",")
        self._derive = bool({"peaks", "campaign"} & set(settings.products.split(",")))

    def plan(self, paths: Sequence[str], *, force: bool = False) -> list[str]:
        """The recordings among ``paths`` that are due; the done ones are counted as skipped.

        Raises:
            LedgerError: the ledger cannot be read.
        """
        due, done = split_due(paths, self.settings, self.ledger, force=force)
        if due and not force and self._derive:  # peaks, campaign: from the spectrum product
            due = self._from_spectrum(due)
        for p in done:
            log.debug("%s: already done, skipped", p)
        if done:
            log.info("%s already done, skipped", count(len(done), "recording"))
        self.summary.skipped += len(done)
        if self.keep_outcomes:
            self.skipped.extend(done)
        return due

    def _from_spectrum(self, due: list[str]) -> list[str]:
        """Finish the due recordings whose missing products the spectrum product makes
        (docs/products.md); return the others."""
        from crunchctl.night import derive

        rows = derive.derivable(due, self.settings, self.ledger)
        for item, products in rows.items():
            outcome = derive.outcome_from_spectrum(item, products, self.settings, self.source)
            self.summary.add(outcome)
            self.finish(outcome)
        if rows:  # on the console too: these recordings were not read again
            log.warning(
                "%d recording%s done already: %s made from the spectrum product, "
                "the recordings not read again",
                len(rows),
                "s" if len(rows) > 1 else "",
                " and ".join(sorted(derive.FROM_SPECTRUM & set(self.settings.products.split(",")))),
            )
        return [p for p in due if p not in rows]

    def tasks(self, paths: Sequence[str], fft_workers: int = 1) -> list[RecordingTask]:
        """Tasks whose product stems collide with no other recording of this run."""
        from crunchctl import catalog
        from crunchctl.identity import settings_digest
        from crunchctl.quicklook.products import plan_stems
        from crunchctl.quicklook.task import RecordingTask

        remake_output(self.settings)
        owners = {self._stem_owner.setdefault(Path(p).stem, p) for p in paths}
        claimed_by = self.ledger.product_owners if self.ledger is not None else None
        stems = plan_stems([*(owners - set(paths)), *paths], self.settings.output_dir(), claimed_by)
        entries = catalog.chosen(self.settings.products)
        kinds = [e.name for e in entries]
        return [
            RecordingTask(
                p,
                stems[p],
                self.settings,
                self.source,
                fft_workers,
                products=entries,
                digest=settings_digest(self.settings, p, kinds),
            )
            for p in paths
        ]

    def finish(self, outcome: Outcome) -> list[str]:
        """Publish, log and record one outcome; return the web copies written."""
        campaign: list[str] = []
        if self._campaign and outcome.status == OK:  # the folder's row, before the ledger's
            from crunchctl.night.campaign import add_outcome

            campaign = add_outcome(outcome, self.settings)
        if outcome.status == OK and outcome.kind == KIND_IQ:
            # The digest of the products the row records, as the done rule will ask for it
            # (a campaign's recording has its spectrum file too).
            from crunchctl import catalog
            from crunchctl.identity import settings_digest

            kinds = [k for p in outcome.products if (k := catalog.kind_of(outcome.item, p))]
            outcome.settings_digest = settings_digest(self.settings, outcome.item, kinds)
        warned = bool(outcome.warning)
        published = self.publisher.publish_and_log(outcome) + campaign
        if outcome.status == OK and outcome.warning and not warned:  # the web copy failed
            self.summary.warned += 1
        if self.ledger is not None:
            try:
                self.ledger.record(outcome)
            except LedgerError as e:  # the row stays buffered; the run must not stop
                log.error("%s; the rows stay buffered and are written later", e)
            self._unflushed = True
        if self.keep_outcomes:
            self.outcomes.append(outcome)
            self.published.extend(published)
        return published

    def flush(self, *, final: bool = False) -> None:
        """Write buffered ledger rows: at most every ``FLUSH_INTERVAL`` s, always if final.

        Raises:
            LedgerError: the final flush failed (earlier failures are logged and retried).
        """
        now = time.monotonic()
        self.publisher.tick(final=final)  # the page's heartbeat rides on the periodic flush
        if (
            self.ledger is None
            or not self._unflushed
            or (not final and now - self._last_flush < FLUSH_INTERVAL)
        ):
            return
        self._last_flush = now
        try:
            self.ledger.flush()
        except LedgerError as e:
            if final:
                raise
            if str(e) != getattr(self, "_flush_error", ""):  # once per state, not every 0.5 s
                log.error("%s", e)
            self._flush_error = str(e)
        else:
            self._unflushed = False
            self._flush_error = ""

    def next_flush(self) -> float | None:
        """Monotonic time of the next due flush, None if nothing waits."""
        return self._last_flush + FLUSH_INTERVAL if self._unflushed else None


@dataclass
class ProcessResult:
    """What a processing run did."""

    summary: engine.RunSummary
    outcomes: list[Outcome] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    published: list[str] = field(default_factory=list)


def process_files(
    paths: Iterable[str | os.PathLike],
    settings: Settings,
    *,
    ledger: Ledger | None = None,
    force: bool = False,
    source: str = "process",
    reporter: engine.Reporter | None = None,
    flags: engine.StopFlags | None = None,
    page: Page | None = None,
    incomplete: bool = False,
) -> ProcessResult:
    """Process recordings into products, skipping those the ledger says are done.

    Args:
        paths: recordings (missing or bad ones become ``error`` outcomes).
        settings: resolved settings (output folder, numerics, workers, www).
        ledger: where outcomes are recorded and done-state is read; None for neither.
        force: process even recordings that are done.
        source: the ledger's source column (``process``, ``demo``).
        reporter: progress callbacks.
        flags: stop/cancel flags for signal handling.
        page: the control-room page of the web folder, or None.
        incomplete: read a recording shorter than its header says as far as it goes (an
            ``ok`` with a warning), as ``watch --incomplete-after`` does.

    Returns:
        The outcomes, the skipped items, the web copies and the run summary.

    Raises:
        UsageError: the output folder cannot be created or written (before any item runs).
    """
    from crunchctl.quicklook.task import process_recording

    prepare_output(settings)
    run = RecordingRun(settings, ledger, source=source, page=page)
    due = run.plan(unique_paths(paths), force=force)
    result = ProcessResult(run.summary, run.outcomes, run.skipped, run.published)
    if not due:
        run.publisher.tick(final=True)  # the page's heartbeat: this run happened
        run.summary.finished = time.time()
        return result
    # A lone recording runs in this process and gets every core for its FFT.
    inline = len(due) == 1
    tasks = run.tasks(due, fft_workers=(os.cpu_count() or 1) if inline else 1)
    if incomplete:
        import dataclasses

        tasks = [dataclasses.replace(t, partial=True) for t in tasks]
    try:
        engine.run_tasks(
            tasks,
            process_recording,
            workers=max(1, min(settings.workers, len(due))),
            on_outcome=run.finish,
            reporter=reporter,
            flags=flags,
            total=len(tasks),
            inline=inline,
            settings=settings,
            summary=run.summary,
        )
    finally:
        run.flush(final=True)
    return result


@dataclass(frozen=True)
class Planned:
    """What a run would do with one item, and why (``--dry-run``).

    ``action``: ``process``, ``skip`` (done), ``derive`` (made from the spectrum
    product, the recording not read), ``fail`` (it would be an error), ``wait`` (a watch
    waits for it: incomplete) or ``later`` (beyond ``batch --limit``).
    """

    item: str
    action: str
    reason: str


def plan_files(
    paths: Iterable[str | os.PathLike],
    settings: Settings,
    ledger: Ledger | None,
    *,
    force: bool = False,
) -> list[Planned]:
    """What :func:`process_files` would do with each recording and why; nothing is written
    (no output folder, no products, no ledger rows). The done rule is the ledger's
    (``split_due``); ``Ledger.due_reasons`` says why a recording is due.
    """
    from crunchctl.formats import registration_for

    items = unique_paths(paths)
    failing = {p: "not found" for p in items if not os.path.exists(p)}
    failing.update({p: "is a folder, not a recording" for p in items if os.path.isdir(p)})
    failing.update(
        {
            p: "unknown recording format"
            for p in items
            if p not in failing and registration_for(p, settings.format) is None
        }
    )
    due, done = split_due([p for p in items if p not in failing], settings, ledger, force=force)
    reasons: dict[str, str] = {}
    derived: dict[str, list[str]] = {}
    if ledger is not None and due and not force:
        from crunchctl.identity import Digests, fingerprint

        reasons = ledger.due_reasons(
            KIND_IQ,
            [(p, *fingerprint(p, settings.format)) for p in due],
            Digests(settings),
            products=settings.products,
        )
        if {"peaks", "campaign"} & set(settings.products.split(",")):
            from crunchctl.night import derive

            derived = derive.derivable(due, settings, ledger)
    why_not_done = "--force" if force else "new, no ledger yet"
    out = []
    for p in items:
        if p in failing:
            out.append(Planned(p, "fail", failing[p]))
        elif p in derived:
            out.append(Planned(p, "derive", "peaks or campaign made from its spectrum product"))
        elif p in due:
            out.append(Planned(p, "process", reasons.get(p, why_not_done)))
        else:
            out.append(Planned(p, "skip", "done"))
    return out


def describe_plan(planned: Sequence[Planned]) -> str:
    """The dry run's closing line: counts per action."""
    from collections import Counter

    counts = Counter(p.action for p in planned)
    parts = [
        f"{counts[a]} to {a}"
        for a in ("process", "derive", "skip", "later", "wait", "fail")
        if counts[a]
    ]
    return "dry run: " + (", ".join(parts) or "nothing to do") + "; nothing was written"


def plan_as_json(planned: Sequence[Planned]) -> dict[str, Any]:
    """The ``--dry-run --json`` document (stable keys)."""
    from collections import Counter

    counts = Counter(p.action for p in planned)
    return {
        "dry_run": True,
        "counts": dict(sorted(counts.items())),
        "items": [{"item": p.item, "action": p.action, "reason": p.reason} for p in planned],
    }


def plan_lines(planned: Sequence[Planned]) -> list[str]:
    """One line per item: ``ACTION  ITEM  (reason)``."""
    return [f"{p.action:<7} {p.item}: {p.reason}" for p in planned]


def describe(summary: engine.RunSummary, *extra: str) -> str:
    """The one-line summary printed at the end of a run (``extra`` parts go last)."""
    warned = f" ({summary.warned} with a warning)" if summary.warned else ""
    parts = [f"processed {summary.ok}{warned}", f"failed {summary.error}"]
    if summary.no_data:
        parts.append(f"no data {summary.no_data}")
    if summary.skipped:
        parts.append(f"skipped {summary.skipped} already done")
    if summary.not_started:
        parts.append(f"not started {summary.not_started}")
    return ", ".join([*parts, *extra]) + f" in {summary.elapsed:.1f} s"


def as_json(result: ProcessResult) -> dict[str, Any]:
    s = result.summary
    return {
        "processed": s.ok,
        "failed": s.error,
        "warnings": s.warned,
        "skipped": s.skipped,
        "not_started": s.not_started,
        "seconds": round(s.elapsed, 3),
        "interrupted": s.interrupted_by is not None,
        "outcomes": [o.summary() for o in result.outcomes],
        "skipped_items": result.skipped,
    }
