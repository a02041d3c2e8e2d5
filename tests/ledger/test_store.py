"""crunchctl.ledger.store on real Parquet files: appends, damage, concurrency, done-state, status."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import subprocess
import sys
import time

import polars as pl
import pytest

from crunchctl import __version__
from crunchctl.errors import ConfigError, LedgerError
from crunchctl.ledger.store import (
    COMPACT_AFTER_PARTS,
    SCHEMA,
    Ledger,
    default_ledger_path,
    import_legacy,
)
from crunchctl.run.outcome import Outcome
from legacy_samples import PROCESSED_TOML, PROGRESS_JSON

REPO = pathlib.Path(__file__).resolve().parents[2]
T0 = 1_700_000_000.0  # fixed clock for rows whose order matters


def oc(item, status="ok", *, t=T0, kind="iq", source="process", size=10, mtime_ns=20,
       digest="d1", products=(), error=None):
    return Outcome(item=item, kind=kind, source=source, status=status, started=t - 1.5,
                   finished=t, size=size, mtime_ns=mtime_ns, settings_digest=digest,
                   products=list(products), error=error)


def files(path, prefix=""):
    return sorted(p for p in pathlib.Path(path).glob(f"{prefix}*.parquet"))


# ---------------------------------------------------------------------- storage


def test_round_trip(tmp_path):
    with Ledger(tmp_path / "l", flush_every=2) as led:
        led.record(oc("/r/a.tiq", products=["/o/a.png", "/o/a.npz"]))
        led.record_many([oc("/r/b.tiq", "error", error="bad header", size=None, mtime_ns=None),
                         oc("/r/c.tiq", "no_data", t=T0 + 5)])
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
    assert led.status()["rows"] == 0
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
    old = (
        base.with_columns(item=pl.lit("/r/old.tiq"), row_id=pl.lit("0" * 32),
                          size=pl.col("size").cast(pl.Int32), legacy_note=pl.lit("x"))
        .drop("host")
    )
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
    status = led.status()
    assert status["rows"] == 10 and len(status["warnings"]) == 2
    led.compact()
    assert truncated.exists() and text.exists()  # never deleted or merged
    assert len(files(tmp_path, "compact-")) == 1 and files(tmp_path, "part-") == sorted(
        [text, truncated])
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
    assert led.status()["rows"] == 8
    assert led.latest().height == 8
    assert len(led.done_items("iq", [(f"/r/{i}.tiq", 10, 20) for i in range(8)], "d1")) == 8
    led.compact()
    assert len(files(tmp_path)) == 1
    assert pl.read_parquet(files(tmp_path)[0]).height == 8


WRITER = """
import sys, time
from crunchctl.ledger.store import Ledger
from crunchctl.run.outcome import Outcome
path, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with Ledger(path, flush_every=7) as led:
    for i in range(n):
        t = time.time()
        led.record(Outcome(item=f"{tag}-{i}", kind="batch", source="batch:" + tag,
                           status="ok", started=t, finished=t))
"""


@pytest.mark.parametrize("reader_lock", [True, False], ids=["reader-locks", "lock-free-reader"])
def test_two_processes_append_concurrently(tmp_path, reader_lock):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), os.environ.get("PYTHONPATH", "")])}
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), tag, "2000"], env=env,
                         stderr=subprocess.PIPE, text=True)
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


# ---------------------------------------------------------------------- done-state


def test_done_items_rules(tmp_path):
    prod = tmp_path / "out"
    prod.mkdir()
    for name in ("a.png", "b.png", "c.png", "d.png", "e.png", "f.png", "g.png"):
        (prod / name).touch()
    p = lambda name: str(prod / name)  # noqa: E731
    led = Ledger(tmp_path / "l")
    led.record_many([
        oc("/r/a.tiq", products=[p("a.png")]),                    # done
        oc("/r/b.tiq", products=[p("b.png")]),                    # fingerprint changes
        oc("/r/c.tiq", products=[p("c.png")], digest="old"),      # settings changed
        oc("/r/d.tiq", products=[p("d.png"), p("gone.png")]),     # a product is missing
        oc("/r/e.tiq", products=[p("e.png")]),                    # then an error
        oc("/r/e.tiq", "error", t=T0 + 1, error="boom"),
        oc("/r/f.tiq", "error", error="boom"),                    # error, then ok
        oc("/r/f.tiq", products=[p("f.png")], t=T0 + 1),
        oc("/r/g.tiq", products=[p("g.png")]),                    # then reset
        oc("/r/h.tiq", digest="legacy", size=None, mtime_ns=None),  # legacy: any settings
        oc("/r/i.tiq", kind="batch"),                             # other kind
        oc("/r/j.tiq", "no_data"),
    ])
    led.reset(led.select_for_reset(item_glob="g.tiq"))
    cands = [(f"/r/{c}.tiq", 10, 20) for c in "acdefgij"] + [
        ("/r/b.tiq", 11, 20), ("/r/h.tiq", None, None), ("/r/unknown.tiq", 10, 20)]
    assert led.done_items("iq", cands, "d1") == {"/r/a.tiq", "/r/f.tiq", "/r/h.tiq"}
    assert led.done_items("iq", cands, "d1", check_products=False) == {
        "/r/a.tiq", "/r/d.tiq", "/r/f.tiq", "/r/h.tiq"}
    assert led.done_items("iq", [("/r/b.tiq", 10, 20)], "d1") == {"/r/b.tiq"}
    assert led.done_items("iq", [("/r/b.tiq", 10, 21)], "d1") == set()
    assert led.done_items("iq", [("/r/h.tiq", 10, 20)], "d1") == set()  # None != 10
    assert led.done_items("iq", [("/r/c.tiq", 10, 20)], "old") == {"/r/c.tiq"}
    assert led.done_items("iq", [("/r/h.tiq", None, None)], "any") == {"/r/h.tiq"}
    assert led.done_items("batch", [("/r/i.tiq", 10, 20)], "d1") == {"/r/i.tiq"}
    assert led.done_items("iq", [], "d1") == set()
    (prod / "a.png").unlink()
    assert "/r/a.tiq" not in led.done_items("iq", cands, "d1")


def test_done_items_many_products_in_one_folder(tmp_path):
    # Enough products in one folder that it is listed once instead of stat-ed per file.
    out = tmp_path / "out"
    out.mkdir()
    led = Ledger(tmp_path / "l", flush_every=1000)
    led.record_many(oc(f"/r/{i}.tiq", products=[str(out / f"{i}.png"), str(out / f"{i}.npz")])
                    for i in range(600))
    led.record_many(oc(f"/r/gone{i}.tiq", products=[str(tmp_path / "nowhere" / f"{i}.png")])
                    for i in range(300))
    for i in range(600):
        (out / f"{i}.png").touch()
        if i % 3:
            (out / f"{i}.npz").touch()
    cands = [(f"/r/{i}.tiq", 10, 20) for i in range(600)]
    cands += [(f"/r/gone{i}.tiq", 10, 20) for i in range(300)]
    assert led.done_items("iq", cands, "d1") == {f"/r/{i}.tiq" for i in range(600) if i % 3}


def test_latest_orders_by_finished_then_seq(tmp_path):
    led = Ledger(tmp_path)
    led.record(oc("/r/a.tiq", "ok", t=T0 + 10))
    led.record(oc("/r/a.tiq", "error", t=T0))        # finished earlier: not latest
    led.record(oc("/r/b.tiq", "error", t=T0))
    led.record(oc("/r/b.tiq", "no_data", t=T0))      # same time: later seq wins
    latest = dict(led.latest("iq").select("item", "status").iter_rows())
    assert latest == {"/r/a.tiq": "ok", "/r/b.tiq": "no_data"}
    assert led.latest("batch").height == 0
    assert led.latest().height == 2


# ---------------------------------------------------------------------- status


def status_ledger(tmp_path) -> Ledger:
    led = Ledger(tmp_path)
    led.record_many([
        oc("/data/w/2024_a.tiq", "error", t=T0, source="watch:/data/w", error="short read"),
        oc("/data/w/2024_a.tiq", "ok", t=T0 + 3600, source="watch:/data/w"),
        oc("/data/w/2024_b.tiq", "ok", t=T0 + 1800, source="watch:/data/w"),
        oc("/data/p/2023_c.tiq", "error", t=T0 + 7200, source="process", error="bad header"),
        oc("/data/p/2023_d.tiq", "no_data", t=T0 + 5400, source="process"),
        oc("orbit_001", "ok", kind="batch", t=T0 + 900, source="batch:/x/items.txt"),
    ])
    led.flush()
    return led


def test_status_counts(tmp_path):
    s = status_ledger(tmp_path).status()
    assert list(s) == ["ledger", "rows", "items", "by_status", "attempts_by_status",
                       "by_source", "first_activity", "last_activity",
                       "throughput_per_hour", "latest_errors", "warnings"]
    json.dumps(s)
    assert s["ledger"] == str(tmp_path)
    assert s["rows"] == 6 and s["items"] == 5
    assert s["by_status"] == {"ok": 3, "error": 1, "no_data": 1, "reset": 0}
    assert s["attempts_by_status"] == {"ok": 3, "error": 2, "no_data": 1, "reset": 0}
    assert s["by_source"] == {
        "batch:/x/items.txt": {"ok": 1, "error": 0, "no_data": 0, "reset": 0},
        "process": {"ok": 0, "error": 1, "no_data": 1, "reset": 0},
        "watch:/data/w": {"ok": 2, "error": 0, "no_data": 0, "reset": 0},
    }
    assert s["first_activity"] == "2023-11-14T22:13:20Z"
    assert s["last_activity"] == "2023-11-15T00:13:20Z"
    assert s["throughput_per_hour"] == pytest.approx(1.5)  # 3 ok over 2 h
    assert s["latest_errors"] == [
        {"item": "/data/p/2023_c.tiq", "source": "process",
         "finished": "2023-11-15T00:13:20Z", "error": "bad header"},
        {"item": "/data/w/2024_a.tiq", "source": "watch:/data/w",
         "finished": "2023-11-14T22:13:20Z", "error": "short read"},
    ]
    assert s["warnings"] == []
    assert status_ledger(tmp_path / "y").sources() == [
        "batch:/x/items.txt", "process", "watch:/data/w"]
    assert len(status_ledger(tmp_path / "x").status(latest_errors=1)["latest_errors"]) == 1


def test_status_filters(tmp_path):
    led = status_ledger(tmp_path)
    s = led.status(since=T0 + 1800)
    assert (s["rows"], s["items"]) == (4, 4)
    assert s["first_activity"] == "2023-11-14T22:43:20Z"
    s = led.status(item_glob="2024_*")           # no "/": matches the file name
    assert (s["rows"], s["items"]) == (3, 2)
    assert led.status(item_glob="/data/p/*")["items"] == 2   # with "/": the whole item
    assert led.status(item_glob="*/2023_[cx].tiq")["items"] == 1
    assert led.status(item_glob="w")["items"] == 0             # not a folder name match
    assert led.status(item_glob="orbit_00?")["items"] == 1
    s = led.status(source="watch")                # prefix before ":"
    assert (s["rows"], s["items"]) == (3, 2) and list(s["by_source"]) == ["watch:/data/w"]
    assert led.status(source="process")["items"] == 2
    assert led.status(source="proc")["items"] == 0
    assert led.status(source="*items.txt")["items"] == 1
    s = led.status(errors_only=True)              # items whose latest status is error
    assert s["items"] == 1 and s["by_status"]["error"] == 1 and s["rows"] == 1
    assert [e["item"] for e in s["latest_errors"]] == ["/data/p/2023_c.tiq"]
    s = led.status(since=T0 + 10_000)
    assert s["rows"] == 0 and s["first_activity"] is None and s["throughput_per_hour"] is None


# ---------------------------------------------------------------------- reset


def test_select_for_reset_and_reset(tmp_path):
    led = status_ledger(tmp_path)
    assert led.select_for_reset().height == 0     # no filter, not --all: nothing
    assert led.select_for_reset(statuses=["error"])["item"].to_list() == ["/data/p/2023_c.tiq"]
    assert led.select_for_reset(source="watch").height == 2
    assert led.select_for_reset(item_glob="2024_a.tiq", statuses=["error"]).height == 0
    every = led.select_for_reset(all_items=True)
    assert every.height == 5
    cands = [("/data/w/2024_a.tiq", 10, 20), ("/data/w/2024_b.tiq", 10, 20)]
    assert len(led.done_items("iq", cands, "d1")) == 2
    assert led.reset(led.select_for_reset(source="watch:/data/w")) == 2
    assert led.done_items("iq", cands, "d1") == set()
    assert led.select_for_reset(all_items=True).height == 3  # already reset: left out
    df = led.scan().collect()
    assert df.height == 8                          # history kept
    resets = df.filter(pl.col("status") == "reset")
    assert resets["source"].to_list() == ["reset", "reset"]
    assert set(resets["settings_digest"]) == {""}
    assert led.status()["by_status"]["reset"] == 2
    assert led.reset(led.select_for_reset(statuses=["ok"])) == 1  # orbit_001
    assert led.reset(led.select_for_reset(statuses=["ok"])) == 0


def test_reset_wins_over_a_row_from_a_clock_ahead(tmp_path):
    led = Ledger(tmp_path)
    led.record(oc("/r/a.tiq", t=time.time() + 3600))
    led.reset(led.select_for_reset(all_items=True))
    assert led.latest()["status"].to_list() == ["reset"]


# ---------------------------------------------------------------------- legacy import



def test_import_tracking_toml(tmp_path):
    rec = tmp_path / "rec.tiq"
    rec.write_bytes(b"x" * 123)
    legacy = tmp_path / "processed.toml"
    legacy.write_text(PROCESSED_TOML.replace("]", f'    "{rec}",\n]'))
    led = Ledger(tmp_path / "l")
    assert not led.has_source(f"import:{legacy}")
    assert import_legacy(led, legacy) == (4, 0)
    assert import_legacy(led, legacy) == (0, 4)
    assert led.has_source(f"import:{legacy}")
    df = led.scan().collect().sort("item")
    assert df.height == 4
    assert set(df["kind"]) == {"iq"} and set(df["status"]) == {"ok"}
    assert set(df["settings_digest"]) == {"legacy"}
    assert set(df["source"]) == {f"import:{legacy}"}
    row = df.filter(pl.col("item") == str(rec)).row(0, named=True)
    assert (row["size"], row["mtime_ns"]) == (123, rec.stat().st_mtime_ns)
    gone = df.filter(pl.col("item") == "/data/rsa510/20240417_130522.tiq").row(0, named=True)
    assert (gone["size"], gone["mtime_ns"], gone["products"]) == (None, None, [])
    st = rec.stat()
    cands = [(str(rec), st.st_size, st.st_mtime_ns),
             ("/data/rsa510/20240417_130522.tiq", None, None)]
    assert led.done_items("iq", cands, "any-digest") == {str(rec),
                                                         "/data/rsa510/20240417_130522.tiq"}
    rec.write_bytes(b"y" * 124)  # changed since the import: due again
    assert led.done_items("iq", [(str(rec), 124, rec.stat().st_mtime_ns)], "x") == set()


def test_import_progress_json(tmp_path):
    legacy = tmp_path / "generic_progress.json"
    legacy.write_text(PROGRESS_JSON)
    led = Ledger(tmp_path / "l")
    assert import_legacy(led, legacy) == (5, 0)
    assert import_legacy(led, legacy) == (0, 5)
    latest = led.latest("batch").sort("item")
    assert latest["item"].to_list() == [f"orbit_00{i}" for i in range(1, 6)]
    assert latest["status"].to_list() == ["ok", "ok", "error", "ok", "no_data"]
    assert latest["error"].to_list()[2] == "imported from legacy progress file"
    assert led.done_items("batch", [(f"orbit_00{i}", None, None) for i in range(1, 6)], "d") == {
        "orbit_001", "orbit_002", "orbit_004"}
    assert led.scan().collect().height == 5
    s = led.status()
    assert s["by_source"] == {f"import:{legacy}": {"ok": 3, "error": 1, "no_data": 1,
                                                   "reset": 0}}
    assert s["throughput_per_hour"] is None  # imports are not throughput


def test_import_bad_legacy_file(tmp_path):
    bad = tmp_path / "progress.json"
    bad.write_text(PROGRESS_JSON.replace('"schema_version": 1', '"schema_version": 2'))
    led = Ledger(tmp_path / "l")
    with pytest.raises(ConfigError, match="supported: 1") as info:
        import_legacy(led, bad)
    assert str(bad) in str(info.value)
    assert led.scan().collect().height == 0
