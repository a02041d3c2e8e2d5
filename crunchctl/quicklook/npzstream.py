"""An ``.npz`` written member by member, one member streamed row by row as it is computed.

The archive is the one ``np.savez`` writes (stored members ``<name>.npy``, ZIP64, the same
``.npy`` headers), so ``numpy.load`` reads it as before; but a streamed member never has
to exist in memory as a whole (see docs/products.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    import zipfile

    import numpy as np

#: Largest slice handed to the zip member in one write (each is a GIL hand-over in a thread).
_STEP = 32 << 20


def _write_header(member: Any, header: dict) -> None:
    from numpy.lib import format as npformat

    try:
        npformat.write_array_header_1_0(member, header)
    except ValueError:  # header over 64 KiB: numpy's own fallback
        npformat.write_array_header_2_0(member, header)


def _write_bytes(member: Any, data: memoryview) -> None:
    for i in range(0, len(data), _STEP):
        member.write(data[i : i + _STEP])


class RowStream:
    """The open streamed member: ``write`` rows in order, exactly ``shape[0]`` of them."""

    def __init__(self, member: Any, name: str, dtype: np.dtype, shape: tuple[int, ...]) -> None:
        self._member = member
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.rows = 0

    def write(self, rows: np.ndarray) -> None:
        import numpy as np

        if rows.dtype != self.dtype or rows.shape[1:] != self.shape[1:]:
            raise ValueError(
                f"{self.name}: rows of {rows.dtype} {rows.shape[1:]}, expected "
                f"{self.dtype} {self.shape[1:]}"
            )
        if self.rows + rows.shape[0] > self.shape[0]:
            raise ValueError(f"{self.name}: more than {self.shape[0]} rows")
        rows = np.ascontiguousarray(rows)
        if rows.size:
            _write_bytes(self._member, memoryview(rows.reshape(-1).view(np.uint8)))
        self.rows += rows.shape[0]


class NpzStream:
    """Write an uncompressed ``.npz`` to the seekable binary file ``f``.

    Members go in call order: :meth:`add` writes an array whole; :meth:`begin` opens a
    member whose rows come through :meth:`RowStream.write` until :meth:`end`. Only one
    member is open at a time (a zip member is written in one piece).
    """

    def __init__(self, f: BinaryIO) -> None:
        import zipfile

        self._zf: zipfile.ZipFile = zipfile.ZipFile(
            f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True
        )
        self._open: tuple[Any, RowStream] | None = None

    def add(self, name: str, value: Any) -> None:
        """Write ``value`` (an array or a numpy scalar) as ``<name>.npy``."""
        import numpy as np
        from numpy.lib import format as npformat

        if self._open is not None:
            raise RuntimeError(f"{self._open[1].name} is still being written")
        a = np.asanyarray(value)
        if a.dtype.hasobject:
            raise ValueError(f"{name}: object arrays are not written")
        if not (a.flags.c_contiguous or a.flags.f_contiguous):
            a = np.ascontiguousarray(a)
        header = npformat.header_data_from_array_1_0(a)  # says fortran_order if F
        body = a.T if header["fortran_order"] else a  # C-contiguous either way
        with self._zf.open(name + ".npy", "w", force_zip64=True) as member:
            _write_header(member, header)
            if a.size:
                _write_bytes(member, memoryview(body.reshape(-1).view(np.uint8)))

    def begin(self, name: str, dtype: Any, shape: tuple[int, ...]) -> RowStream:
        """Open ``<name>.npy`` for a C-order array of ``dtype`` and ``shape``: the ``.npy``
        header is written now, the rows by the returned stream."""
        import numpy as np
        from numpy.lib import format as npformat

        if self._open is not None:
            raise RuntimeError(f"{self._open[1].name} is still being written")
        dtype = np.dtype(dtype)
        header = {
            "descr": npformat.dtype_to_descr(dtype),
            "fortran_order": False,
            "shape": tuple(int(n) for n in shape),
        }
        member = self._zf.open(name + ".npy", "w", force_zip64=True)
        _write_header(member, header)
        stream = RowStream(member, name, dtype, header["shape"])
        self._open = (member, stream)
        return stream

    def end(self) -> None:
        """Close the streamed member; ValueError if it did not get all its rows."""
        if self._open is None:
            return
        member, stream = self._open
        self._open = None
        if stream.rows != stream.shape[0]:
            member.close()
            raise ValueError(f"{stream.name}: got {stream.rows} rows, expected {stream.shape[0]}")
        member.close()

    def close(self) -> None:
        """Write the central directory; the file itself stays open (its owner closes it)."""
        self.end()
        self._zf.close()

    def abort(self) -> None:
        """Give up after an error: close what is open without checks (the caller discards
        the file)."""
        import contextlib

        if self._open is not None:
            member, _ = self._open
            self._open = None
            with contextlib.suppress(Exception):
                member.close()
        with contextlib.suppress(Exception):
            self._zf.close()


def write_npz(f: BinaryIO, arrays: dict[str, Any]) -> None:
    """Write ``arrays`` to ``f`` as an uncompressed ``.npz`` (what ``np.savez`` writes)."""
    npz = NpzStream(f)
    for name, value in arrays.items():
        npz.add(name, value)
    npz.close()
