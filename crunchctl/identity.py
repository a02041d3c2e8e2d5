"""What a recording's products depend on: the fingerprint of all the recording's files and
the settings digest, built from declarations (docs/ledger.md, "When a recording is done").

The digest covers the settings the products declare (``catalog.py``) and the read options
the recording's format declares (``formats/__init__.py``), never a list kept here. No heavy
imports.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from crunchctl import catalog, formats

if TYPE_CHECKING:
    from crunchctl.config import Settings

#: Settings that shape every product of every recording: the output folder, and the format
#: every input is read as (``--format``).
ALWAYS = ("output_path", "format")
#: Bump when products change in a way that should redo every recording.
PRODUCT_FORMAT = 1


def fingerprint(path: str, forced: str | None = None) -> tuple[int | None, int | None]:
    """(size, mtime_ns) of a recording: over all its files (a SigMF pair: the sum of the
    sizes and the newest mtime, so an edit of either file is a new version); (None, None)
    if its ledger item cannot be stat'ed."""
    files = formats.recording_files(path, forced)
    try:
        st = os.stat(files[0])
    except OSError:
        return None, None
    size, mtime = st.st_size, st.st_mtime_ns
    for other in files[1:]:
        try:
            o = os.stat(other)
        except OSError:
            continue
        size += o.st_size
        mtime = max(mtime, o.st_mtime_ns)
    return size, mtime


def settings_digest(settings: Settings, path: str, kinds: Iterable[str]) -> str:
    """The digest of everything that shapes these products of the recording ``path``."""
    reg = formats.registration_for(path, settings.format)
    return _digest(settings, reg.options if reg is not None else (), kinds)


def _digest(settings: Settings, options: Iterable[str], kinds: Iterable[str]) -> str:
    from crunchctl.config import KEYS

    shaping: dict[str, object] = {
        k: getattr(settings, k)
        for k in catalog.settings_of(kinds)
        if k not in catalog.LATER or getattr(settings, k) != KEYS[k][1]
    }
    shaping["output"] = str(settings.output_dir())
    shaping["format"] = PRODUCT_FORMAT
    # Read options enter only when set: recordings done before an option existed stay done.
    read = {
        k: getattr(settings, k)
        for k in ("format", *options)
        if getattr(settings, k) not in (None, False)
    }
    if read:
        shaping["read"] = read
    raw = json.dumps(shaping, sort_keys=True, default=str).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


class Digests:
    """The settings digest of one run's settings per recording and products, as the done
    rule asks for it: ``digests(item, kinds)``, or for many rows at once
    ``digests.format_of(items)`` and ``digests.of(format name, kinds)`` (docs/ledger.md)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._cache: dict[tuple[str | None, tuple[str | None, ...]], str] = {}

    def __call__(self, item: str, kinds: Iterable[str | None]) -> str:
        reg = formats.registration_for(item, self.settings.format)
        return self.of(reg.name if reg is not None else None, kinds)

    def format_of(self, items: object) -> object:
        """A polars expression naming each item's format where the format matters (one
        whose declared read options are set, or ``--format``), else null: formats whose
        options are all unset give the same digest."""
        relevant = [
            n
            for n in formats.names()
            if any(
                getattr(self.settings, k) not in (None, False)
                for k in formats.registration(n).options
            )
        ]
        return formats.name_expr(items, self.settings.format, only=relevant)

    def of(self, format_name: str | None, kinds: Iterable[str | None]) -> str:
        """The digest for a recording of this format (None: no format, or one whose read
        options are all unset) with these products."""
        key = (format_name, tuple(kinds))
        digest = self._cache.get(key)
        if digest is None:
            reg = formats.registration(format_name) if format_name is not None else None
            digest = self._cache[key] = _digest(
                self.settings, reg.options if reg is not None else (), [k for k in key[1] if k]
            )
        return digest
