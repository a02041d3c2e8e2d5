"""Two-channel WAV IQ (left = I, right = Q), int16, int32 or float32: the RIFF header is
parsed here and the samples read in chunks, never the whole file (docs/formats.md).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from crunchctl.errors import FormatError, IncompleteRecording
from crunchctl.formats import _io
from crunchctl.formats.base import Block, Header, Readiness, ReadOptions

_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE
#: (format tag, bits) -> (numpy type of one component, full scale)
TYPES = {
    (_PCM, 16): ("<i2", 2.0**15),
    (_PCM, 32): ("<i4", 2.0**31),
    (_FLOAT, 32): ("<f4", 1.0),
    (_FLOAT, 64): ("<f8", 1.0),
}


@dataclass(frozen=True)
class RiffLayout:
    riff_size: int  # the RIFF size field + 8: bytes a complete file has
    channels: int
    rate: int
    tag: int
    bits: int
    block_align: int
    data_offset: int
    data_size: int


def read_layout(path: str, size: int) -> RiffLayout:
    """Parse the RIFF/WAVE chunks up to ``data``.

    Raises:
        IncompleteRecording: the file ends before the ``data`` chunk starts.
        FormatError: not a WAV file, or no ``fmt`` chunk before ``data``.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12:
                raise IncompleteRecording(f"{path}: {size} bytes, WAV header cut", 12, size)
            riff, riff_size, wave = struct.unpack("<4sI4s", head)
            if riff != b"RIFF" or wave != b"WAVE":
                raise FormatError(f"{path}: not a WAV file (no RIFF/WAVE header)")
            fmt: tuple[int, int, int, int, int] | None = None
            pos = 12
            while True:
                f.seek(pos)
                ch = f.read(8)
                if len(ch) < 8:
                    raise IncompleteRecording(
                        f"{path}: {size} bytes, the file ends before its data chunk",
                        riff_size + 8,
                        size,
                    )
                cid, csize = struct.unpack("<4sI", ch)
                if cid == b"fmt ":
                    body = f.read(min(csize, 40))
                    if len(body) < 16:
                        raise IncompleteRecording(f"{path}: WAV fmt chunk cut", pos + 24, size)
                    tag, channels, rate, _, align, bits = struct.unpack("<HHIIHH", body[:16])
                    if tag == _EXTENSIBLE and len(body) >= 26:
                        tag = struct.unpack("<H", body[24:26])[0]  # first bytes of the GUID
                    fmt = (tag, channels, rate, align, bits)
                elif cid == b"data":
                    if fmt is None:
                        raise FormatError(f"{path}: WAV data chunk before its fmt chunk")
                    tag, channels, rate, align, bits = fmt
                    return RiffLayout(
                        riff_size + 8, channels, rate, tag, bits, align, pos + 8, csize
                    )
                pos += 8 + csize + (csize & 1)  # chunks are padded to even sizes
    except OSError as e:
        raise FormatError(f"{path}: cannot read: {e.strerror or e}") from None


class WavReader:
    """WAV IQ; integer blocks go to the spectrum as they are, with 1/full scale."""

    name = "wav"
    patterns = ("*.wav",)

    def probe(self, path: str, options: ReadOptions) -> Header:
        size = _io.file_size(path, "WAV recording")
        _io.require_nonempty(path, size)
        lay = read_layout(path, size)
        if lay.channels == 1:
            raise FormatError(f"{path}: mono WAV: IQ needs two channels (left = I, right = Q)")
        if lay.channels != 2:
            raise FormatError(
                f"{path}: WAV with {lay.channels} channels; IQ needs two (left = I, right = Q)"
            )
        kind = TYPES.get((lay.tag, lay.bits))
        if kind is None:
            what = {_PCM: "integer", _FLOAT: "float"}.get(lay.tag, f"format tag {lay.tag}")
            raise FormatError(
                f"{path}: WAV of {lay.bits}-bit {what} samples; crunchctl reads "
                f"int16, int32 and float32"
            )
        component, full = kind
        if lay.rate <= 0:
            raise FormatError(f"{path}: WAV sample rate is {lay.rate}")
        if lay.block_align != 2 * lay.bits // 8:
            raise FormatError(
                f"{path}: WAV block align {lay.block_align} does not match two "
                f"{lay.bits}-bit channels"
            )
        nsamples = lay.data_size // lay.block_align
        center = options.center_frequency if options.center_frequency is not None else 0.0
        scaling = _io.scaling_text(full)
        return Header(
            path=path,
            format=self.name,
            sample_rate=float(lay.rate),
            center_frequency=float(center),
            nsamples=nsamples,
            acquisition_start=None,
            scaling=scaling,
            unit="" if full == 1.0 else "full scale",
            complete_size=max(lay.riff_size, lay.data_offset + lay.data_size),
            info={
                "component": component,
                "full_scale": full,
                "data_offset": lay.data_offset,
                "warnings": [],
            },
        )

    def blocks(
        self, header: Header, options: ReadOptions, start: int, count: int, lframes: int
    ) -> Iterator[Block]:
        info = header.info
        scale = 1.0 / info["full_scale"]
        for raw in _io.iter_interleaved(
            header.path,
            info["data_offset"],
            info["component"],
            header.nsamples,
            start,
            count,
            lframes,
        ):
            yield Block(raw, scale)

    def readiness(self, path: str, options: ReadOptions) -> Readiness:
        try:
            size = _io.file_size(path)
            if size == 0:
                return Readiness(False, "incomplete: empty file (0 bytes)")
            lay = read_layout(path, size)
        except IncompleteRecording as e:
            return Readiness(False, "incomplete: " + str(e).removeprefix(path + ": "))
        except FormatError:
            return Readiness(True)  # processing records the error
        need = max(lay.riff_size, lay.data_offset + lay.data_size)
        if size < need:
            return Readiness(False, f"incomplete: {size} of {need} bytes (RIFF size)")
        return Readiness(True)


READER = WavReader()
