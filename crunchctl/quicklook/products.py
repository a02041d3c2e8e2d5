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
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from crunchctl.errors import ItemError, OutputError

_TMP_RE = re.compile(r"^\..+\.(\d+)\.[0-9a-f]{8}\.tmp$")

#: fsync products before the rename: a power cut then leaves the old file or the new one.
FSYNC = True


def _tmp_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


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
        raise OutputError(f"{final.parent}: cannot write products: {e.strerror or e}") from None
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
        pid = int(m.group(1))
        if pid == os.getpid() or _pid_alive(pid):
            continue
        with contextlib.suppress(OSError):
            os.unlink(entry.path)
            removed += 1
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ensure_output_dir(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and check it is writable; raise ItemError if not."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{folder}: cannot create the output folder: {e.strerror or e}") from None
    if not folder.is_dir():
        raise OutputError(f"{folder}: output path exists and is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{folder}: output folder is not writable")
    return folder


def _claims_of(npz: Path) -> str | None:
    """The source recorded in an existing NPZ product, or None if it has none."""
    try:
        import numpy as np

        with np.load(npz, allow_pickle=False) as z:
            return str(z["source"]) if "source" in z.files else None
    except Exception:  # noqa: BLE001 - an unreadable old product claims nothing
        return None


def plan_stems(sources: Iterable[str], output: str | os.PathLike) -> dict[str, str]:
    """Choose a product stem per source so equal stems from different folders never collide.

    A source keeps its plain stem unless another source in the same run, or an existing
    product in ``output``, already has it; then it gets ``<stem>__<folder>-<hash>``, a name
    that depends only on the source's absolute path (stable across runs).
    """
    output = Path(output)
    taken: dict[str, str] = {}
    plan: dict[str, str] = {}
    for src in sources:
        path = Path(src)
        stem = path.stem
        owner = taken.get(stem)
        if owner is None:
            # The NPZ says whose products these are (the spectrum NPZ when no NPZ was asked).
            claimed = next((_claims_of(existing) for existing in
                            (output / f"{stem}.npz", output / f"{stem}_spectrum.npz")
                            if existing.exists()), None)
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

    Plain ids keep their name (``run_001``); anything with slashes or odd characters is
    sanitised and suffixed with a short hash of the original, so names never collide.
    """
    plain = re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,150}", item) is not None
    base = item if plain else (_safe(item.replace("/", "_"))[:100] or "item")
    if not plain:
        base = f"{base}-{hashlib.sha1(item.encode()).hexdigest()[:8]}"
    if taken is not None:
        if base in taken:
            base = f"{base}-{hashlib.sha1(item.encode()).hexdigest()[:8]}"
        taken.add(base)
    return base


def quicklook_pngs(item: str, products: Iterable[str]) -> tuple[str | None, str | None]:
    """The full and zoom PNGs among a recording's products (None where not made).

    Products are named ``<stem><ending>`` with the recording's stem, or that stem followed
    by ``__<folder>-<hash>``; knowing the stem tells ``x_zoom.png`` (the full picture of
    ``x_zoom.tiq``) from the zoom picture of ``x.tiq``.
    """
    stem = Path(item).stem
    png = zoom = None
    for path in products:
        name = os.path.basename(path)
        if not name.endswith(".png") or name.endswith("_spectrum.png"):
            continue  # the mean spectrum's picture is not a quicklook
        head = name[: -len("_zoom.png")] if name.endswith("_zoom.png") else None
        if head is not None and (head == stem or head.startswith(stem + "__")):
            zoom = zoom or path
        else:
            png = png or path
    return png, zoom


def publish_www(www: str | os.PathLike, source: str | os.PathLike, png: str | None,
                zoom_png: str | None) -> list[str]:
    """Replace ``<www>/<folder>.png`` and ``<www>/zoom_<folder>.png`` atomically (each only
    if that picture was made; None skips it).

    ``<folder>`` is the name of the folder the recording came from (docs/products.md).
    """
    if png is None and zoom_png is None:
        return []
    www = Path(www)
    folder = Path(source).resolve().parent.name or "root"
    try:
        www.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{www}: cannot create the web folder: {e.strerror or e}") from None
    published = []
    for src, final in ((png, www / f"{folder}.png"), (zoom_png, www / f"zoom_{folder}.png")):
        if src is not None:
            atomic_copy(src, final)
            published.append(str(final))
    return published
