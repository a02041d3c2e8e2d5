"""The built-in batch loaders (``iq`` for recordings, ``npz`` for arrays) and calling a
loader, built-in or plugin, on one item.

What a loader must return is ``rows.py``'s; importing plugins is ``plugins.py``'s;
drawing is ``figure.py``'s; the ledger, the engine and file names are ``run.py``'s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crunchctl.batch.plugins import BUILTINS, LoaderSpec, plugin_function
from crunchctl.batch.rows import ROW_KEYS
from crunchctl.errors import ItemError

log = logging.getLogger("crunchctl.batch")

if TYPE_CHECKING:
    import numpy as np

    from crunchctl.config import Settings

#: Item suffixes the automatic loader choice knows.
SUFFIX_LOADERS = {".tiq": "iq", ".npz": "npz"}


def choose_builtin(item: str, fmt: str | None = None) -> str | None:
    """The built-in loader for an item: ``npz`` for ``.npz``, ``iq`` for a recording of
    any registered format (by extension, or any item when ``fmt`` forces a format)."""
    from crunchctl import formats

    suffix = Path(item).suffix.lower()
    if suffix in SUFFIX_LOADERS:
        return SUFFIX_LOADERS[suffix]
    if fmt is not None or suffix in formats.extensions():
        return "iq"
    return None


_CACHE: dict[LoaderSpec, Callable[..., Any]] = {}


def load_function(spec: LoaderSpec) -> Callable[..., Any]:
    """The loader's function: a built-in, or the imported plugin's (cached per process).

    Raises:
        UsageError: a plugin that cannot be imported or whose function is missing or not
            callable.
    """
    fn = _CACHE.get(spec)
    if fn is None:
        fn = {"iq": load_iq, "npz": load_npz}.get(spec.kind) or plugin_function(spec)
        _CACHE[spec] = fn
    return fn


def call(spec: LoaderSpec, item: str, path: str, settings: Settings | None) -> Any:
    """Run the loader on one item; built-ins get the absolute path and the IQ settings."""
    fn = load_function(spec)
    if spec.kind in BUILTINS:
        return fn(path, settings)
    return fn(item)


# ------------------------------------------------------------------------ built-ins


def _iq_row(
    power: np.ndarray,
    freqs: np.ndarray,
    times: np.ndarray,
    *,
    center: float,
    label: str,
    origin: float | None,
    frame: float | None = None,
) -> dict:
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
        "x": times,
        "y": (freqs - center) / 1e3,
        "data": db.T,
        "label": label,
        "x_label": "time (s)",
        "y_label": "frequency offset (kHz)",
        "z_label": "power (dB)",
        "y_scale": "linear",
        "z_scale": "linear",
        "x_origin": origin,
    }


def load_iq(path: str, settings: Settings) -> list[dict]:
    """Built-in ``iq`` loader: the full spectrogram and the zoomed, time-averaged one.

    Args:
        path: a recording in any format of the registry (docs/formats.md).
        settings: lframes, nframes, window, n_avg, zoom_center, zoom_span, and how to
            read it (format, sample_rate, center_frequency, tdms_channels, verify_checksum).
    """
    from crunchctl.quicklook import task as pipeline

    return _iq_rows(path, pipeline.compute(path, settings), settings)


def load_iq_products(
    path: str, settings: Settings, output: str, stem: str, wanted: tuple[str, ...]
) -> tuple[list[dict], list[str], dict[str, Any]]:
    """The ``iq`` loader's rows, and the recording's mean-spectrum products from the same
    read (``spectrum``, ``peaks``; ``campaign`` needs the spectrum file), written to
    ``output`` under ``stem`` as ``process`` writes them (docs/products.md).

    Returns:
        ``(rows, product paths in the table's order, extra)``; ``extra`` is what a
        recording's outcome carries (``peaks``: the ledger's JSON value).
    """
    import numpy as np

    from crunchctl import catalog
    from crunchctl.quicklook import meanproducts, task as pipeline

    spec = pipeline.compute(path, settings)
    rec: Any = spec.recording
    mean = np.asarray(spec.power).mean(axis=0, dtype=np.float64)
    made, extra = meanproducts.write(
        Path(output),
        stem,
        wanted,
        settings,
        freqs=spec.freqs,
        mean_raw=mean,
        described=pipeline.describe(rec, settings),
        rec=rec,
        title=pipeline.title_for(path, spec.header),
    )
    extra.update(nframes=rec.nframes, center=rec.center)
    entries = catalog.chosen(",".join(wanted))
    paths = [p for e in pipeline.entries_in_order(entries, made) for p in made.get(e.name, [])]
    return _iq_rows(path, spec, settings), paths, extra


def _iq_rows(path: str, spec: Any, settings: Settings) -> list[dict]:
    """The full and zoom rows of a computed spectrogram (``task.Spectrogram``)."""
    from crunchctl.quicklook import zoom
    from crunchctl.quicklook.render import describe_resolution, fmt_hz

    header: Any = spec.header  # formats.base.Header
    fs, center = header.sample_rate, header.center_frequency
    acquired = header.acquisition_start
    origin = acquired.timestamp() if acquired else None
    res = describe_resolution(fs, spec.lframes, window=settings.window)
    when = f", acquired {acquired.isoformat(sep=' ', timespec='milliseconds')}" if acquired else ""
    frame = spec.lframes / fs
    rows = [
        _iq_row(
            spec.power,
            spec.freqs,
            spec.times,
            center=center,
            origin=origin,
            frame=frame,
            label=f"full span {fmt_hz(fs)} around {fmt_hz(center)}, {res}{when}",
        )
    ]
    # The quicklook's own zoom computation (span, averaging), on the whole array.
    z = zoom.zoom_of(path, spec.power, spec.freqs, center, fs, settings)
    for note in z.window.notes:
        log.warning("%s: %s", path, note)
    zres = describe_resolution(fs, spec.lframes, z.window.n_avg, window=settings.window)
    rows.append(
        _iq_row(
            z.power,
            z.freqs,
            z.times,
            center=center,
            origin=origin,
            frame=frame * z.window.n_avg,
            label=f"zoom {fmt_hz(z.window.span)} around {fmt_hz(z.window.centre)}, {zres}",
        )
    )
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
    data_keys = sorted(
        (k for k in keys if k.startswith("data_") and k[5:].isdigit()), key=lambda k: int(k[5:])
    )
    if "data" not in keys and not data_keys:
        raise ItemError(
            f"{path}: no arrays in a known layout: expected arr_0/arr_1/arr_2, "
            f"or x, y and data (or data_0, data_1, ...); found "
            f"{', '.join(sorted(keys)) or 'no arrays'}"
        )
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
                raise ItemError(
                    f"{path}: row {n + 1}: no {key!r} array (store {key!r} or '{key}_{i}')"
                )
    return rows


def _legacy_row(arrays: dict, path: str) -> dict:
    import numpy as np

    freqs = np.asarray(arrays["arr_0"], dtype=np.float64).ravel()
    times = np.asarray(arrays["arr_1"], dtype=np.float64).ravel()
    power = np.asarray(arrays["arr_2"])
    if power.ndim != 2:
        raise ItemError(f"{path}: 'arr_2' must be 2-D (time x frequency), got shape {power.shape}")
    if power.shape != (times.size, freqs.size):
        if power.shape == (freqs.size, times.size):
            power = power.T
        else:
            raise ItemError(
                f"{path}: 'arr_2' has shape {power.shape} but 'arr_0' has "
                f"{freqs.size} frequencies and 'arr_1' {times.size} times: "
                f"expected ({times.size}, {freqs.size})"
            )
    if "center_frequency" in arrays:
        center = float(arrays["center_frequency"])
    else:
        center = float(freqs[freqs.size // 2]) if freqs.size else 0.0
    from crunchctl.formats.tiq import parse_datetime
    from crunchctl.quicklook.render import fmt_hz

    # crunchctl's own NPZ products say when the recording started: events can then land.
    origin = None
    if "acquisition_start" in arrays and arrays["acquisition_start"].ndim == 0:
        when = parse_datetime(str(arrays["acquisition_start"]))
        origin = when.timestamp() if when else None
    finite = power[np.isfinite(power)]
    if finite.size and finite.min() >= 0:
        return _iq_row(
            power,
            freqs,
            times,
            center=center,
            origin=origin,
            label=f"{Path(path).name} (arr_0/arr_1/arr_2), offsets from {fmt_hz(center)}",
        )
    # Not a power spectrogram (negative values): draw it as it is.
    return {
        "x": times,
        "y": (freqs - center) / 1e3,
        "data": power.T,
        "label": f"{Path(path).name} (arr_0/arr_1/arr_2)",
        "x_label": "time (s)",
        "y_label": f"offset from {fmt_hz(center)} (kHz)",
        "z_label": "arr_2",
    }
