"""SigMF recordings (``.sigmf-meta`` + ``.sigmf-data``, or a ``.sigmf`` archive), read
through the ``sigmf`` package; either file name, or both, is one recording (docs/formats.md).
"""

from __future__ import annotations

import json
import os
import re
import warnings as _warnings
from collections.abc import Iterator
from typing import Any

from crunchctl.errors import FormatError, IncompleteRecording
from crunchctl.formats import _io
from crunchctl.formats.base import Block, Header, Readiness, ReadOptions

META, DATA, ARCHIVE = ".sigmf-meta", ".sigmf-data", ".sigmf"
_DATATYPE = re.compile(r"^(c|r)(f32|f64|i32|i16|u32|u16|i8|u8)(_le|_be)?$")


def pair(path: str) -> tuple[str, str]:
    """(meta, data) file names of the recording ``path`` belongs to."""
    low = path.lower()
    for ext in (META, DATA):
        if low.endswith(ext):
            base = path[: -len(ext)]
            return base + META, base + DATA
    return path + META, path + DATA


def recording_files(path: str) -> tuple[str, ...]:
    """The files of the recording ``path`` belongs to, the ledger item first: data, then
    meta; an archive is one file. The registry asks this (docs/formats.md)."""
    if not path.lower().endswith((META, DATA)):
        return (path,)  # an archive, or another name read as SigMF
    meta, data = pair(path)
    return data, meta


def _datatype_info(path: str, datatype: Any) -> tuple[str, float, float]:
    """(numpy component type, full scale, zero point) of a complex SigMF datatype."""
    m = _DATATYPE.match(str(datatype)) if isinstance(datatype, str) else None
    if m is None:
        raise FormatError(f"{path}: unknown SigMF datatype {datatype!r}")
    kind, num, endian = m.groups()
    if kind == "r":
        raise FormatError(f"{path}: datatype {datatype}: real-valued samples: not IQ")
    order = ">" if endian == "_be" else "<"
    letter, bits = num[0], int(num[1:])
    component = ("i" if letter == "i" else "u" if letter == "u" else "f") + str(bits // 8)
    if letter == "f":
        return order + component, 1.0, 0.0
    # The package's autoscale: signed / 2^(bits-1); unsigned minus 2^(bits-1) first.
    full = 2.0 ** (bits - 1)
    return order + component, full, full if letter == "u" else 0.0


class SigmfReader:
    """SigMF through the ``sigmf`` package; plain data files are then read in chunks here
    (same numbers as the package's ``read_samples``, a single pass instead of three)."""

    name = "sigmf"
    patterns = ("*" + META, "*" + DATA, "*" + ARCHIVE)

    def probe(self, path: str, options: ReadOptions) -> Header:
        import sigmf
        from sigmf.error import SigMFError

        archive = path.lower().endswith(ARCHIVE)
        if archive:
            name = path
            _io.file_size(path, "SigMF archive")
        else:
            meta_fn, data_fn = pair(path)
            name = data_fn
            have_meta, have_data = os.path.isfile(meta_fn), os.path.isfile(data_fn)
            if not have_meta and not have_data:
                _io.file_size(path, "SigMF recording")  # names what is wrong with it
            if not have_meta:
                raise FormatError(
                    f"{path}: SigMF data without its metadata "
                    f"({os.path.basename(meta_fn)} is missing)"
                )
            if not have_data:
                raise FormatError(
                    f"{path}: SigMF metadata without its data "
                    f"({os.path.basename(data_fn)} is missing)"
                )
            meta = self._meta_json(meta_fn)
            g = meta.get("global") if isinstance(meta, dict) else None
            if not isinstance(g, dict):
                raise FormatError(f"{meta_fn}: SigMF metadata has no global object")
            component, full, zero = _datatype_info(name, g.get("core:datatype"))
            if g.get("core:sample_rate") is None:
                raise FormatError(f"{name}: SigMF metadata has no core:sample_rate")
            size = _io.file_size(data_fn, "SigMF dataset")
            _io.require_nonempty(data_fn, size)
            sample_bytes = 2 * int(component[-1])
            if size % sample_bytes:
                raise IncompleteRecording(
                    f"{name}: truncated: {size} bytes is not a whole number of "
                    f"{sample_bytes}-byte {g.get('core:datatype')} samples",
                    expected=size + sample_bytes - size % sample_bytes,
                    actual=size,
                )
        try:
            with _warnings.catch_warnings():
                _warnings.simplefilter("ignore")
                handle = sigmf.fromfile(path, skip_checksum=not options.verify_checksum)
        except (SigMFError, ValueError, KeyError, OSError) as e:
            text = str(e).splitlines()[0] if str(e) else type(e).__name__
            if "hash" in text.lower() or "checksum" in text.lower():
                raise FormatError(
                    f"{name}: SHA-512 checksum does not match the data ({text})"
                ) from None
            raise FormatError(f"{name}: SigMF metadata not usable: {text}") from None
        except Exception as e:  # jsonschema's ValidationError and the like
            text = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise FormatError(f"{name}: SigMF metadata not usable: {text}") from None
        if not hasattr(handle, "get_captures"):
            raise FormatError(f"{name}: a SigMF collection, not one recording")
        g = handle.get_global_info()
        datatype = g.get("core:datatype")
        component, full, zero = _datatype_info(name, datatype)
        channels = int(g.get("core:num_channels", 1) or 1)
        if channels != 1:
            raise FormatError(f"{name}: {channels} channels; crunchctl reads one-channel SigMF")
        fs = g.get("core:sample_rate")
        if fs is None:
            raise FormatError(f"{name}: SigMF metadata has no core:sample_rate")
        try:
            fs = float(fs)
        except (TypeError, ValueError):
            raise FormatError(f"{name}: core:sample_rate {fs!r} is not a number") from None
        if not fs > 0:
            raise FormatError(f"{name}: core:sample_rate must be positive, not {fs}")
        captures = handle.get_captures() or [{}]
        first = captures[0]
        warnings = []
        center = first.get("core:frequency")
        if center is None:
            center = options.center_frequency if options.center_frequency is not None else 0.0
            warnings.append(
                _io.warn(
                    name, f"first capture has no core:frequency; centre taken as {center:g} Hz"
                )
            )
        from crunchctl.formats.tiq import parse_datetime

        when = first.get("core:datetime")
        start = parse_datetime(when) if isinstance(when, str) else None
        data_file = getattr(handle, "data_file", None)
        offset = int(getattr(handle, "data_offset", 0) or 0)
        offset += int(first.get("core:header_bytes", 0) or 0) if offset == 0 else 0
        fast = data_file is not None and not archive
        scaling = _io.scaling_text(full, zero)
        return Header(
            path=str(data_file) if fast else name,
            format=self.name,
            sample_rate=fs,
            center_frequency=float(center),
            nsamples=int(handle.sample_count),
            acquisition_start=start,
            scaling=f"{scaling} ({datatype})",
            complete_size=None,
            unit="" if full == 1.0 else "full scale",
            info={
                "component": component,
                "full_scale": full,
                "zero": zero,
                "offset": offset,
                "fast": fast,
                "source": path,
                "datatype": datatype,
                "warnings": warnings,
            },
        )

    @staticmethod
    def _meta_json(meta_fn: str) -> Any:
        try:
            with open(meta_fn, "rb") as f:
                return json.load(f)
        except OSError as e:
            raise FormatError(f"{meta_fn}: cannot read: {e.strerror or e}") from None
        except ValueError as e:
            raise FormatError(f"{meta_fn}: SigMF metadata is not valid JSON ({e})") from None

    def blocks(
        self, header: Header, options: ReadOptions, start: int, count: int, lframes: int
    ) -> Iterator[Block]:
        info = header.info
        scale = 1.0 / info["full_scale"]
        if not info["fast"]:
            yield from self._package_blocks(header, options, start, count, lframes)
            return
        raws = _io.iter_interleaved(
            header.path, info["offset"], info["component"], header.nsamples, start, count, lframes
        )
        yield from _io.offset_blocks(raws, info["zero"], scale)

    def _package_blocks(
        self, header: Header, options: ReadOptions, start: int, count: int, lframes: int
    ) -> Iterator[Block]:
        """Archives: the package's own ``read_samples``, a few MB at a time."""
        import sigmf

        handle = sigmf.fromfile(header.info["source"], skip_checksum=True)
        chunk = max(1, _io.TARGET_BYTES // (lframes * 8))
        for first in range(start, start + count, chunk):
            k = min(chunk, start + count - first)
            x = handle.read_samples(first * lframes, k * lframes)
            yield Block(x.reshape(k, lframes), 1.0)

    def readiness(self, path: str, options: ReadOptions) -> Readiness:
        if path.lower().endswith(ARCHIVE):
            return Readiness(None)
        meta_fn, data_fn = pair(path)
        group = data_fn
        files = (meta_fn, data_fn)
        if not os.path.isfile(data_fn):
            return Readiness(False, "waiting for its .sigmf-data", group, files)
        if not os.path.isfile(meta_fn):
            return Readiness(False, "waiting for its .sigmf-meta", group, files)
        try:
            meta = self._meta_json(meta_fn)
            component, _, _ = _datatype_info(data_fn, meta["global"]["core:datatype"])
        except FormatError as e:
            if "not valid JSON" in str(e):
                return Readiness(False, "metadata still being written", group, files)
            return Readiness(None, "", group, files)  # processing records the error
        except (KeyError, TypeError):
            return Readiness(None, "", group, files)
        try:
            size = os.path.getsize(data_fn)
        except OSError:
            return Readiness(False, "waiting for its .sigmf-data", group, files)
        sample_bytes = 2 * int(component[-1])
        if size == 0 or size % sample_bytes:
            return Readiness(
                False, f"incomplete: {size} bytes is not a whole number of samples", group, files
            )
        # Whole samples and both files there: the settle time decides.
        return Readiness(None, "", group, files)


READER = SigmfReader()
