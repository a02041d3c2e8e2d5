"""Writing products: atomic files, product names, the web-folder copies.

Every final file appears by ``os.replace`` of a temp file in the same folder, so a crash
never leaves a truncated file under a final name (docs/products.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from crunchctl.errors import OutputError
from crunchctl.writers import own_tag, writer_gone

#: ``.<final name>.<writer tag>.<uuid8>.tmp``; the tag is ``<pid>-<start ticks>`` (or a bare
#: pid, as older versions wrote it): see ``crunchctl/writers.py``.
_TMP_RE = re.compile(r"^\..+\.(\d+)(?:-(\d+))?\.[0-9a-f]{8}\.tmp$")

#: fsync products before the rename: a power cut then leaves the old file or the new one.
FSYNC = True


def _tmp_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.{own_tag()}.{uuid.uuid4().hex[:8]}.tmp")


@contextlib.contextmanager
def atomic_write(final: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open a temp file next to ``final``; on success it is renamed over ``final``.

    On any error the temp file is removed and ``final`` is untouched.

    Raises:
        ItemError: the file cannot be written (folder gone or not writable, disk full):
            the message names the file, not the temp file, since that is the
            name the user knows.
    """
    final = Path(final)
    tmp = _tmp_name(final)
    try:
        f = open(tmp, "wb")
    except OSError as e:
        raise OutputError(f"{final}: cannot write: {e.strerror or e}") from None
    try:
        with f:
            yield f
            f.flush()
            if FSYNC:
                os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            # ENOSPC, EIO, a folder replaced mid-write: per item, naming the final file.
            raise OutputError(f"{final}: cannot write: {e.strerror or e}") from None
        raise


class Flusher:
    """Write-back of a big file while it is being written, in a helper thread.

    Every ``every`` bytes the thread asks the kernel to write what is dirty so far
    (``fdatasync``; the GIL is released meanwhile), so the disk works while the CPU computes
    and the final ``fsync`` of :func:`atomic_write` finds little left to do. Errors are
    left to that final fsync, which reports them.
    """

    def __init__(self, f: BinaryIO, every: int = 64 << 20) -> None:
        import threading

        self._fd = f.fileno()
        self._every = every
        self._pending = 0
        self._wake = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="crunchctl-flush")
        if FSYNC:
            self._thread.start()

    def wrote(self, nbytes: int) -> None:
        self._pending += nbytes
        if self._pending >= self._every:
            self._pending = 0
            self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stop:
                return
            with contextlib.suppress(OSError):
                os.fdatasync(self._fd)

    def close(self) -> None:
        """Stop the thread (it finishes a write-back under way first)."""
        self._stop = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()


def write_npz(f: BinaryIO, arrays: Mapping[str, Any]) -> None:
    """Write ``arrays`` to ``f`` as an uncompressed ``.npz``, the file ``np.savez`` writes.

    Same archive layout (``<name>.npy`` members, stored, zip64), same ``.npy`` headers, but
    the array bytes go from the array's memory straight to the file in slices: no copy of
    a large array is made (``np.savez`` copies through ``tobytes``).
    """
    from crunchctl.quicklook import npzstream

    npzstream.write_npz(f, dict(arrays))


def atomic_copy(src: str | os.PathLike, final: str | os.PathLike) -> None:
    """Copy ``src`` to ``final`` atomically (a browser never sees half a PNG)."""
    with open(src, "rb") as s, atomic_write(final) as d:
        shutil.copyfileobj(s, d, 1 << 20)


def clean_stale_temps(folder: str | os.PathLike) -> int:
    """Remove temp files left in ``folder`` by processes that no longer run; return count."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        m = _TMP_RE.match(entry.name)
        if not m:
            continue
        start = int(m.group(2)) if m.group(2) else None
        if not writer_gone(int(m.group(1)), start):
            continue
        with contextlib.suppress(OSError):
            os.unlink(entry.path)
            removed += 1
    return removed


def ensure_output_dir(folder: str | os.PathLike, what: str = "output") -> Path:
    """Create ``folder`` if needed and check it is writable; raise ItemError if not.

    ``what`` names the folder in messages: ``output`` or ``web``.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{folder}: cannot create the {what} folder: {e.strerror or e}") from None
    if not folder.is_dir():
        raise OutputError(f"{folder}: {what} path exists and is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{folder}: {what} folder is not writable")
    return folder


def _claims_of(npz: Path) -> str | None:
    """The source recorded in an existing NPZ product; None if it has none; ``""`` if it
    cannot be read (it belongs to somebody: an unreadable file is not a free name)."""
    try:
        import numpy as np

        with np.load(npz, allow_pickle=False) as z:
            return str(z["source"]) if "source" in z.files else None
    except Exception:  # noqa: BLE001 - any damage: the owner is unknown, not absent
        return ""


def plan_stems(
    sources: Iterable[str],
    output: str | os.PathLike,
    claimed_by: Callable[[list[str]], Mapping[str, str]] | None = None,
) -> dict[str, str]:
    """Choose a product stem per source so equal stems from different folders never collide.

    A source keeps its plain stem unless another source in the same run, or another
    recording's products in ``output``, already has it; then it gets
    ``<stem>__<folder>-<hash>``, a name that depends only on the source's absolute path
    (stable across runs). Who owns products that exist is asked first of ``claimed_by``
    (the ledger's rows: product path -> the recording whose row lists it, docs/ledger.md),
    then of an NPZ's ``source``; products of unknown origin without an NPZ are taken over.
    """
    from crunchctl import catalog

    output = Path(output)
    sources = list(sources)
    endings = [p.ending for p in catalog.products()]
    present: dict[str, list[Path]] = {}
    for src in sources:
        stem = Path(src).stem
        if stem not in present:
            present[stem] = [f for f in (output / f"{stem}{e}" for e in endings) if f.exists()]
    asked = [str(f) for files in present.values() for f in files]
    owners = dict(claimed_by(asked)) if claimed_by is not None and asked else {}
    taken: dict[str, str] = {}
    plan: dict[str, str] = {}
    for src in sources:
        path = Path(src)
        stem = path.stem
        owner = taken.get(stem)
        if owner is None:
            files = present[stem]
            claimed = next((owners[str(f)] for f in files if str(f) in owners), None)
            if claimed is None:
                # The NPZ says whose products these are (the spectrum NPZ when no NPZ was asked).
                claimed = next((_claims_of(f) for f in files if f.suffix == ".npz"), None)
            if claimed is None or claimed == src:
                taken[stem] = src
                plan[src] = stem
                continue
            taken[stem] = claimed
        elif owner == src:
            plan[src] = stem
            continue
        digest = hashlib.sha1(str(path.parent).encode()).hexdigest()[:6]
        plan[src] = f"{stem}__{_safe(path.parent.name) or 'root'}-{digest}"
    return plan


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")


def safe_name(item: str, taken: set[str] | None = None) -> str:
    """A file-name-safe, unique name for an arbitrary item string.

    Plain ids keep their name (``run_001``, ``Messung_ä``, ``日本``): letters of any script,
    digits, ``.``, ``_`` and ``-``, up to 151 bytes. Anything else is sanitised (slashes and
    each run of other characters, spaces included, become ``_``; the text is NFC and cut to
    100 bytes of UTF-8) and suffixed with a short hash of the original, so names never
    collide and stay readable in every script (docs/products.md, "Batch figures").
    """
    import unicodedata

    def kept(c: str) -> bool:
        # Letters, digits and combining marks of every script; no spaces, symbols, controls.
        return c in "._-" or unicodedata.category(c)[0] in "LNM"

    text = unicodedata.normalize("NFC", item)
    plain = (
        text == item
        and bool(item)
        and unicodedata.category(item[0])[0] in "LN"
        and all(kept(c) for c in item)
        and len(item.encode()) <= 151
    )
    if plain:
        base = item
    else:
        marked = "".join(c if kept(c) else "\0" for c in text.replace("/", "_"))
        base = re.sub("\0+", "_", marked).strip("._")
        base = base.encode()[:100].decode(errors="ignore") or "item"
        base = f"{base}-{hashlib.sha1(item.encode()).hexdigest()[:8]}"
    if taken is not None:
        if base in taken:
            base = f"{base}-{hashlib.sha1(item.encode()).hexdigest()[:8]}"
        taken.add(base)
    return base


def quicklook_pngs(item: str, products: Iterable[str]) -> tuple[str | None, str | None]:
    """The full and zoom PNGs among a recording's products (None where not made): the
    products the table (``catalog.py``) gives a web copy, ``png`` and ``zoom``."""
    from crunchctl import catalog

    copies = catalog.web_copies(item, products)
    return copies.get("png"), copies.get("zoom")


def publish_www(
    www: str | os.PathLike, source: str | os.PathLike, png: str | None, zoom_png: str | None
) -> list[str]:
    """Replace ``<www>/<folder>.png`` and ``<www>/zoom_<folder>.png`` atomically (each only
    if that picture was made; None skips it).

    ``<folder>`` is the name of the folder the recording came from (docs/products.md).
    """
    from crunchctl import catalog

    if png is None and zoom_png is None:
        return []
    www = Path(www)
    folder = Path(source).resolve().parent.name or "root"
    try:
        www.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{www}: cannot create the web folder: {e.strerror or e}") from None
    published = []
    for src, kind in ((png, "png"), (zoom_png, "zoom")):
        final = www / catalog.web_name(kind, folder)
        if src is not None:
            atomic_copy(src, final)
            published.append(str(final))
    return published
