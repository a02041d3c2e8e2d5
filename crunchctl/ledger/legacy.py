"""Parsing of the legacy tools' state files (DESIGN section 5): no polars, no ledger.

Owns reading the legacy watcher's TOML tracking file (``processed = [paths...]``) and the
legacy batch plotter's progress JSON. Turning entries into ledger rows is ``ledger.import_legacy``.
"""

from __future__ import annotations

import ast
import json
import os
import sys
from dataclasses import dataclass

from crunchctl.errors import ConfigError
from crunchctl.run.outcome import ERROR, NO_DATA, OK

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

FORMAT_TOML = "tracking-toml"
FORMAT_JSON = "progress-json"

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
