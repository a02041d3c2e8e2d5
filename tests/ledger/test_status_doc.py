"""The status document (crunchctl.watch.status) on real ledgers: totals, filters, item list."""

from __future__ import annotations

import json

import pytest

from crunchctl.ledger.legacy import import_legacy
from crunchctl.ledger.store import Ledger
from crunchctl.watch.status import document, item_list, summary, without_item
from ledger_helpers import T0, oc, status_ledger
from legacy_samples import PROGRESS_JSON


def test_status_counts(tmp_path):
    s = summary(status_ledger(tmp_path))
    assert list(s) == [
        "ledger",
        "rows",
        "items",
        "by_status",
        "attempts_by_status",
        "by_source",
        "first_activity",
        "last_activity",
        "throughput_per_hour",
        "latest_errors",
        "warnings",
    ]
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
        {
            "item": "/data/p/2023_c.tiq",
            "source": "process",
            "finished": "2023-11-15T00:13:20Z",
            "error": "bad header",
        },
        {
            "item": "/data/w/2024_a.tiq",
            "source": "watch:/data/w",
            "finished": "2023-11-14T22:13:20Z",
            "error": "short read",
        },
    ]
    assert s["warnings"] == []
    assert status_ledger(tmp_path / "y").sources() == [
        "batch:/x/items.txt",
        "process",
        "watch:/data/w",
    ]
    assert len(summary(status_ledger(tmp_path / "x"), latest_errors=1)["latest_errors"]) == 1


def test_status_filters(tmp_path):
    led = status_ledger(tmp_path)
    s = summary(led, since=T0 + 1800)
    assert (s["rows"], s["items"]) == (4, 4)
    assert s["first_activity"] == "2023-11-14T22:43:20Z"
    s = summary(led, item_glob="2024_*")  # no "/": matches the file name
    assert (s["rows"], s["items"]) == (3, 2)
    assert summary(led, item_glob="/data/p/*")["items"] == 2  # with "/": the whole item
    assert summary(led, item_glob="*/2023_[cx].tiq")["items"] == 1
    assert summary(led, item_glob="w")["items"] == 0  # not a folder name match
    assert summary(led, item_glob="orbit_00?")["items"] == 1
    s = summary(led, source="watch")  # prefix before ":"
    assert (s["rows"], s["items"]) == (3, 2) and list(s["by_source"]) == ["watch:/data/w"]
    assert summary(led, source="process")["items"] == 2
    assert summary(led, source="proc")["items"] == 0
    assert summary(led, source="*items.txt")["items"] == 1
    s = summary(led, errors_only=True)  # items whose latest status is error
    assert s["items"] == 1 and s["by_status"]["error"] == 1 and s["rows"] == 1
    assert [e["item"] for e in s["latest_errors"]] == ["/data/p/2023_c.tiq"]
    s = summary(led, since=T0 + 10_000)
    assert s["rows"] == 0 and s["first_activity"] is None and s["throughput_per_hour"] is None


def test_error_messages_do_not_repeat_the_item(tmp_path):
    led = Ledger(tmp_path)
    led.record(oc("/r/a.tiq", "error", error="/r/a.tiq: not a TIQ recording"))
    led.record(oc("/r/b.tiq", "error", error="/r/other.tiq: in the message, not the item"))
    [b, a] = summary(led)["latest_errors"]
    assert (a["item"], a["error"]) == ("/r/a.tiq", "not a TIQ recording")
    assert b["error"] == "/r/other.tiq: in the message, not the item"
    assert without_item(None, "/r/a.tiq") is None


def test_throughput_leaves_out_imported_rows(tmp_path):
    legacy = tmp_path / "generic_progress.json"
    legacy.write_text(PROGRESS_JSON)
    led = Ledger(tmp_path / "l")
    led.record_many(
        [oc("/r/a.tiq", t=T0), oc("/r/b.tiq", t=T0 + 1800), oc("/r/c.tiq", t=T0 + 3600)]
    )
    import_legacy(led, legacy)  # five rows stamped now: not work done now
    s = summary(led)
    assert s["rows"] == 8
    assert s["throughput_per_hour"] == pytest.approx(3.0)  # 3 ok over 1 h


def test_item_list(tmp_path):
    led = status_ledger(tmp_path)
    led.record(
        oc(
            "/data/w/2024_b.tiq",
            "ok",
            t=T0 + 9000,
            source="watch:/data/w",
            products=["/o/2024_b.png", "/o/2024_b_zoom.png"],
        )
    )
    rows = item_list(led, item_glob="2024_*")
    assert [(r["item"], r["status"]) for r in rows] == [
        ("/data/w/2024_a.tiq", "ok"),
        ("/data/w/2024_b.tiq", "ok"),
    ]
    b = rows[1]
    assert b == {
        "item": "/data/w/2024_b.tiq",
        "kind": "iq",
        "status": "ok",
        "finished": "2023-11-15T00:43:20Z",
        "duration_s": 1.5,
        "source": "watch:/data/w",
        "products": ["/o/2024_b.png", "/o/2024_b_zoom.png"],
        "error": None,
        "warning": None,
    }
    [c] = item_list(led, errors_only=True)
    assert (c["item"], c["error"]) == ("/data/p/2023_c.tiq", "bad header")
    assert len(item_list(led)) == 5
    doc = document(led, None, item_glob="2024_a.tiq", list_items=True)
    assert list(doc)[-2:] == ["list", "warnings"] and "pending" in doc
    assert [r["item"] for r in doc["list"]] == ["/data/w/2024_a.tiq"]
    json.dumps(doc)
    assert "list" not in document(led, None)
