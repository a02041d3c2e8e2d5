"""Bad input: one table of every bad recording and batch input, one test over it.

All recordings of the table go through ONE ``crunchctl process`` run together with good
ones, all batch items through ONE ``crunchctl batch`` run (items file with a BOM, Windows
line endings and duplicates), the 0-byte items file through its own run. The test then
checks each row of the table on its own: the item's status in the ledger, a clear message
that names the item (in the ledger and where the operator sees it), and, for good items in
the same run, that they were not affected.

The process run drops root's power to ignore file permissions (a real operator account
cannot read a file it has no permission for; root can), so an unreadable recording is
really unreadable: ``chmod 000``, and the kernel says EACCES.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from crunchctl.formats import synth
from crunchctl.ledger.store import Ledger

PNG_TAIL = b"IEND\xaeB`\x82"
PREFIX = len('<DataFile offset="000000000" ')

PLUGIN = '''\
"""Loader for tests/faults/test_bad_input.py: what users' loaders get wrong."""
import numpy as np


def load(item):
    x, y = np.arange(10.0), np.arange(5.0)
    good = {"x": x, "y": y, "data": np.arange(50.0).reshape(5, 10), "label": item}
    dead = {"x": x, "y": y, "data": np.full((5, 10), np.nan), "label": "dead"}
    if item == "nan_only":
        return [dead]
    if item == "nan_row":
        return [good, dead]
    if item == "mismatch":
        return [{"x": x, "y": y, "data": np.zeros((7, 3)), "label": "broken"}]
    if item == "ragged":
        return [{"x": x, "y": y, "data": [[1.0, 2.0, 3.0], [1.0]]}]
    return [good]
'''

# ------------------------------------------------------------------------ recordings


def _good(folder: Path) -> bytes:
    """The bytes of a small real recording (3 frames of 1024 samples, centre 100 MHz)."""
    path = folder / ".template"
    if not path.exists():
        synth.make_recording(
            path, synth.RecordingSpec(nframes=3, lframes=1024, fs=1.0e6, center=100.0e6)
        )
    return path.read_bytes()


def _split(raw: bytes) -> tuple[str, bytes]:
    """(header text after the offset field, samples) of a recording."""
    offset = int(raw[18:27])
    return raw[PREFIX:offset].decode().rstrip(), raw[offset:]


def _assemble(body: str, data: bytes, *, field: str | None = None, pad: int = 4096) -> bytes:
    """A recording from a header body: the offset field says where the samples start."""
    size = max(pad, PREFIX + len(body.encode()) + 1)
    head = f'<DataFile offset="{field if field is not None else f"{size:09d}"}" {body}'
    raw = head.encode()
    return raw + b" " * (size - len(raw)) + data


def make_good(path: Path) -> None:
    path.write_bytes(_good(path.parent))


def make_empty(path: Path) -> None:
    path.write_bytes(b"")


def make_cut_header(path: Path) -> None:
    raw = _good(path.parent)
    path.write_bytes(raw[: int(raw[18:27]) // 2])  # a copy interrupted inside the header


def make_offset_past_end(path: Path) -> None:
    raw = _good(path.parent)
    path.write_bytes(raw[:18] + b"999999999" + raw[27:])


def make_more_samples_than_data(path: Path) -> None:
    body, data = _split(_good(path.parent))
    body = re.sub(
        r">(\d+)</NumberSamples>", lambda m: f">{int(m.group(1)) * 2}</NumberSamples>", body
    )
    path.write_bytes(_assemble(body, data))


def make_unknown_format(path: Path) -> None:
    body, data = _split(_good(path.parent))
    path.write_bytes(_assemble(body.replace(">Int32<", ">Int64<"), data))


def make_directory(path: Path) -> None:
    path.mkdir()
    (path / "inside.txt").write_text("a folder named like a recording\n")


def make_not_tiq(path: Path) -> None:
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(2000))  # some other file, renamed


def make_unreadable(path: Path) -> None:
    make_good(path)
    path.chmod(0)  # a share that denies access to one file


def make_entities_and_comments(path: Path) -> None:
    body, data = _split(_good(path.parent))
    body = body.replace(
        "<NumberSamples",
        "<!-- decoys: <NumberSamples>99</NumberSamples><NumberFormat>Int16</NumberFormat> -->"
        "<?signalvu written-by='test'?><NumberSamples",
        1,
    )
    body = body.replace(">Int32</NumberFormat>", "><![CDATA[Int32]]></NumberFormat>")
    body = re.sub(
        r'(<Frequency type="System.Double">)100000000\.0(</Frequency>)',
        r"\1<!-- centre, Hz -->&#49;&#x30;0000000.0\2",
        body,
    )
    body = body.replace(
        "<Instrument>RSA5106B</Instrument>",
        "<Instrument>R&amp;S &lt;RSA&gt; &#xFC;ber &quot;5106B&quot;</Instrument>",
    )
    assert body.count("&#49;") == 1 and "CDATA" in body
    path.write_bytes(_assemble(body, data))


def make_offset_not_nine_digits(path: Path) -> None:
    body, data = _split(_good(path.parent))
    path.write_bytes(_assemble(body, data, field="4096"))


def make_dangling_symlink(path: Path) -> None:
    os.symlink(path.parent / "moved-away" / "rec.tiq", path)


# ---------------------------------------------------------------------------- checks


def check_numbers_read_through_entities(runs: Runs, item: str, row: dict) -> None:
    npz = next(p for p in row["products"] if p.endswith(".npz"))
    with np.load(npz) as z:
        assert float(z["center_frequency"]) == 100.0e6  # &#49;&#x30;0000000.0
        assert z["arr_2"].shape == (3, 1024)  # the real NumberSamples, not the decoy
        assert z["arr_0"][0, 512] == 100.0e6


def check_sizes_named(runs: Runs, item: str, row: dict) -> None:
    size = os.path.getsize(item)
    offset = int(_good(Path(item).parent)[18:27])
    assert (
        f"file has {size} bytes but its header says the samples start at byte {offset}"
        in row["error"]
    )


def check_process_run(runs: Runs, item: str, row: dict) -> None:
    bad = sum(1 for c in CASES if c.run == "process" and c.status == "error")
    good = sum(1 for c in CASES if c.run == "process" and c.status == "ok")
    assert runs.process.returncode == 1
    assert f"processed {good}, failed {bad}" in runs.process.stdout
    assert "Traceback" not in runs.process.stderr


def check_items_file_read_clean(runs: Runs, item: str, row: dict) -> None:
    items = set(runs.rows.filter(pl.col("kind") == "batch")["item"].to_list())
    assert items == {c.item for c in CASES if c.run == "batch"}  # no BOM, no \r, no comment
    assert runs.batch.returncode == 1 and "Traceback" not in runs.batch.stderr


def check_duplicates_warned(runs: Runs, item: str, row: dict) -> None:
    assert "good_a: listed more than once; processed once" in runs.batch.stderr


def check_empty_items_file(runs: Runs, item: str, row: dict | None) -> None:
    r = runs.empty
    assert r.returncode == 0, r.stderr
    assert "nothing to do" in r.stdout and "lists no items" in r.stdout
    assert not runs.rows.filter(pl.col("source").str.ends_with("empty.txt")).height


# ----------------------------------------------------------------------------- table


@dataclass(frozen=True)
class Case:
    what: str  # the bad input, as docs/formats.md names it
    run: str  # "process", "batch" or "empty items"
    item: str  # file name in the recordings folder, or the batch item
    status: str | None  # the item's status in the ledger (None: no item at all)
    says: tuple[str, ...] = ()  # what its message says besides the item's name
    make: Callable[[Path], None] | None = None
    check: Callable[..., None] | None = None


CASES = [
    # docs/formats.md lists what bad TIQ files look like
    Case(
        "zero-length file", "process", "empty.tiq", "error", ("empty file (0 bytes)",), make_empty
    ),
    Case(
        "header cut in the middle",
        "process",
        "cut.tiq",
        "error",
        ("header cut: file has",),
        make_cut_header,
        check_sizes_named,
    ),
    Case(
        "offset pointing past the end",
        "process",
        "past_end.tiq",
        "error",
        ("samples start at byte 999999999",),
        make_offset_past_end,
    ),
    Case(
        "NumberSamples larger than the data",
        "process",
        "short_data.tiq",
        "error",
        ("header says 6144 samples (49152 bytes) but only 24576 bytes of data follow",),
        make_more_samples_than_data,
    ),
    Case(
        "unknown number format",
        "process",
        "int64.tiq",
        "error",
        ("unknown NumberFormat 'Int64'",),
        make_unknown_format,
    ),
    Case(
        "directory named *.tiq",
        "process",
        "folder.tiq",
        "error",
        ("is a directory",),
        make_directory,
    ),
    Case(
        "non-TIQ file named *.tiq",
        "process",
        "picture.tiq",
        "error",
        ("not a TIQ recording",),
        make_not_tiq,
    ),
    Case(
        "unreadable file",
        "process",
        "locked.tiq",
        "error",
        ("cannot read: Permission denied",),
        make_unreadable,
    ),
    # odd but valid headers, and batch inputs
    Case(
        "header with XML entities and comments",
        "process",
        "entities.tiq",
        "ok",
        (),
        make_entities_and_comments,
        check_numbers_read_through_entities,
    ),
    Case(
        "offset not nine digits",
        "process",
        "offset4096.tiq",
        "error",
        ("header offset '4096' is not nine decimal digits",),
        make_offset_not_nine_digits,
    ),
    Case(
        "symlink to nowhere",
        "process",
        "dangling.tiq",
        "error",
        ("broken symbolic link",),
        make_dangling_symlink,
    ),
    Case(
        "name with spaces and non-ASCII", "process", "Strahlzeit 7 – Ü äöß.tiq", "ok", (), make_good
    ),
    Case(
        "good recording next to them", "process", "good.tiq", "ok", (), make_good, check_process_run
    ),
    Case("0-byte items file", "empty items", "", None, check=check_empty_items_file),
    Case(
        "items file with BOM and CRLF", "batch", "good_a", "ok", check=check_items_file_read_clean
    ),
    Case("duplicate items", "batch", "good_b", "ok", check=check_duplicates_warned),
    Case("item with spaces and non-ASCII", "batch", "Lauf 7 – Ü/ä", "ok"),
    Case(
        "plugin returns NaN-only data",
        "batch",
        "nan_only",
        "no_data",
        ("no finite values: every row is NaN only",),
    ),
    Case(
        "plugin returns a NaN-only row next to a good one",
        "batch",
        "nan_row",
        "ok",
        ("row 'dead': no finite values (all NaN)",),
    ),
    Case(
        "plugin returns mismatched array shapes",
        "batch",
        "mismatch",
        "error",
        ("row 1 (broken): 'data' has shape (7, 3) but 'x' has 10 values and 'y' has 5",),
    ),
    Case(
        "plugin returns ragged data", "batch", "ragged", "error", ("row 1: 'data' is not an array",)
    ),
]

# The items file: a BOM, Windows line endings, a comment, a blank line and duplicates.
ITEMS = (
    "\ufeffgood_a\r\n# items of the night shift\r\n\r\ngood_b\r\nnan_only\r\n"
    "good_b\r\nmismatch\r\nragged\r\nnan_row\r\nLauf 7 – Ü/ä\r\ngood_a\r\ngood_b\r\n"
)


# ------------------------------------------------------------------------------ runs


@dataclass
class Runs:
    base: Path
    process: subprocess.CompletedProcess
    batch: subprocess.CompletedProcess
    empty: subprocess.CompletedProcess
    rows: pl.DataFrame


def _as_an_operator() -> None:
    """preexec_fn: as root, give up the power to ignore file permissions (CAP_DAC_OVERRIDE,
    CAP_DAC_READ_SEARCH) for the child and what it runs, as an operator account has none."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _crunchctl() -> list[str]:
    exe = shutil.which("crunchctl")
    return [exe] if exe else [sys.executable, "-m", "crunchctl"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    base = tmp_path_factory.mktemp("bad_input")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRUNCHCTL_")}
    home = base / "home"
    env.update(
        NO_COLOR="1",
        COLUMNS="200",
        PYTHONUNBUFFERED="1",
        CRUNCHCTL_STATE_DIR=str(home / "state"),
        **{
            v: str(home / v.lower())
            for v in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME")
        },
    )
    common = ["--ledger", str(base / "ledger"), "--log-file", str(base / "crunchctl.log")]

    rec = base / "rec"
    rec.mkdir()
    paths = []
    for case in CASES:
        if case.run == "process":
            case.make(rec / case.item)
            paths.append(str(rec / case.item))
    process = subprocess.run(
        [
            *_crunchctl(),
            "process",
            *paths,
            "--lframes",
            "1024",
            "--zoom-span",
            "200000",
            "--output",
            str(base / "out"),
            "-j",
            "2",
            *common,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        preexec_fn=_as_an_operator if os.geteuid() == 0 else None,
    )

    (base / "loader.py").write_text(PLUGIN)
    (base / "items.txt").write_bytes(ITEMS.encode())
    batch_args = [
        "--loader",
        f"{base / 'loader.py'}:load",
        "--output",
        str(base / "figs"),
        "--dpi",
        "40",
        "-j",
        "2",
        *common,
    ]
    batch = subprocess.run(
        [*_crunchctl(), "batch", str(base / "items.txt"), *batch_args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    (base / "empty.txt").write_bytes(b"")
    empty = subprocess.run(
        [*_crunchctl(), "batch", str(base / "empty.txt"), *batch_args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    reader = Ledger(base / "ledger", create=False)
    rows = reader.scan().collect()
    assert reader.warnings == []
    return Runs(base, process, batch, empty, rows)


def _one_line(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("case", CASES, ids=[c.what for c in CASES])
def test_bad_input(runs: Runs, case: Case):
    if case.status is None:
        case.check(runs, case.item, None)
        return
    r = runs.process if case.run == "process" else runs.batch
    kind = "iq" if case.run == "process" else "batch"
    item = str(runs.base / "rec" / case.item) if case.run == "process" else case.item
    attempts = runs.rows.filter((pl.col("kind") == kind) & (pl.col("item") == item))
    assert attempts.height == 1, (item, r.stderr)  # exactly one row, duplicates too
    row = attempts.row(0, named=True)
    assert row["status"] == case.status, (row["error"], r.stderr)
    message = (row["error"] if case.status != "ok" else row["warning"]) or ""
    for fragment in case.says:
        assert fragment in message, message
    if case.status != "ok":
        # Clear, names the item, and the operator sees it (log line or run summary).
        assert message.startswith(f"{item}: "), message
        assert "\n" not in message and "Traceback" not in message
        assert message in _one_line(r.stderr) or message in _one_line(r.stdout)
        assert row["products"] == []
    else:
        assert row["products"]
        for product in row["products"]:
            data = Path(product).read_bytes()
            if product.endswith(".png"):
                assert data[-8:] == PNG_TAIL, product
        if case.says:  # warnings of an ok item are shown too
            assert all(f in _one_line(r.stderr) for f in case.says)
    if case.check is not None:
        case.check(runs, item, row)
