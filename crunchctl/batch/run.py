"""``crunchctl batch`` core: items in, one multi-row figure per item out (docs/products.md).

Reads items files, decides what is due via the ledger, names figures, runs the engine over
``BatchTask``s and records every outcome. Loading lives in ``loaders.py`` (checked by
``rows.py``) and drawing in ``figure.py``; this module never prints (progress goes to a
``Reporter``, messages to logs).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from crunchctl.batch.figure import FigureOptions
from crunchctl.batch.plugins import AUTO, BUILTINS, LoaderSpec
from crunchctl.errors import ItemError, UsageError
from crunchctl.outcome import ERROR, KIND_BATCH, KIND_IQ, NO_DATA, OK, Outcome
from crunchctl.run import engine

if TYPE_CHECKING:
    from crunchctl.config import Settings
    from crunchctl.ledger.store import Ledger

log = logging.getLogger("crunchctl.batch")

#: Bump when figures change in a way that should redo done items.
FIGURE_FORMAT = 1


# ---------------------------------------------------------------------------- items


def read_items(spec: str, stdin: IO[str] | None = None, *, what: str = "items file") -> list[str]:
    """The items of an items file, or of stdin for ``-``.

    One item per line; blank lines and lines starting with ``#`` are ignored; a UTF-8 BOM,
    Windows line endings and surrounding white space are stripped. Order and duplicates are
    kept (``run_batch`` warns about duplicates).

    Raises:
        UsageError: the file cannot be read or is not UTF-8 text.
    """
    return [line for _, line in _numbered_lines(spec, stdin, what=what)]


def _numbered_lines(spec: str, stdin: IO[str] | None = None, *, what: str) -> list[tuple[int, str]]:
    """(line number, text) of every entry of a file (or stdin) as ``read_items`` reads it."""
    if spec == "-":
        import sys

        text = (stdin or sys.stdin).read()
        name = "stdin"
    else:
        try:
            with open(spec, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            raise UsageError(f"{spec}: {what} not found") from None
        except IsADirectoryError:
            raise UsageError(
                f"{spec}: is a folder; expected an {what} (one entry per line)"
            ) from None
        except OSError as e:
            raise UsageError(f"{spec}: cannot read the {what}: {e.strerror or e}") from None
        name = spec
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise UsageError(
                f"{spec}: not UTF-8 text (byte {e.start}); expected one item per line"
            ) from None
    lines = []
    for n, line in enumerate(text.lstrip("\ufeff").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "\x00" in line:
            raise UsageError(f"{name} line {n}: holds a NUL byte; is this a binary file?")
        lines.append((n, line))
    return lines


def items_source(spec: str) -> str:
    """The ledger's source for a run over this items file: ``batch:<abs path>`` or ``batch:-``."""
    return "batch:-" if spec == "-" else "batch:" + os.path.abspath(spec)


def read_events(path: str | os.PathLike) -> tuple[float, ...]:
    """Event times from ``--events FILE``: one per line, UNIX seconds or ISO 8601.

    Blank lines and ``#`` comments are ignored; an ISO time without offset is UTC.

    Raises:
        UsageError: the file cannot be read, or a line is not a time (line number given).
    """
    from crunchctl.batch.rows import RowError, parse_time

    events = []
    for n, text in _numbered_lines(os.fspath(path), what="events file"):
        try:
            events.append(parse_time(text.split("#", 1)[0].strip(), f"{path} line {n}"))
        except RowError as e:
            raise UsageError(f"--events {e}") from None
    return tuple(sorted(events))


def dedupe(items: Iterable[str]) -> tuple[list[str], list[str]]:
    """(unique items in first-seen order, items that appeared more than once)."""
    seen: dict[str, int] = {}
    for item in items:
        seen[item] = seen.get(item, 0) + 1
    return list(seen), [i for i, n in seen.items() if n > 1]


#: ``--names``: ``full`` keeps the whole item in the name; ``stem`` uses a path's stem.
NAME_STYLES = ("full", "stem")


def _stem(item: str) -> str | None:
    """The short name ``--names stem`` gives a path item, or None to keep the full form."""
    if "/" not in item and os.sep not in item and "." not in item:
        return None  # an id (run_001) is short already
    from crunchctl.quicklook.products import safe_name

    stem = os.path.splitext(os.path.basename(item.rstrip("/" + os.sep)))[0]
    return stem if stem and safe_name(stem) == stem else None  # a plain name, any script


def figure_names(items: Sequence[str], style: str = "full") -> dict[str, str]:
    """A unique, file-name-safe figure name per item (``run_001`` stays ``run_001``).

    Names depend only on the item list, so a resumed run names figures as the first did.
    Names differing only in case are made distinct too (case-insensitive file systems).
    With ``style="stem"``, a path item is named by its stem (``/data/a/run7.npz`` ->
    ``run7``) unless another item has the same stem: those keep the full, unique form.
    """
    from crunchctl.quicklook.products import safe_name

    stems: dict[str, str] = {}
    if style == "stem":
        by_stem: dict[str, list[str]] = {}
        for item in items:
            stem = _stem(item)
            if stem is not None:
                by_stem.setdefault(stem.lower(), []).append(item)
        plain = {item.lower() for item in items if _stem(item) is None}
        stems = {
            group[0]: _stem(group[0]) or ""
            for key, group in by_stem.items()
            if len(group) == 1 and key not in plain
        }
    taken: set[str] = set(stems.values())
    folded: set[str] = {n.lower() for n in stems.values()}
    names = {}
    for item in items:
        if item in stems:
            names[item] = stems[item]
            continue
        name = safe_name(item, taken)
        if name.lower() in folded:
            name = f"{name}-{hashlib.sha1(item.encode()).hexdigest()[:8]}"
            taken.add(name)
        folded.add(name.lower())
        names[item] = name
    return names


def file_size_and_mtime(item: str) -> tuple[int | None, int | None]:
    """(size, mtime_ns) when the item is an existing regular file, else (None, None).

    Items that are not files (ids a plugin understands) have no such state to compare.
    """
    try:
        st = os.stat(item)
    except (OSError, ValueError):
        return None, None
    import stat

    if not stat.S_ISREG(st.st_mode):
        return None, None
    from crunchctl.formats import recording_files

    if len(recording_files(item)) > 1:  # a SigMF pair: both files (docs/ledger.md)
        from crunchctl.identity import fingerprint

        return fingerprint(item)
    return st.st_size, st.st_mtime_ns


# ---------------------------------------------------------------------------- tasks


@dataclass(frozen=True)
class BatchOptions:
    """How a batch run loads and draws; everything but ``workers``/``fresh``/``source``
    shapes the figures and goes into the settings digest.

    Args:
        output: folder for the figures.
        loader: ``auto`` (by suffix: ``.tiq`` -> iq, ``.npz`` -> npz), ``iq``, ``npz``,
            ``package.module:function`` or ``path/to/file.py:function``.
        figure: bounds, scales, colour map, percentiles, events, zoom.
        settings: the IQ numerics for the ``iq`` loader (None: defaults).
        workers: worker processes (a single due item runs in this process).
        fresh: process every item, done or not.
        source: the ledger's source column.
        only: glob patterns; only items matching one (the whole item or its file name)
            are considered. Empty: every item.
        limit: run at most this many due items now (the rest are left for the next run).
        names: figure names, ``full`` or ``stem`` (see :func:`figure_names`).
        products: the mean-spectrum products (``spectrum``, ``peaks``, ``campaign``) the
            ``iq`` loader also writes for each recording, as ``process`` does (see
            :func:`recording_products`); empty: the figure only.
    """

    output: str
    loader: str = AUTO
    figure: FigureOptions = FigureOptions()
    settings: Settings | None = None
    workers: int = 1
    fresh: bool = False
    source: str = "batch"
    only: tuple[str, ...] = ()
    limit: int | None = None
    names: str = "full"
    products: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        from crunchctl.quicklook.meanproducts import MEAN_PRODUCTS

        if set(self.products) - set(MEAN_PRODUCTS):
            raise UsageError(
                f"batch products {','.join(self.products)}: only "
                f"{', '.join(MEAN_PRODUCTS)} are made beside the figure"
            )
        if self.limit is not None and self.limit < 1:
            raise UsageError(f"--limit {self.limit}: expected a number of items of at least 1")
        if self.names not in NAME_STYLES:
            raise UsageError(f"--names {self.names!r}: choose {' or '.join(NAME_STYLES)}")


@dataclass(frozen=True)
class BatchTask:
    """What a worker needs for one item (small and picklable)."""

    item: str
    path: str  # absolute path, for the built-in loaders
    png: str
    loader: LoaderSpec
    figure: FigureOptions
    settings: Settings | None
    source: str
    digest: str
    size: int | None = None
    mtime_ns: int | None = None
    #: the recording's mean-spectrum products to write (``iq`` loader), under this stem
    products: tuple[str, ...] = ()
    stem: str = ""

    def outcome(
        self,
        status: str,
        started: float,
        products: list[str] | None = None,
        message: str | None = None,
    ) -> Outcome:
        return Outcome(
            self.item,
            KIND_BATCH,
            self.source,
            status,
            started,
            time.time(),
            self.size,
            self.mtime_ns,
            self.digest,
            products or [],
            message,
        )

    def failure(self, message: str, started: float) -> Outcome:
        return self.outcome(ERROR, started, message=message)


def recording_products(products: str) -> tuple[str, ...]:
    """The products of a ``products`` setting that ``batch`` writes for a recording: those
    of its mean spectrum (docs/products.md). The figure stands for ``png`` and ``zoom``;
    ``npz`` (the whole spectrogram) is ``process``'s."""
    from crunchctl import catalog
    from crunchctl.quicklook.meanproducts import MEAN_PRODUCTS

    return tuple(n for n in catalog.normalise(products).split(",") if n in MEAN_PRODUCTS)


def settings_digest(
    loader: LoaderSpec,
    figure: FigureOptions,
    output: str,
    settings: Settings | None,
    names: str = "full",
    products: Sequence[str] = (),
) -> str:
    """Digest of loader + figure options + output folder (+ IQ numerics for ``iq``, and the
    recording products asked for with the settings that shape them).

    Keys added later enter the digest only when set, so figures done before stay done.
    """
    fig = figure.as_dict()
    for key in ("x_label", "y_label", "z_label"):
        if fig.get(key) is None:
            fig.pop(key, None)
    shaping: dict[str, Any] = {
        "loader": loader.name,
        "figure": fig,
        "output": os.path.abspath(output),
        "format": FIGURE_FORMAT,
    }
    if names != "full":
        shaping["names"] = names
    if figure.zoom_minutes is not None:
        shaping["zoom"] = "per event"  # one zoom column per event since this version
    if loader.kind == "iq":
        from crunchctl import catalog, formats
        from crunchctl.config import Settings

        s = settings or Settings()
        # The iq loader makes the zoom's numbers (its colour map is the figure's own), read
        # with the options the formats declare (docs/formats.md): in the digest when set.
        iq_keys = [k for k in catalog.product("zoom").settings if k != "cmap"]
        read_keys = {"format"} | {
            k for n in formats.names() for k in formats.registration(n).options
        }
        shaping["iq"] = {k: getattr(s, k) for k in iq_keys}
        shaping["iq"].update(
            {k: getattr(s, k) for k in sorted(read_keys) if getattr(s, k) not in (None, False)}
        )
        if products:  # asking for peaks later makes the done figures due again
            shaping["products"] = {
                "kinds": list(products),
                **{k: getattr(s, k) for k in catalog.settings_of(products)},
            }
    raw = json.dumps(shaping, sort_keys=True, default=str).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def _one_line(text: str, limit: int = 400) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _named(task: BatchTask, message: str) -> str:
    message = _one_line(message)
    prefixes = (task.item, task.path) if task.path else (task.item,)
    if message.startswith(prefixes):
        return message
    return f"{task.item}: {message}"


def run_item(task: BatchTask) -> Outcome:
    """Load one item, check its rows and draw its figure atomically.

    Never raises for a bad item: a loader exception or bad rows give an ``error`` outcome
    (the traceback rides along in ``extra["item_traceback"]`` for the log), nothing to draw
    gives ``no_data``.
    """
    from crunchctl.batch import figure, loaders, rows as contract
    from crunchctl.quicklook.products import atomic_write

    started = time.time()
    name = task.loader.display
    try:
        # A loader's print() must not reach stdout: `batch --json` owns it (one document).
        with contextlib.redirect_stdout(sys.stderr):
            if task.products and task.loader.kind == "iq" and task.settings is not None:
                raw, made, extra = loaders.load_iq_products(
                    task.path, task.settings, os.path.dirname(task.png), task.stem, task.products
                )
                recording = Outcome(
                    task.path,
                    KIND_IQ,
                    task.source,
                    OK,
                    started,
                    time.time(),
                    task.size,
                    task.mtime_ns,
                    "",
                    made,
                    None,
                    extra,
                )
            else:
                raw = loaders.call(task.loader, task.item, task.path, task.settings)
                recording = None
    except KeyboardInterrupt:
        raise
    except SystemExit as e:
        # sys.exit() in user code ends the loader, not the run: that item's error.
        code = e.code if e.code is None or isinstance(e.code, int) else repr(e.code)
        return task.failure(f"{task.item}: loader {name} called sys.exit({code})", started)
    except ItemError as e:
        return task.failure(_named(task, str(e)), started)
    except UsageError as e:  # a plugin that imported in the main process but not here
        return task.failure(_named(task, str(e)), started)
    except MemoryError:
        return task.failure(f"{task.item}: out of memory in loader {name}", started)
    except BaseException as e:  # noqa: BLE001 - the plugin's own errors, reported per item
        out = task.failure(
            f"{task.item}: loader {name} raised {type(e).__name__}: {_one_line(str(e), 300)}",
            started,
        )
        out.extra["item_traceback"] = traceback.format_exc()
        return out
    try:
        rows = contract.check_rows(raw, task.item)
    except ItemError as e:
        return task.failure(_named(task, str(e)), started)
    if not rows:
        return task.outcome(
            NO_DATA, started, message=f"{task.item}: loader {name} returned no rows"
        )
    if all(r.all_nan for r in rows):
        return task.outcome(
            NO_DATA, started, message=f"{task.item}: no finite values: every row is NaN only"
        )
    subtitle = f"loader {name}, {len(rows)} row{'s' if len(rows) != 1 else ''}"
    try:
        with atomic_write(task.png) as f:
            warnings = figure.render_figure(
                f, rows, title=task.item, subtitle=subtitle, options=task.figure
            )
    except ItemError as e:
        return task.failure(_named(task, str(e)), started)
    except MemoryError:
        return task.failure(f"{task.item}: out of memory while drawing the figure", started)
    except OSError as e:
        return task.failure(f"{task.item}: {e.filename or task.png}: {e.strerror or e}", started)
    except Exception as e:  # noqa: BLE001 - data matplotlib cannot draw
        out = task.failure(
            f"{task.item}: drawing the figure failed: {type(e).__name__}: {_one_line(str(e), 300)}",
            started,
        )
        out.extra["item_traceback"] = traceback.format_exc()
        return out
    # A missing font is the machine's, not the item's: said once per run (``run_batch``).
    once = [w for w in warnings if w.startswith(figure.FONT_NOTE)]
    warnings = [w for w in warnings if w not in once]
    out = task.outcome(OK, started, [task.png])
    out.warning = _one_line("; ".join(warnings), 500) if warnings else None
    out.extra["warnings"] = warnings
    out.extra["once"] = once
    out.extra["rows"] = len(rows)
    if recording is not None:  # recorded as the recording's own row (``run_batch``)
        out.extra["recording"] = recording
    return out


# ------------------------------------------------------------------------------ run


@dataclass
class BatchResult:
    """What a batch run did."""

    summary: engine.RunSummary = field(default_factory=engine.RunSummary)
    items: int = 0
    output: str = ""
    outcomes: list[Outcome] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    #: items left out by ``--only`` and due items left for a later run by ``--limit``
    filtered_out: int = 0
    limited: list[str] = field(default_factory=list)

    def by_status(self, status: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == status]


def resolve_loaders(
    items: Sequence[str], loader: str, fmt: str | None = None
) -> dict[str, LoaderSpec]:
    """The loader of every item; plugins are imported and checked here, before any work.

    ``auto`` picks ``npz`` for ``.npz`` items and ``iq`` for recordings of any format
    (by extension, or every item when ``fmt`` forces a format).

    Raises:
        UsageError: the loader cannot be imported or is not callable, or (``auto``) an item
            is neither a recording nor ``.npz``.
    """
    from crunchctl.batch import loaders, plugins

    if loader != AUTO:
        spec = plugins.parse_spec(loader)
        with contextlib.redirect_stdout(sys.stderr):  # a plugin printing at import
            loaders.load_function(spec)
        return dict.fromkeys(items, spec)
    chosen: dict[str, LoaderSpec] = {}
    unknown = []
    for item in items:
        kind = loaders.choose_builtin(item, fmt)
        if kind is None:
            unknown.append(item)
        else:
            chosen[item] = LoaderSpec(kind)
    if unknown:
        shown = ", ".join(repr(i) for i in unknown[:3]) + (", ..." if len(unknown) > 3 else "")
        raise UsageError(
            f"no loader for {len(unknown)} item(s) that are neither recordings "
            f"(.tiq, SigMF, TDMS, WAV, raw IQ) nor .npz files ({shown}): give "
            f"--loader iq, npz, package.module:function or "
            f"path/to/file.py:function"
        )
    return chosen


@dataclass
class _Plan:
    """What a batch run would do: its items, their loaders, digests and done-state."""

    result: BatchResult
    unique: list[str]
    names: dict[str, str] = field(default_factory=dict)
    specs: dict[str, Any] = field(default_factory=dict)
    digests: dict[Any, str] = field(default_factory=dict)
    stats: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)
    due: list[str] = field(default_factory=list)


def _plan(items: Iterable[str], options: BatchOptions, ledger: Ledger | None) -> _Plan:
    """Items, loaders, digests and the done rule's answer (``Ledger.done_items``), shared
    by :func:`run_batch` and :func:`plan_batch`; ``due`` is cut to ``--limit``."""
    everything, duplicates = dedupe(items)
    for item in duplicates:
        log.warning("%s: listed more than once; processed once", item)
    # Names come from the whole list, so --only and --limit runs name figures alike.
    names = figure_names(everything, options.names)
    unique = select(everything, options.only)
    output = os.path.abspath(options.output)
    result = BatchResult(
        engine.RunSummary(),
        len(unique),
        output,
        duplicates=duplicates,
        filtered_out=len(everything) - len(unique),
    )
    if options.only:
        log.info("--only %s: %d of %d items", " ".join(options.only), len(unique), len(everything))
    if not unique:
        return _Plan(result, unique)

    if options.figure.zoom_minutes is not None and not options.figure.events:
        log.warning(
            "--zoom-minutes %g without --events: zoom columns only around the events "
            "a loader's rows bring ('events' key)",
            options.figure.zoom_minutes,
        )
    specs = resolve_loaders(
        unique, options.loader, options.settings.format if options.settings else None
    )
    digests = {
        spec: settings_digest(
            spec, options.figure, output, options.settings, options.names, options.products
        )
        for spec in set(specs.values())
    }
    stats = {item: file_size_and_mtime(item) for item in unique}

    done: set[str] = set()
    if ledger is not None and not options.fresh:
        for spec, digest in digests.items():
            candidates = [(i, *stats[i]) for i in unique if specs[i] == spec]
            done |= ledger.done_items(KIND_BATCH, candidates, digest)
    due = [i for i in unique if i not in done]
    result.skipped = [i for i in unique if i in done]
    if options.limit is not None and len(due) > options.limit:
        due, result.limited = due[: options.limit], due[options.limit :]
        log.info(
            "--limit %d: %d of %d due items now; %d left for the next run",
            options.limit,
            len(due),
            len(due) + len(result.limited),
            len(result.limited),
        )
    return _Plan(result, unique, names, specs, digests, stats, due)


def plan_batch(items: Iterable[str], options: BatchOptions, ledger: Ledger | None) -> list[Any]:
    """``batch --dry-run``: what :func:`run_batch` would do with each item and why
    (``recordings.run.Planned``); nothing is written, no loader runs."""
    from crunchctl.recordings.run import Planned

    plan = _plan(items, options, ledger)
    reasons: dict[str, str] = {}
    if ledger is not None and not options.fresh and plan.due:
        for spec, digest in plan.digests.items():
            candidates = [(i, *plan.stats[i]) for i in plan.due if plan.specs[i] == spec]
            reasons.update(ledger.due_reasons(KIND_BATCH, candidates, digest))
    otherwise = "--fresh" if options.fresh else "new, no ledger yet"
    due, limited = set(plan.due), set(plan.result.limited)
    out = []
    for item in plan.unique:
        if item in due:
            out.append(Planned(item, "process", reasons.get(item, otherwise)))
        elif item in limited:
            out.append(Planned(item, "later", f"--limit {options.limit}: left for the next run"))
        else:
            out.append(Planned(item, "skip", "done"))
    return out


def run_batch(
    items: Iterable[str],
    options: BatchOptions,
    ledger: Ledger | None = None,
    reporter: engine.Reporter | None = None,
    flags: engine.StopFlags | None = None,
) -> BatchResult:
    """Draw one figure per item, skipping items the ledger says are done.

    Args:
        items: item strings (duplicates are processed once, with a warning).
        options: output folder, loader, figure options, workers, fresh.
        ledger: where outcomes are recorded and done-state is read (it flushes every
            ``flush_every`` outcomes; it is flushed again at the end); None for neither.
        reporter: progress callbacks.
        flags: stop/cancel flags (signal handlers).

    Returns:
        The outcomes, the skipped items and the run summary; ``summary.interrupted_by`` is
        set when the flags stopped the run early.

    Raises:
        UsageError: the loader cannot be used or the output folder cannot be written
            (found before any item runs).
    """
    from crunchctl.quicklook.products import clean_stale_temps, ensure_output_dir

    plan = _plan(items, options, ledger)
    result, names, specs, digests, stats = (
        plan.result,
        plan.names,
        plan.specs,
        plan.digests,
        plan.stats,
    )
    if not plan.unique:
        result.summary.finished = time.time()
        return result
    done = set(result.skipped)
    due, output = plan.due, result.output
    for item in result.skipped:
        log.debug("%s: already done, skipped", item)
    if result.skipped:
        log.info(
            "%d of %d items already done (use --fresh to redo them)",
            len(result.skipped),
            len(plan.unique),
        )
    if not due:
        result.summary.skipped = len(done)
        result.summary.finished = time.time()
        return result
    try:
        ensure_output_dir(output)
    except ItemError as e:
        raise UsageError(str(e)) from None
    clean_stale_temps(output)

    recordings, stems, recorded_as = _recording_run(due, specs, options, output, ledger)
    tasks = [
        BatchTask(
            item,
            os.path.abspath(item),
            os.path.join(output, names[item] + ".png"),
            specs[item],
            options.figure,
            options.settings,
            options.source,
            digests[specs[item]],
            *stats[item],
            products=options.products if item in stems else (),
            stem=stems.get(item, ""),
        )
        for item in due
    ]

    said: set[str] = set()

    def handle(outcome: Outcome) -> None:
        tb = outcome.extra.pop("item_traceback", None)
        for warning in outcome.extra.pop("warnings", []):
            log.warning("%s: %s", outcome.item, warning)
        for note in outcome.extra.pop("once", []):
            if note not in said:
                said.add(note)
                log.warning("%s (first in %s)", note, outcome.item)
        if outcome.status == ERROR:
            log.error("%s", outcome.error)
            if tb:  # the log file always has it; the console only with -v
                log.info("traceback for %s:\n%s", outcome.item, tb.rstrip())
        elif outcome.status == NO_DATA:
            log.info("%s (no data)", outcome.error)
        else:
            log.info(
                "%s: ok in %.2f s -> %s",
                outcome.item,
                outcome.duration,
                ", ".join(outcome.products),
            )
        recording = outcome.extra.pop("recording", None)
        if recording is not None and recordings is not None and outcome.status == OK:
            recording.item = recorded_as[outcome.item]  # a SigMF pair: its data file
            recordings.finish(recording)  # campaign, digest, the recording's iq row
        result.outcomes.append(outcome)
        if ledger is not None:
            ledger.record(outcome)

    # A lone item runs in this process, except with a plugin: user code that crashes
    # (segfault, os._exit) must take only its worker down, not the run; the
    # lone due item of a --resume is often exactly the one that crashed last time.
    inline = len(tasks) == 1 and tasks[0].loader.kind in BUILTINS
    workers = max(1, min(options.workers, len(tasks)))
    summary = engine.RunSummary()
    try:
        engine.run_tasks(
            tasks,
            run_item,
            workers=workers,
            on_outcome=handle,
            reporter=reporter,
            flags=flags,
            total=len(tasks),
            inline=inline,
            settings=options.settings,
            summary=summary,
        )
    except KeyboardInterrupt:
        # A second Ctrl-C cancelled an item running in this process: the run still ends
        # with its summary; what has no outcome was not started.
        summary.finished = time.time()
        summary.interrupted_by = signal.SIGINT
        summary.not_started = len(tasks) - len(result.outcomes)
    finally:
        if ledger is not None:
            ledger.flush()
    summary.skipped = len(done)
    result.summary = summary
    if summary.interrupted_by is not None:
        log.warning(
            "interrupted: %d finished and recorded, %d not started; run the same "
            "command again (--resume) to finish",
            len(result.outcomes),
            summary.not_started,
        )
    return result


def _recording_run(
    due: Sequence[str],
    specs: dict[str, LoaderSpec],
    options: BatchOptions,
    output: str,
    ledger: Ledger | None,
) -> tuple[Any, dict[str, str], dict[str, str]]:
    """The ``RecordingRun`` that finishes the recordings' own products, the product stem of
    each ``iq`` item (as ``process`` names them) and its ledger item (as ``process`` records
    it, docs/formats.md); (None, {}, {}) without such products.

    The recording's products are recorded as its ``iq`` row through the same path as
    ``process``'s (docs/ARCHITECTURE.md): the done rule, the campaign and ``trend`` see them.
    """
    iq = [i for i in due if specs[i].kind == "iq"]
    if not options.products or not iq:
        if options.products:
            log.warning(
                "--products %s: written by the iq loader only; none of these items uses it",
                ",".join(options.products),
            )
        return None, {}, {}
    import dataclasses

    from crunchctl.config import Settings
    from crunchctl.recordings.run import RecordingRun

    # No web copies: a batch has no page, and its recordings are not the recorder's latest.
    settings = dataclasses.replace(
        options.settings or Settings(),
        output_path=output,
        products=",".join(options.products),
        www_path=None,
    )
    from crunchctl.formats import item_path

    run = RecordingRun(settings, ledger, source=options.source, keep_outcomes=False)
    paths = {i: os.path.abspath(item_path(i, settings.format)) for i in iq}
    stems = {t.path: t.stem for t in run.tasks(list(dict.fromkeys(paths.values())))}
    return run, {i: stems[p] for i, p in paths.items()}, paths


def select(items: Sequence[str], only: Sequence[str]) -> list[str]:
    """The items matching one of the ``--only`` globs (the whole item or its file name)."""
    if not only:
        return list(items)
    from fnmatch import fnmatchcase

    def hit(item: str) -> bool:
        base = os.path.basename(item.rstrip("/"))
        return any(fnmatchcase(item, g) or fnmatchcase(base, g) for g in only)

    return [i for i in items if hit(i)]


# --------------------------------------------------------------------------- output


def summary_rows(result: BatchResult) -> list[tuple[str, str]]:
    """(label, value) lines of the end-of-run summary table."""
    s = result.summary
    rate = (len(result.outcomes) / s.elapsed) if s.elapsed > 0 and result.outcomes else 0.0
    warned = f" ({s.warned} with a warning)" if s.warned else ""
    rows = [
        ("items", str(result.items)),
        ("ok", f"{s.ok}{warned}"),
        ("no data", str(s.no_data)),
        ("failed", str(s.error)),
        ("skipped (already done)", str(s.skipped)),
    ]
    if s.not_started:
        rows.append(("not started (interrupted)", str(s.not_started)))
    if result.limited:
        rows.append(("left for the next run (--limit)", str(len(result.limited))))
    if result.filtered_out:
        rows.append(("left out (--only)", str(result.filtered_out)))
    if result.duplicates:
        rows.append(("duplicates (processed once)", str(len(result.duplicates))))
    speed = f" ({rate:.2f} items/s)" if s.elapsed > 0 and rate else ""
    rows.append(("time", f"{s.elapsed:.1f} s{speed}"))
    rows.append(("figures", result.output))
    if s.interrupted_by is not None and s.not_started:
        rows.append(("to continue", "run the same command again (--resume is the default)"))
    return rows


def as_json(result: BatchResult) -> dict[str, Any]:
    """The ``--json`` document (stable keys)."""
    s = result.summary
    return {
        "items": result.items,
        "ok": s.ok,
        "warnings": s.warned,
        "no_data": s.no_data,
        "failed": s.error,
        "skipped": s.skipped,
        "not_started": s.not_started,
        "duplicates": result.duplicates,
        "left_out": result.filtered_out,
        "limited": result.limited,
        "seconds": round(s.elapsed, 3),
        "interrupted": s.interrupted_by is not None,
        "output": result.output,
        "outcomes": [o.summary() for o in result.outcomes],
        "skipped_items": result.skipped,
    }
