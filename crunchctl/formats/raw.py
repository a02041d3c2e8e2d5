"""Headerless raw IQ files (``.cf32``, ``.cs16``, ``.cu8``, ...), typed by extension as
inspectrum and GNU Radio do, or by ``--format cf32`` for any name; sample rate and centre come
from the settings (docs/formats.md).
"""

from __future__ import annotations

from collections.abc import Iterator

from crunchctl.errors import FormatError
from crunchctl.formats import _io
from crunchctl.formats.base import Block, Header, Readiness, ReadOptions

#: extension -> (numpy type of one component, full scale, zero point)
#: Signed integers: full scale 2^(bits-1); unsigned bytes are centred at 127.5 (RTL-SDR).
TYPES: dict[str, tuple[str, float, float]] = {
    ".cf32": ("<f4", 1.0, 0.0),
    ".fc32": ("<f4", 1.0, 0.0),
    ".cfile": ("<f4", 1.0, 0.0),
    ".cf64": ("<f8", 1.0, 0.0),
    ".fc64": ("<f8", 1.0, 0.0),
    ".cs32": ("<i4", 2.0**31, 0.0),
    ".sc32": ("<i4", 2.0**31, 0.0),
    ".cs16": ("<i2", 2.0**15, 0.0),
    ".sc16": ("<i2", 2.0**15, 0.0),
    ".cs8": ("i1", 2.0**7, 0.0),
    ".sc8": ("i1", 2.0**7, 0.0),
    ".cu8": ("u1", 127.5, 127.5),
    ".uc8": ("u1", 127.5, 127.5),
}
EXTENSIONS = tuple(TYPES)


def _type_of(path: str, forced: str | None) -> tuple[str, str, float, float]:
    if forced is not None:
        ext = "." + forced
        return (ext, *TYPES[ext])
    low = path.lower()
    for ext, (component, full, zero) in TYPES.items():
        if low.endswith(ext):
            return ext, component, full, zero
    raise FormatError(
        f"{path}: raw IQ type unknown: give it with --format TYPE "
        f"({', '.join(e[1:] for e in EXTENSIONS)}; e.g. --format cs16), or end "
        f"the file name in .TYPE"
    )


class RawReader:
    """Raw interleaved I, Q; integer blocks go to the spectrum as they are, with 1/full scale.

    ``sample_type`` (``cf32``, ``cs16``, ...: an extension without its dot) reads every file
    as that type whatever its name (``--format cf32``); None types each file by extension.
    """

    name = "raw"
    patterns = tuple("*" + e for e in EXTENSIONS)

    def __init__(self, sample_type: str | None = None) -> None:
        if sample_type is not None and "." + sample_type not in TYPES:
            raise ValueError(f"unknown raw IQ sample type {sample_type!r}")
        self.sample_type = sample_type

    def typed(self, sample_type: str) -> RawReader:
        """This reader for files of one sample type, whatever their extension."""
        return RawReader(sample_type)

    def probe(self, path: str, options: ReadOptions) -> Header:
        import numpy as np

        ext, component, full, zero = _type_of(path, self.sample_type)
        size = _io.file_size(path, "raw IQ recording")
        if not options.sample_rate:
            raise FormatError(
                f"{path}: raw IQ has no header: give its sample rate with "
                f"--sample-rate HZ (config key sample_rate)"
            )
        _io.require_nonempty(path, size)
        sample_bytes = 2 * np.dtype(component).itemsize
        nsamples, partial = divmod(size, sample_bytes)
        warnings = []
        if partial:
            warnings.append(
                _io.warn(
                    path, f"ignoring a trailing partial sample ({partial} of {sample_bytes} bytes)"
                )
            )
        center = options.center_frequency
        if center is None:
            center = 0.0
        scaling = _io.scaling_text(full, zero)
        return Header(
            path=path,
            format=self.name,
            sample_rate=float(options.sample_rate),
            center_frequency=float(center),
            nsamples=nsamples,
            acquisition_start=None,
            scaling=f"{scaling} ({ext[1:]})",
            complete_size=None,
            unit="" if full == 1.0 else "full scale",
            info={"component": component, "full_scale": full, "zero": zero, "warnings": warnings},
        )

    def blocks(
        self, header: Header, options: ReadOptions, start: int, count: int, lframes: int
    ) -> Iterator[Block]:
        info = header.info
        scale = 1.0 / info["full_scale"]
        raws = _io.iter_interleaved(
            header.path, 0, info["component"], header.nsamples, start, count, lframes
        )
        yield from _io.offset_blocks(raws, info["zero"], scale)

    def readiness(self, path: str, options: ReadOptions) -> Readiness:
        # Nothing in the file says how long it will be: only a quiet settle time can tell.
        return Readiness(None)


READER = RawReader()
