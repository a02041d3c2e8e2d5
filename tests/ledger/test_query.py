"""Done-state, latest rows, filters and reset selection (crunchctl.ledger.query through Ledger)."""

from __future__ import annotations

import time

import polars as pl
import pytest

from crunchctl.config import Settings
from crunchctl.ledger.query import product_kind, source_matches
from crunchctl.ledger.store import Ledger
from crunchctl.watch.status import summary
from ledger_helpers import T0, oc, status_ledger

# ---------------------------------------------------------------------- done-state


def test_done_items_rules(tmp_path):
    prod = tmp_path / "out"
    prod.mkdir()
    for name in ("a.png", "b.png", "c.png", "d.png", "e.png", "f.png", "g.png"):
        (prod / name).touch()
    p = lambda name: str(prod / name)  # noqa: E731
    led = Ledger(tmp_path / "l")
    led.record_many(
        [
            oc("/r/a.tiq", products=[p("a.png")]),  # done
            oc("/r/b.tiq", products=[p("b.png")]),  # fingerprint changes
            oc("/r/c.tiq", products=[p("c.png")], digest="old"),  # settings changed
            oc("/r/d.tiq", products=[p("d.png"), p("gone.png")]),  # a product is missing
            oc("/r/e.tiq", products=[p("e.png")]),  # then an error
            oc("/r/e.tiq", "error", t=T0 + 1, error="boom"),
            oc("/r/f.tiq", "error", error="boom"),  # error, then ok
            oc("/r/f.tiq", products=[p("f.png")], t=T0 + 1),
            oc("/r/g.tiq", products=[p("g.png")]),  # then reset
            oc("/r/h.tiq", digest="legacy", size=None, mtime_ns=None),  # legacy: any settings
            oc("/r/i.tiq", kind="batch"),  # other kind
            oc("/r/j.tiq", "no_data"),
        ]
    )
    led.reset(led.select_for_reset(item_glob="g.tiq"))
    cands = [(f"/r/{c}.tiq", 10, 20) for c in "acdefgij"] + [
        ("/r/b.tiq", 11, 20),
        ("/r/h.tiq", None, None),
        ("/r/unknown.tiq", 10, 20),
    ]
    assert led.done_items("iq", cands, "d1") == {"/r/a.tiq", "/r/f.tiq", "/r/h.tiq"}
    assert led.done_items("iq", cands, "d1", check_products=False) == {
        "/r/a.tiq",
        "/r/d.tiq",
        "/r/f.tiq",
        "/r/h.tiq",
    }
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
    led.record_many(
        oc(f"/r/{i}.tiq", products=[str(out / f"{i}.png"), str(out / f"{i}.npz")])
        for i in range(600)
    )
    led.record_many(
        oc(f"/r/gone{i}.tiq", products=[str(tmp_path / "nowhere" / f"{i}.png")]) for i in range(300)
    )
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
    led.record(oc("/r/a.tiq", "error", t=T0))  # finished earlier: not latest
    led.record(oc("/r/b.tiq", "error", t=T0))
    led.record(oc("/r/b.tiq", "no_data", t=T0))  # same time: later seq wins
    latest = dict(led.latest("iq").select("item", "status").iter_rows())
    assert latest == {"/r/a.tiq": "ok", "/r/b.tiq": "no_data"}
    assert led.latest("batch").height == 0
    assert led.latest().height == 2


# ---------------------------------------------------------------------- reset


def test_select_for_reset_and_reset(tmp_path):
    led = status_ledger(tmp_path)
    assert led.select_for_reset() == []  # no filter, not --all: nothing
    assert [t.item for t in led.select_for_reset(statuses=["error"])] == ["/data/p/2023_c.tiq"]
    assert len(led.select_for_reset(source="watch")) == 2
    assert led.select_for_reset(item_glob="2024_a.tiq", statuses=["error"]) == []
    every = led.select_for_reset(all_items=True)
    assert len(every) == 5
    cands = [("/data/w/2024_a.tiq", 10, 20), ("/data/w/2024_b.tiq", 10, 20)]
    assert len(led.done_items("iq", cands, "d1")) == 2
    assert led.reset(led.select_for_reset(source="watch:/data/w")) == 2
    assert led.done_items("iq", cands, "d1") == set()
    assert len(led.select_for_reset(all_items=True)) == 3  # already reset: left out
    df = led.scan().collect()
    assert df.height == 8  # history kept
    resets = df.filter(pl.col("status") == "reset")
    assert resets["source"].to_list() == ["reset", "reset"]
    assert set(resets["settings_digest"]) == {""}
    assert summary(led)["by_status"]["reset"] == 2
    assert led.reset(led.select_for_reset(statuses=["ok"])) == 1  # orbit_001
    assert led.reset(led.select_for_reset(statuses=["ok"])) == 0


def test_reset_wins_over_a_row_from_a_clock_ahead(tmp_path):
    led = Ledger(tmp_path)
    led.record(oc("/r/a.tiq", t=time.time() + 3600))
    led.reset(led.select_for_reset(all_items=True))
    assert led.latest()["status"].to_list() == ["reset"]


# ---------------------------------------------------------------------- products


def test_product_kind_knows_the_stem():
    assert product_kind("/r/x.tiq", "/o/x.png") == "png"
    assert product_kind("/r/x.tiq", "/o/x_zoom.png") == "zoom"
    assert product_kind("/r/x.tiq", "/o/x.npz") == "npz"
    assert product_kind("/r/x.tiq", "/o/x_spectrum.npz") == "spectrum"
    # A recording whose own name ends like a product: the stem decides.
    assert product_kind("/r/x_zoom.tiq", "/o/x_zoom.png") == "png"
    assert product_kind("/r/x_zoom.tiq", "/o/x_zoom_zoom.png") == "zoom"
    assert product_kind("/r/x_spectrum.tiq", "/o/x_spectrum.npz") == "npz"
    # Two recordings with one stem: <stem>__<folder>-<hash>.
    assert product_kind("/r/x.tiq", "/o/x__r-1a2b3c_zoom.png") == "zoom"
    assert product_kind("/r/x.tiq", "/o/x__r-1a2b3c.npz") == "npz"
    assert product_kind("/r/x.tiq", "/o/other_spectrum.npz") == "spectrum"  # by ending
    assert product_kind("/r/x.tiq", "/o/x.txt") is None


def test_rows_store_the_kind_of_each_product(tmp_path):
    led = Ledger(tmp_path / "l")
    led.record(
        oc(
            "/r/x_zoom.tiq",
            products=[
                "/o/x_zoom.png",
                "/o/x_zoom_zoom.png",
                "/o/x_zoom.npz",
                "/o/x_zoom_spectrum.npz",
            ],
        )
    )
    led.flush()
    row = Ledger(tmp_path / "l").read(["products", "product_kinds"]).row(0, named=True)
    assert row["product_kinds"] == ["png", "zoom", "npz", "spectrum"]


def products_of(out, stem, kinds):
    names = {
        "png": f"{stem}.png",
        "zoom": f"{stem}_zoom.png",
        "npz": f"{stem}.npz",
        "spectrum": f"{stem}_spectrum.npz",
    }
    paths = [str(out / names[k]) for k in kinds]
    for p in paths:
        open(p, "w").close()
    return paths


def test_done_state_follows_the_products_asked_for(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    led = Ledger(tmp_path / "l")
    led.record(oc("/r/a.tiq", products=products_of(out, "a", ["png", "zoom", "npz"])))
    cand = [("/r/a.tiq", 10, 20)]
    done = lambda products: led.done_items("iq", cand, "d1", products=products)  # noqa: E731
    assert done("png,zoom,npz") == {"/r/a.tiq"}
    assert done("png") == {"/r/a.tiq"}  # fewer products: nothing redone
    assert done(["zoom", "npz"]) == {"/r/a.tiq"}
    assert done("png,spectrum") == set()  # never made: due again
    (out / "a_spectrum.npz").touch()  # there, but not made by that row
    assert done("png,spectrum") == set()
    (out / "a.npz").unlink()
    assert done("png,zoom") == {"/r/a.tiq"}  # the missing one is not asked for
    assert done("npz") == set()
    assert done(None) == set()  # None: every recorded product
    assert led.done_items("iq", cand, "d1", products="npz", check_products=False) == {"/r/a.tiq"}
    # Processed again with the spectrum: the new row's products count.
    led.record(oc("/r/a.tiq", t=T0 + 5, products=products_of(out, "a", ["png", "npz", "spectrum"])))
    assert done("png,spectrum") == {"/r/a.tiq"} and done("zoom") == set()


def test_legacy_rows_are_done_whatever_products_are_asked_for(tmp_path):
    led = Ledger(tmp_path)
    led.record(oc("/r/h.tiq", digest="legacy", size=None, mtime_ns=None))
    led.record(oc("/r/p.tiq", products=[]))  # an ok row that made nothing
    cands = [("/r/h.tiq", None, None), ("/r/p.tiq", 10, 20)]
    assert led.done_items("iq", cands, "d1", products="png,spectrum") == {"/r/h.tiq"}
    assert led.done_items("iq", cands, "d1") == {"/r/h.tiq", "/r/p.tiq"}


def test_rows_of_an_older_version_without_kinds(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with Ledger(tmp_path / "l") as led:
        led.record(oc("/r/a.tiq", products=products_of(out, "a", ["png", "zoom", "npz"])))
    part = next((tmp_path / "l").glob("part-*.parquet"))
    old = pl.read_parquet(part).drop("product_kinds")  # written before kinds were stored
    part.unlink()
    old.write_parquet(tmp_path / "l" / "part-00000000T000000.000000-old-1-00000000.parquet")
    led = Ledger(tmp_path / "l")
    assert led.read(["product_kinds"])["product_kinds"].to_list() == [None]
    cand = [("/r/a.tiq", 10, 20)]
    assert led.done_items("iq", cand, "d1", products="png,zoom") == {"/r/a.tiq"}
    assert led.done_items("iq", cand, "d1", products="spectrum") == set()


def test_the_digest_covers_the_settings_of_the_products_made():
    from crunchctl.identity import Digests, settings_digest

    quicklooks = ("png", "zoom", "npz")
    digest = settings_digest(Settings(), "/r/a.tiq", quicklooks)
    # The --products setting itself is not in it: the products a row made are.
    assert settings_digest(Settings(products="png"), "/r/a.tiq", quicklooks) == digest
    assert settings_digest(Settings(lframes=1024), "/r/a.tiq", quicklooks) != digest
    # The colour map shapes the pictures, not the NPZ.
    assert settings_digest(Settings(cmap="gray"), "/r/a.tiq", ["npz"]) == settings_digest(
        Settings(), "/r/a.tiq", ["npz"]
    )
    # Read options count for the formats that read them only.
    raw = Settings(sample_rate=2e6)
    assert settings_digest(raw, "/r/a.tiq", quicklooks) == digest
    assert settings_digest(raw, "/r/a.cs16", quicklooks) != settings_digest(
        Settings(sample_rate=4e6), "/r/a.cs16", quicklooks
    )
    assert Digests(Settings())("/r/a.tiq", ["zoom", "npz", "png"]) == digest


def test_the_digest_of_the_default_products_is_that_of_earlier_versions():
    """Recordings done before read options and product declarations stay done."""
    import hashlib
    import json
    import os

    from crunchctl.identity import settings_digest

    old = {
        "lframes": 65536,
        "nframes": None,
        "n_avg": 1,
        "zoom_center": 0.0,
        "zoom_span": 1.0e6,
        "window": "rectangular",
        "cmap": "viridis",
        "output": os.path.abspath("crunchctl-out"),
        "format": 1,
    }
    expected = hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()[:16]
    assert settings_digest(Settings(), "/r/a.tiq", ("png", "zoom", "npz")) == expected


# ---------------------------------------------------------------------- filters


@pytest.mark.parametrize(
    ("pattern", "source", "expected"),
    [
        ("watch", "watch:/data/w", True),
        ("watch", "watcher", False),
        ("watch:/data/w", "watch:/data/w", True),
        ("watch:*", "watch:/data/w", True),
        ("watch:*", "process", False),
        ("*items.txt", "batch:/x/items.txt", True),
        ("proc", "process", False),
    ],
)
def test_source_matches(pattern, source, expected):
    assert source_matches(pattern, source) is expected


def test_the_per_row_digest_is_the_same_column_wise_and_row_by_row(tmp_path):
    """The done rule's two ways to compare digests (identity.Digests at once per format and
    products, or any callable per row) agree, for formats with and without set options."""
    from crunchctl.identity import Digests, settings_digest
    from crunchctl.outcome import Outcome

    settings = Settings(sample_rate=2e6, output_path=str(tmp_path / "out"))
    led = Ledger(tmp_path / "l")
    rows, cand = [], []
    for i, (name, kinds) in enumerate(
        [
            ("a.tiq", ("png",)),
            ("b.cs16", ("png", "zoom")),
            ("c.wav", ("npz",)),
            ("d.cs16", ("npz",)),
        ]
    ):
        item = f"/r/{name}"
        stem = name.split(".")[0]
        ends = {"png": ".png", "zoom": "_zoom.png", "npz": ".npz"}
        products = [f"/o/{stem}{ends[k]}" for k in kinds]
        # d.cs16 was made with another sample rate: not done.
        made_with = (
            Settings(sample_rate=4e6, output_path=settings.output_path)
            if name == "d.cs16"
            else settings
        )
        rows.append(
            Outcome(
                item,
                "iq",
                "process",
                "ok",
                1.0,
                2.0 + i,
                10,
                20,
                settings_digest(made_with, item, kinds),
                products,
            )
        )
        cand.append((item, 10, 20))
    led.append(rows)
    digests = Digests(settings)
    expected = {"/r/a.tiq", "/r/b.cs16", "/r/c.wav"}
    assert led.done_items("iq", cand, digests, check_products=False) == expected
    assert led.done_items("iq", cand, lambda i, k: digests(i, k), check_products=False) == expected
