"""The page's short history per recorder folder: ``history/<folder>/`` copies and thumbnails.

Names are stable (derived from the recording's file name), so a browser caches them; files no
longer listed in ``status.json`` are removed. Every file is written by temp + rename.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from pathlib import Path

from crunchctl import catalog
from crunchctl.quicklook.products import atomic_copy, atomic_write, safe_name

HISTORY = "history"
#: Width of the thumbnails in the history strip, px (twice the CSS size: sharp on HiDPI).
THUMB_WIDTH = 320
#: Unlisted files another process wrote are kept this long: it may be about to list them.
FOREIGN_GRACE_S = 120.0


def folder_key(item: str) -> str:
    """The recorder folder's name, exactly as the fixed-name web copies use it."""
    return Path(item).resolve().parent.name or "root"


def entry_stem(item: str) -> str:
    """A file-name-safe, stable name for a recording's history files (unique per folder)."""
    return safe_name(Path(item).name)


def history_dir(www: str | os.PathLike, folder: str) -> Path:
    return Path(www) / HISTORY / folder


def split_pngs(item: str, products: Iterable[str]) -> tuple[str | None, str | None]:
    """(full-span PNG, zoom PNG) among a recording's products; None where it has none
    (which product is which: the product table, ``catalog.py``)."""
    copies = catalog.web_copies(item, products)
    return copies.get("png"), copies.get("zoom")


def add(
    www: str | os.PathLike, folder: str, item: str, full_png: str | None, zoom_png: str | None
) -> dict[str, str | None]:
    """Copy a recording's images into ``history/<folder>/`` and make its thumbnail.

    Returns:
        Paths relative to ``www`` (``/``-separated): ``image``, ``zoom_image``, ``thumb``;
        None for what the recording does not have.

    Raises:
        OutputError: a file cannot be written.
    """
    hdir = history_dir(www, folder)
    hdir.mkdir(parents=True, exist_ok=True)
    stem = entry_stem(item)
    rel = f"{HISTORY}/{folder}/"
    out: dict[str, str | None] = {"image": None, "zoom_image": None, "thumb": None}
    full_name = stem + catalog.product("png").ending
    zoom_name = stem + catalog.product("zoom").ending
    if full_png:
        atomic_copy(full_png, hdir / full_name)
        out["image"] = rel + full_name
        thumb = make_thumbnail(full_png, hdir / f"{stem}.thumb")
        out["thumb"] = rel + thumb.name if thumb else out["image"]
    if zoom_png:
        atomic_copy(zoom_png, hdir / zoom_name)
        out["zoom_image"] = rel + zoom_name
    return out


def make_thumbnail(src: str | os.PathLike, dest_stem: Path) -> Path | None:
    """A small JPEG of ``src`` (PNG where JPEG cannot be written); None if Pillow is missing.

    Spectrogram noise compresses badly as PNG: a JPEG thumbnail is a fifth of the size.
    """
    try:
        from PIL import Image
    except ImportError:  # Pillow comes with matplotlib; without it the strip uses the copies
        return None
    with Image.open(src) as im:
        im = im.convert("RGB")
        h = max(1, round(im.height * THUMB_WIDTH / im.width))
        small = im.resize((THUMB_WIDTH, h), Image.Resampling.LANCZOS)
    for ext, fmt, kw in ((".jpg", "JPEG", {"quality": 82, "optimize": True}), (".png", "PNG", {})):
        dest = dest_stem.with_name(dest_stem.name + ext)
        try:
            with atomic_write(dest) as f:
                small.save(f, fmt, **kw)
            return dest
        except (KeyError, OSError) as e:  # no JPEG encoder in this Pillow build
            if ext == ".png" or "encoder" not in str(e).lower():
                raise
    return None


def trim(
    www: str | os.PathLike,
    folder: str,
    keep: Iterable[str],
    own: set[str],
    *,
    now: float | None = None,
) -> list[str]:
    """Remove files in ``history/<folder>/`` not named in ``keep`` (paths relative to www).

    Files this process wrote (``own``, relative paths) go at once; others only when older
    than ``FOREIGN_GRACE_S`` (another writer may have copied them and not yet listed them).

    Returns:
        The removed paths, relative to ``www``.
    """
    hdir = history_dir(www, folder)
    wanted = {Path(k).name for k in keep if k}
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(os.scandir(hdir))
    except OSError:
        return removed
    for e in entries:
        if e.name in wanted or not e.is_file(follow_symlinks=False):
            continue
        rel = f"{HISTORY}/{folder}/{e.name}"
        if e.name.startswith("."):
            continue  # temp files: clean_stale_temps removes those of dead processes
        if rel not in own:
            with contextlib.suppress(OSError):
                if now - e.stat(follow_symlinks=False).st_mtime < FOREIGN_GRACE_S:
                    continue
        with contextlib.suppress(OSError):
            os.unlink(e.path)
            removed.append(rel)
            own.discard(rel)
    return removed
