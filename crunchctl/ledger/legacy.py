"""The legacy tools' state files: parsing them, importing them into a ledger, and the
import-on-first-use of a config's ``tracking_file_path`` (docs/ledger.md, "Legacy import").
Parsing needs no polars; the import goes through ``Ledger``'s public methods only.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crunchctl.errors import ConfigError
from crunchctl.identity import fingerprint
from crunchctl.ledger.query import LEGACY_DIGEST
from crunchctl.outcome import ERROR, KIND_BATCH, KIND_IQ, NO_DATA, OK, Outcome
from crunchctl.words import count

if TYPE_CHECKING:
    from crunchctl.ledger.store import Ledger

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

log = logging.getLogger("crunchctl.ledger")

FORMAT_TOML = "tracking-toml"
FORMAT_JSON = "progress-json"

#: ``error`` text of imported error entries (the legacy file keeps no message).
IMPORT_ERROR_TEXT = "imported from legacy progress file"

#: ``schema_version`` values of the progress JSON this module understands.
SUPPORTED_SCHEMA_VERSIONS = (1,)

# Progress JSON list -> ledger status; file order, used as-is by read_legacy.
_JSON_LISTS = (("completed_items", OK), ("errors", ERROR), ("no_data", NO_DATA))


@dataclass(frozen=True)
class LegacyEntry:
    """One item found in a legacy state file.

    Args:
        item: a recording path as written in the TOML file, or a decoded batch item.
        status: ``ok``, ``error`` or ``no_data``.
    """

    item: str
    status: str


def read_legacy(path: str | os.PathLike) -> tuple[str, list[LegacyEntry]]:
    """Read a legacy state file; the format is detected from the content, not the name.

    Args:
        path: the TOML tracking file or the progress JSON.

    Returns:
        ``(format, entries)`` with format ``"tracking-toml"`` or ``"progress-json"``;
        entries in file order (for JSON: completed items, then errors, then no_data),
        duplicates kept.

    Raises:
        ConfigError: missing/unreadable file, malformed content, missing keys, or an
            unsupported ``schema_version``; the one-line message names the file.
    """
    name = os.fspath(path)
    text = _read_text(name)
    # Detect by content: the legacy tools did not always use telling extensions.
    if text.lstrip().startswith("{"):
        return FORMAT_JSON, _parse_progress_json(name, text)
    return FORMAT_TOML, _parse_tracking_toml(name, text)


def import_source(path: str | os.PathLike) -> str:
    """The ``source`` of rows imported from ``path``: ``import:<absolute path>``."""
    return f"import:{os.path.abspath(os.fspath(path))}"


def import_legacy(ledger: Ledger, legacy_file: str | os.PathLike) -> tuple[int, int]:
    """Import a legacy state file as ``ok``/``error``/``no_data`` rows, in one flush.

    The TOML tracking file gives ``iq`` items (absolute paths, fingerprint taken now when
    the file exists); the progress JSON gives ``batch`` items. Rows have settings digest
    ``legacy`` (done whatever the settings), no products, and source ``import:<abs path>``.
    An item listed more than once gets one row (ok beats no_data beats error).

    Returns:
        ``(added, already_present)``: items already imported from this file are skipped.

    Raises:
        ConfigError: the legacy file cannot be read or parsed.
        LedgerError: the ledger cannot be written.
    """
    import polars as pl

    fmt, entries = read_legacy(legacy_file)
    source = import_source(legacy_file)
    kind = KIND_IQ if fmt == FORMAT_TOML else KIND_BATCH
    rank = {ERROR: 0, NO_DATA: 1, OK: 2}
    chosen: dict[str, str] = {}
    for entry in entries:
        item = os.path.abspath(entry.item) if kind == KIND_IQ else entry.item
        if rank.get(entry.status, -1) >= rank.get(chosen.get(item, ""), -1):
            chosen[item] = entry.status
    where = (pl.col("source") == source) & (pl.col("kind") == kind)
    present = set(ledger.read(["item"], where, dedup=False)["item"].to_list())
    now = time.time()
    new = []
    for item, status in chosen.items():
        if item in present:
            continue
        size = mtime_ns = None
        if kind == KIND_IQ:
            size, mtime_ns = fingerprint(item)  # all the recording's files, as processing
        new.append(
            Outcome(
                item=item,
                kind=kind,
                source=source,
                status=status,
                started=now,
                finished=now,
                size=size,
                mtime_ns=mtime_ns,
                settings_digest=LEGACY_DIGEST,
                products=[],
                error=IMPORT_ERROR_TEXT if status == ERROR else None,
            )
        )
    ledger.append(new)
    return len(new), len(chosen) - len(new)


def import_on_first_use(ledger: Ledger, tracking_file: str | None) -> int | None:
    """Import a config's legacy ``tracking_file_path`` the first time a ledger meets it.

    A file already imported (its source is in the ledger) is not read again. A file that
    does not exist is said once, in a warning naming it, and nothing is imported: without
    it, every recording the legacy tool finished will be processed again.

    Returns:
        The number of entries imported, or None when nothing was read.

    Raises:
        ConfigError: the file exists but cannot be parsed.
    """
    if not tracking_file:
        return None
    if not os.path.exists(tracking_file):
        log.warning(
            "legacy tracking file %s (tracking_file_path) does not exist: nothing "
            "imported, so recordings the legacy tool finished will be processed "
            "again",
            tracking_file,
        )
        return None
    if ledger.has_source(import_source(tracking_file)):
        return None
    added, _ = import_legacy(ledger, tracking_file)
    # On the console at the default verbosity: done-state changed without being asked for.
    log.info(
        "imported %s from the legacy tracking file %s into the ledger",
        count(added, "entry", "entries"),
        tracking_file,
        extra={"console": True},
    )
    return added


def decode_repr_item(text: str) -> str:
    """Undo the legacy ``repr()`` of an item: ``"'orbit_001'"`` -> ``orbit_001``.

    Non-string literals become their ``str()`` (``"5"`` -> ``5`` -> ``"5"``); text that is
    not a Python literal is kept as-is.
    """
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
    return value if isinstance(value, str) else str(value)


def _read_text(name: str) -> str:
    if os.path.isdir(name):
        raise ConfigError(f"{name}: is a folder, expected a legacy state file")
    try:
        with open(name, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise ConfigError(f"{name}: no such legacy state file") from None
    except OSError as exc:
        reason = exc.strerror or exc
        raise ConfigError(f"{name}: cannot read legacy state file ({reason})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{name}: not UTF-8 text (byte {exc.start})") from None


def _parse_tracking_toml(name: str, text: str) -> list[LegacyEntry]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{name}: malformed TOML ({_one_line(exc)})") from None
    processed = data.get("processed")
    if not isinstance(processed, list) or not all(isinstance(p, str) for p in processed):
        raise ConfigError(f"{name}: expected a list of paths under 'processed'")
    # Blank entries carry no item; the legacy watcher never wrote them on purpose.
    return [LegacyEntry(p, OK) for p in processed if p.strip()]


def _parse_progress_json(name: str, text: str) -> list[LegacyEntry]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{name}: malformed JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{name}: expected a JSON object with the legacy progress keys")
    if "schema_version" not in data:
        raise ConfigError(f"{name}: missing key 'schema_version'")
    version = data["schema_version"]
    if isinstance(version, bool) or version not in SUPPORTED_SCHEMA_VERSIONS:
        supported = ", ".join(str(v) for v in SUPPORTED_SCHEMA_VERSIONS)
        raise ConfigError(
            f"{name}: unsupported schema_version {version!r} (supported: {supported})"
        )
    for key, _status in _JSON_LISTS:
        if key not in data:
            raise ConfigError(f"{name}: missing key '{key}'")
        value = data[key]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{name}: '{key}' must be a list of strings")
    if "last_index" not in data:
        raise ConfigError(f"{name}: missing key 'last_index'")
    if isinstance(data["last_index"], bool) or not isinstance(data["last_index"], int):
        raise ConfigError(f"{name}: 'last_index' must be an integer")
    return [
        LegacyEntry(decode_repr_item(raw), status)
        for key, status in _JSON_LISTS
        for raw in data[key]
    ]


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
