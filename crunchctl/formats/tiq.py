"""Reading and writing Tektronix ``.tiq`` IQ recordings (docs/formats.md).

Owns the file format only: header parsing, completeness checks, frame reads with plain
``readinto`` calls into a reused buffer (a memory map only for the small reads of
``read_samples``), and a streaming writer. Knows nothing of spectrograms, products or the
ledger.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from crunchctl.errors import IncompleteRecording, TiqError
from crunchctl.formats import _io
from crunchctl.formats.base import Block, Header, Readiness, ReadOptions

if TYPE_CHECKING:
    import numpy as np

MAGIC = b'<DataFile offset="'
_OFFSET_DIGITS = 9
_PREFIX_LEN = len(MAGIC) + _OFFSET_DIGITS + 1  # magic, nine digits, closing quote
NAMESPACE = "http://www.tektronix.com"

#: Bytes per complex sample and the numpy scalar type of one component, per NumberFormat.
FORMATS = {"Int32": (8, "i4"), "Int16": (4, "i2"), "Single": (8, "f4")}


@dataclass(frozen=True)
class TiqHeader:
    """What a ``.tiq`` header says about its data section.

    Args:
        path: the file the header was read from.
        offset: byte offset of the first sample.
        nsamples: complex samples in the data section.
        fs: complex sample rate, Hz.
        scaling: volts per integer count.
        number_format: ``Int32``, ``Int16`` or ``Single``.
        big_endian: True when ``Endian`` says ``Big``.
        center: centre frequency, Hz.
        acq_bandwidth, span, rbw, rf_attenuation: informative values, or None.
        datetime: acquisition start as written in the header (ISO 8601 text), or None.
    """

    path: str
    offset: int
    nsamples: int
    fs: float
    scaling: float
    number_format: str
    big_endian: bool
    center: float
    acq_bandwidth: float | None = None
    span: float | None = None
    rbw: float | None = None
    rf_attenuation: float | None = None
    datetime: str | None = None

    @property
    def bytes_per_sample(self) -> int:
        return FORMATS[self.number_format][0]

    @property
    def expected_size(self) -> int:
        """Bytes a complete file has at least: offset + samples x bytes per sample."""
        return self.offset + self.nsamples * self.bytes_per_sample

    @property
    def dtype(self) -> str:
        return (">" if self.big_endian else "<") + FORMATS[self.number_format][1]

    @property
    def duration(self) -> float:
        return self.nsamples / self.fs

    def acquired_at(self) -> _dt.datetime | None:
        """The acquisition start as an aware datetime (nanoseconds cut to microseconds)."""
        return parse_datetime(self.datetime) if self.datetime else None


def parse_datetime(text: str) -> _dt.datetime | None:
    """Parse a TIQ ``DateTime`` (ISO 8601, up to 9 fraction digits, offset); None if not."""
    m = re.fullmatch(r"\s*([0-9-]+T[0-9:]+)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?\s*", text)
    if not m:
        return None
    base, frac, tz = m.groups()
    iso = base + ("." + (frac + "000000")[:6] if frac else "")
    if tz:
        iso += "+00:00" if tz == "Z" else tz
    try:
        return _dt.datetime.fromisoformat(iso)
    except ValueError:
        return None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1] if "}" in tag else tag


def _read_prefix(path: Path) -> tuple[int, int]:
    """Return (offset, file size) or raise TiqError / IncompleteRecording."""
    name = str(path)
    size = _io.file_size(name, "TIQ recording", error=TiqError)
    if size == 0:
        raise IncompleteRecording(f"{name}: empty file (0 bytes)", expected=_PREFIX_LEN, actual=0)
    try:
        with open(path, "rb") as f:
            head = f.read(_PREFIX_LEN)
    except OSError as e:
        raise TiqError(f"{name}: cannot read: {e.strerror or e}") from None
    if not MAGIC.startswith(head[: len(MAGIC)]):
        raise TiqError(f'{name}: not a TIQ recording (does not start with <DataFile offset=")')
    if len(head) < _PREFIX_LEN:
        raise IncompleteRecording(
            f"{name}: header cut after {size} bytes", expected=_PREFIX_LEN, actual=size
        )
    digits = head[len(MAGIC) : len(MAGIC) + _OFFSET_DIGITS]
    closing = head[-1:]
    if not (digits.isdigit() and closing == b'"'):
        shown = head[len(MAGIC) :].split(b'"')[0].decode("ascii", "replace")
        raise TiqError(f"{name}: header offset {shown!r} is not nine decimal digits")
    offset = int(digits)
    if offset < _PREFIX_LEN:
        raise TiqError(f"{name}: header offset {offset} points inside the offset field itself")
    return offset, size


def read_header(path: str | os.PathLike) -> TiqHeader:
    """Read and check the header of a ``.tiq`` file.

    Raises:
        IncompleteRecording: the file ends inside the header (empty, or the header is cut).
        TiqError: anything else that makes the file unreadable, with a one-line message
            naming the file and the problem.
    """
    path = Path(path)
    name = str(path)
    offset, size = _read_prefix(path)
    if size < offset:
        raise IncompleteRecording(
            f"{name}: header cut: file has {size} bytes but its header says the samples "
            f"start at byte {offset}",
            expected=offset,
            actual=size,
        )
    try:
        with open(path, "rb") as f:
            raw = f.read(offset)
    except OSError as e:
        raise TiqError(f"{name}: cannot read: {e.strerror or e}") from None
    text = raw.rstrip(b"\x00 \t\r\n").decode("utf-8", "replace")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise TiqError(f"{name}: header is not valid XML ({e})") from None
    return _header_from_tree(name, root, offset)


def _header_from_tree(name: str, root: ET.Element, offset: int) -> TiqHeader:
    by_name: dict[str, list[ET.Element]] = {}
    params: dict[str, str] = {}
    product: ET.Element | None = None
    for el in root.iter():
        local = _local(el.tag)
        by_name.setdefault(local, []).append(el)
        if local == "ProductSpecific" and product is None:
            product = el
        if local == "NumericParameter" and el.get("name"):
            for child in el:
                if _local(child.tag) == "Value" and child.text:
                    params.setdefault(el.get("name", ""), child.text.strip())

    def text(local: str, *, within: ET.Element | None = None) -> str | None:
        if within is not None:
            for el in within.iter():
                if _local(el.tag) == local and el.text and el.text.strip():
                    return el.text.strip()
        for el in by_name.get(local, []):
            if el.text and el.text.strip():
                return el.text.strip()
        return None

    def required(local: str, *, within: ET.Element | None = None) -> str:
        value = text(local, within=within)
        if value is None:
            raise TiqError(f"{name}: header has no {local}")
        return value

    def number(local: str, value: str | None, *, integer: bool = False) -> float | int | None:
        if value is None:
            return None
        try:
            return int(value) if integer else float(value)
        except ValueError:
            kind = "an integer" if integer else "a number"
            raise TiqError(f"{name}: header {local} is {value!r}, not {kind}") from None

    nsamples = number("NumberSamples", required("NumberSamples"), integer=True)
    fs = number("SamplingFrequency", required("SamplingFrequency"))
    scaling = number("Scaling", required("Scaling"))
    fmt = required("NumberFormat")
    if fmt not in FORMATS:
        known = ", ".join(FORMATS)
        raise TiqError(f"{name}: unknown NumberFormat {fmt!r} (crunchctl reads {known})")
    endian = text("Endian") or "Little"
    if endian not in ("Little", "Big"):
        raise TiqError(f"{name}: unknown Endian {endian!r} (expected Little or Big)")
    samples_type = text("SamplesType") or "IQ"
    if samples_type != "IQ":
        raise TiqError(f"{name}: SamplesType {samples_type!r} is not IQ")
    center = number("Frequency", required("Frequency", within=product))
    assert nsamples is not None and fs is not None and scaling is not None and center is not None
    if nsamples < 0:
        raise TiqError(f"{name}: header NumberSamples is negative ({nsamples})")
    if not fs > 0 or not math.isfinite(fs):
        raise TiqError(f"{name}: header SamplingFrequency must be positive, not {fs}")
    if not math.isfinite(scaling) or scaling == 0:
        raise TiqError(f"{name}: header Scaling must be a non-zero number, not {scaling}")
    span = params.get("Span")
    return TiqHeader(
        path=name,
        offset=offset,
        nsamples=int(nsamples),
        fs=float(fs),
        scaling=float(scaling),
        number_format=fmt,
        big_endian=endian == "Big",
        center=float(center),
        acq_bandwidth=number("AcquisitionBandwidth", text("AcquisitionBandwidth", within=product)),
        span=number("Span", span) if span is not None else None,
        rbw=number("Resolution Bandwidth", params.get("Resolution Bandwidth")),
        rf_attenuation=number("RFAttenuation", text("RFAttenuation")),
        datetime=text("DateTime"),
    )


def check_complete(header: TiqHeader) -> int:
    """Return the file size; raise IncompleteRecording if the data section is short."""
    try:
        size = os.stat(header.path).st_size
    except OSError as e:
        raise TiqError(f"{header.path}: cannot read: {e.strerror or e}") from None
    if size < header.expected_size:
        data_bytes = header.nsamples * header.bytes_per_sample
        have = max(0, size - header.offset)
        raise IncompleteRecording(
            f"{header.path}: header says {header.nsamples} samples ({data_bytes} bytes) "
            f"but only {have} bytes of data follow",
            expected=header.expected_size,
            actual=size,
        )
    return size


def open_recording(path: str | os.PathLike) -> TiqHeader:
    """Read the header and check that the whole data section is there."""
    header = read_header(path)
    check_complete(header)
    return header


def iter_frames(
    header: TiqHeader,
    lframes: int,
    nframes: int,
    *,
    chunk_frames: int | None = None,
    target_bytes: int = 8 << 20,
) -> Iterator[np.ndarray]:
    """Yield the first ``nframes`` frames as complex64 arrays of shape (k, lframes).

    Only the frames asked for are read, chunk by chunk, and scaled to volts, so the working
    set is about ``target_bytes`` whatever the file size. Each yielded array is new (callers
    may keep them).
    """
    import numpy as np

    scale = np.float32(header.scaling)
    for raw in iter_raw_frames(
        header, lframes, nframes, chunk_frames=chunk_frames, target_bytes=target_bytes
    ):
        k = raw.shape[0]
        out = np.empty((k, lframes), dtype=np.complex64)
        np.multiply(raw, scale, out=out.view(np.float32), dtype=np.float32, casting="unsafe")
        yield out


def iter_raw_frames(
    header: TiqHeader,
    lframes: int,
    nframes: int,
    *,
    chunk_frames: int | None = None,
    target_bytes: int = 8 << 20,
    start_frame: int = 0,
) -> Iterator[np.ndarray]:
    """Yield ``nframes`` frames from ``start_frame`` unscaled, as (k, 2 * lframes) arrays of
    I, Q pairs.

    The arrays have the file's number type and byte order (``header.dtype``); multiply by
    ``header.scaling`` for volts. Fast path for :func:`iter_frames` and the spectrogram:
    the file is read with plain ``readinto`` calls into **one reused buffer**, so each
    yielded array is only valid until the next one is requested (copy it to keep it).
    Reading, unlike a memory map, leaves no file pages in this process's resident memory.

    Raises:
        TiqError: more frames asked for than the file holds, or the file cannot be read
            (or got shorter while being read).
    """
    import numpy as np

    if (start_frame + nframes) * lframes > header.nsamples:
        raise TiqError(
            f"{header.path}: asked for {start_frame + nframes} frames of {lframes} samples but the file "
            f"holds {header.nsamples // lframes} whole frames ({header.nsamples} samples)"
        )
    if nframes <= 0:
        return
    if chunk_frames is None:
        chunk_frames = max(1, target_bytes // (lframes * 8))
    chunk_frames = max(1, min(chunk_frames, nframes))
    buf = np.empty((chunk_frames, 2 * lframes), dtype=header.dtype)
    try:
        f = open(header.path, "rb", buffering=0)
    except OSError as e:
        raise TiqError(f"{header.path}: cannot read: {e.strerror or e}") from None
    with f:
        try:
            f.seek(header.offset + start_frame * lframes * header.bytes_per_sample)
        except OSError as e:
            raise TiqError(f"{header.path}: cannot read: {e.strerror or e}") from None
        for start in range(0, nframes, chunk_frames):
            k = min(chunk_frames, nframes - start)
            view = buf[:k]
            _read_exactly(f, memoryview(view).cast("B"), header, (start_frame + start) * lframes)
            yield view


def _read_exactly(f: BinaryIO, dest: memoryview, header: TiqHeader, first_sample: int) -> None:
    """Fill ``dest`` from ``f``; a short read means the file shrank: TiqError."""
    got = 0
    want = len(dest)
    while got < want:
        try:
            n = f.readinto(dest[got:])
        except OSError as e:
            raise TiqError(f"{header.path}: cannot read: {e.strerror or e}") from None
        if not n:
            at = header.offset + first_sample * header.bytes_per_sample + got
            raise TiqError(
                f"{header.path}: file ends at byte {at} while reading its samples "
                f"(header says {header.expected_size} bytes); was it cut or "
                f"overwritten?"
            )
        got += n


def read_samples(header: TiqHeader, start: int = 0, count: int | None = None) -> np.ndarray:
    """Read ``count`` complex samples from ``start`` as complex64 volts (small reads, tests)."""
    import numpy as np

    if count is None:
        count = header.nsamples - start
    mm = np.memmap(
        header.path,
        dtype=header.dtype,
        mode="r",
        offset=header.offset,
        shape=(header.nsamples * 2,),
    )
    raw = np.asarray(mm[start * 2 : (start + count) * 2], dtype=np.float32)
    del mm
    return (raw * np.float32(header.scaling)).view(np.complex64)


# --------------------------------------------------------------------------------- writer


def build_header(
    *,
    nsamples: int,
    fs: float,
    center: float,
    scaling: float,
    number_format: str = "Int32",
    big_endian: bool = False,
    acquired: _dt.datetime | str | None = None,
    acq_bandwidth: float | None = None,
    rbw: float | None = None,
    rf_attenuation: float = 0.0,
    model: str = "RSA5106B",
    pad_to: int = 0,
) -> bytes:
    """Return a complete header (offset field filled in, padded) as the instrument writes it."""
    if number_format not in FORMATS:
        raise ValueError(f"unknown number format {number_format!r}")
    if acquired is None:
        acquired = _dt.datetime.now(_dt.timezone.utc).astimezone()
    if isinstance(acquired, _dt.datetime):
        if acquired.tzinfo is None:
            acquired = acquired.astimezone()
        stamp = acquired.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000" + acquired.strftime("%z")
        stamp = stamp[:-2] + ":" + stamp[-2:]
    else:
        stamp = acquired
    bw = acq_bandwidth if acq_bandwidth is not None else fs / 1.25
    rbw_value = rbw if rbw is not None else fs / 1000.0
    endian = "Big" if big_endian else "Little"
    body = f"""version="1.0" xmlns="{NAMESPACE}">
  <DataSetsCollection xmlns="{NAMESPACE}">
    <DataSetCollection xmlns="{NAMESPACE}">
      <DataSetCollectionVersion>1.0</DataSetCollectionVersion>
      <DataSet>
        <DataDescription>
          <NumberSamples type="System.Int64">{nsamples}</NumberSamples>
          <SamplingFrequency type="System.Double">{fs!r}</SamplingFrequency>
          <Scaling type="System.Double">{scaling!r}</Scaling>
          <NumberFormat>{number_format}</NumberFormat>
          <Endian>{endian}</Endian>
          <SamplesType>IQ</SamplesType>
          <DateTime>{stamp}</DateTime>
        </DataDescription>
        <ProductSpecific type="">
          <DateTime>{stamp}</DateTime>
          <Frequency type="System.Double">{center!r}</Frequency>
          <AcquisitionBandwidth type="System.Double">{bw!r}</AcquisitionBandwidth>
          <RFAttenuation type="System.Double">{rf_attenuation!r}</RFAttenuation>
          <Gain type="System.Double">0</Gain>
          <InternalGain type="System.Double">0</InternalGain>
          <IQTimeCorrection type="System.Double">0</IQTimeCorrection>
          <ReferenceLevel type="System.Double">-10</ReferenceLevel>
          <TriggerIndex type="System.Int64">0</TriggerIndex>
        </ProductSpecific>
      </DataSet>
    </DataSetCollection>
  </DataSetsCollection>
  <Setup>
    <RSAPersist xmlns="{NAMESPACE}">
      <Application>SignalVu</Application>
      <MainWindow />
      <Instrument>{model}</Instrument>
      <Internal>
        <ControlSettings>
          <Frequency>
            <MeasurementFrequency type="System.Double">{center!r}</MeasurementFrequency>
            <FrequencyReference>Internal</FrequencyReference>
          </Frequency>
          <Composite pid="analysis">
            <Items>
              <NumericParameter name="Span" pid="globalrange">
                <Value>{bw!r}</Value>
              </NumericParameter>
              <NumericParameter name="Resolution Bandwidth" pid="fmtRBW">
                <Value>{rbw_value!r}</Value>
              </NumericParameter>
            </Items>
          </Composite>
        </ControlSettings>
      </Internal>
    </RSAPersist>
  </Setup>
</DataFile>"""
    # The offset counts the whole header, itself included; pad to a round size like SignalVu.
    prefix_len = _PREFIX_LEN + 1  # the space after the closing quote
    length = prefix_len + len(body.encode("utf-8"))
    offset = max(pad_to, length)
    if offset >= 10**_OFFSET_DIGITS:
        raise ValueError("header too long")
    text = f'<DataFile offset="{offset:0{_OFFSET_DIGITS}d}" ' + body
    raw = text.encode("utf-8")
    return raw + b" " * (offset - len(raw))


class TiqWriter:
    """Stream complex samples into a ``.tiq`` file, chunk by chunk.

    The header is written first with the final sample count, so ``nsamples`` must be known
    up front. Use as a context manager; ``write`` takes complex arrays in volts.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        nsamples: int,
        fs: float,
        center: float,
        scaling: float,
        number_format: str = "Int32",
        big_endian: bool = False,
        **header_fields: object,
    ) -> None:
        self.path = Path(path)
        self.nsamples = nsamples
        self.scaling = scaling
        self.number_format = number_format
        self.big_endian = big_endian
        self.header = build_header(
            nsamples=nsamples,
            fs=fs,
            center=center,
            scaling=scaling,
            number_format=number_format,
            big_endian=big_endian,
            **header_fields,
        )  # type: ignore[arg-type]
        self.written = 0
        self._f = open(self.path, "wb")
        self._f.write(self.header)

    def write(self, samples: np.ndarray) -> None:
        import numpy as np

        samples = np.asarray(samples).ravel()
        if self.written + samples.size > self.nsamples:
            raise ValueError("more samples than the header announces")
        fmt = FORMATS[self.number_format][1]
        dtype = np.dtype((">" if self.big_endian else "<") + fmt)
        pairs = np.empty(samples.size * 2, dtype=np.float64)
        pairs[0::2] = samples.real
        pairs[1::2] = samples.imag
        pairs /= self.scaling
        if fmt != "f4":
            info = np.iinfo(dtype)
            np.rint(pairs, out=pairs)
            np.clip(pairs, info.min, info.max, out=pairs)
        self._f.write(pairs.astype(dtype).tobytes())
        self.written += samples.size

    def write_raw(self, data: bytes) -> None:
        """Append raw bytes as they are (tests use this to cut or pad files)."""
        self._f.write(data)

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()

    def __enter__(self) -> TiqWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_tiq(
    path: str | os.PathLike,
    chunks: Iterable[np.ndarray],
    *,
    nsamples: int,
    fs: float,
    center: float,
    scaling: float,
    **kw: object,
) -> Path:
    """Write a recording from an iterable of complex chunks (volts); returns the path."""
    with TiqWriter(path, nsamples=nsamples, fs=fs, center=center, scaling=scaling, **kw) as w:  # type: ignore[arg-type]
        for chunk in chunks:
            w.write(chunk)
        if w.written != nsamples:
            raise ValueError(f"wrote {w.written} samples, header announces {nsamples}")
    return Path(path)


# ------------------------------------------------------------------ the registry's reader


class TiqReader:
    """``.tiq`` through the reader contract (docs/formats.md): raw counts + volts per count.

    Blocks are the file's own integers (or float32), interleaved I, Q, with
    ``scale = Scaling``: the spectrum converts and scales them in one pass.
    """

    name = "tiq"
    patterns = ("*.tiq",)

    def probe(self, path: str, options: ReadOptions) -> Header:
        t = read_header(path)
        acquired = t.acquired_at()
        warnings = []
        if t.datetime and acquired is None:
            warnings.append(
                _io.warn(
                    path,
                    f"header DateTime {t.datetime.strip()!r} is not an "
                    f"ISO 8601 time: acquisition time unknown",
                )
            )
        return Header(
            path=t.path,
            format=self.name,
            sample_rate=t.fs,
            center_frequency=t.center,
            nsamples=t.nsamples,
            acquisition_start=acquired,
            scaling=f"{t.scaling!r} V per count ({t.number_format})",
            complete_size=t.expected_size,
            info={
                "offset": t.offset,
                "number_format": t.number_format,
                "big_endian": t.big_endian,
                "volts_per_count": t.scaling,
                "datetime": t.datetime,
                "acq_bandwidth": t.acq_bandwidth,
                "span": t.span,
                "rbw": t.rbw,
                "rf_attenuation": t.rf_attenuation,
                "warnings": warnings,
            },
        )

    @staticmethod
    def tiq_header(header: Header) -> TiqHeader:
        i = header.info
        return TiqHeader(
            path=header.path,
            offset=i["offset"],
            nsamples=header.nsamples,
            fs=header.sample_rate,
            scaling=i["volts_per_count"],
            number_format=i["number_format"],
            big_endian=i["big_endian"],
            center=header.center_frequency,
            acq_bandwidth=i.get("acq_bandwidth"),
            span=i.get("span"),
            rbw=i.get("rbw"),
            rf_attenuation=i.get("rf_attenuation"),
            datetime=i.get("datetime"),
        )

    def blocks(
        self, header: Header, options: ReadOptions, start: int, count: int, lframes: int
    ) -> Iterator[Block]:
        t = self.tiq_header(header)
        for raw in iter_raw_frames(t, lframes, count, start_frame=start):
            yield Block(raw, t.scaling)

    def check_complete(self, header: Header) -> None:
        """IncompleteRecording with the TIQ wording (samples and bytes) if the data is short."""
        check_complete(self.tiq_header(header))

    def as_far_as_it_goes(self, header: Header) -> Header:
        """The header of an incomplete recording cut to the whole samples present, with
        ``info["incomplete"]`` saying how much was written (docs/formats.md)."""
        import dataclasses

        t = self.tiq_header(header)
        try:
            size = os.stat(header.path).st_size
        except OSError as e:
            raise TiqError(f"{header.path}: cannot read: {e.strerror or e}") from None
        whole = min(t.nsamples, max(0, size - t.offset) // t.bytes_per_sample)
        return dataclasses.replace(
            header,
            nsamples=whole,
            info={
                **header.info,
                "incomplete": f"{whole} of the {t.nsamples} samples its header "
                f"announces were written",
            },
        )

    def readiness(self, path: str, options: ReadOptions) -> Readiness:
        try:
            check_complete(read_header(path))
        except IncompleteRecording as e:
            reason = str(e)
            if reason.startswith(path + ": "):
                reason = reason[len(path) + 2 :]
            return Readiness(False, "incomplete: " + reason)
        except TiqError:
            return Readiness(True)  # processing records the error
        return Readiness(True)


READER = TiqReader()
