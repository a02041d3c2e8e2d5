"""status.json, history/ and index.html as the web folder gets them (no browser here)."""

from __future__ import annotations

import datetime as _dt
import json
import os
import threading
import time
from pathlib import Path

import pytest

from crunchctl.config import Settings
from crunchctl.ledger.store import Ledger
from crunchctl.outcome import ERROR, KIND_IQ, OK, Outcome
from crunchctl.www import history, page, site, status_doc

XSS = "<img src=x onerror=alert(1)>.tiq"


def _png(path: Path, color: tuple[int, int, int], size=(800, 440)) -> str:
    from PIL import Image

    Image.new("RGB", size, color).save(path)
    return str(path)


def _outcome(
    tmp_path: Path,
    item: Path,
    *,
    status: str = OK,
    finished: float | None = None,
    error: str | None = None,
    color=(10, 20, 200),
) -> Outcome:
    products = []
    if status == OK:
        out = tmp_path / "products"
        out.mkdir(exist_ok=True)
        stem = history.entry_stem(str(item))
        products = [_png(out / f"{stem}.png", color), _png(out / f"{stem}_zoom.png", color)]
    now = time.time() if finished is None else finished
    return Outcome(str(item), KIND_IQ, "process", status, now - 1, now, 1, 1, "d", products, error)


def _settings(www: Path, **kw) -> Settings:
    return Settings(www_path=str(www), **kw)


def test_status_json_schema_after_recordings_and_an_error(tmp_path, make_tiq):
    rec = tmp_path / "rec" / "rsa510"
    acquired = _dt.datetime(
        2024, 4, 17, 13, 5, 22, 123456, tzinfo=_dt.timezone(_dt.timedelta(hours=2))
    )
    a = make_tiq("a.tiq", folder=rec, acquired=acquired)
    b = make_tiq("b.tiq", folder=rec, acquired=acquired + _dt.timedelta(minutes=5))
    bad = rec / "bad.tiq"
    bad.write_bytes(b"not a recording")
    (rec / "c.tiq").write_bytes(b"")  # not attempted yet: pending
    www = tmp_path / "www"
    with Ledger(tmp_path / "ledger") as led:
        wp = site.WebPage(www, _settings(www, www_refresh=7, www_stale_after=3.5), led)
        for o in (
            _outcome(tmp_path, a),
            _outcome(tmp_path, b),
            _outcome(tmp_path, bad, status=ERROR, error=f"{bad}: not a .tiq file"),
        ):
            wp.note(o, ["published"] if o.status == OK else [])
            led.record(o)
        led.flush()
        wp.close()
    doc = json.loads((www / "status.json").read_text())
    assert doc["schema"] == 1
    assert set(doc) == {"schema", "heartbeat", "settings", "totals", "recorders", "errors"}
    hb = doc["heartbeat"]
    assert hb["written_at"].endswith("Z") and abs(hb["written_unix"] - time.time()) < 60
    assert hb["watcher_running"] is False and hb["watchers"] == [] and hb["final"] is True
    assert hb["pid"] == os.getpid()
    assert doc["settings"] == {
        "refresh_s": 7,
        "stale_after_min": 3.5,
        "history": 24,
        "heartbeat_stale_s": 120,
    }
    (r,) = doc["recorders"]
    assert r["folder"] == "rsa510" and r["paths"] == [str(rec)]
    assert r["image"] == "rsa510.png" and r["zoom_image"] == "zoom_rsa510.png"
    assert r["counts"] == {"done": 2, "failed": 1, "pending": 1}
    assert doc["totals"] == {"done": 2, "failed": 1, "pending": 1}
    latest = r["latest"]
    assert latest["file"] == "b.tiq" and latest["item"] == str(b)
    # The acquisition start comes from the header, as UTC.
    assert latest["acquired_at"] == "2024-04-17T11:10:22.123Z"
    assert latest["acquired_unix"] == pytest.approx((acquired.timestamp() + 300))
    assert latest["processed_at"].endswith("Z")
    for key in ("image", "zoom_image", "thumb"):
        assert (www / latest[key]).is_file(), key
    assert latest["thumb"].endswith(".thumb.jpg")
    assert [e["file"] for e in r["history"]] == ["b.tiq", "a.tiq"]  # newest first
    (err,) = r["errors"]
    assert err["file"] == "bad.tiq" and "not a .tiq file" in err["message"]
    assert err["time"].endswith("Z") and err["item"] == str(bad)
    assert doc["errors"] == [{"folder": "rsa510", **err}]
    # The page embeds the same document and stays small.
    html = (www / "index.html").read_text()
    assert len(html.encode()) < 50_000
    embedded = html.split('id="crunchctl-status" type="application/json">')[1].split("</script>")[0]
    assert json.loads(embedded) == page.lean(doc)
    assert page.lean(doc)["recorders"][0]["latest"] == latest


def test_history_keeps_the_newest_and_removes_older_files(tmp_path, make_tiq):
    rec = tmp_path / "rec" / "dev1"
    www = tmp_path / "www"
    base = _dt.datetime(2025, 1, 1, tzinfo=_dt.timezone.utc)
    wp = site.WebPage(www, _settings(www, www_history=3))
    items = [
        make_tiq(f"r{i}.tiq", folder=rec, acquired=base + _dt.timedelta(minutes=i))
        for i in range(5)
    ]
    names_seen = []
    for it in items:
        wp.note(_outcome(tmp_path, it), ["published"])
        wp.write()
        doc = json.loads((www / "status.json").read_text())
        names_seen.append([e["image"] for e in doc["recorders"][0]["history"]])
    doc = json.loads((www / "status.json").read_text())
    hist = doc["recorders"][0]["history"]
    assert [e["file"] for e in hist] == ["r4.tiq", "r3.tiq", "r2.tiq"]
    files = sorted(p.name for p in (www / "history" / "dev1").iterdir())
    assert files == sorted(
        f"r{i}.tiq{s}" for i in (2, 3, 4) for s in (".png", "_zoom.png", ".thumb.jpg")
    )
    # Stable names: a recording keeps its file names while it stays in the history.
    assert names_seen[2][0] == names_seen[4][2] == "history/dev1/r2.tiq.png"
    # An older recording finishing late does not push newer ones out (nor get copied).
    wp.note(_outcome(tmp_path, make_tiq("old.tiq", folder=rec, acquired=base)), [])
    wp.close()
    doc = json.loads((www / "status.json").read_text())
    assert [e["file"] for e in doc["recorders"][0]["history"]] == ["r4.tiq", "r3.tiq", "r2.tiq"]
    assert not list((www / "history" / "dev1").glob("old*"))


def test_a_new_run_keeps_the_recorders_and_history_of_the_last(tmp_path, make_tiq):
    www = tmp_path / "www"
    a = make_tiq("a.tiq", folder=tmp_path / "rec" / "one")
    b = make_tiq("b.tiq", folder=tmp_path / "rec" / "two")
    first = site.WebPage(www, _settings(www))
    first.note(_outcome(tmp_path, a), ["published"])
    first.close()
    second = site.WebPage(www, _settings(www))
    second.note(_outcome(tmp_path, b), ["published"])
    second.close()
    doc = json.loads((www / "status.json").read_text())
    assert [r["folder"] for r in doc["recorders"]] == ["one", "two"]
    assert doc["recorders"][0]["latest"]["file"] == "a.tiq"
    # Removing a recorder's history folder removes its card.
    import shutil

    shutil.rmtree(www / "history" / "one")
    site.WebPage(www, _settings(www)).close()
    doc = json.loads((www / "status.json").read_text())
    assert [r["folder"] for r in doc["recorders"]] == ["two"]


def test_status_json_is_replaced_atomically_never_half_written(tmp_path, make_tiq):
    www = tmp_path / "www"
    wp = site.WebPage(www, _settings(www))
    item = make_tiq("a.tiq", folder=tmp_path / "rec" / "dev")
    wp.note(_outcome(tmp_path, item), ["published"])
    wp.write()
    # Hold the first file open: while it is open its inode cannot be given to a new file,
    # so a different inode at the end proves a new file was renamed over it.
    first = (www / "status.json").open("rb")
    inode = os.fstat(first.fileno()).st_ino
    stop = threading.Event()
    problems: list[str] = []
    reads = 0

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            for name in ("status.json", "index.html"):
                data = (www / name).read_bytes()
                reads += 1
                if name == "status.json":
                    try:
                        json.loads(data)
                    except ValueError as e:
                        problems.append(f"{name}: {e}")
                elif not data.rstrip().endswith(b"</html>"):
                    problems.append(f"{name}: truncated ({len(data)} bytes)")

    t = threading.Thread(target=reader)
    t.start()
    writes = 0
    deadline = time.monotonic() + 30
    try:  # a loaded machine may starve the reader: go on until both have done enough
        while (writes < 40 or reads < 100) and time.monotonic() < deadline:
            wp.write()
            writes += 1
    finally:
        stop.set()
        t.join()
    assert reads >= 100 and problems == []
    try:
        assert (www / "status.json").stat().st_ino != inode  # a new file renamed over the old
        assert json.loads(first.read())  # the reader of the old file still reads it whole
    finally:
        first.close()
    leftovers = [p.name for p in www.rglob(".*") if p.is_file()]
    assert leftovers == []


def test_xss_file_name_cannot_end_the_embedded_script(tmp_path):
    item = str(tmp_path / "rec" / ("</script><script>alert(1)</script>" + XSS))
    doc = status_doc.build(
        [
            {
                "folder": "x",
                "paths": [str(tmp_path / "rec")],
                "latest": status_doc.make_entry(
                    item, processed=time.time(), acquired=None, images={"image": "history/x/a.png"}
                ),
                "history": [],
            }
        ],
        {
            str(tmp_path / "rec"): {
                "counts": {"done": 0, "failed": 1, "pending": 0},
                "errors": [{"item": item, "finished": time.time(), "error": f"{item}: <b>bad</b>"}],
            }
        },
        settings={"refresh_s": 10, "stale_after_min": 15.0, "history": 24},
        heartbeat={"written_unix": time.time()},
    )
    html = page.render(doc)
    script = html.split('id="crunchctl-status" type="application/json">')[1]
    embedded, rest = script.split("</script>", 1)
    assert "<" not in embedded and ">" not in embedded
    assert json.loads(embedded)["recorders"][0]["latest"]["file"] == Path(item).name
    assert "innerHTML" not in page.template() and "insertAdjacentHTML" not in page.template()


def test_an_unwritable_web_folder_never_stops_the_run(tmp_path, make_tiq, caplog):
    www = tmp_path / "www"
    www.write_text("a file where the folder should be")
    wp = site.WebPage(www, _settings(www))
    wp.note(_outcome(tmp_path, make_tiq("a.tiq", folder=tmp_path / "rec" / "d")), ["x"])
    assert wp.write() is None
    wp.close()
    assert "control-room page" in caplog.text


def test_tick_rewrites_the_heartbeat_only_when_due(tmp_path, monkeypatch):
    www = tmp_path / "www"
    wp = site.WebPage(www, _settings(www))
    wp.tick()
    assert wp.writes == 1
    first = json.loads((www / "status.json").read_text())["heartbeat"]["written_unix"]
    wp.tick()
    assert wp.writes == 1  # not due yet
    monkeypatch.setattr(site, "HEARTBEAT_S", 0.05)
    time.sleep(0.1)
    wp.tick()
    assert wp.writes == 2
    doc = json.loads((www / "status.json").read_text())
    assert doc["heartbeat"]["written_unix"] > first and doc["heartbeat"]["final"] is False
    assert doc["recorders"] == [] and doc["totals"] == {"done": 0, "failed": 0, "pending": 0}


def test_counts_and_errors_come_from_the_ledger_for_recordings_this_run_did_not_see(
    tmp_path, make_tiq
):
    rec = tmp_path / "rec" / "dev"
    www = tmp_path / "www"
    a, b, c = (make_tiq(n, folder=rec) for n in ("a.tiq", "b.tiq", "c.tiq"))
    other = make_tiq("x.tiq", folder=tmp_path / "rec" / "elsewhere")
    with Ledger(tmp_path / "ledger") as led:
        first = site.WebPage(www, _settings(www), led)
        oa = _outcome(tmp_path, a)
        first.note(oa, ["published"])
        led.record(oa)
        first.close()
        # Another run without a web folder: only the ledger knows.
        led.record(_outcome(tmp_path, b, status=ERROR, error=f"{b}: damaged"))
        led.record(_outcome(tmp_path, c))
        led.record(_outcome(tmp_path, other))
        led.flush()
        site.WebPage(www, _settings(www), led).close()
    doc = json.loads((www / "status.json").read_text())
    (r,) = doc["recorders"]
    assert r["counts"] == {"done": 2, "failed": 1, "pending": 0}
    assert [e["file"] for e in r["errors"]] == ["b.tiq"] and r["errors"][0]["message"].endswith(
        "damaged"
    )
    assert r["latest"]["file"] == "a.tiq"


def test_the_page_stays_under_50_kB_with_many_recorders_and_a_full_history():
    recs = []
    for k in range(8):
        hist = [
            status_doc.make_entry(
                f"/data/campaign/recorders/rsa510-{k}/20261201_{i:06d}.tiq",
                processed=time.time() - 60 * i,
                acquired=None,
                images={
                    n: f"history/rsa510-{k}/20261201_{i:06d}.tiq{s}"
                    for n, s in (
                        ("image", ".png"),
                        ("zoom_image", "_zoom.png"),
                        ("thumb", ".thumb.jpg"),
                    )
                },
            )
            for i in range(24)
        ]
        recs.append(
            {
                "folder": f"rsa510-{k}",
                "paths": [f"/data/campaign/recorders/rsa510-{k}"],
                "latest": hist[0],
                "history": hist,
            }
        )
    doc = status_doc.build(
        recs,
        {},
        settings={"refresh_s": 10, "stale_after_min": 15.0, "history": 24},
        heartbeat={"written_unix": time.time()},
    )
    html = page.render(doc)
    assert len(html.encode()) < 50_000
    embedded = json.loads(html.split('type="application/json">')[1].split("</script>")[0])
    kept = [len(r["history"]) for r in embedded["recorders"]]
    assert len(embedded["recorders"]) == 8 and 0 < min(kept) == max(kept) < 24
    assert embedded["recorders"][3]["history"][0]["version"] == recs[3]["history"][0]["version"]
    assert all(len(r["history"]) == 24 for r in doc["recorders"])  # status.json keeps all


def test_this_runs_outcomes_are_laid_over_the_ledgers_counts_until_it_is_read_again(
    tmp_path, make_tiq
):
    rec = tmp_path / "rec" / "dev"
    www = tmp_path / "www"
    a, b, c, d = (make_tiq(n, folder=rec) for n in ("a.tiq", "b.tiq", "c.tiq", "d.tiq"))
    (rec / ".hidden.tiq").write_bytes(b"")
    (rec / "notes.txt").write_text("not a recording")
    with Ledger(tmp_path / "ledger") as led:
        led.record(_outcome(tmp_path, a, status=ERROR, error=f"{a}: damaged"))
        led.record(_outcome(tmp_path, b))
        led.record(_outcome(tmp_path, c))
        led.record(_outcome(tmp_path, c, status="reset"))  # reset: pending again
        led.flush()
        wp = site.WebPage(www, _settings(www), led)
        wp.note(_outcome(tmp_path, b), ["published"])  # the recorder folder becomes known
        (r,) = wp.write()["recorders"]
        assert r["counts"] == {"done": 1, "failed": 1, "pending": 2}  # c (reset) and d
        assert [e["file"] for e in r["errors"]] == ["a.tiq"]
        # Redone in this run, not in the ledger yet: the page shows them at once.
        oa, oc = _outcome(tmp_path, a), _outcome(tmp_path, c, status=ERROR, error=f"{c}: bad")
        wp.note(oa, [])
        wp.note(oc, [])
        (r,) = wp.write()["recorders"]
        assert r["counts"] == {"done": 2, "failed": 1, "pending": 1}
        assert [e["file"] for e in r["errors"]] == ["c.tiq"]
        led.record(oa)
        led.record(oc)
        led.flush()
        wp.close()  # reads the ledger again: the same, and this run's rows are let go
        assert wp._rows == {}
    doc = json.loads((www / "status.json").read_text())
    (r,) = doc["recorders"]
    assert r["counts"] == {"done": 2, "failed": 1, "pending": 1}
    assert [e["file"] for e in r["errors"]] == ["c.tiq"]
