"""Shared plumbing of the readers: chunked reads of interleaved I, Q components into one
reused buffer, file checks with one-line errors, and datetime/warning helpers.
"""

from __future__ import annotations

import logging
import os
import stat as _stat
from collections.abc import Iterator
from typing import TYPE_CHECKING

from crunchctl.errors import FormatError, IncompleteRecording

if TYPE_CHECKING:
    import numpy as np

    from crunchctl.formats.base import Block

log = logging.getLogger("crunchctl.formats")

#: Bytes per chunk the readers aim at: large enough for fast reads, small enough to bound memory.
TARGET_BYTES = 8 << 20


def file_size(path: str, what: str = "recording", error: type[FormatError] = FormatError) -> int:
    """Size of a regular file, or ``error`` naming the file (missing, directory, unreadable)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise error(f"{path}: broken symbolic link (its target does not exist)") from None
        raise error(f"{path}: no such file") from None
    except OSError as e:
        raise error(f"{path}: cannot read: {e.strerror or e}") from None
    if _stat.S_ISDIR(st.st_mode):
        raise error(f"{path}: is a directory, not a {what}")
    return st.st_size


def require_nonempty(path: str, size: int) -> None:
    if size == 0:
        raise IncompleteRecording(f"{path}: empty file (0 bytes)", expected=1, actual=0)


def warn(path: str, message: str) -> str:
    """Log a reader's warning about a file and return it (for ``Header.info['warnings']``)."""
    text = f"{path}: {message}"
    log.warning("%s", text)
    return message


def scaling_text(full: float, zero: float = 0.0) -> str:
    """How stored samples become full-scale units, as the picture's subtitle says it."""
    if full == 1.0:
        return "as stored (float)"
    if zero:
        return f"full scale = 1: (count - {zero:g}) / {full:g}"
    return f"full scale = 1: count / {full:g}"


def iter_interleaved(
    path: str,
    offset: int,
    component: str,
    nsamples: int,
    start: int,
    count: int,
    lframes: int,
    *,
    target_bytes: int = TARGET_BYTES,
) -> Iterator[np.ndarray]:
    """Yield frames ``start .. start + count`` as (k, 2 * lframes) arrays of I, Q components.

    ``component`` is the numpy type of one component (``<i2``, ``>f4``, ...); samples begin at
    byte ``offset``. The file is read with ``readinto`` into one reused buffer: each array
    is valid until the next is requested.
    """
    import numpy as np

    dtype = np.dtype(component)
    if (start + count) * lframes > nsamples:
        raise FormatError(
            f"{path}: asked for frames up to {start + count} of {lframes} samples "
            f"but the file holds {nsamples // lframes} whole frames"
        )
    if count <= 0:
        return
    sample_bytes = 2 * dtype.itemsize
    chunk = max(1, min(count, target_bytes // (lframes * sample_bytes)))
    buf = np.empty((chunk, 2 * lframes), dtype=dtype)
    try:
        f = open(path, "rb", buffering=0)
    except OSError as e:
        raise FormatError(f"{path}: cannot read: {e.strerror or e}") from None
    with f:
        try:
            f.seek(offset + start * lframes * sample_bytes)
        except OSError as e:
            raise FormatError(f"{path}: cannot read: {e.strerror or e}") from None
        for first in range(0, count, chunk):
            k = min(chunk, count - first)
            view = buf[:k]
            dest = memoryview(view).cast("B")
            got = 0
            while got < len(dest):
                try:
                    n = f.readinto(dest[got:])
                except OSError as e:
                    raise FormatError(f"{path}: cannot read: {e.strerror or e}") from None
                if not n:
                    raise FormatError(
                        f"{path}: file ended while reading its samples; was it cut or overwritten?"
                    )
                got += n
            yield view


def offset_blocks(raws: Iterator[np.ndarray], zero: float, scale: float) -> Iterator[Block]:
    """Blocks of interleaved integers, centred on ``zero`` first where it is not 0
    (unsigned samples) into one reused float32 buffer; samples = block * ``scale``."""
    import numpy as np

    from crunchctl.formats.base import Block

    out = None
    for raw in raws:
        if not zero:
            yield Block(raw, scale)
            continue
        if out is None or out.shape[0] < raw.shape[0]:
            out = np.empty(raw.shape, dtype=np.float32)
        view = out[: raw.shape[0]]
        np.subtract(raw, np.float32(zero), out=view, dtype=np.float32)
        yield Block(view, scale)
