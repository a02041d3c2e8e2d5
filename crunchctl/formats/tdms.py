"""NI TDMS recordings in the lab's layout (root IQRate/IQCarrierFrequency, RecordData/I,Q
int16, RecordHeader/gain per record), read lazily through npTDMS (docs/formats.md).
"""

from __future__ import annotations

import datetime as _dt
import os
import struct
from collections.abc import Iterator
from typing import Any

from crunchctl.errors import FormatError, IncompleteRecording
from crunchctl.formats import _io
from crunchctl.formats.base import Block, Header, Readiness, ReadOptions

LEAD_IN = 28
_TAG = b"TDSm"
_BIG_ENDIAN = 1 << 6  # ToC flag: lead-in numbers and data are big-endian
DEFAULT_CHANNELS = ("RecordData/I", "RecordData/Q")


def segments_state(path: str) -> tuple[bool, str]:
    """(complete, reason) from the segment lead-ins: each says how long its segment is.

    Reads 28 bytes per segment. A file that is not TDMS counts as complete (its reader
    then says what is wrong).
    """
    size = _io.file_size(path, "TDMS recording")
    if size == 0:
        return False, "empty file (0 bytes)"
    pos = 0
    with open(path, "rb") as f:
        while pos < size:
            f.seek(pos)
            lead = f.read(LEAD_IN)
            if len(lead) < LEAD_IN:
                return (
                    False,
                    f"{size} bytes: the file ends inside the lead-in of the segment at byte {pos}",
                )
            if lead[:4] != _TAG:
                return True, ""  # not a TDMS segment: the reader reports it
            toc = struct.unpack("<I", lead[4:8])[0]
            order = ">" if toc & _BIG_ENDIAN else "<"
            next_offset = struct.unpack(order + "Q", lead[12:20])[0]
            if next_offset == 0xFFFF_FFFF_FFFF_FFFF:
                return False, f"the segment at byte {pos} was never finished (length unset)"
            end = pos + LEAD_IN + next_offset
            if end > size:
                return False, (
                    f"{size} bytes: the file ends inside the segment at byte {pos}, "
                    f"which its lead-in says ends at byte {end}"
                )
            pos = end
    return True, ""


def _channel_names(path: str, options: ReadOptions) -> tuple[tuple[str, str], tuple[str, str]]:
    spec = options.tdms_channels
    names = tuple(s.strip() for s in spec.split(",")) if spec else DEFAULT_CHANNELS
    out = []
    for n in names:
        group, _, channel = n.rpartition("/")
        if len(names) != 2 or not group or not channel:
            raise FormatError(f"{path}: --tdms-channels must be GROUP/I,GROUP/Q, not {spec!r}")
        out.append((group, channel))
    return out[0], out[1]


def _channel(f: Any, path: str, group: str, name: str) -> Any:
    try:
        g = f[group]
    except KeyError:
        groups = ", ".join(x.name for x in f.groups()) or "none"
        raise FormatError(
            f"{path}: no TDMS group {group!r} (so no {group}/{name}); groups: "
            f"{groups}; give others with --tdms-channels GROUP/I,GROUP/Q"
        ) from None
    try:
        return g[name]
    except KeyError:
        chans = ", ".join(c.name for c in g.channels()) or "none"
        raise FormatError(
            f"{path}: no TDMS channel {group}/{name}; {group} has: {chans}; "
            f"give others with --tdms-channels GROUP/I,GROUP/Q"
        ) from None


def _utc(value: Any) -> _dt.datetime | None:
    import numpy as np

    try:
        us = np.datetime64(value, "us").astype(np.int64)
    except (TypeError, ValueError):
        return None
    return _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(microseconds=int(us))


class _RecordWindow:
    """Whole records of I and Q, read once each.

    npTDMS reads a channel in whole raw-data chunks (one record per segment in the lab's
    layout) even for a short slice, so slicing block by block would read every record
    again for each block inside it. Records up to ``MAX_RECORD_BYTES`` are therefore read
    whole and kept until the blocks move past them; larger ones are sliced directly.
    """

    MAX_RECORD_BYTES = 64 << 20

    def __init__(self, chan_i: Any, chan_q: Any, per_record: int, nsamples: int) -> None:
        self.chan_i, self.chan_q = chan_i, chan_q
        self.per_record, self.nsamples = per_record, nsamples
        self.whole = per_record * 2 * max(chan_i.dtype.itemsize, 1) <= self.MAX_RECORD_BYTES
        self.start, self.i, self.q = 0, None, None

    def take(self, a: int, n: int) -> tuple[Any, Any]:
        if not self.whole:
            return self.chan_i.read_data(a, n), self.chan_q.read_data(a, n)
        if self.i is None or a < self.start or a + n > self.start + len(self.i):
            first = (a // self.per_record) * self.per_record
            last = min(self.nsamples, -(-(a + n) // self.per_record) * self.per_record)
            self.start = first
            self.i = self.chan_i.read_data(first, last - first)
            self.q = self.chan_q.read_data(first, last - first)
        lo = a - self.start
        return self.i[lo : lo + n], self.q[lo : lo + n]


class TdmsReader:
    """TDMS through ``TdmsFile.open`` (lazy): only the slices asked for are read."""

    name = "tdms"
    patterns = ("*.tdms",)

    def probe(self, path: str, options: ReadOptions) -> Header:
        import numpy as np
        from nptdms import TdmsFile

        complete, reason = segments_state(path)
        if not complete:
            size = _io.file_size(path)
            raise IncompleteRecording(f"{path}: incomplete TDMS: {reason}", size + 1, size)
        (gi, ci), (gq, cq) = _channel_names(path, options)
        warnings: list[str] = []
        try:
            with TdmsFile.open(path) as f:
                props = dict(f.properties)
                chan_i = _channel(f, path, gi, ci)
                chan_q = _channel(f, path, gq, cq)
                nsamples = min(len(chan_i), len(chan_q))
                for c in (chan_i, chan_q):
                    if not np.issubdtype(c.dtype, np.number):
                        raise FormatError(
                            f"{path}: TDMS channel {c.path} holds {c.dtype}, not numbers"
                        )
                gains = None
                timestamp = None
                try:
                    header_group = f["RecordHeader"]
                except KeyError:
                    header_group = None
                if header_group is not None:
                    names = {c.name for c in header_group.channels()}
                    if "gain" in names:
                        gains = np.asarray(header_group["gain"][:], dtype=np.float64)
                    if "absolute timestamp" in names and len(header_group["absolute timestamp"]):
                        timestamp = _utc(header_group["absolute timestamp"][0])
        except FormatError:
            raise
        except Exception as e:  # npTDMS raises ValueError/KeyError/struct errors on damage
            raise FormatError(
                f"{path}: not a readable TDMS file ({type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''})"
            ) from None
        fs = props.get("IQRate")
        if fs is None:
            fs = options.sample_rate
        if fs is None or not float(fs) > 0:
            raise FormatError(
                f"{path}: TDMS root has no IQRate (sample rate); give it with --sample-rate HZ"
            )
        center = props.get("IQCarrierFrequency")
        if center is None:
            center = options.center_frequency if options.center_frequency is not None else 0.0
            warnings.append(
                _io.warn(
                    path, f"TDMS root has no IQCarrierFrequency; centre taken as {center:g} Hz"
                )
            )
        if nsamples == 0:
            raise FormatError(f"{path}: TDMS channels {gi}/{ci} and {gq}/{cq} hold no samples")
        per_record = props.get("NSamplesPerRecord")
        if gains is None or len(gains) == 0:
            gains = np.ones(1)
            per_record = nsamples
            scaling = "counts as stored (no RecordHeader/gain)"
            warnings.append(_io.warn(path, "no RecordHeader/gain: samples left unscaled"))
        else:
            if per_record is None:
                per_record = -(-nsamples // len(gains))
            per_record = int(per_record)
            if per_record <= 0 or len(gains) * per_record < nsamples:
                raise FormatError(
                    f"{path}: RecordHeader/gain has {len(gains)} values but "
                    f"{nsamples} samples of {per_record} per record need "
                    f"{-(-nsamples // max(per_record, 1))}"
                )
            scaling = (
                f"{gains[0]!r} V per count"
                if np.all(gains == gains[0])
                else "per-record gain, V per count (RecordHeader/gain)"
            )
        if timestamp is None:
            timestamp = _dt.datetime.fromtimestamp(os.stat(path).st_mtime, _dt.timezone.utc)
            time_source = "file mtime"
        else:
            time_source = "RecordHeader/absolute timestamp"
        return Header(
            path=path,
            format=self.name,
            sample_rate=float(fs),
            center_frequency=float(center),
            nsamples=int(nsamples),
            acquisition_start=timestamp,
            scaling=scaling,
            complete_size=None,
            unit="count" if scaling.startswith("counts") else "V",
            info={
                "channels": ((gi, ci), (gq, cq)),
                "gains": tuple(map(float, gains)),
                "per_record": int(per_record),
                "time_source": time_source,
                "rf_attenuation": props.get("RFAttentuation"),
                "records": props.get("NRecordsPerFile"),
                "warnings": warnings,
            },
        )

    def blocks(
        self, header: Header, options: ReadOptions, start: int, count: int, lframes: int
    ) -> Iterator[Block]:
        import numpy as np
        from nptdms import TdmsFile

        if (start + count) * lframes > header.nsamples:
            raise FormatError(
                f"{header.path}: asked for frames up to {start + count} of "
                f"{lframes} samples but the file holds "
                f"{header.nsamples // lframes} whole frames"
            )
        info = header.info
        (gi, ci), (gq, cq) = info["channels"]
        gains = np.asarray(info["gains"], dtype=np.float64)
        per_record = info["per_record"]
        # Two int16 channels in, one interleaved pair array out: 4 bytes per sample.
        chunk = max(1, min(count, _io.TARGET_BYTES // (lframes * 4)))
        pairs = None
        scaled = None
        try:
            with TdmsFile.open(header.path) as f:
                window = _RecordWindow(f[gi][ci], f[gq][cq], per_record, header.nsamples)
                for first in range(start, start + count, chunk):
                    k = min(chunk, start + count - first)
                    a, n = first * lframes, k * lframes
                    i_part, q_part = window.take(a, n)
                    if len(i_part) < n or len(q_part) < n:
                        raise FormatError(
                            f"{header.path}: TDMS channels ended while reading "
                            f"samples {a} to {a + n}"
                        )
                    r0, r1 = a // per_record, (a + n - 1) // per_record
                    g = gains[r0 : r1 + 1]
                    if np.all(g == g[0]):
                        # One gain over the chunk: interleave the counts; the spectrum
                        # scales while converting (the cheapest pass).
                        if pairs is None or pairs.shape[0] < n or pairs.dtype != i_part.dtype:
                            pairs = np.empty((n, 2), dtype=np.result_type(i_part, q_part))
                        p = pairs[:n]
                        p[:, 0] = i_part
                        p[:, 1] = q_part
                        yield Block(p.reshape(k, 2 * lframes), float(g[0]))
                        continue
                    # Records with different gains: each sample gets its own record's,
                    # scaled while interleaving (one pass per channel).
                    bounds = np.clip(np.arange(r0 + 1, r1 + 1) * per_record - a, 0, n)
                    counts = np.diff(np.concatenate(([0], bounds, [n])))
                    per_sample = np.repeat(g.astype(np.float32), counts)
                    if scaled is None or scaled.shape[0] < n:
                        scaled = np.empty((n, 2), dtype=np.float32)
                    s = scaled[:n]
                    np.multiply(i_part, per_sample, out=s[:, 0], dtype=np.float32, casting="unsafe")
                    np.multiply(q_part, per_sample, out=s[:, 1], dtype=np.float32, casting="unsafe")
                    yield Block(s.reshape(k, 2 * lframes), 1.0)
        except FormatError:
            raise
        except OSError as e:
            raise FormatError(f"{header.path}: cannot read: {e.strerror or e}") from None
        except Exception as e:
            raise FormatError(
                f"{header.path}: TDMS read failed ({type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''})"
            ) from None

    def readiness(self, path: str, options: ReadOptions) -> Readiness:
        try:
            complete, reason = segments_state(path)
        except FormatError:
            return Readiness(True)  # processing records the error
        except OSError as e:
            return Readiness(False, f"cannot read yet: {e.strerror or e}")
        if not complete:
            return Readiness(False, "incomplete: " + reason)
        # The last segment is whole; the settle time tells whether another one follows.
        return Readiness(None)


READER = TdmsReader()
