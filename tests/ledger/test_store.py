"""crunchctl.ledger.store on real Parquet files: appends, damage, compaction, concurrency."""

from __future__ import annotations

import contextlib
import os
import pathlib
import subprocess
import sys
import time

import polars as pl
import pytest

from crunchctl import __version__
from crunchctl.errors import LedgerError
from crunchctl.ledger.store import COMPACT_AFTER_PARTS, SCHEMA, Ledger, default_ledger_path
from crunchctl.watch.status import summary
from ledger_helpers import T0, files, oc

REPO = pathlib.Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------- storage


def test_round_trip(tmp_path):
    with Ledger(tmp_path / "l", flush_every=2) as led:
        led.record(oc("/r/a.tiq", products=["/o/a.png", "/o/a.npz"]))
        led.record_many(
            [
                oc("/r/b.tiq", "error", error="bad header", size=None, mtime_ns=None),
                oc("/r/c.tiq", "no_data", t=T0 + 5),
            ]
        )
    assert len(files(tmp_path / "l", "part-")) == 2  # one flush at 2 rows, one on exit
    df = Ledger(tmp_path / "l").scan().collect().sort("item")
    assert df.schema == pl.Schema(SCHEMA)
    assert df["item"].to_list() == ["/r/a.tiq", "/r/b.tiq", "/r/c.tiq"]
    assert df["status"].to_list() == ["ok", "error", "no_data"]
    assert df["products"].to_list() == [["/o/a.png", "/o/a.npz"], [], []]
    assert df["error"].to_list() == [None, "bad header", None]
    assert df["size"].to_list() == [10, None, 10]
    assert df["mtime_ns"].to_list() == [20, None, 20]
    assert df["duration_s"].to_list() == [1.5, 1.5, 1.5]
    assert [d.timestamp() for d in df["finished"]] == [T0, T0, T0 + 5]
    assert df["row_id"].n_unique() == 3
    assert set(df["version"]) == {__version__}
    assert set(df["pid"]) == {os.getpid()}
    seqs = df.sort("seq")["item"].to_list()
    assert seqs == ["/r/a.tiq", "/r/b.tiq", "/r/c.tiq"]  # seq follows record order


def test_buffer_is_visible_and_flushed_on_exception(tmp_path):
    led = Ledger(tmp_path, flush_every=100)
    led.record(oc("/r/a.tiq"))
    assert files(tmp_path) == []
    assert led.scan().collect()["item"].to_list() == ["/r/a.tiq"]
    with pytest.raises(RuntimeError):
        with led:
            led.record(oc("/r/b.tiq"))
            raise RuntimeError("boom")
    assert len(files(tmp_path)) == 1
    assert Ledger(tmp_path).scan().collect().height == 2
    led.flush()  # nothing buffered: no new file
    assert len(files(tmp_path)) == 1


def test_empty_and_missing_ledger(tmp_path):
    missing = tmp_path / "not" / "there"
    led = Ledger(missing, create=False)
    df = led.scan().collect()
    assert df.height == 0 and df.schema == pl.Schema(SCHEMA)
    assert summary(led)["rows"] == 0
    assert led.done_items("iq", [("/r/a.tiq", 1, 2)], "d1") == set()
    assert not missing.exists()
    Ledger(tmp_path / "new")
    assert (tmp_path / "new").is_dir()


def test_path_that_is_a_file(tmp_path):
    f = tmp_path / "ledger"
    f.write_text("x")
    for create in (True, False):
        with pytest.raises(LedgerError, match="is a file") as info:
            Ledger(f, create=create)
        assert str(f) in str(info.value)
    with pytest.raises(LedgerError, match="cannot create"):
        Ledger(f / "sub")


def test_default_ledger_path(monkeypatch, tmp_path):
    monkeypatch.setenv("CRUNCHCTL_STATE_DIR", str(tmp_path / "state"))
    assert default_ledger_path() == tmp_path / "state" / "ledger"
    monkeypatch.delenv("CRUNCHCTL_STATE_DIR")
    path = default_ledger_path()
    assert path.name == "ledger" and "crunchctl" in str(path)


def test_schema_evolution(tmp_path):
    with Ledger(tmp_path) as led:
        led.record(oc("/r/new.tiq"))
    base = Ledger(tmp_path).scan().collect()
    # An older writer: no `host` column, an unknown column, and a narrower integer type.
    old = base.with_columns(
        item=pl.lit("/r/old.tiq"),
        row_id=pl.lit("0" * 32),
        size=pl.col("size").cast(pl.Int32),
        legacy_note=pl.lit("x"),
    ).drop("host")
    old.write_parquet(tmp_path / "part-00000000T000000.000000-old-1-00000000.parquet")
    led = Ledger(tmp_path)
    df = led.scan().collect().sort("item")
    assert df.schema == pl.Schema(SCHEMA)
    assert df["item"].to_list() == ["/r/new.tiq", "/r/old.tiq"]
    assert df["host"].to_list()[1] is None and df["host"].to_list()[0] is not None
    assert df["size"].to_list() == [10, 10]
    assert "legacy_note" not in df.columns
    assert led.warnings == []


def test_damaged_files_are_skipped_and_kept(tmp_path):
    with Ledger(tmp_path, flush_every=5) as led:
        led.record_many(oc(f"/r/{i}.tiq") for i in range(10))
    good = files(tmp_path)[0]
    truncated = tmp_path / "part-truncated.parquet"
    data = good.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    text = tmp_path / "part-x.parquet"
    text.write_text("this is not parquet\n")
    led = Ledger(tmp_path)
    assert led.scan().collect()["item"].n_unique() == 10
    assert led.scan().collect().height == 10
    assert any(str(truncated) in w and "truncated" in w for w in led.warnings)
    assert any(str(text) in w and "not a Parquet file" in w for w in led.warnings)
    assert len(led.warnings) == 2  # repeated reads do not repeat warnings
    status = summary(led)
    assert status["rows"] == 10 and len(status["warnings"]) == 2
    led.compact()
    assert truncated.exists() and text.exists()  # never deleted or merged
    assert len(files(tmp_path, "compact-")) == 1 and files(tmp_path, "part-") == sorted(
        [text, truncated]
    )
    assert Ledger(tmp_path).scan().collect().height == 10


def test_compaction_keeps_every_row(tmp_path):
    n_flushes = COMPACT_AFTER_PARTS * 3 + 5
    with Ledger(tmp_path, flush_every=3) as led:
        led.record_many(oc(f"/r/{i}.tiq", t=T0 + i) for i in range(3 * n_flushes))
    parts, compacts = files(tmp_path, "part-"), files(tmp_path, "compact-")
    assert len(parts) <= COMPACT_AFTER_PARTS
    assert 1 <= len(compacts) < n_flushes // COMPACT_AFTER_PARTS + 1
    df = Ledger(tmp_path).scan().collect()
    assert df.height == 3 * n_flushes and df["row_id"].n_unique() == df.height
    led = Ledger(tmp_path)
    led.compact()
    assert files(tmp_path, "part-") == [] and len(files(tmp_path, "compact-")) == 1
    assert led.scan().collect().height == 3 * n_flushes
    assert list(tmp_path.glob(".*.tmp")) == []


def test_compaction_overlap_is_deduplicated(tmp_path):
    # A crash between writing a compact file and deleting its inputs leaves both.
    with Ledger(tmp_path, flush_every=4) as led:
        led.record_many(oc(f"/r/{i}.tiq") for i in range(8))
    first = files(tmp_path, "part-")[0]
    (tmp_path / "compact-20000101T000000.000000-deadbeef.parquet").write_bytes(first.read_bytes())
    led = Ledger(tmp_path)
    assert led.scan().collect().height == 8
    assert summary(led)["rows"] == 8
    assert led.latest().height == 8
    assert len(led.done_items("iq", [(f"/r/{i}.tiq", 10, 20) for i in range(8)], "d1")) == 8
    led.compact()
    assert len(files(tmp_path)) == 1
    assert pl.read_parquet(files(tmp_path)[0]).height == 8


WRITER = """
import sys, time
from crunchctl.ledger.store import Ledger
from crunchctl.outcome import Outcome
path, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with Ledger(path, flush_every=7) as led:
    for i in range(n):
        t = time.time()
        led.record(Outcome(item=f"{tag}-{i}", kind="batch", source="batch:" + tag,
                           status="ok", started=t, finished=t))
"""


@pytest.mark.parametrize("reader_lock", [True, False], ids=["reader-locks", "lock-free-reader"])
def test_two_processes_append_concurrently(tmp_path, reader_lock):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), tag, "2000"],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("p1", "p2")
    ]
    # A reader works while the writers write; it never sees rows disappear.
    reader = Ledger(tmp_path, create=False)
    if not reader_lock:  # as on a folder where the lock file cannot be opened
        reader._read_lock = lambda: contextlib.nullcontext(False)
    seen, reads = 0, 0
    while any(p.poll() is None for p in procs):
        n = reader.scan().collect().height
        assert n >= seen
        seen, reads = n, reads + 1
        time.sleep(0.005)
    for p in procs:
        assert p.wait(timeout=60) == 0, p.stderr.read()
    df = Ledger(tmp_path).scan().collect()
    assert df.height == 4000
    assert df["row_id"].n_unique() == 4000 and df["item"].n_unique() == 4000
    by_source = dict(df.group_by("source").len().iter_rows())
    assert by_source == {"batch:p1": 2000, "batch:p2": 2000}
    assert sorted(df.group_by("pid").len()["len"].to_list()) == [2000, 2000]
    assert reader.warnings == [] and reads > 0
    assert files(tmp_path, "compact-")  # the writers compacted while the reader read
    reader.compact()
    assert len(files(tmp_path)) == 1 and reader.scan().collect().height == 4000
