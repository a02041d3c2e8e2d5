"""Settings: defaults, the config file, environment variables and command-line overrides.

Precedence: command line > environment (``CRUNCHCTL_<KEY>``) > config
file > defaults. A legacy datacrunch config (``[paths]`` and ``[settings]``) loads unchanged.
No heavy imports here: the CLI reads settings before any numerics run.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crunchctl import catalog
from crunchctl.errors import ConfigError

ENV_PREFIX = "CRUNCHCTL_"
APP_NAME = "crunchctl"

WINDOWS = ("rectangular", "hann", "hamming", "blackman")
#: How mean power is scaled (scipy.signal.periodogram's names; docs/products.md).
SCALINGS = ("spectrum", "density")

#: key -> (type, default, help). Types: int, float, str, "path", "window", "products",
#: "format" (a ``--format`` value, see ``formats.check_name``).
KEYS: dict[str, tuple[Any, Any, str]] = {
    # [paths]
    "folder_path": ("path", None, "folder the recorder writes recordings into (watch)"),
    "tracking_file_path": ("path", None, "legacy tracking file, imported into the ledger once"),
    "output_path": ("path", None, "folder for the products (default: ./crunchctl-out)"),
    "www_path": ("path", None, "web folder: <folder>.png and zoom_<folder>.png per recording"),
    "ledger_path": ("path", None, "ledger folder (default: the user's state dir)"),
    "log_file": ("path", None, "log file (default: the user's log dir)"),
    # [settings]
    "lframes": (int, 65536, "FFT length (samples per frame)"),
    "nframes": (int, None, "frames read from the start of each recording (default: all)"),
    "n_avg": (int, 1, "average every n_avg frames for the zoom image"),
    "zoom_center": (float, 0.0, "zoom centre, Hz offset from the recording's centre frequency"),
    "zoom_span": (float, 1.0e6, "zoom span, Hz"),
    "window": ("window", "rectangular", "FFT window: rectangular, hann, hamming, blackman"),
    "cmap": (str, "viridis", "matplotlib colour map of the quicklooks"),
    "workers": (int, None, "worker processes (default: the number of cores)"),
    "num_threads": (int, None, "legacy name of workers"),
    "products": (
        "products",
        catalog.DEFAULT,
        "products per recording, out of " + catalog.describe(),
    ),
    # lines, levels and the night across recordings (docs/products.md)
    "peaks": (int, 10, "at most this many lines per recording in the peaks product"),
    "peak_snr": (float, 10.0, "a line is at least this many dB above the spectrum's median"),
    "db_min": (float, None, "bottom of the colour range of the quicklooks and campaign, dB"),
    "db_max": (float, None, "top of the colour range of the quicklooks and campaign, dB"),
    "scaling": ("scaling", "spectrum", "mean power as spectrum (V²) or density (V²/Hz)"),
    # recording formats (see docs/formats.md)
    "format": (
        "format",
        None,
        "force one recording format for every input, or a raw IQ sample type (cf32, cs16, ...) (default: by extension)",
    ),
    "sample_rate": (float, None, "sample rate of raw IQ files, Hz"),
    "center_frequency": (float, None, "centre frequency of raw and WAV IQ files, Hz (default 0)"),
    "tdms_channels": (str, None, "TDMS I and Q channels as GROUP/I,GROUP/Q"),
    "verify_checksum": (bool, False, "verify a SigMF recording's SHA-512 before reading it"),
    # running elsewhere
    "scheduler": (str, None, "Dask scheduler address, or 'local' for a LocalCluster"),
    "scheduler_timeout": (float, 60.0, "seconds to wait for the Dask scheduler to answer"),
    # the control-room page in the web folder
    "www_history": (int, 24, "quicklooks kept per recorder folder in the page's history"),
    "www_stale_after": (float, 15.0, "minutes after which a recorder's latest recording is stale"),
    "www_refresh": (int, 10, "seconds between the page's refreshes"),
    # watch
    "incomplete_after": (
        float,
        None,
        "minutes without growth after which an incomplete recording is processed as it is",
    ),
    "quiet_after": (float, None, "minutes without a new recording after which watch warns"),
    "on_alert": (str, None, "command watch runs with each alert's JSON on its stdin (no shell)"),
    "alert_timeout": (float, 10.0, "seconds an alert command may run before it is killed"),
}
TABLES = ("paths", "settings", "watch", "batch", "crunchctl")
#: Settings that never shape a product: where things go, how work is run and shown. Every
#: other setting is declared by a product (``catalog.py``) or a format's read options
#: (``formats/__init__.py``), or shapes every product (``identity.ALWAYS``); the settings
#: digest is built from those declarations (docs/ledger.md).
NOT_SHAPING = frozenset(
    {
        "folder_path",
        "tracking_file_path",
        "www_path",
        "ledger_path",
        "log_file",
        "workers",
        "num_threads",
        "products",
        "verify_checksum",
        "scheduler",
        "scheduler_timeout",
        "www_history",
        "www_stale_after",
        "www_refresh",
        "incomplete_after",
        "quiet_after",
        "on_alert",
        "alert_timeout",
    }
)

#: Frame lengths accepted: shorter frames give no useful spectrum, longer ones would need
#: gigabytes per frame.
LFRAMES_MIN = 16
LFRAMES_MAX = 1 << 24

_POSITIVE = {
    "lframes",
    "nframes",
    "n_avg",
    "workers",
    "num_threads",
    "www_history",
    "www_refresh",
    "peaks",
}
_POSITIVE_FLOAT = {
    "zoom_span": "a positive number of Hz",
    "sample_rate": "a positive number of Hz",
    "www_stale_after": "a positive number of minutes",
    "incomplete_after": "a positive number of minutes",
    "scheduler_timeout": "a positive number of seconds",
    "quiet_after": "a positive number of minutes",
    "alert_timeout": "a positive number of seconds",
}


@dataclass(frozen=True)
class Settings:
    """Resolved settings of one run (see :data:`KEYS` for meanings and defaults)."""

    folder_path: str | None = None
    tracking_file_path: str | None = None
    output_path: str | None = None
    www_path: str | None = None
    ledger_path: str | None = None
    log_file: str | None = None
    lframes: int = 65536
    nframes: int | None = None
    n_avg: int = 1
    zoom_center: float = 0.0
    zoom_span: float = 1.0e6
    window: str = "rectangular"
    cmap: str = "viridis"
    workers: int = 0
    products: str = catalog.DEFAULT
    format: str | None = None
    sample_rate: float | None = None
    center_frequency: float | None = None
    tdms_channels: str | None = None
    verify_checksum: bool = False
    scheduler: str | None = None
    scheduler_timeout: float = 60.0
    www_history: int = 24
    www_stale_after: float = 15.0
    www_refresh: int = 10
    incomplete_after: float | None = None
    quiet_after: float | None = None
    on_alert: str | None = None
    alert_timeout: float = 10.0
    peaks: int = 10
    peak_snr: float = 10.0
    db_min: float | None = None
    db_max: float | None = None
    scaling: str = "spectrum"
    config_file: str | None = None
    #: (key, where its value came from) for every setting not left at its default
    origins: tuple[tuple[str, str], ...] = ()

    def output_dir(self) -> Path:
        return Path(self.output_path or "crunchctl-out").absolute()


def default_config_path() -> Path:
    """``CRUNCHCTL_CONFIG`` or ``config.toml`` in the user's config dir (platformdirs)."""
    env = os.environ.get(ENV_PREFIX + "CONFIG")
    if env:
        return Path(env)
    from platformdirs import PlatformDirs

    return PlatformDirs(APP_NAME, appauthor=False).user_config_path / "config.toml"


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a TOML config and return its known keys, flattened over the known tables."""
    path = Path(path)
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a config file") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    flat: dict[str, Any] = {}
    for table, content in data.items():
        if not isinstance(content, dict):
            if table in KEYS:
                flat[table] = content
                continue
            raise ConfigError(
                f"{path}: unknown top-level key {table!r} "
                f"(expected tables {', '.join('[' + t + ']' for t in TABLES[:2])})"
            )
        if table not in TABLES:
            raise ConfigError(
                f"{path}: unknown table [{table}] "
                f"(expected {', '.join('[' + t + ']' for t in TABLES)})"
            )
        for key, value in content.items():
            if key not in KEYS:
                raise ConfigError(
                    f"{path}: [{table}] {key}: unknown key (known: {', '.join(sorted(KEYS))})"
                )
            flat[key] = value
    return flat


def _label(key: str, value: Any, where: str) -> str:
    if where == "command line":
        return f"--{key.replace('_', '-')} {value!r}"
    return f"{where}: {key} = {value!r}"


def _coerce(key: str, value: Any, where: str) -> Any:
    kind = KEYS[key][0]
    if value is None:
        return None
    try:
        if kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            value = int(value) if not isinstance(value, str) else int(value.strip())
        elif kind is float:
            if isinstance(value, bool):
                raise ValueError
            value = float(value)
        elif kind == "path":
            if not isinstance(value, (str, os.PathLike)) or str(value) == "":
                raise ValueError
            value = os.path.expanduser(str(value))
        elif kind == "window":
            value = str(value).lower()
            if value not in WINDOWS:
                raise ValueError
        elif kind is bool:
            if isinstance(value, str):
                text = value.strip().lower()
                if text not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError
                value = text in ("1", "true", "yes", "on")
            elif not isinstance(value, bool):
                raise ValueError
        elif kind == "products":
            value = normalise_products(value)
        elif kind == "format":
            from crunchctl.errors import UsageError
            from crunchctl.formats import check_name

            try:
                value = check_name(str(value))  # one spelling: "cf32" is "raw:cf32"
            except UsageError as e:
                raise ConfigError(
                    f"{_label(key, value, where)}: {str(e).split('; ', 1)[-1]}"
                ) from None
        elif kind == "scaling":
            value = str(value).strip().lower()
            if value not in SCALINGS:
                raise ValueError
        else:
            value = str(value)
    except (TypeError, ValueError):
        expected = {
            int: "a whole number",
            float: "a number",
            "path": "a path",
            bool: "true or false",
            "window": "one of " + ", ".join(WINDOWS),
            "scaling": "one of " + ", ".join(SCALINGS),
            "products": "a comma list out of " + catalog.describe(),
        }.get(kind, "text")
        raise ConfigError(f"{_label(key, value, where)}: expected {expected}") from None
    if key in _POSITIVE and value < 1:
        raise ConfigError(f"{_label(key, value, where)}: expected a whole number of at least 1")
    if key in _POSITIVE_FLOAT and not value > 0:
        raise ConfigError(f"{_label(key, value, where)}: expected {_POSITIVE_FLOAT[key]}")
    if key == "lframes" and not LFRAMES_MIN <= value <= LFRAMES_MAX:
        raise ConfigError(
            f"{_label(key, value, where)}: expected a frame length from "
            f"{LFRAMES_MIN} to {LFRAMES_MAX} samples"
        )
    return value


def notes(settings: Settings) -> list[str]:
    """One-line notes on settings that work but are probably not what was meant."""
    out = []
    lf = settings.lframes
    if lf & (lf - 1):
        lower = 1 << (lf.bit_length() - 1)
        out.append(
            f"lframes {lf} is not a power of two: it works, but the FFT is faster "
            f"with {lower} or {lower * 2}"
        )
    cores = os.cpu_count() or 1
    if settings.workers > cores:
        out.append(
            f"{settings.workers} workers on a machine with {cores} cores: they share "
            f"the cores, so more workers than cores is rarely faster"
        )
    return out


def normalise_products(value: Any) -> str:
    """A products list (comma text or a sequence) in canonical order, e.g. ``"png,npz"``.

    Raises:
        ValueError: empty, or a name that is not in the product table (``catalog.py``).
    """
    return catalog.normalise(value)


def resolve(
    config_file: str | os.PathLike | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve settings: command line > environment > config file > defaults.

    Args:
        config_file: an explicit ``--config`` file (must exist); None uses the default
            location if a file is there.
        overrides: values from the command line; None values mean "not given".
        environ: the environment (``os.environ`` by default).

    Raises:
        ConfigError: naming the file or variable, the key and what was expected.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    used_file: str | None = None
    path = Path(config_file) if config_file else None
    if path is None:
        candidate = default_config_path()
        if candidate.is_file() or environ.get(ENV_PREFIX + "CONFIG"):
            path = candidate
    if path is not None:
        used_file = str(path)
        for key, value in read_config_file(path).items():
            values[key] = _coerce(key, value, str(path))
            origin[key] = f"config file {path}"
    for key in KEYS:
        env_name = ENV_PREFIX + key.upper()
        if env_name in environ and environ[env_name] != "":
            values[key] = _coerce(key, environ[env_name], f"environment {env_name}")
            origin[key] = f"environment {env_name}"
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = _coerce(key, value, "command line")
            origin[key] = "command line"
    # Legacy num_threads maps to workers unless workers itself was given somewhere.
    legacy_threads = values.pop("num_threads", None)
    if values.get("workers") is None and legacy_threads is not None:
        values["workers"] = legacy_threads
        origin["workers"] = origin.get("num_threads", "") + " (num_threads)"
    if values.get("workers") is None:
        values["workers"] = os.cpu_count() or 1
        origin["workers"] = "the number of cores"
    _check_db_range(values, origin)
    fields = {f.name for f in dataclasses.fields(Settings)}
    clean = {k: v for k, v in values.items() if k in fields and v is not None}
    origins = tuple(sorted((k, origin[k]) for k in clean if k in origin))
    return Settings(config_file=used_file, origins=origins, **clean)


def _check_db_range(values: dict[str, Any], origin: dict[str, str]) -> None:
    """``db_min`` and ``db_max`` come together, the bottom below the top."""
    lo, hi = values.get("db_min"), values.get("db_max")
    if lo is None and hi is None:
        return
    where = origin.get("db_min") or origin.get("db_max") or ""
    if lo is None or hi is None:
        raise ConfigError(f"{where}: db_min and db_max go together (--db-range MIN,MAX)")
    if not lo < hi:
        raise ConfigError(f"{where}: db_min {lo} must be below db_max {hi}")


def describe(settings: Settings) -> list[str]:
    """``key = value  (where it came from)`` for every setting, for ``-vv`` logs."""
    origin = dict(settings.origins)
    lines = []
    for f in dataclasses.fields(Settings):
        if f.name in ("origins", "config_file"):
            continue
        lines.append(f"{f.name} = {getattr(settings, f.name)!r}  ({origin.get(f.name, 'default')})")
    return lines
