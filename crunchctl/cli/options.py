"""The options several commands share, declared once as ``Annotated`` aliases.

A command module names its options with these aliases; options only one command has are
declared in that command's module. Light imports only: this runs on every ``--help``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from crunchctl import catalog
from crunchctl.config import WINDOWS

if TYPE_CHECKING:
    from crunchctl.config import Settings

SPECTROGRAM = "Spectrogram"  # help panel of the numerics options
CMAPS = ("viridis", "magma", "inferno", "plasma", "cividis", "jet", "gray")

# ----------------------------------------------------------------- every command
ConfigOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--config",
        "-c",
        metavar="FILE",
        help="Config file (TOML; a legacy datacrunch config works unchanged).",
        envvar="CRUNCHCTL_CONFIG",
        dir_okay=False,
        show_default=False,
    ),
]
LedgerOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--ledger",
        metavar="DIR",
        help="Ledger folder [default: the user's state dir].",
        show_default=False,
    ),
]
LogFileOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--log-file",
        metavar="FILE",
        help="Log file [default: the user's log dir].",
        dir_okay=False,
        show_default=False,
    ),
]
VerboseOpt = Annotated[
    int,
    typer.Option(
        "--verbose", "-v", count=True, help="More output; -v shows tracebacks, -vv debug."
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
DryRunOpt = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Say what would be done and skipped, and why, one line per item on "
        "stdout (--json: one document); write nothing (no products, ledger "
        "rows, web copies or log file).",
    ),
]

# ------------------------------------------------------------- commands that write
OutputOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--output",
        "-o",
        metavar="DIR",
        help="Folder for the products [default: ./crunchctl-out].",
        file_okay=False,
        show_default=False,
    ),
]
WorkersOpt = Annotated[
    Optional[int],
    typer.Option(
        "--workers",
        "-j",
        metavar="N",
        help="Worker processes [default: number of cores].",
        show_default=False,
    ),
]
WwwOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--www",
        metavar="DIR",
        help="Web folder: <folder>.png and zoom_<folder>.png after each recording.",
        file_okay=False,
        show_default=False,
    ),
]
SchedulerOpt = Annotated[
    Optional[str],
    typer.Option(
        "--scheduler",
        metavar="ADDRESS",
        help="Run on a Dask cluster: scheduler address (tcp://host:8786), "
        "scheduler file (.json), or 'local' for --workers local Dask processes. Workers need "
        "the same paths (a shared file system).",
        show_default=False,
    ),
]
SchedulerTimeoutOpt = Annotated[
    Optional[float],
    typer.Option(
        "--scheduler-timeout",
        metavar="SECONDS",
        help="Give up (exit 2) when the Dask scheduler has not answered after this long; the "
        "wait can be stopped with Ctrl-C [default: 60].",
        show_default=False,
    ),
]

# ----------------------------------------------------------------------- numerics
LframesOpt = Annotated[
    Optional[int],
    typer.Option(
        "--lframes",
        metavar="N",
        help="FFT length, samples per frame [default: 65536].",
        show_default=False,
        rich_help_panel=SPECTROGRAM,
    ),
]
NframesOpt = Annotated[
    Optional[int],
    typer.Option(
        "--nframes",
        metavar="N",
        help="Frames read from the start of each recording [default: all].",
        show_default=False,
        rich_help_panel=SPECTROGRAM,
    ),
]
NavgOpt = Annotated[
    Optional[int],
    typer.Option(
        "--n-avg",
        metavar="N",
        help="Average every N frames for the zoom image [default: 1].",
        show_default=False,
        rich_help_panel=SPECTROGRAM,
    ),
]
ZoomCenterOpt = Annotated[
    Optional[float],
    typer.Option(
        "--zoom-center",
        metavar="HZ",
        help="Zoom centre, Hz offset from the recording's centre [default: 0].",
        show_default=False,
        rich_help_panel=SPECTROGRAM,
    ),
]
ZoomSpanOpt = Annotated[
    Optional[float],
    typer.Option(
        "--zoom-span",
        metavar="HZ",
        help="Zoom span, Hz [default: 1e6].",
        show_default=False,
        rich_help_panel=SPECTROGRAM,
    ),
]
WindowOpt = Annotated[
    Optional[str],
    typer.Option(
        "--window",
        metavar="NAME",
        help="FFT window: rectangular (legacy numbers), hann, hamming, blackman.",
        show_default=False,
        rich_help_panel=SPECTROGRAM,
        autocompletion=lambda: list(WINDOWS),
    ),
]
CmapOpt = Annotated[
    Optional[str],
    typer.Option(
        "--cmap",
        metavar="NAME",
        help="Matplotlib colour map of the quicklooks [default: viridis].",
        show_default=False,
        rich_help_panel=SPECTROGRAM,
        autocompletion=lambda: list(CMAPS),
    ),
]


def _product_choices(incomplete: str = "") -> list[str]:
    """Completions of ``--products``: the default, then the list typed so far plus each
    product of the table not in it yet (``png,zo`` -> ``png,zoom``)."""
    done, _, last = incomplete.rpartition(",")
    have = [p for p in done.split(",") if p]
    head = done + "," if done else ""
    out = [head + n for n in catalog.names() if n not in have and n.startswith(last)]
    return out if done else [catalog.DEFAULT, *out]


ProductsOpt = Annotated[
    Optional[str],
    typer.Option(
        "--products",
        metavar="LIST",
        help=f"Products per recording, a comma list out of {catalog.describe()} "
        f"[default: {catalog.DEFAULT}].",
        show_default=False,
        rich_help_panel=SPECTROGRAM,
        autocompletion=_product_choices,
    ),
]

# ------------------------------------------------------- lines and levels (docs/products.md)
LINES = "Lines and levels"  # help panel


def _check_db_range(value: str | None) -> str | None:
    if value is None:
        return None
    parts = value.split(",")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise typer.BadParameter(f"{value!r}: expected MIN,MAX in dB, e.g. -140,-60") from None
    if not lo < hi:
        raise typer.BadParameter(f"{value!r}: MIN must be below MAX")
    return value


PeaksOpt = Annotated[
    Optional[int],
    typer.Option(
        "--peaks",
        help="At most N lines per recording in the peaks product [default: 10].",
        show_default=False,
        rich_help_panel=LINES,
        metavar="N",
    ),
]
PeakSnrOpt = Annotated[
    Optional[float],
    typer.Option(
        "--peak-snr",
        help="A line is at least DB above the spectrum's median [default: 10].",
        show_default=False,
        rich_help_panel=LINES,
        metavar="DB",
    ),
]
DbRangeOpt = Annotated[
    Optional[str],
    typer.Option(
        "--db-range",
        help="Colour range of the quicklooks and the campaign, dB, as MIN,MAX "
        "[default: each picture's own].",
        show_default=False,
        rich_help_panel=LINES,
        metavar="MIN,MAX",
        callback=_check_db_range,
    ),
]
ScalingOpt = Annotated[
    Optional[str],
    typer.Option(
        "--scaling",
        help="Mean power as spectrum (V², a tone reads its power) or density "
        "(V²/Hz), as scipy.signal.periodogram [default: spectrum].",
        show_default=False,
        rich_help_panel=LINES,
        metavar="spectrum|density",
        autocompletion=lambda: ["spectrum", "density"],
    ),
]


def levels(
    peaks: int | None, peak_snr: float | None, db_range: str | None, scaling: str | None
) -> dict[str, Any]:
    """The lines-and-levels options as settings overrides (None: not given)."""
    lo = hi = None
    if db_range is not None:
        lo, hi = (float(p) for p in db_range.split(","))
    return {"peaks": peaks, "peak_snr": peak_snr, "db_min": lo, "db_max": hi, "scaling": scaling}


def numerics(
    lframes: int | None,
    nframes: int | None,
    n_avg: int | None,
    zoom_center: float | None,
    zoom_span: float | None,
    window: str | None,
    cmap: str | None,
) -> dict[str, Any]:
    """The numerics options as settings overrides (None: not given on the command line)."""
    return {
        "lframes": lframes,
        "nframes": nframes,
        "n_avg": n_avg,
        "zoom_center": zoom_center,
        "zoom_span": zoom_span,
        "window": window,
        "cmap": cmap,
    }


#: Colour maps every supported matplotlib has: checking them needs no matplotlib import
#: (about 0.7 s of a short run's start-up).
_KNOWN_CMAPS = frozenset(
    {
        "viridis",
        "plasma",
        "inferno",
        "magma",
        "cividis",
        "jet",
        "gray",
        "turbo",
        "hot",
        "Greys",
        "binary",
        "cubehelix",
    }
)


def check_cmap(settings: Settings) -> None:
    """A colour map matplotlib does not know is a usage error, found before any work."""
    if settings.cmap in _KNOWN_CMAPS:
        return
    import matplotlib

    from crunchctl.errors import ConfigError

    if settings.cmap not in matplotlib.colormaps:
        raise ConfigError(
            f"cmap {settings.cmap!r}: not a matplotlib colour map "
            f"(for example viridis, magma, inferno, jet)"
        )


# ---------------------------------------------------------------- status and reset


def status_choices(*choices: str) -> Any:
    """A ``--status`` callback: each value (repeatable, or a comma list) must be one of
    ``choices``; anything else is a usage error naming them."""

    def check(values: list[str] | None) -> list[str] | None:
        if not values:
            return values
        out = []
        for value in values:
            for name in (v.strip().lower() for v in value.split(",")):
                if name not in choices:
                    raise typer.BadParameter(
                        f"{name!r} is not a status; choose {', '.join(choices[:-1])} or "
                        f"{choices[-1]}"
                    )
                out.append(name)
        return out

    return check


# ------------------------------------------------------------- recording formats
FORMATS = "Recording formats"  # help panel (docs/formats.md)


def _format_names() -> list[str]:
    from crunchctl import formats

    return formats.names() + [
        t for n in formats.names() for t in formats.registration(n).sample_types()
    ]


def _check_format(value: str | None) -> str | None:
    if value is None:
        return None
    from crunchctl import formats
    from crunchctl.errors import UsageError

    try:
        return formats.check_name(value)
    except UsageError as e:
        raise typer.BadParameter(str(e)) from None


FormatOpt = Annotated[
    Optional[str],
    typer.Option(
        "--format",
        help="Read every input as this format (tiq, sigmf, tdms, wav, raw), or as "
        "raw IQ of one sample type (cf32, cs16, cu8, ...; also raw:cf32) for raw files whose "
        "extension does not say it (HackRF .iq, GNU Radio .dat/.bin) [default: by extension].",
        metavar="FORMAT",
        show_default=False,
        rich_help_panel=FORMATS,
        callback=_check_format,
        autocompletion=_format_names,
    ),
]
SampleRateOpt = Annotated[
    Optional[float],
    typer.Option(
        "--sample-rate",
        metavar="HZ",
        help="Sample rate of raw IQ files (.cf32, .cs16, ...), Hz.",
        show_default=False,
        rich_help_panel=FORMATS,
    ),
]
CenterOpt = Annotated[
    Optional[float],
    typer.Option(
        "--center",
        metavar="HZ",
        help="Centre frequency of raw and WAV IQ files, Hz [default: 0].",
        show_default=False,
        rich_help_panel=FORMATS,
    ),
]
TdmsChannelsOpt = Annotated[
    Optional[str],
    typer.Option(
        "--tdms-channels",
        metavar="CHANNELS",
        help="TDMS I and Q channels as GROUP/I,GROUP/Q [default: RecordData/I,RecordData/Q].",
        show_default=False,
        rich_help_panel=FORMATS,
    ),
]
VerifyChecksumOpt = Annotated[
    Optional[bool],
    typer.Option(
        "--verify-checksum/--no-verify-checksum",
        help="Verify a SigMF recording's SHA-512 "
        "before reading it (reads the whole file) [default: no].",
        show_default=False,
        rich_help_panel=FORMATS,
    ),
]


def format_options(
    fmt: str | None,
    sample_rate: float | None,
    center: float | None,
    tdms_channels: str | None,
    verify_checksum: bool | None,
) -> dict[str, Any]:
    """The format options as settings overrides (None: not given on the command line)."""
    return {
        "format": fmt,
        "sample_rate": sample_rate,
        "center_frequency": center,
        "tdms_channels": tdms_channels,
        "verify_checksum": verify_checksum,
    }
