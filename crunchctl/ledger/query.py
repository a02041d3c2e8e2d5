"""Questions asked of ledger rows with polars: filters, the latest row per item, done-state.

Pure functions on frames and expressions; reading the files is ``store.py``'s job. The
done-state rule and the filter syntax are described in docs/ledger.md.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import polars as pl

from crunchctl import catalog
from crunchctl.outcome import OK, RESET

UTC_US = pl.Datetime("us", "UTC")

#: settings_digest of rows imported from the legacy tools: done whatever the settings.
LEGACY_DIGEST = "legacy"

_LISTDIR_MIN = 256  # products asked about in one folder before it is listed instead


# ---------------------------------------------------------------------- filters


def filters(
    *, since: float | None = None, item_glob: str | None = None, source: str | None = None
) -> pl.Expr | None:
    """One predicate for the row filters of ``status`` and ``reset`` (None: no filter).

    ``since`` (UNIX seconds) keeps rows finished at or after it; ``item_glob`` is an
    fnmatch pattern, matched against the last path component when it has no separator and
    against the whole item otherwise; ``source`` as in :func:`source_matches`.
    """
    parts = []
    if since is not None:
        since_dt = _dt.datetime.fromtimestamp(since, tz=_dt.timezone.utc)
        parts.append(pl.col("finished") >= pl.lit(since_dt, dtype=UTC_US))
    if item_glob:
        parts.append(_item_expr(item_glob))
    if source:
        parts.append(_source_expr(source))
    if not parts:
        return None
    expr = parts[0]
    for p in parts[1:]:
        expr = expr & p
    return expr


def source_matches(pattern: str, source: str) -> bool:
    """The ``--source`` rule for one value: a glob when the pattern has ``*?[``, else the
    exact source or a prefix before ``:`` (``watch`` matches ``watch:/data``)."""
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(source, pattern)
    return source == pattern or source.startswith(pattern + ":")


def _seps() -> str:
    return "/\\" if os.sep == "\\" else "/"


def _item_expr(pattern: str) -> pl.Expr:
    seps = _seps()
    if any(s in pattern for s in seps):
        return pl.col("item").str.contains(f"(?s)^{_glob_regex(pattern)}$")
    # No separator: match the last path component, like find -name.
    sep_chars = "".join(_escape_char(s) for s in seps)
    body = _glob_regex(pattern, any_char=f"[^{sep_chars}]")
    return pl.col("item").str.contains(f"(?s)(^|[{sep_chars}]){body}$")


def _source_expr(source: str) -> pl.Expr:
    if any(c in source for c in "*?["):
        return pl.col("source").str.contains(f"(?s)^{_glob_regex(source)}$")
    return (pl.col("source") == source) | pl.col("source").str.starts_with(source + ":")


_REGEX_META = set("\\.+*?()|[]{}^$#&-~")


def _escape_char(c: str) -> str:
    return "\\" + c if c in _REGEX_META else c


def _glob_regex(pattern: str, any_char: str = ".") -> str:
    """fnmatch pattern -> Rust-regex body (``*``, ``?``, ``[seq]``, ``[!seq]``)."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            out.append(f"{any_char}*")
        elif c == "?":
            out.append(any_char)
        elif c == "[":
            j = i
            if j < n and pattern[j] == "!":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            j = pattern.find("]", j)
            if j < 0:
                out.append("\\[")
                continue
            body = pattern[i:j]
            i = j + 1
            negate = body.startswith("!")
            if negate:
                body = body[1:]
            chars = [
                "-" if ch == "-" and 0 < k < len(body) - 1 else _escape_char(ch)
                for k, ch in enumerate(body)
            ]
            out.append("[" + ("^" if negate else "") + "".join(chars) + "]")
        else:
            out.append(_escape_char(c))
    return "".join(out)


# ---------------------------------------------------------------------- latest row


def latest(frame: pl.DataFrame) -> pl.DataFrame:
    """The latest row per ``(kind, item)`` by ``(finished, seq)``, in ``frame``'s order."""
    if frame.height < 2:
        return frame
    # Most items have one row: an item whose hash is unique is its own latest row (exact:
    # distinct hashes prove distinct items). Only the rest is sorted, by index.
    shared = frame["item"].hash().is_duplicated()
    if not shared.any():
        return frame
    keys = frame.select(
        pl.int_range(pl.len(), dtype=pl.UInt32).alias("_i"), "kind", "item", "finished", "seq"
    ).filter(shared)
    last = keys.sort(["finished", "seq"], nulls_last=False).unique(
        subset=["kind", "item"], keep="last", maintain_order=False
    )["_i"]
    return frame.filter((~shared).scatter(last, True))


# ---------------------------------------------------------------------- products


def product_kind(item: str, path: str) -> str | None:
    """Which product ``path`` is for the recording ``item`` (the product table's
    ``catalog.kind_of``): png, zoom, npz, spectrum, ...; None for none of them."""
    return catalog.kind_of(item, path)


def product_kinds(item: str, paths: Sequence[str]) -> list[str | None]:
    """:func:`product_kind` of each path, in order (what a row stores beside its products)."""
    return [product_kind(item, p) for p in paths]


def wanted_kinds(products: str | Iterable[str] | None) -> frozenset[str] | None:
    """``"png,zoom"`` or a sequence of product names -> a set; None stays None."""
    if products is None:
        return None
    names = products.split(",") if isinstance(products, str) else products
    return frozenset(n.strip() for n in names if n.strip())


# ---------------------------------------------------------------------- done-state


def candidates_frame(candidates: Sequence[tuple[str, int | None, int | None]]) -> pl.DataFrame:
    """``(item, size, mtime_ns)`` tuples as a frame, one row per item (the last wins)."""
    items, sizes, mtimes = zip(*candidates)
    return pl.DataFrame(
        {"item": items, "_size": sizes, "_mtime": mtimes},
        schema={"item": pl.String(), "_size": pl.Int64(), "_mtime": pl.Int64()},
    ).unique(subset="item", keep="last")


def done(
    latest_rows: pl.DataFrame,
    cand: pl.DataFrame,
    settings_digest: str | Callable[[str, Sequence[str | None]], str] | None,
    wanted: frozenset[str] | None,
    check_products: bool,
) -> set[str]:
    """The done rule (docs/ledger.md) applied to the latest rows of the candidates.

    The latest row must be ``ok`` with the candidate's fingerprint and the same settings
    digest (None accepts any; the legacy digest matches anything). A callable digest gives
    the digest the current settings make for an item and the products its row recorded
    (``identity.Digests``): a row is done when those products would come out the same.
    Then, with ``wanted`` product kinds, the row must have recorded each of them and
    (``check_products``) each file must exist; other products of the row do not matter.
    Without ``wanted``, every product the row recorded must exist. Legacy rows have no
    products and are done.
    """
    per_row = callable(settings_digest)
    fixed = None if per_row else settings_digest
    passed = latest_rows.join(cand, on="item", how="inner").filter(
        (pl.col("status") == OK)
        & pl.col("size").eq_missing(pl.col("_size"))
        & pl.col("mtime_ns").eq_missing(pl.col("_mtime"))
        & (
            pl.lit(fixed is None)
            | (pl.col("settings_digest") == (fixed or ""))
            | (pl.col("settings_digest") == LEGACY_DIGEST)
        )
    )
    if per_row:
        passed = _same_digest(passed, settings_digest)  # type: ignore[arg-type]
    items = passed["item"].to_list()
    products = passed["products"].to_list()
    if wanted is None:
        if not check_products:
            return set(items)
        exists = _exists_checker(p for ps in products if ps for p in ps)
        return {item for item, ps in zip(items, products) if not ps or all(map(exists, ps))}
    kinds = passed["product_kinds"].to_list()
    legacy = passed["settings_digest"].eq(LEGACY_DIGEST).to_list()
    needed: dict[str, list[str]] = {}
    for item, ps, ks, is_legacy in zip(items, products, kinds, legacy):
        if is_legacy:
            needed[item] = []
            continue
        ps = ps or []
        if ks is None or len(ks) != len(ps):  # rows written before kinds were stored
            ks = product_kinds(item, ps)
        by_kind = dict(zip(ks, ps))
        if wanted <= by_kind.keys():
            needed[item] = [by_kind[k] for k in wanted]
    if not check_products:
        return set(needed)
    exists = _exists_checker(p for ps in needed.values() for p in ps)
    return {item for item, ps in needed.items() if all(map(exists, ps))}


def why_due(
    latest_rows: pl.DataFrame,
    cand: pl.DataFrame,
    settings_digest: str | Callable[[str, Sequence[str | None]], str] | None,
    wanted: frozenset[str] | None,
    done_items: set[str],
) -> dict[str, str]:
    """Why each candidate that :func:`done` did not find done is due, in the words of the
    done rule (docs/ledger.md): the first of its conditions the latest row misses."""
    rows = {
        r["item"]: r for r in latest_rows.join(cand, on="item", how="inner").iter_rows(named=True)
    }
    out: dict[str, str] = {}
    for item in cand["item"].to_list():
        if item in done_items:
            continue
        r = rows.get(item)
        if r is None:
            out[item] = "new, not in the ledger"
        elif r["status"] != OK:
            out[item] = {
                "error": "failed last time",
                "no_data": "no data last time",
                RESET: "reset",
            }.get(r["status"], f"last attempt {r['status']}")
        elif r["size"] != r["_size"] or r["mtime_ns"] != r["_mtime"]:
            out[item] = "changed since it was done"
        elif r["settings_digest"] == LEGACY_DIGEST:
            out[item] = "due"  # legacy rows are done unless changed: not reached
        elif not _digest_matches(r, settings_digest):
            out[item] = "settings changed"
        else:
            ps = r["products"] or []
            ks = r.get("product_kinds")
            if ks is None or len(ks) != len(ps):
                ks = product_kinds(item, ps)
            by_kind = dict(zip(ks, ps))
            not_made = sorted((wanted or frozenset()) - by_kind.keys())
            needed = [by_kind[k] for k in wanted] if wanted is not None and not not_made else ps
            gone = [p for p in needed if not os.path.exists(p)]
            if not_made:
                out[item] = f"product not made yet: {', '.join(not_made)}"
            elif gone:
                out[item] = f"product missing: {gone[0]}" + (
                    f" (+{len(gone) - 1} more)" if len(gone) > 1 else ""
                )
            else:
                out[item] = "due"
    return out


def _digest_matches(
    row: dict, digest: str | Callable[[str, Sequence[str | None]], str] | None
) -> bool:
    if digest is None:
        return True
    if not callable(digest):
        return row["settings_digest"] == digest
    ps = row["products"] or []
    ks = row.get("product_kinds")
    if ks is None or len(ks) != len(ps):
        ks = product_kinds(row["item"], ps)
    return row["settings_digest"] == digest(row["item"], ks)


def _same_digest(
    rows: pl.DataFrame, digest: Callable[[str, Sequence[str | None]], str]
) -> pl.DataFrame:
    """The rows whose digest is what the current settings give for their products.

    A digest that can name each row's format as a polars expression (``identity.Digests``)
    is computed once per (format, products) and compared column-wise; another callable is
    asked per row.
    """
    if rows.height == 0:
        return rows
    items, products = rows["item"].to_list(), rows["products"].to_list()
    kinds = rows["product_kinds"]
    stale = kinds.is_null() | (kinds.list.len() != rows["products"].list.len().fill_null(0))
    if stale.any():  # rows written before kinds were stored: from the names
        kinds = pl.Series(
            [
                product_kinds(i, ps or []) if bad else ks
                for i, ps, ks, bad in zip(items, products, kinds.to_list(), stale.to_list())
            ],
            dtype=pl.List(pl.String()),
        )
    format_of = getattr(digest, "format_of", None)
    if format_of is None:
        keep = [
            d == LEGACY_DIGEST or d == digest(i, ks)
            for i, d, ks in zip(items, rows["settings_digest"].to_list(), kinds.to_list())
        ]
        return rows.filter(pl.Series(keep, dtype=pl.Boolean))
    keyed = rows.with_columns(
        format_of(pl.col("item")).alias("_format"),
        kinds.list.drop_nulls().list.join(",").alias("_kinds"),
    )
    combos = keyed.select("_format", "_kinds").unique()
    expected = combos.with_columns(
        pl.Series(
            "_expected",
            [
                digest.of(f, k.split(",") if k else [])  # type: ignore[attr-defined]
                for f, k in combos.iter_rows()
            ],
            dtype=pl.String(),
        )
    )
    return (
        keyed.join(expected, on=["_format", "_kinds"], how="left", nulls_equal=True)
        .filter(
            (pl.col("settings_digest") == pl.col("_expected"))
            | (pl.col("settings_digest") == LEGACY_DIGEST)
        )
        .drop("_format", "_kinds", "_expected")
    )


def _exists_checker(paths: Iterable[str]) -> Callable[[str], bool]:
    """``os.path.exists`` for many paths: a folder holding many of them is listed once
    (half the cost of a stat per file); the rest are stat-ed."""
    if os.sep != "/" or os.altsep:
        return os.path.exists
    counts = Counter(p.rpartition("/")[0] for p in paths)
    listed: dict[str, set[str]] = {}
    for folder, n in counts.items():
        if n >= _LISTDIR_MIN and folder:
            try:
                listed[folder] = set(os.listdir(folder))
            except FileNotFoundError:
                listed[folder] = set()
            except OSError:
                pass  # unreadable folder: stat each path
    if not listed:
        return os.path.exists
    exists = os.path.exists

    def check(path: str) -> bool:
        folder, _, name = path.rpartition("/")
        names = listed.get(folder)
        return exists(path) if names is None else name in names

    return check


# ---------------------------------------------------------------------- reset


@dataclass(frozen=True)
class ResetTarget:
    """One item a reset would forget: its latest row's kind, status and finish time."""

    kind: str
    item: str
    status: str
    finished_us: int | None


def reset_targets(
    latest_rows: pl.DataFrame, *, statuses: Sequence[str] | None, source: str | None
) -> list[ResetTarget]:
    """Latest rows (already filtered by item) that a reset selects, sorted by kind, item.

    Items already reset are left out; ``statuses`` and ``source`` apply to the latest row.
    """
    rows = latest_rows.filter(pl.col("status") != RESET)
    if statuses:
        rows = rows.filter(pl.col("status").is_in(list(statuses)))
    if source:
        rows = rows.filter(_source_expr(source))
    rows = rows.sort("kind", "item").select(
        "kind", "item", "status", pl.col("finished").dt.epoch("us")
    )
    return [ResetTarget(*r) for r in rows.iter_rows()]
