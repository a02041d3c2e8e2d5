"""Lines followed across recordings (``crunchctl trend``): matching, rates and the picture.

Reads the peaks through ``ledger/peaks.py``; prints nothing (docs/products.md, "trend").
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

#: Lines followed when no ``--at`` is given.
DEFAULT_LINES = 3
#: Default matching tolerance, in bins of each recording.
TOLERANCE_BINS = 3.0
CSV_HEADER = "line_hz,item,time,frequency_hz,power_db,fwhm_hz,snr_db"


@dataclass
class Trend:
    """One line: the frequency it was followed from and its points in acquisition order."""

    frequency_hz: float
    points: list[dict[str, Any]] = field(default_factory=list)
    #: the unit of the power values (``V²``, ``V²/Hz``, ...)
    unit: str = ""

    def rates(self) -> tuple[float | None, float | None]:
        """(dB per hour, Hz per hour): least-squares slopes; None with fewer than two
        points at different times."""
        import numpy as np

        t = np.array([p["time"] for p in self.points], dtype=np.float64)
        if t.size < 2 or np.ptp(t) == 0:
            return None, None
        hours = (t - t[0]) / 3600.0
        power = np.polyfit(hours, [p["power_db"] for p in self.points], 1)[0]
        drift = np.polyfit(
            hours, [p["frequency_hz"] - self.points[0]["frequency_hz"] for p in self.points], 1
        )[0]
        return float(power), float(drift)


def follow(
    recordings: Sequence[dict[str, Any]],
    *,
    at: Sequence[float] = (),
    lines: int = DEFAULT_LINES,
    tolerance: float | None = None,
) -> list[Trend]:
    """Follow lines through ``recordings`` (``ledger.peaks.latest_peaks``, time order).

    Without ``at`` the ``lines`` strongest lines of the latest recording that has any are
    followed. Each line is followed from the latest recording back to the first: in each
    recording the peak nearest to the line's last match within ``tolerance`` Hz (default 3
    bins of that recording) is its point, so a line drifting less than that per recording
    stays followed; a recording without such a peak has no point.
    """
    with_lines = [r for r in recordings if r["lines"]]
    if not with_lines:
        return []
    if at:
        starts = [float(f) for f in at]
    else:
        latest = max(with_lines, key=lambda r: r["time"])
        strongest = sorted(latest["lines"], key=lambda x: x["power_db"], reverse=True)
        starts = [x["frequency_hz"] for x in strongest[:lines]]
    out = []
    for start in starts:
        trend = Trend(start)
        current = start
        for rec in reversed(recordings):
            tol = tolerance if tolerance is not None else TOLERANCE_BINS * (rec["bin_hz"] or 0)
            near = [x for x in rec["lines"] if abs(x["frequency_hz"] - current) <= tol]
            if not near:
                continue
            best = min(near, key=lambda x: abs(x["frequency_hz"] - current))
            current = best["frequency_hz"]
            trend.points.append({"item": rec["item"], "time": rec["time"], **best})
            trend.unit = trend.unit or rec.get("unit") or ""
        trend.points.reverse()
        out.append(trend)
    return out


def iso(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).isoformat().replace("+00:00", "Z")


def as_json(trends: Sequence[Trend]) -> dict[str, Any]:
    return {
        "lines": [
            {
                "frequency_hz": t.frequency_hz,
                "points": [
                    {
                        "item": p["item"],
                        "time": iso(p["time"]),
                        "frequency_hz": p["frequency_hz"],
                        "power_db": p["power_db"],
                        "fwhm_hz": p["fwhm_hz"],
                        "snr_db": p["snr_db"],
                    }
                    for p in t.points
                ],
            }
            for t in trends
        ]
    }


def as_csv(trends: Sequence[Trend]) -> str:
    rows = [CSV_HEADER]
    for t in trends:
        for p in t.points:
            rows.append(
                f"{t.frequency_hz:.6f},{_csv(p['item'])},{iso(p['time'])},"
                f"{p['frequency_hz']:.6f},{p['power_db']:.4f},{p['fwhm_hz']:.6g},"
                f"{p['snr_db']:.4f}"
            )
    return "\n".join(rows) + "\n"


def _csv(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text


def summary(trends: Sequence[Trend]) -> list[dict[str, Any]]:
    """Per line: its frequency, points, first and last power, dB/h and Hz/h."""
    rows = []
    for t in trends:
        power_rate, drift = t.rates()
        rows.append(
            {
                "frequency_hz": t.frequency_hz,
                "points": len(t.points),
                "first_db": t.points[0]["power_db"] if t.points else None,
                "last_db": t.points[-1]["power_db"] if t.points else None,
                "db_per_hour": power_rate,
                "hz_per_hour": drift,
            }
        )
    return rows


def draw(
    trends: Sequence[Trend],
    *,
    title: str = "line trends",
    size: tuple[float, float] = (10.0, 6.5),
    dpi: int = 100,
) -> bytes:
    """A PNG of two panels sharing the time axis: each line's frequency offset from its
    first point (Hz) and its power (dB); one colour per line, a legend with frequencies."""
    import io

    from matplotlib import dates as mdates
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from crunchctl.quicklook.render import fmt_hz

    utc = _dt.timezone.utc
    fig = Figure(figsize=size, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True)
    for i, t in enumerate(trends):
        if not t.points:
            continue
        when = [_dt.datetime.fromtimestamp(p["time"], utc) for p in t.points]
        first = t.points[0]["frequency_hz"]
        colour = f"C{i % 10}"
        top.plot(
            when,
            [p["frequency_hz"] - first for p in t.points],
            "o-",
            color=colour,
            ms=4,
            label=fmt_hz(t.frequency_hz),
        )
        bottom.plot(when, [p["power_db"] for p in t.points], "o-", color=colour, ms=4)
    top.set_ylabel("frequency offset from\nthe first point (Hz)")
    unit = next((t.unit for t in trends if t.unit), "")
    bottom.set_ylabel(f"power (dB re 1 {unit})" if unit else "power (dB)")
    bottom.set_xlabel("acquisition start (UTC)")
    bottom.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M", tz=utc))
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    if any(t.points for t in trends):
        top.legend(loc="best", fontsize=8, title="line", title_fontsize=8)
    times = {p["time"] for t in trends for p in t.points}
    if len(times) == 1:  # one instant (header times that do not advance): an hour around it
        only = _dt.datetime.fromtimestamp(times.pop(), utc)
        bottom.set_xlim(only - _dt.timedelta(minutes=30), only + _dt.timedelta(minutes=30))
        title += "   (every recording has the same acquisition start)"
    fig.suptitle(title, x=0.02, ha="left", fontsize=11, fontweight="bold")
    fig.autofmt_xdate()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def run(
    ledger: Any,
    folders: Sequence[str] = (),
    *,
    since: float | None = None,
    at: Sequence[float] = (),
    lines: int = DEFAULT_LINES,
    tolerance: float | None = None,
) -> tuple[list[Trend], int]:
    """Read the peaks and follow the lines: (trends, recordings with peaks)."""
    from crunchctl.ledger.peaks import latest_peaks

    recordings = latest_peaks(ledger, folders, since=since)
    return follow(recordings, at=at, lines=lines, tolerance=tolerance), len(recordings)
