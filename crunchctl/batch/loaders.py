"""Batch loaders: turn one item string into rows of spectrogram data (DESIGN section 7).

Owns the built-in loaders (``iq`` for recordings, ``npz`` for arrays), resolving and
importing user plugins (``package.module:function`` or ``path/to/file.py:function``) and
checking what a loader returned, row by row. Drawing is ``figure.py``'s job; the ledger,
the engine and file names are ``batch.py``'s.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crunchctl.errors import ItemError, UsageError

if TYPE_CHECKING:
    import numpy as np

    from crunchctl.config import Settings

BUILTINS = ("iq", "npz")
AUTO = "auto"
#: Item suffixes the automatic loader choice knows.
SUFFIX_LOADERS = {".tiq": "iq", ".npz": "npz"}

#: Keys a row dict may have (DESIGN section 7, plus the extensions documented on ``Row``).
ROW_KEYS = frozenset({
    "x", "y", "data", "collapse_axis", "collapse", "label", "y_min", "y_max", "z_min",
    "z_max", "vmin", "vmax", "x_label", "y_label", "z_label", "y_scale", "z_scale",
    "events", "x_origin",
})
_BOUND_KEYS = ("y_min", "y_max", "z_min", "z_max", "vmin", "vmax")
_COLLAPSE = ("sum", "mean", "max")

#: Legacy batch plotter defaults when a plugin gives no labels.
DEFAULT_Y_LABEL = "Energy (eV)"
DEFAULT_Z_LABEL = "Counts"


class RowError(ItemError):
    """A loader returned something that cannot be drawn; names the item, row and key."""


# ----------------------------------------------------------------------------- rows


@dataclass
class Row:
    """One dataset of a figure: ``data[j, i]`` is the value at ``(x[i], y[j])``.

    ``x`` holds ``nx`` centres or ``nx + 1`` edges, likewise ``y``. ``x_is_time`` marks an
    ``x`` given as datetimes (stored as UNIX seconds). Bounds are None when not given.
    Beyond DESIGN section 7 a row may set ``x_label``, ``y_scale``/``z_scale`` (override
    the global scales), ``events`` (times) and ``x_origin`` (UNIX seconds at ``x = 0``, so
    UNIX event times land on a relative time axis).
    """

    x: np.ndarray
    y: np.ndarray
    data: np.ndarray
    label: str = ""
    y_min: float | None = None
    y_max: float | None = None
    z_min: float | None = None
    z_max: float | None = None
    x_label: str | None = None
    y_label: str | None = None
    z_label: str | None = None
    y_scale: str | None = None
    z_scale: str | None = None
    x_is_time: bool = False
    x_origin: float | None = None
    events: tuple[float, ...] = ()
    warnings: list[str] = field(default_factory=list)

    @property
    def all_nan(self) -> bool:
        import numpy as np

        return not bool(np.isfinite(self.data).any())


def _where(item: str, index: int, raw: Mapping) -> str:
    label = raw.get("label") if isinstance(raw, Mapping) else None
    named = f" ({label!s})" if isinstance(label, str) and label else ""
    return f"{item}: row {index + 1}{named}"


def normalise(raw: Any, item: str) -> list[Row]:
    """Check a loader's return value and turn it into rows.

    Args:
        raw: what the loader returned: None or an empty list (no data), one dict, or a
            list (any iterable) of dicts.
        item: the item, for messages.

    Returns:
        The rows; empty when the loader returned nothing.

    Raises:
        RowError: the value or one of its rows cannot be drawn; the message names the
            item, the row and the key.
    """
    if raw is None:
        return []
    if isinstance(raw, Mapping):
        raw = [raw]
    elif isinstance(raw, (str, bytes)) or not hasattr(raw, "__iter__"):
        raise RowError(f"{item}: the loader returned {type(raw).__name__}; expected a list "
                       f"of dicts with keys x, y, data")
    rows = []
    for i, r in enumerate(list(raw)):
        if not isinstance(r, Mapping):
            raise RowError(f"{item}: row {i + 1}: expected a dict with keys x, y, data, got "
                           f"{type(r).__name__}")
        rows.append(_row(r, item, i))
    return rows


def _row(raw: Mapping, item: str, index: int) -> Row:
    import numpy as np

    where = _where(item, index, raw)
    for key in ("x", "y", "data"):
        if key not in raw or raw[key] is None:
            raise RowError(f"{where}: missing key {key!r} (a row needs x, y and data)")
    warnings = [f"{where}: unknown key {k!r} ignored" for k in raw if k not in ROW_KEYS]

    x, x_is_time = _axis(raw["x"], where, "x", allow_time=True)
    if (not x_is_time and raw.get("x_label") is None and raw.get("x_origin") is None
            and _UNIX_RANGE[0] <= float(x.min()) and float(x.max()) <= _UNIX_RANGE[1]):
        # Plain numbers that can only be UNIX seconds (the legacy plotter's x) are drawn as
        # UTC date-times: ten-digit second ticks are unreadable.
        x_is_time = True
    y, _ = _axis(raw["y"], where, "y", allow_time=False)
    try:
        data = np.asarray(raw["data"])
    except (TypeError, ValueError) as e:
        raise RowError(f"{where}: 'data' is not an array: {e}") from None
    if data.dtype == object or not (np.issubdtype(data.dtype, np.number)
                                    or data.dtype == bool):
        raise RowError(f"{where}: 'data' must be numeric, got dtype {data.dtype}")
    if np.iscomplexobj(data):
        raise RowError(f"{where}: 'data' is complex; give power or magnitude (real numbers)")
    if not np.issubdtype(data.dtype, np.floating):
        data = data.astype(np.float64)

    if data.ndim == 3:
        data = _collapse(data, raw, where)
    elif "collapse_axis" in raw and raw["collapse_axis"] is not None:
        raise RowError(f"{where}: 'collapse_axis' given but 'data' is {data.ndim}-D "
                       f"(shape {data.shape}); it applies to 3-D data only")
    if data.ndim != 2:
        raise RowError(f"{where}: 'data' must be 2-D (or 3-D with 'collapse_axis'), got "
                       f"{data.ndim}-D with shape {data.shape}")

    nx, ny = len(x), len(y)

    def fits(shape: tuple[int, ...]) -> bool:
        return shape[1] in (nx, nx - 1) and shape[0] in (ny, ny - 1)

    if not fits(data.shape):
        if fits(data.shape[::-1]):
            data = data.T  # (len(x), len(y)), as the legacy arr_2 layout
        else:
            raise RowError(
                f"{where}: 'data' has shape {data.shape} but 'x' has {nx} values and 'y' "
                f"has {ny}: expected ({ny}, {nx}), i.e. (len(y), len(x))")
    if data.shape[1] == 0 or data.shape[0] == 0:
        raise RowError(f"{where}: 'data' is empty (shape {data.shape})")

    x, data = _monotonic(x, data, 1, where, "x")
    y, data = _monotonic(y, data, 0, where, "y")

    bounds = {k: _number(raw.get(k), where, k) for k in _BOUND_KEYS}
    z_min = bounds["vmin"] if bounds["vmin"] is not None else bounds["z_min"]
    z_max = bounds["vmax"] if bounds["vmax"] is not None else bounds["z_max"]
    for lo_key, hi_key, lo, hi in (("y_min", "y_max", bounds["y_min"], bounds["y_max"]),
                                   ("z_min", "z_max", z_min, z_max)):
        if lo is not None and hi is not None and not hi > lo:
            raise RowError(f"{where}: {lo_key} = {lo:g} is not below {hi_key} = {hi:g}")

    events = raw.get("events")
    return Row(
        x=x, y=y, data=data,
        label=_text(raw.get("label"), where, "label") or "",
        y_min=bounds["y_min"], y_max=bounds["y_max"], z_min=z_min, z_max=z_max,
        x_label=_text(raw.get("x_label"), where, "x_label"),
        y_label=_text(raw.get("y_label"), where, "y_label"),
        z_label=_text(raw.get("z_label"), where, "z_label"),
        y_scale=_scale(raw.get("y_scale"), where, "y_scale"),
        z_scale=_scale(raw.get("z_scale"), where, "z_scale"),
        x_is_time=x_is_time,
        x_origin=(None if raw.get("x_origin") is None
                  else parse_time(raw["x_origin"], f"{where}: 'x_origin'")),
        events=() if events is None else _events(events, f"{where}: 'events'"),
        warnings=warnings,
    )


#: x values all inside this range (UNIX seconds of 2000-01-01 and 2100-01-01) are times.
_UNIX_RANGE = (946_684_800.0, 4_102_444_800.0)


def _axis(value: Any, where: str, key: str, *, allow_time: bool) -> tuple[np.ndarray, bool]:
    import numpy as np

    try:
        a = np.asarray(value)
    except (TypeError, ValueError) as e:
        raise RowError(f"{where}: {key!r} is not an array: {e}") from None
    if a.ndim == 2 and 1 in a.shape:
        a = a.ravel()  # legacy (1 x L) and (N x 1) axes
    if a.ndim != 1:
        raise RowError(f"{where}: {key!r} must be 1-D, got shape {a.shape}")
    if a.size == 0:
        raise RowError(f"{where}: {key!r} is empty")
    is_time = False
    if a.dtype.kind == "M" or (a.dtype == object and a.size
                               and all(hasattr(v, "timestamp") for v in a[:3])):
        if not allow_time:
            raise RowError(f"{where}: {key!r} holds datetimes; only 'x' may be a time axis")
        a = _to_unix(a, where, key)
        is_time = True
    elif a.dtype == object or not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
        raise RowError(f"{where}: {key!r} must be numbers, got dtype {a.dtype}")
    a = a.astype(np.float64, copy=False)
    if not np.isfinite(a).all():
        raise RowError(f"{where}: {key!r} holds NaN or infinite values")
    return a, is_time


def _to_unix(a: np.ndarray, where: str, key: str) -> np.ndarray:
    import numpy as np

    if a.dtype.kind == "M":
        if np.isnat(a).any():
            raise RowError(f"{where}: {key!r} holds NaT (not-a-time) values")
        return a.astype("datetime64[us]").astype(np.int64) / 1e6
    return np.array([parse_time(v, f"{where}: {key!r}") for v in a], dtype=np.float64)


def _events(value: Any, where: str) -> tuple[float, ...]:
    import numpy as np

    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        value = [value]
    a = np.asarray(value) if not isinstance(value, np.ndarray) else value
    if a.dtype.kind == "M":
        return tuple(float(v) for v in _to_unix(a.ravel(), where, "events"))
    return tuple(parse_time(v, where) for v in a.ravel().tolist())


def _monotonic(axis: np.ndarray, data: np.ndarray, dim: int, where: str,
               key: str) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    if axis.size < 2:
        return axis, data
    d = np.diff(axis)
    if (d > 0).all():
        return axis, data
    if (d < 0).all():
        return axis[::-1].copy(), np.flip(data, axis=dim)
    if len(axis) != data.shape[1 - dim]:  # edges that are not sorted make no cells
        raise RowError(f"{where}: {key!r} edges must increase or decrease")
    order = np.argsort(axis, kind="stable")
    if (np.diff(axis[order]) == 0).any():
        raise RowError(f"{where}: {key!r} has repeated values")
    return axis[order], np.take(data, order, axis=dim)


def _collapse(data: np.ndarray, raw: Mapping, where: str) -> np.ndarray:
    import numpy as np

    axis = raw.get("collapse_axis")
    if axis is None:
        raise RowError(f"{where}: 'data' is 3-D (shape {data.shape}); give 'collapse_axis' "
                       f"(0, 1 or 2) to say which axis to collapse")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -3 <= axis < 3:
        raise RowError(f"{where}: 'collapse_axis' = {axis!r}: expected 0, 1 or 2")
    how = raw.get("collapse") or "sum"
    if how not in _COLLAPSE:
        raise RowError(f"{where}: 'collapse' = {how!r}: expected one of {', '.join(_COLLAPSE)}")
    finite = np.isfinite(data)
    with np.errstate(invalid="ignore", divide="ignore"):
        if how == "sum":
            out = np.where(finite, data, 0).sum(axis=int(axis))
        elif how == "mean":
            out = np.where(finite, data, 0).sum(axis=int(axis)) / finite.sum(axis=int(axis))
        else:
            out = np.where(finite, data, -np.inf).max(axis=int(axis))
    # Cells with no finite value along the collapsed axis stay "no data".
    out = np.where(finite.any(axis=int(axis)), out, np.nan)
    return out


def _number(value: Any, where: str, key: str) -> float | None:
    if value is None:
        return None
    try:
        if isinstance(value, bool):
            raise TypeError
        f = float(value)
    except (TypeError, ValueError):
        raise RowError(f"{where}: {key!r} = {value!r}: expected a number") from None
    if not math.isfinite(f):
        raise RowError(f"{where}: {key!r} = {value!r}: expected a finite number")
    return f


def _text(value: Any, where: str, key: str) -> str | None:
    if value is None:
        return None
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy 0-d string
        value = value.item()
    if not isinstance(value, str):
        raise RowError(f"{where}: {key!r} = {value!r}: expected text")
    return value


def _scale(value: Any, where: str, key: str) -> str | None:
    value = _text(value, where, key)
    if value is None:
        return None
    if value not in ("linear", "log"):
        raise RowError(f"{where}: {key!r} = {value!r}: expected 'linear' or 'log'")
    return value


def parse_time(value: Any, where: str = "time") -> float:
    """UNIX seconds from a number, an ISO 8601 text or a datetime (naive means UTC).

    Raises:
        RowError: the value is none of these.
    """
    import datetime as _dt

    import numpy as np

    if isinstance(value, np.datetime64):
        if np.isnat(value):
            raise RowError(f"{where}: NaT is not a time")
        return float(value.astype("datetime64[us]").astype(np.int64)) / 1e6
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, bool):
        raise RowError(f"{where}: {value!r} is not a time")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise RowError(f"{where}: {value!r} is not a finite time")
        return float(value)
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return value.timestamp()
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            pass
        try:
            return parse_time(_dt.datetime.fromisoformat(
                text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text), where)
        except ValueError:
            pass
    raise RowError(f"{where}: {value!r} is neither UNIX seconds nor an ISO 8601 time")


# -------------------------------------------------------------------------- loaders


@dataclass(frozen=True)
class LoaderSpec:
    """A resolved ``--loader``: small and picklable; workers import the plugin themselves.

    ``kind`` is ``iq``, ``npz``, ``module`` or ``file``; ``target`` the module name or the
    absolute file path; ``function`` the plugin's function; ``sys_path`` folders put on
    ``sys.path`` before importing (the plugin file's folder, the working directory).
    """

    kind: str
    target: str = ""
    function: str = ""
    sys_path: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        if self.kind in BUILTINS:
            return self.kind
        return f"{self.target}:{self.function}"

    @property
    def display(self) -> str:
        """A short name for messages: the plugin file's name rather than its full path."""
        if self.kind == "file":
            return f"{os.path.basename(self.target)}:{self.function}"
        return self.name


def parse_spec(spec: str, *, cwd: str | None = None) -> LoaderSpec:
    """Parse ``--loader``: ``iq``, ``npz``, ``package.module:function`` or ``file.py:function``.

    Raises:
        UsageError: the text has none of these forms.
    """
    spec = spec.strip()
    if spec in BUILTINS:
        return LoaderSpec(spec)
    target, sep, function = spec.rpartition(":")
    hint = ("expected iq, npz, package.module:function or path/to/file.py:function")
    if not sep or not target or not function.isidentifier():
        raise UsageError(f"--loader {spec!r}: {hint}")
    cwd = os.path.abspath(cwd or os.getcwd())
    if target.endswith(".py") or os.sep in target or "/" in target:
        path = os.path.abspath(os.path.join(cwd, os.path.expanduser(target)))
        return LoaderSpec("file", path, function, (os.path.dirname(path),))
    if not all(part.isidentifier() for part in target.split(".")):
        raise UsageError(f"--loader {spec!r}: {target!r} is not a module name; {hint}")
    return LoaderSpec("module", target, function, (cwd,))


def choose_builtin(item: str) -> str | None:
    """The built-in loader for an item by its suffix (``.tiq`` -> iq, ``.npz`` -> npz)."""
    return SUFFIX_LOADERS.get(Path(item).suffix.lower())


_CACHE: dict[LoaderSpec, Callable[..., Any]] = {}


def load_function(spec: LoaderSpec) -> Callable[..., Any]:
    """Import a loader and check that it is callable (cached per process).

    Raises:
        UsageError: the module or file cannot be imported, lacks the function, or the
            function is not callable.
    """
    fn = _CACHE.get(spec)
    if fn is not None:
        return fn
    if spec.kind == "iq":
        fn = load_iq
    elif spec.kind == "npz":
        fn = load_npz
    else:
        module = _import(spec)
        what = f"--loader {spec.name}"
        if not hasattr(module, spec.function):
            public = sorted(n for n, v in vars(module).items()
                            if callable(v) and not n.startswith("_")
                            and getattr(v, "__module__", None) == module.__name__)
            known = f" (it has: {', '.join(public)})" if public else ""
            raise UsageError(f"{what}: {spec.target} has no function {spec.function!r}{known}")
        fn = getattr(module, spec.function)
        if not callable(fn):
            raise UsageError(f"{what}: {spec.function!r} in {spec.target} is not callable "
                             f"(it is a {type(fn).__name__})")
    _CACHE[spec] = fn
    return fn


def _import(spec: LoaderSpec) -> Any:
    what = f"--loader {spec.name}"
    for folder in spec.sys_path:
        if folder not in sys.path:
            # A plugin file's folder goes first (as `python file.py` does); the working
            # directory last, so installed packages win over stray files.
            if spec.kind == "file":
                sys.path.insert(0, folder)
            else:
                sys.path.append(folder)
    try:
        if spec.kind == "module":
            return importlib.import_module(spec.target)
        if not os.path.isfile(spec.target):
            raise UsageError(f"{what}: no such file {spec.target}")
        import hashlib

        name = "crunchctl_plugin_" + hashlib.sha1(spec.target.encode()).hexdigest()[:10]
        if name in sys.modules:
            return sys.modules[name]
        mod_spec = importlib.util.spec_from_file_location(name, spec.target)
        if mod_spec is None or mod_spec.loader is None:
            raise UsageError(f"{what}: {spec.target} cannot be imported as Python")
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[name] = module
        try:
            mod_spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        return module
    except UsageError:
        raise
    except ModuleNotFoundError as e:
        raise UsageError(f"{what}: cannot import {spec.target}: {e} (is it installed, or on "
                         f"PYTHONPATH?)") from None
    except Exception as e:  # noqa: BLE001 - the plugin's own import-time errors
        raise UsageError(f"{what}: importing {spec.target} failed: "
                         f"{type(e).__name__}: {e}") from None


def call(spec: LoaderSpec, item: str, path: str, settings: Settings | None) -> Any:
    """Run the loader on one item; built-ins get the absolute path and the IQ settings."""
    fn = load_function(spec)
    if spec.kind in BUILTINS:
        return fn(path, settings)
    return fn(item)


# ------------------------------------------------------------------------ built-ins


def _iq_row(power: np.ndarray, freqs: np.ndarray, times: np.ndarray, *, center: float,
            label: str, origin: float | None, frame: float | None = None) -> dict:
    """A row of an IQ spectrogram: time along x, frequency offset (kHz) up y, dB as z.

    ``times`` are frame starts; with the frame duration they become cell edges.
    """
    import numpy as np

    if frame is None:
        frame = float(times[1] - times[0]) if times.size > 1 else 0.0
    if frame > 0:
        times = np.append(times, times[-1] + frame)

    with np.errstate(divide="ignore", invalid="ignore"):
        db = 10.0 * np.log10(power, dtype=np.float32)
    db[~np.isfinite(db)] = np.nan
    return {
        "x": times, "y": (freqs - center) / 1e3, "data": db.T, "label": label,
        "x_label": "time (s)", "y_label": "frequency offset (kHz)",
        "z_label": "power (dB)", "y_scale": "linear", "z_scale": "linear",
        "x_origin": origin,
    }


def load_iq(path: str, settings: Settings) -> list[dict]:
    """Built-in ``iq`` loader: the full spectrogram and the zoomed, time-averaged one.

    Args:
        path: a ``.tiq`` recording.
        settings: lframes, nframes, window, n_avg, zoom_center, zoom_span.
    """
    from crunchctl.quicklook import task as pipeline, spectrum
    from crunchctl.errors import TiqError
    from crunchctl.quicklook.render import describe_resolution, fmt_hz

    spec = pipeline.compute(path, settings)
    header: Any = spec.header
    acquired = header.acquired_at()
    origin = acquired.timestamp() if acquired else None
    res = describe_resolution(header.fs, spec.lframes)
    when = (f", acquired {acquired.isoformat(sep=' ', timespec='milliseconds')}" if acquired
            else "")
    frame = spec.lframes / header.fs
    rows = [_iq_row(spec.power, spec.freqs, spec.times, center=header.center, origin=origin,
                    frame=frame, label=f"full span {fmt_hz(header.fs)} around {fmt_hz(header.center)}, "
                          f"{res}{when}")]
    zoom_centre = header.center + settings.zoom_center
    sl = spectrum.zoom_slice(spec.freqs, zoom_centre, settings.zoom_span)
    if sl.stop - sl.start < 2:
        raise TiqError(f"{path}: zoom window {fmt_hz(settings.zoom_span)} around "
                       f"{fmt_hz(zoom_centre)} lies outside the recording's span")
    averaged = spectrum.average_frames(spec.power[:, sl], settings.n_avg)
    ztimes = spectrum.time_axis(spec.nframes, spec.lframes, header.fs, settings.n_avg)[
        : averaged.shape[0]]
    zres = describe_resolution(header.fs, spec.lframes, settings.n_avg)
    rows.append(_iq_row(averaged, spec.freqs[sl], ztimes, center=header.center,
                        origin=origin, frame=frame * max(1, settings.n_avg),
                        label=f"zoom {fmt_hz(settings.zoom_span)} around "
                              f"{fmt_hz(zoom_centre)}, {zres}"))
    return rows


def load_npz(path: str, settings: Settings | None = None) -> list[dict]:
    """Built-in ``npz`` loader.

    Layouts: the legacy ``arr_0`` (1 x L frequency, Hz), ``arr_1`` (N x 1 time, s), ``arr_2``
    (N x L power), drawn like an IQ row; or ``x``, ``y`` and ``data`` (2-D: one row; 3-D:
    one row per index of the first axis, or collapsed when ``collapse_axis`` is stored);
    or ``data_0``, ``data_1``, ... with ``x``/``y`` or per-row ``x_0``/``y_0``. Optional keys
    (``label``, ``y_min``, ``z_label``, ``events``, ...) apply to every row, with a
    ``_<i>`` suffix to row ``i``; ``labels`` may list one label per row.
    """
    import numpy as np

    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise ItemError(f"{path}: cannot read as .npz: {e.strerror or e}") from None
    if magic.startswith(b"\x93NUMPY"):
        raise ItemError(f"{path}: a single .npy array, not an .npz archive of named arrays")
    if not magic.startswith(b"PK"):
        raise ItemError(f"{path}: not an .npz file (not a zip archive of arrays)")
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        msg = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ItemError(f"{path}: cannot read as .npz: {msg}") from None
    if not hasattr(z, "files"):
        raise ItemError(f"{path}: a single .npy array, not an .npz archive of named arrays")
    with z:
        arrays = {k: z[k] for k in z.files}
    keys = set(arrays)
    if {"arr_0", "arr_1", "arr_2"} <= keys and "data" not in keys:
        return [_legacy_row(arrays, path)]
    data_keys = sorted((k for k in keys if k.startswith("data_") and k[5:].isdigit()),
                       key=lambda k: int(k[5:]))
    if "data" not in keys and not data_keys:
        raise ItemError(f"{path}: no arrays in a known layout: expected arr_0/arr_1/arr_2, "
                        f"or x, y and data (or data_0, data_1, ...); found "
                        f"{', '.join(sorted(keys)) or 'no arrays'}")
    rows: list[dict] = []
    if "data" in keys:
        data = arrays["data"]
        if data.ndim == 3 and "collapse_axis" not in keys:
            rows.extend({"data": data[i], "_i": i} for i in range(data.shape[0]))
        else:
            rows.append({"data": data, "_i": 0})
    rows.extend({"data": arrays[k], "_i": int(k[5:])} for k in data_keys)
    labels = np.atleast_1d(arrays["labels"]) if "labels" in arrays else None
    for n, r in enumerate(rows):
        i = r.pop("_i")
        for key in ROW_KEYS - {"data"}:
            value = arrays.get(f"{key}_{i}", arrays.get(key))
            if value is not None:
                r[key] = value.item() if value.ndim == 0 else value
        if "label" not in r and labels is not None and n < labels.size:
            r["label"] = str(labels[n])
        for key in ("x", "y"):
            if key not in r:
                raise ItemError(f"{path}: row {n + 1}: no {key!r} array (store {key!r} or "
                                f"'{key}_{i}')")
    return rows


def _legacy_row(arrays: dict, path: str) -> dict:
    import numpy as np

    freqs = np.asarray(arrays["arr_0"], dtype=np.float64).ravel()
    times = np.asarray(arrays["arr_1"], dtype=np.float64).ravel()
    power = np.asarray(arrays["arr_2"])
    if power.ndim != 2:
        raise ItemError(f"{path}: 'arr_2' must be 2-D (time x frequency), got shape "
                        f"{power.shape}")
    if power.shape != (times.size, freqs.size):
        if power.shape == (freqs.size, times.size):
            power = power.T
        else:
            raise ItemError(f"{path}: 'arr_2' has shape {power.shape} but 'arr_0' has "
                            f"{freqs.size} frequencies and 'arr_1' {times.size} times: "
                            f"expected ({times.size}, {freqs.size})")
    if "center_frequency" in arrays:
        center = float(arrays["center_frequency"])
    else:
        center = float(freqs[freqs.size // 2]) if freqs.size else 0.0
    from crunchctl.quicklook.render import fmt_hz
    from crunchctl.formats.tiq import parse_datetime

    # crunchctl's own NPZ products say when the recording started: events can then land.
    origin = None
    if "acquisition_start" in arrays and arrays["acquisition_start"].ndim == 0:
        when = parse_datetime(str(arrays["acquisition_start"]))
        origin = when.timestamp() if when else None
    finite = power[np.isfinite(power)]
    if finite.size and finite.min() >= 0:
        return _iq_row(power, freqs, times, center=center, origin=origin,
                       label=f"{Path(path).name} (arr_0/arr_1/arr_2), offsets from "
                             f"{fmt_hz(center)}")
    # Not a power spectrogram (negative values): draw it as it is.
    return {"x": times, "y": (freqs - center) / 1e3, "data": power.T,
            "label": f"{Path(path).name} (arr_0/arr_1/arr_2)", "x_label": "time (s)",
            "y_label": f"offset from {fmt_hz(center)} (kHz)", "z_label": "arr_2"}
