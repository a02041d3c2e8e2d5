"""The reader contract every recording format implements (see docs/formats.md).

A reader probes a file's header and reads frames in chunks; it knows nothing of
spectrograms, products or the ledger. No heavy imports at module level.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class ReadOptions:
    """What a reader may need beyond the file itself (from the settings).

    Args:
        sample_rate: Hz, for formats without a header (raw IQ); None if not given.
        center_frequency: Hz, for formats that do not store it (raw, WAV); None if not given.
        tdms_channels: ``GROUP/I,GROUP/Q`` for TDMS files of another layout, or None.
        verify_checksum: verify a stored checksum before reading (SigMF).
    """

    sample_rate: float | None = None
    center_frequency: float | None = None
    tdms_channels: str | None = None
    verify_checksum: bool = False

    @classmethod
    def from_settings(cls, settings: Any) -> ReadOptions:
        """The options of the settings of the same names (every field is a setting); None
        gives the defaults. The one answer for every command."""
        import dataclasses

        if settings is None:
            return cls()
        return cls(
            **{f.name: getattr(settings, f.name, f.default) for f in dataclasses.fields(cls)}
        )


@dataclass(frozen=True)
class Header:
    """What a recording's header says, whatever its format.

    Args:
        path: the file the header was read from (for SigMF, the ``.sigmf-data`` file).
        format: the registry name of the format (``tiq``, ``sigmf``, ...).
        sample_rate: complex samples per second, Hz.
        center_frequency: Hz.
        nsamples: complex samples the recording holds (whole samples only).
        acquisition_start: aware UTC-or-offset datetime of the first sample, or None.
        scaling: how raw numbers became the samples, in words for the NPZ
            (``"1.2e-06 V per count"``, ``"full scale = 1"``, ``"per-record gain"``).
        complete_size: bytes a complete file must reach, where the format says so; else None.
        info: informative format-specific values (bandwidth, attenuation, ...).
        unit: what one unit of a sample is, for the pictures' labels.
    """

    path: str
    format: str
    sample_rate: float
    center_frequency: float
    nsamples: int
    acquisition_start: _dt.datetime | None = None
    scaling: str = ""
    complete_size: int | None = None
    info: Mapping[str, Any] = field(default_factory=dict)
    #: what one unit of a sample is: ``V``, ``full scale`` (integers scaled to +-1),
    #: ``count`` (unscaled integers) or ``""`` (floats as stored, unit unknown)
    unit: str = "V"

    @property
    def duration(self) -> float:
        return self.nsamples / self.sample_rate


@dataclass(frozen=True)
class Block:
    """One chunk of frames as a reader yields it.

    ``data`` is either complex, shape (k, lframes), or real interleaved I, Q pairs, shape
    (k, 2 * lframes), of any number type. The samples are ``data * scale``. A reader may
    reuse ``data``'s buffer for the next block: copy it to keep it.
    """

    data: np.ndarray
    scale: float = 1.0


class Reader(Protocol):
    """One recording format. Register an instance in :mod:`crunchctl.formats`."""

    #: registry name, lower case (``tiq``)
    name: str
    #: file name patterns this format is chosen by (``("*.tiq",)``)
    patterns: tuple[str, ...]

    def probe(self, path: str, options: ReadOptions) -> Header:
        """Read and check the header; raise ``FormatError`` (one line naming the file)."""
        ...

    def blocks(
        self, header: Header, options: ReadOptions, start: int, count: int, lframes: int
    ) -> Iterator[Block]:
        """Yield frames ``start .. start + count`` (frame = ``lframes`` samples) in chunks
        of a few MB, never the whole file at once."""
        ...

    def readiness(self, path: str, options: ReadOptions) -> Readiness:
        """Is the file complete enough to process? (watch calls this, see docs/formats.md)"""
        ...


@dataclass(frozen=True)
class Readiness:
    """A reader's answer to "is this recording complete?".

    Args:
        complete: True when the format itself proves the file complete (``.tiq`` size, RIFF
            size); False when it proves it incomplete; None when only a quiet settle time can
            tell (raw IQ).
        reason: why not complete, for the pending list (one line).
        group: the ledger item this file belongs to (SigMF: the ``.sigmf-data`` path for
            both files); None means the path itself.
        files: every file whose size and mtime must stay unchanged for the settle time
            (SigMF: meta and data); empty means the path itself.
    """

    complete: bool | None
    reason: str = ""
    group: str | None = None
    files: tuple[str, ...] = ()
