"""Recording formats: the registry that picks a reader for a file (docs/formats.md).

One module per format; each registers here with one line (name, module, extensions).
Modules are imported only when a file of theirs is read, so importing this is cheap.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crunchctl.errors import FormatError, IncompleteRecording, UsageError

if TYPE_CHECKING:
    from crunchctl.formats.base import Block, Header, Reader, Readiness, ReadOptions

__all__ = [
    "Block",
    "Header",
    "ReadOptions",
    "Reader",
    "Readiness",
    "Registration",
    "check_name",
    "extensions",
    "item_path",
    "names",
    "open_recording",
    "patterns",
    "reader_for",
    "readiness",
    "recording_files",
    "registration",
    "registration_for",
]


@dataclass(frozen=True)
class Registration:
    """One format: its name, the module holding ``READER``, and the extensions it owns.

    ``options``: the read options (fields of :class:`ReadOptions`, named as settings) that
    change what this format's reader reads: they are part of the settings digest of its
    recordings, so a change redoes them (docs/formats.md). ``files``: the name of a function
    in ``module`` giving every file of one recording, the ledger item first, for formats
    whose recording is more than one file (SigMF: data and meta); None: the file itself.
    ``needs_sample_rate``: files of this format carry no sample rate (raw IQ), so watch
    looks at them only when one is configured.
    ``typed_by_extension``: the extension names the sample type (raw IQ), so a file of
    any name can be read as one type with ``--format cf32`` or ``--format raw:cf32`` (the
    reader's ``typed(sample_type)``).
    """

    name: str
    module: str
    extensions: tuple[str, ...]
    options: tuple[str, ...] = ()
    files: str | None = None
    needs_sample_rate: bool = False
    typed_by_extension: bool = False

    def sample_types(self) -> tuple[str, ...]:
        """The sample types ``--format`` may name (``cf32``, ``cs16``, ...), if any."""
        return tuple(e[1:] for e in self.extensions) if self.typed_by_extension else ()


_REGISTRY: dict[str, Registration] = {}
_ENDINGS: dict[str, Registration] = {}  # extension -> the first format registering it
_SEVERAL: tuple[str, ...] = ()  # extensions of formats whose recording is several files


def register(
    name: str,
    module: str,
    *extensions: str,
    options: tuple[str, ...] = (),
    files: str | None = None,
    needs_sample_rate: bool = False,
    typed_by_extension: bool = False,
) -> None:
    """Register a format: ``module`` must define ``READER`` (a :class:`Reader`)."""
    if any(not e.startswith(".") for e in extensions):
        raise ValueError(f"format {name}: extensions start with a dot")
    _REGISTRY[name] = Registration(
        name,
        module,
        tuple(e.lower() for e in extensions),
        tuple(options),
        files,
        needs_sample_rate,
        typed_by_extension,
    )
    global _SEVERAL
    _ENDINGS.clear()
    for reg in _REGISTRY.values():
        for ext in reg.extensions:
            _ENDINGS.setdefault(ext, reg)
    _SEVERAL = tuple(e for e, r in _ENDINGS.items() if r.files is not None)


# ------------------------------------------------------------------ the formats (one line each)
register("tiq", "crunchctl.formats.tiq", ".tiq")
register(
    "sigmf",
    "crunchctl.formats.sigmf",
    ".sigmf-meta",
    ".sigmf-data",
    ".sigmf",
    options=("center_frequency",),
    files="recording_files",
)
register(
    "tdms",
    "crunchctl.formats.tdms",
    ".tdms",
    options=("sample_rate", "center_frequency", "tdms_channels"),
)
register("wav", "crunchctl.formats.wav", ".wav", options=("center_frequency",))
register(
    "raw",
    "crunchctl.formats.raw",
    ".cf32",
    ".fc32",
    ".cfile",
    ".cf64",
    ".fc64",
    ".cs32",
    ".sc32",
    ".cs16",
    ".sc16",
    ".cs8",
    ".sc8",
    ".cu8",
    ".uc8",
    options=("sample_rate", "center_frequency"),
    needs_sample_rate=True,
    typed_by_extension=True,
)


# ---------------------------------------------------------------------------------- lookups


def names() -> list[str]:
    """Registered format names, in registration order."""
    return list(_REGISTRY)


def registration(name: str) -> Registration:
    return _REGISTRY[name]


def extensions() -> list[str]:
    """Every registered extension (``.tiq``, ``.sigmf-meta``, ...)."""
    return [e for reg in _REGISTRY.values() for e in reg.extensions]


def check_name(name: str | None) -> str | None:
    """A ``--format`` value in its one spelling: a format name (``tiq``), or a format and a
    sample type (``raw:cf32``, also given as ``cf32``); UsageError if it names neither."""
    if name is None or name == "":
        return None
    key = name.strip().lower()
    if key in _REGISTRY:
        return key
    fmt, _, sample_type = key.rpartition(":")
    sample_type = sample_type.lstrip(".")
    for reg in _REGISTRY.values():
        if fmt in ("", reg.name) and sample_type in reg.sample_types():
            return f"{reg.name}:{sample_type}"
    raise UsageError(
        f"unknown format {name!r}; choose one of {', '.join(_REGISTRY)}, or "
        f"a raw IQ sample type for files whose extension does not say it: "
        f"{', '.join(_sample_types())} (also written raw:cf32)"
    )


def _sample_types() -> list[str]:
    return [t for reg in _REGISTRY.values() for t in reg.sample_types()]


def _by_extension(path: str) -> Registration | None:
    low = os.path.basename(path).lower()
    endings = _ENDINGS
    # The longest matching extension wins (``.sigmf-data`` over a shorter one): try the
    # name's endings from its first dot on; a name is more than its extension. Looked up,
    # not searched: a watch asks this for every file of a folder of thousands.
    i = low.find(".", 1)
    while i > 0:
        reg = endings.get(low[i:])
        if reg is not None:
            return reg
        i = low.find(".", i + 1)
    return None


def _load(reg: Registration) -> Reader:
    module = importlib.import_module(reg.module)
    return module.READER  # type: ignore[no-any-return]


def registration_for(path: str | os.PathLike, forced: str | None = None) -> Registration | None:
    """The registration that reads ``path`` (``forced``, else by extension); None if no
    format claims it. Imports no reader module."""
    if forced:
        try:  # a --format value: a format's name, or a raw sample type (raw:cf32, cf32)
            name = check_name(forced)
        except UsageError:
            return None
        return _REGISTRY.get((name or "").partition(":")[0])
    return _by_extension(os.fspath(path))


def name_expr(
    paths: object, forced: str | None = None, only: Iterable[str] | None = None
) -> object:
    """A polars expression giving the format name of each path in ``paths`` (an expression
    of strings): the same choice as :func:`registration_for`, for many paths at once (the
    done rule asks it for every row); null where no format claims a path. With ``only``,
    formats not named there give null too (fewer branches to evaluate)."""
    import polars as pl

    if forced:
        reg = registration_for("", forced)
        return pl.lit(reg.name if reg else None, dtype=pl.String())
    kept = None if only is None else set(only)
    if kept is not None and not kept:
        return pl.lit(None, dtype=pl.String())
    last = r"([^/\\\\]*)$" if os.sep == "\\" else r"([^/]*)$"  # the file name
    name = paths.str.extract(last).str.to_lowercase()  # type: ignore[attr-defined]
    expr = pl.lit(None, dtype=pl.String())
    # Shortest first, so the longest matching extension is the outermost branch and wins.
    for ext, reg in sorted(_ENDINGS.items(), key=lambda e: len(e[0])):
        found = pl.lit(reg.name) if kept is None or reg.name in kept else pl.lit(None)
        expr = (
            pl.when(name.str.ends_with(ext) & (name.str.len_chars() > len(ext)))
            .then(found)
            .otherwise(expr)
        )
    return expr


def reader_for(path: str | os.PathLike, forced: str | None = None) -> Reader:
    """The reader for ``path``: ``forced`` (a ``--format`` value, see :func:`check_name`)
    if given, else by extension.

    Raises:
        FormatError: the extension is not one crunchctl knows (the message lists them).
        UsageError: ``forced`` names no registered format.
    """
    path = os.fspath(path)
    if forced:
        name, _, sample_type = check_name(forced).partition(":")  # type: ignore[union-attr]
        reader = _load(_REGISTRY[name])
        return reader.typed(sample_type) if sample_type else reader  # type: ignore[attr-defined]
    reg = _by_extension(path)
    if reg is None:
        _not_a_folder(path)
        ext = os.path.splitext(path)[1] or "(none)"
        raise FormatError(
            f"{path}: unknown recording format (extension {ext}); crunchctl "
            f"reads {' '.join(extensions())}, or give --format NAME (raw IQ "
            f"of any name: --format cf32, cs16, cu8, ...)"
        )
    return _load(reg)


def _not_a_folder(path: str) -> None:
    """FormatError if ``path`` is a folder (directory): say so, and how to process what it
    holds."""
    if os.path.isdir(path):
        raise FormatError(
            f"{path}: is a directory, not a recording; to process the recordings "
            f"in it, give them with a glob ({os.path.join(path, '*.tiq')}) or "
            f"run: crunchctl watch --once {path}"
        )


def recording_files(path: str | os.PathLike, forced: str | None = None) -> tuple[str, ...]:
    """Every file of the recording ``path`` belongs to, its ledger item first (a SigMF pair:
    data, then meta); ``(path,)`` for a one-file format or a file no format claims.

    Never raises; imports a reader module only for formats of several files.
    """
    path = os.fspath(path)
    if not forced and not path.lower().endswith(_SEVERAL):
        return (path,)  # the common case, asked for every file of a folder: no lookup
    reg = registration_for(path, forced)
    if reg is None or reg.files is None:
        return (path,)
    files = getattr(importlib.import_module(reg.module), reg.files)
    return tuple(files(path))


def item_path(path: str | os.PathLike, forced: str | None = None) -> str:
    """The ledger item a file belongs to (a SigMF pair is one item: its data file).

    Never raises and imports no reader module for extensions it does not know.
    """
    return recording_files(path, forced)[0]


def open_recording(
    path: str | os.PathLike,
    options: ReadOptions | None = None,
    forced: str | None = None,
    *,
    partial: bool = False,
) -> tuple[Reader, Header]:
    """Pick the reader, probe the header, and check the recording is complete.

    Args:
        partial: an incomplete recording is opened as far as it goes (the whole samples
            present; ``header.info["incomplete"]`` says how much), where its reader can
            (``as_far_as_it_goes``); otherwise it raises as usual.

    Raises:
        FormatError: unknown format or unreadable file (one line naming the file).
        IncompleteRecording: shorter than its header says.
    """
    from crunchctl.formats.base import ReadOptions

    options = options or ReadOptions()
    _not_a_folder(os.fspath(path))
    reader = reader_for(path, forced)
    header = reader.probe(os.fspath(path), options)
    cut = getattr(reader, "as_far_as_it_goes", None)
    if partial and cut is not None:
        try:
            _check_complete(reader, header)
        except IncompleteRecording:
            return reader, cut(header)
        return reader, header
    try:
        _check_complete(reader, header)
    except IncompleteRecording as e:
        if cut is None:
            raise
        # Said where it happens: this is what an operator looks for (docs/formats.md).
        raise IncompleteRecording(
            f"{e} (process --incomplete reads the whole frames present)", e.expected, e.actual
        ) from None
    return reader, header


def _check_complete(reader: Reader, header: Header) -> None:
    """IncompleteRecording if the recording is shorter than its header says."""
    own_check = getattr(reader, "check_complete", None)
    if own_check is not None:  # a reader may word the shortfall in its own terms
        own_check(header)
    elif header.complete_size is not None:
        try:
            size = os.stat(header.path).st_size
        except OSError as e:
            raise FormatError(f"{header.path}: cannot read: {e.strerror or e}") from None
        if size < header.complete_size:
            raise IncompleteRecording(
                f"{header.path}: {size} bytes, but its header says a complete file has "
                f"{header.complete_size}",
                expected=header.complete_size,
                actual=size,
            )


def patterns(options: ReadOptions | None = None) -> tuple[str, ...]:
    """File-name patterns (fnmatch) of every registered format, for watch.

    Formats without a sample rate of their own (raw IQ) only when one is configured.
    """
    # No ReadOptions built here: ``watch --help`` shows these, and base.py is not needed.
    rate = options.sample_rate if options is not None else None
    out: list[str] = []
    for reg in _REGISTRY.values():
        if reg.needs_sample_rate and not rate:
            continue
        out.extend("*" + e for e in reg.extensions)
    return tuple(out)


def readiness(
    path: str | os.PathLike, options: ReadOptions | None = None, forced: str | None = None
) -> Readiness:
    """Whether a recording is complete enough to process (watch calls this).

    For a file no reader claims (a ``--pattern`` beyond the known formats) no format can
    tell: ``complete`` is None, so the settle time decides, and processing records the
    error.
    """
    from crunchctl.formats.base import Readiness, ReadOptions

    path = os.fspath(path)
    try:
        reader = reader_for(path, forced)
    except (FormatError, UsageError):
        return Readiness(None, group=item_path(path, forced))
    return reader.readiness(path, options or ReadOptions())


def __getattr__(name: str) -> Any:
    # The reader contract's types, imported when first used: ``crunchctl --help`` reads
    # the registry (``watch --help`` shows its patterns) and needs none of them.
    if name in ("Block", "Header", "ReadOptions", "Reader", "Readiness"):
        from crunchctl.formats import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
