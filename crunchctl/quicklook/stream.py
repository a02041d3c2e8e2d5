"""A recording streamed through the spectrum: frames are read and transformed in a helper
thread while the caller consumes the previous chunk (pooled images, zoom, mean spectrum,
NPZ rows). Nothing holds the whole spectrogram; memory is a few chunks.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from crunchctl.formats.base import Block

#: Power chunks in flight: one being filled, one being consumed, one spare.
BUFFERS = 3


class MaxPooler:
    """The max-pooled image of a (nrows, ncols) array that arrives in row chunks.

    Cells are those of ``spectrum.pool_max(spectrum.pool_max(a, 1, width), 0, height)``
    and so are the values (a maximum does not depend on the order it is taken in): the
    image is the one the whole array would give, bit for bit.
    """

    def __init__(self, nrows: int, ncols: int, height: int, width: int) -> None:
        import numpy as np

        self.nrows, self.ncols = nrows, ncols
        self.fr = -(-nrows // height) if 0 < height < nrows else 1
        self.fc = -(-ncols // width) if 0 < width < ncols else 1
        self._cols = np.arange(0, ncols, self.fc)
        self.image = np.full((-(-nrows // self.fr), len(self._cols)), -np.inf, np.float32)
        self.rows = 0

    def add(self, chunk: np.ndarray) -> None:
        """Take the next rows, (k, ncols)."""
        import numpy as np

        k = chunk.shape[0]
        if k == 0:
            return
        if self.rows + k > self.nrows:
            raise ValueError(f"got more than {self.nrows} rows")
        c = np.maximum.reduceat(chunk, self._cols, axis=1) if self.fc > 1 else chunk
        r0 = self.rows
        first, last = r0 // self.fr, (r0 + k - 1) // self.fr
        if self.fr == 1:
            self.image[first : last + 1] = c
        else:
            starts = np.arange(first, last + 1) * self.fr - r0
            starts[0] = 0  # the first cell may have begun in an earlier chunk
            cells = np.maximum.reduceat(c, starts, axis=0)
            dest = self.image[first : last + 1]
            np.maximum(dest, cells, out=dest)
        self.rows += k

    def result(self) -> np.ndarray:
        if self.rows != self.nrows:
            raise ValueError(f"got {self.rows} rows, expected {self.nrows}")
        return self.image


class MeanSpectrum:
    """The power averaged over all frames, summed in float64 as the chunks come."""

    def __init__(self, lframes: int) -> None:
        import numpy as np

        self._sum = np.zeros(lframes, dtype=np.float64)
        self.frames = 0

    def add(self, power: np.ndarray) -> None:
        import numpy as np

        self._sum += power.sum(axis=0, dtype=np.float64)
        self.frames += power.shape[0]

    def result(self) -> np.ndarray:
        import numpy as np

        return np.true_divide(self._sum, max(1, self.frames))


Consumer = Callable[["np.ndarray"], None]


def stream_power(
    blocks: Iterable[Block],
    nframes: int,
    lframes: int,
    consume: Consumer,
    *,
    window_name: str = "rectangular",
    workers: int = 1,
    threaded: bool = True,
    chunk_frames: int | None = None,
) -> None:
    """Transform ``blocks`` (a reader's frames) to power and hand each chunk to ``consume``.

    ``consume`` gets float32 (k, lframes) chunks in frame order, ``nframes`` rows in all;
    a chunk is only valid during the call (its buffer is reused). With ``threaded``,
    reading and the FFT of the next chunk run in a helper thread meanwhile (numpy, the FFT,
    file reads and zlib's crc release the GIL, so both cores work).

    Raises:
        ValueError: the blocks do not add up to ``nframes`` frames.
        whatever reading or ``consume`` raises (the helper thread's errors re-raised here).
    """
    from crunchctl.quicklook import spectrum

    transform = spectrum.FramePower(lframes, window_name, workers)
    if not threaded:
        row = 0
        for block in blocks:
            k = block.data.shape[0]
            if row + k > nframes:
                raise ValueError(f"got more than {nframes} frames")
            consume(transform(block.data, block.scale))
            row += k
        if row != nframes:
            raise ValueError(f"got {row} frames, expected {nframes}")
        return
    pipe = _Pipe(iter(blocks), nframes, lframes, transform)
    try:
        for chunk in pipe:
            consume(chunk)
    finally:
        pipe.close()


class _Pipe:
    """The helper thread and its hand-over of filled power buffers, in order."""

    def __init__(
        self,
        blocks: Iterator[Block],
        nframes: int,
        lframes: int,
        transform: Callable[..., np.ndarray],
    ) -> None:
        self._blocks = blocks
        self.nframes, self.lframes = nframes, lframes
        self._transform = transform
        self._free: queue.Queue = queue.Queue()
        self._ready: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._buffers: dict[int, np.ndarray] = {}
        self._thread = threading.Thread(target=self._produce, daemon=True, name="crunchctl-frames")
        self._thread.start()

    def _buffer(self, k: int) -> np.ndarray:
        import numpy as np

        while True:
            buf = self._free.get() if len(self._buffers) >= BUFFERS else None
            if self._stop.is_set():
                raise _Stopped
            if buf is None:
                buf = np.empty((k, self.lframes), dtype=np.float32)
                self._buffers[id(buf)] = buf
            if buf.shape[0] >= k:
                return buf
            del self._buffers[id(buf)]  # a bigger block than before: replace the buffer

    def _produce(self) -> None:
        row = 0
        try:
            for block in self._blocks:
                if self._stop.is_set():
                    return
                k = block.data.shape[0]
                if row + k > self.nframes:
                    raise ValueError(f"got more than {self.nframes} frames")
                buf = self._buffer(k)
                self._ready.put((buf, self._transform(block.data, block.scale, out=buf[:k])))
                row += k
            if row != self.nframes:
                raise ValueError(f"got {row} frames, expected {self.nframes}")
            self._ready.put(None)
        except _Stopped:
            pass
        except BaseException as e:  # noqa: BLE001 - handed to the consuming thread
            self._ready.put(e)
        finally:
            close = getattr(self._blocks, "close", None)
            if close is not None:
                close()  # the reader's file is closed in this thread, now

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            item = self._ready.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            buf, chunk = item
            try:
                yield chunk
            finally:
                self._free.put(buf)

    def close(self) -> None:
        """Stop the helper thread (after an error or at the end) and wait for it."""
        self._stop.set()
        for _ in range(BUFFERS + 1):
            self._free.put(None)  # wake it if it waits for a buffer
        self._thread.join(timeout=60)


class _Stopped(Exception):
    pass
