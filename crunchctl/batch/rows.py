"""The loader contract: what a batch loader returns, checked row by row.

A loader returns None, a dict or a list of dicts with ``x``, ``y``, ``data`` and optional
keys (docs/products.md, "Batch figures"); :func:`check_rows` turns that into ``Row``s or
raises a ``RowError`` naming the item, the row and the key. No drawing, no importing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crunchctl.errors import ItemError

if TYPE_CHECKING:
    import numpy as np

#: Keys a row dict may have (docs/products.md, "Batch figures").
ROW_KEYS = frozenset(
    {
        "x",
        "y",
        "data",
        "collapse_axis",
        "collapse",
        "label",
        "y_min",
        "y_max",
        "z_min",
        "z_max",
        "vmin",
        "vmax",
        "x_label",
        "y_label",
        "z_label",
        "y_scale",
        "z_scale",
        "events",
        "x_origin",
    }
)
_BOUND_KEYS = ("y_min", "y_max", "z_min", "z_max", "vmin", "vmax")
_COLLAPSE = ("sum", "mean", "max")

#: Labels of rows that bring none (``--y-label``/``--z-label`` set others): neutral,
#: since nothing is known about the data.
DEFAULT_X_LABEL = "x"
DEFAULT_Y_LABEL = "y"
DEFAULT_Z_LABEL = "value"


class RowError(ItemError):
    """A loader returned something that cannot be drawn; names the item, row and key."""


@dataclass
class Row:
    """One dataset of a figure: ``data[j, i]`` is the value at ``(x[i], y[j])``.

    ``x`` holds ``nx`` centres or ``nx + 1`` edges, likewise ``y``. ``x_is_time`` marks an
    ``x`` given as datetimes (stored as UNIX seconds), or as numbers that can only be UNIX
    seconds (``x_guessed_time``). Bounds are None when not given.
    Beyond x, y, data, label and bounds a row may set ``x_label``, ``y_scale``/``z_scale`` (override
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
    x_guessed_time: bool = False  # numbers taken for UNIX seconds, not datetimes
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


def _key_list(raw: Mapping) -> str:
    """``'a', 'b'`` for a message: the first few keys of what a loader returned."""
    keys = [repr(k) for k in list(raw)[:8]]
    more = f" and {len(raw) - 8} more" if len(raw) > 8 else ""
    return f"{', '.join(keys)}{more}" if keys else "no keys"


def _listed(keys: list[str]) -> str:
    quoted = [repr(k) for k in keys]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} and {quoted[-1]}"


def _hint(raw: Mapping) -> str:
    values = list(raw.values())
    if values and all(isinstance(v, Mapping) for v in values):
        return "; its values are dicts: return them as a list, e.g. list(d.values())"
    return "; return a list of dicts with keys x, y, data"


def check_rows(raw: Any, item: str) -> list[Row]:
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
        missing = [k for k in ("x", "y", "data") if raw.get(k) is None]
        if missing:
            # Not a row: say what came back, not "row 1", which the loader never made.
            raise RowError(
                f"{item}: the loader returned a dict with keys {_key_list(raw)} "
                f"instead of a list of rows; as a single row it lacks "
                f"{_listed(missing)}{_hint(raw)}"
            )
        raw = [raw]
    elif isinstance(raw, (str, bytes)) or not hasattr(raw, "__iter__"):
        raise RowError(
            f"{item}: the loader returned {type(raw).__name__}; expected a list "
            f"of dicts with keys x, y, data"
        )
    rows = []
    for i, r in enumerate(list(raw)):
        if not isinstance(r, Mapping):
            raise RowError(
                f"{item}: row {i + 1}: expected a dict with keys x, y, data, got {type(r).__name__}"
            )
        rows.append(_row(r, item, i))
    return rows


def _row(raw: Mapping, item: str, index: int) -> Row:
    import numpy as np

    where = _where(item, index, raw)
    for key in ("x", "y", "data"):
        if key not in raw or raw[key] is None:
            raise RowError(
                f"{where}: missing key {key!r} (a row needs x, y and data; it has {_key_list(raw)})"
            )
    warnings = [f"{where}: unknown key {k!r} ignored" for k in raw if k not in ROW_KEYS]

    x, x_is_time = _axis(raw["x"], where, "x", allow_time=True)
    x_guessed = False
    if (
        not x_is_time
        and raw.get("x_label") is None
        and raw.get("x_origin") is None
        and UNIX_RANGE[0] <= float(x.min())
        and float(x.max()) <= UNIX_RANGE[1]
    ):
        # Plain numbers that can only be UNIX seconds (the legacy plotter's x) are drawn as
        # UTC date-times: ten-digit second ticks are unreadable.
        x_is_time = x_guessed = True
    y, _ = _axis(raw["y"], where, "y", allow_time=False)
    try:
        data = np.asarray(raw["data"])
    except (TypeError, ValueError) as e:
        raise RowError(f"{where}: 'data' is not an array: {e}") from None
    if data.dtype == object or not (np.issubdtype(data.dtype, np.number) or data.dtype == bool):
        raise RowError(f"{where}: 'data' must be numeric, got dtype {data.dtype}")
    if np.iscomplexobj(data):
        raise RowError(f"{where}: 'data' is complex; give power or magnitude (real numbers)")
    if not np.issubdtype(data.dtype, np.floating):
        data = data.astype(np.float64)

    if data.ndim == 3:
        data = _collapse(data, raw, where)
    elif "collapse_axis" in raw and raw["collapse_axis"] is not None:
        raise RowError(
            f"{where}: 'collapse_axis' given but 'data' is {data.ndim}-D "
            f"(shape {data.shape}); it applies to 3-D data only"
        )
    if data.ndim != 2:
        raise RowError(
            f"{where}: 'data' must be 2-D (or 3-D with 'collapse_axis'), got "
            f"{data.ndim}-D with shape {data.shape}"
        )

    nx, ny = len(x), len(y)

    def fits(shape: tuple[int, ...]) -> bool:
        return shape[1] in (nx, nx - 1) and shape[0] in (ny, ny - 1)

    if not fits(data.shape):
        if fits(data.shape[::-1]):
            data = data.T  # (len(x), len(y)), as the legacy arr_2 layout
        else:
            raise RowError(
                f"{where}: 'data' has shape {data.shape} but 'x' has {nx} values and 'y' "
                f"has {ny}: expected ({ny}, {nx}), i.e. (len(y), len(x))"
            )
    if data.shape[1] == 0 or data.shape[0] == 0:
        raise RowError(f"{where}: 'data' is empty (shape {data.shape})")

    x, data = _monotonic(x, data, 1, where, "x")
    y, data = _monotonic(y, data, 0, where, "y")

    bounds = {k: _number(raw.get(k), where, k) for k in _BOUND_KEYS}
    # vmin/vmax (matplotlib's names) win over z_min/z_max; messages use the names given.
    lo_z = "vmin" if bounds["vmin"] is not None else "z_min"
    hi_z = "vmax" if bounds["vmax"] is not None else "z_max"
    for alias, key in (("vmin", "z_min"), ("vmax", "z_max")):
        if bounds[alias] is not None and bounds[key] is not None and bounds[alias] != bounds[key]:
            warnings.append(
                f"{where}: both {alias!r} and {key!r} given; {alias!r} = {bounds[alias]:g} is used"
            )
    z_min, z_max = bounds[lo_z], bounds[hi_z]
    for lo_key, hi_key in (("y_min", "y_max"), (lo_z, hi_z)):
        lo, hi = bounds[lo_key], bounds[hi_key]
        if lo is not None and hi is not None and not hi > lo:
            raise RowError(f"{where}: {lo_key} = {lo:g} is not below {hi_key} = {hi:g}")

    events = raw.get("events")
    return Row(
        x=x,
        y=y,
        data=data,
        label=_text(raw.get("label"), where, "label") or "",
        y_min=bounds["y_min"],
        y_max=bounds["y_max"],
        z_min=z_min,
        z_max=z_max,
        x_label=_text(raw.get("x_label"), where, "x_label"),
        y_label=_text(raw.get("y_label"), where, "y_label"),
        z_label=_text(raw.get("z_label"), where, "z_label"),
        y_scale=_scale(raw.get("y_scale"), where, "y_scale"),
        z_scale=_scale(raw.get("z_scale"), where, "z_scale"),
        x_is_time=x_is_time,
        x_guessed_time=x_guessed,
        x_origin=(
            None
            if raw.get("x_origin") is None
            else parse_time(raw["x_origin"], f"{where}: 'x_origin'")
        ),
        events=() if events is None else _events(events, f"{where}: 'events'"),
        warnings=warnings,
    )


#: x values all inside this range (UNIX seconds of 2000-01-01 and 2100-01-01) are times.
UNIX_RANGE = (946_684_800.0, 4_102_444_800.0)


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
    if a.dtype.kind == "M" or (
        a.dtype == object and a.size and all(hasattr(v, "timestamp") for v in a[:3])
    ):
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


def _monotonic(
    axis: np.ndarray, data: np.ndarray, dim: int, where: str, key: str
) -> tuple[np.ndarray, np.ndarray]:
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
        raise RowError(
            f"{where}: 'data' is 3-D (shape {data.shape}); give 'collapse_axis' "
            f"(0, 1 or 2) to say which axis to collapse"
        )
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
            return parse_time(
                _dt.datetime.fromisoformat(
                    text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
                ),
                where,
            )
        except ValueError:
            pass
    raise RowError(f"{where}: {value!r} is neither UNIX seconds nor an ISO 8601 time")
